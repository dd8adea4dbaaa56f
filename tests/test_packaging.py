"""The distribution installs one import package, ``cgsurrogate``, and every subpackage of the
tree is in it."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("core", "commands", "simulate", "data", "surrogate", "optimize")


def _tree_packages():
    pkgs = {"cgsurrogate"}
    for top in FOLDERS:
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO)
            pkgs.add("cgsurrogate." + ".".join(rel.parts))
    return pkgs


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("cgsurrogate-*.whl")
    return whl


def test_wheel_holds_only_cgsurrogate(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert tops - dist_info == {"cgsurrogate"}, sorted(tops)
    assert len(dist_info) == 1
    assert not any("/tests/" in n or "/bench/" in n for n in names)
    # the shipped model files travel with the code
    assert "cgsurrogate/surrogate/pretrained/dsgpm_ham.pt" in names
    assert "cgsurrogate/cli.py" in names


def test_wheel_packages_match_the_tree(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    in_wheel = {n[: -len("/__init__.py")].replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert in_wheel == _tree_packages()


def test_installed_wheel_imports_every_module(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    code = ("import importlib, pkgutil, cgsurrogate, sys\n"
            "assert cgsurrogate.__file__.startswith(sys.argv[1]), cgsurrogate.__file__\n"
            "for m in pkgutil.walk_packages(cgsurrogate.__path__, 'cgsurrogate.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(sorted(cgsurrogate.__all__))\n"
            "for name in cgsurrogate.__all__: getattr(cgsurrogate, name)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
