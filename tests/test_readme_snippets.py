"""The README's usage examples run as written, in order, on a tiny trained model."""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def usage_snippets() -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block in the README's usage section."""
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- BEGIN usage -->(.*?)<!-- END usage -->", text, re.S)
    assert m, "README.md has no usage section"
    return re.findall(r"```(bash|python)\n(.*?)```", m.group(1), re.S)


def _run(cmd, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd[:3]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_usage_section_covers_every_way_of_using_the_toolkit():
    snippets = usage_snippets()
    code = "\n".join(c for _, c in snippets)
    for needle in ("SurrogateCalculator", "VelocityVerlet", "cli.py predict", "from cgsurrogate.surrogate.interfaces.prediction import predict",
                   "cli.py relax", "surrogate_system", "MLPotential"):
        assert needle in code, needle


def test_readme_usage_snippets_run_as_written(tiny_checkpoint, tmp_path):
    shutil.copy(tiny_checkpoint, tmp_path / "model.pt")
    for lang, code in usage_snippets():
        if lang == "python":
            _run([sys.executable, "-c", code], tmp_path)
            continue
        for line in code.strip().splitlines():
            args = shlex.split(line, comments=True)
            assert args[:2] == ["python", "cli.py"], line
            _run([sys.executable, str(REPO / "cli.py"), *args[2:]], tmp_path)

    # What the snippets wrote is what they claim, checked against independent computations.
    from cgsurrogate.simulate.energy import TrueEnergy
    from cgsurrogate.surrogate.interfaces.energy_function import load_surrogate

    frames = ase.io.read(tmp_path / "md.xyz", ":")
    assert len(frames) == 11 and len(frames[0]) == 624
    x = torch.tensor(np.stack([a.positions / 10.0 for a in frames]))
    p = torch.full((len(frames), 5), 30.0, dtype=torch.float64)
    true = np.load(tmp_path / "md_true.npz", allow_pickle=False)
    with torch.no_grad():
        assert np.allclose(true["energies"], TrueEnergy()(x, p)[1].numpy(), rtol=1e-9, atol=1e-14)
    pred = np.load(tmp_path / "md_energies.npz", allow_pickle=False)
    with torch.no_grad():  # the MD, predict and relax examples use the shipped invariant potential
        ref = load_surrogate("microtubule-invariant")(x, p)[1].numpy()
    assert np.allclose(pred["energies"], ref, rtol=1e-5, atol=1e-12)
    assert pred["forces"].shape == (11, 624, 3)
    assert len(ase.io.read(tmp_path / "md_energies.xyz", ":")) == 11
    relaxed = np.load(tmp_path / "relaxed" / "energies.npz", allow_pickle=False)
    assert relaxed["energies"].shape == (1, 624) and np.allclose(relaxed["params"], 30.0)
