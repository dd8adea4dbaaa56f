"""The command line's framework: explicit command registry, user errors as one ``error:`` line with
exit status 2, other exceptions keep their traceback, a cheap ``--help``, finite numbers only,
and output paths checked before any computing (issue 11, reliability defects 3, 4 and 6)."""
import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from cgsurrogate import cli
from cgsurrogate.core.errors import CGSurrogateError

EXPECTED_COMMANDS = ("simulate", "hierarchy", "train", "evaluate", "sample", "active-learn", "predict", "relax",
                     "cgmap", "mcomplex", "eghn-train", "protein-md")


def _strict_json(text):
    def refuse(name):
        raise ValueError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=refuse)


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# ---- framework ----
def test_commands_are_registered_explicitly():
    assert isinstance(cli.COMMANDS, tuple) and all(callable(c) for c in cli.COMMANDS)
    sub = cli.build_parser()._subparsers._group_actions[0]
    assert set(EXPECTED_COMMANDS) <= set(sub.choices)
    assert len(sub.choices) == len(cli.COMMANDS)  # one subcommand per registered function, nothing else
    # a helper named add_* that is not in COMMANDS is not a command
    assert "finite_float" not in sub.choices


def _add_probe(sub):
    p = sub.add_parser("probe")
    p.add_argument("kind")

    def run(args):
        if args.kind == "user":
            raise CGSurrogateError("--thing 3: must be even")
        if args.kind == "bug":
            raise ValueError("an internal invariant broke")
        if args.kind == "missing":
            open("/nonexistent/dir/file")  # a FileNotFoundError that is not the user's input
        return 0

    p.set_defaults(func=run)


def test_user_error_is_one_line_and_other_exceptions_keep_their_traceback(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", cli.COMMANDS + (_add_probe,))
    assert cli.main(["probe", "ok"]) == 0
    assert cli.main(["probe", "user"]) == 2
    assert _one_error_line(capsys) == "error: --thing 3: must be even"
    with pytest.raises(ValueError, match="internal invariant"):  # plain ValueError is a bug: not swallowed
        cli.main(["probe", "bug"])
    with pytest.raises(FileNotFoundError):
        cli.main(["probe", "missing"])


def test_help_imports_no_heavy_library():
    code = ("import sys; from cgsurrogate import cli; cli.build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'openmm', 'rdkit', 'MDAnalysis', 'matplotlib', 'sklearn', 'dask',"
            " 'scipy', 'ase') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_runs_as_a_script():
    r = subprocess.run([sys.executable, "cli.py", "--help"], capture_output=True, text=True,
                       cwd=cli.__file__.rsplit("/", 1)[0])
    assert r.returncode == 0 and all(c in r.stdout for c in EXPECTED_COMMANDS)


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "abc"])
def test_finite_float_refuses_nan_inf_and_text(text):
    with pytest.raises(argparse.ArgumentTypeError):
        cli.finite_float(text)
    assert cli.finite_float("1e-3") == 1e-3


# ---- defect 6: relax --perturb nan accepted, relax.json with a bare NaN ----
@pytest.mark.parametrize("flag,value", [("--perturb", "nan"), ("--load", "inf"), ("--tol", "nan")])
def test_relax_refuses_non_finite_numbers(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exc:
        cli.main(["relax", "--out", str(tmp_path / "o"), flag, value])
    assert exc.value.code == 2
    assert "not a finite number" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_relax_json_is_strict_even_for_a_stage_that_never_ran(tmp_path):
    """A schedule whose budget ends before its last stage has no stage gradient: JSON null, not NaN."""
    out = tmp_path / "run"
    rc = cli.main(["relax", "--out", str(out), "--schedule", "0:3,0", "--max-evals", "3", "--perturb", "0.01",
                   "--no-openmm", "--no-progress"])
    assert rc == 1  # not converged in 3 evaluations
    summary = _strict_json((out / "relax.json").read_text())
    assert [s["reason"] for s in summary["stages"]] == ["budget", "budget"]
    assert summary["stages"][1]["stage_gnorm"] is None and summary["stages"][1]["evals"] == 0
    assert summary["evals"] == 3 and summary["start_perturbation_nm"] == 0.01


def test_report_write_json_refuses_nan(tmp_path):
    from cgsurrogate.optimize.report import write_json

    with pytest.raises(CGSurrogateError, match="bad.json.*NaN"):
        write_json(tmp_path / "bad.json", {"energy": np.float64("nan")})
    assert not (tmp_path / "bad.json").exists()
    write_json(tmp_path / "ok.json", {"a": np.arange(3), "b": np.float32(0.5)})
    assert _strict_json((tmp_path / "ok.json").read_text()) == {"a": [0, 1, 2], "b": 0.5}


# ---- defect 3: output paths that cannot be written, checked before computing ----
def test_relax_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    assert cli.main(["relax", "--out", str(f), "--no-progress"]) == 2
    _one_error_line(capsys, "--out", "file.txt", "is a file")
    assert cli.main(["relax", "--out", str(f / "sub"), "--no-progress"]) == 2
    _one_error_line(capsys, "is a file, not a folder")
    assert f.read_text() == "keep me"


@pytest.fixture(scope="module")
def rest_xyz(tmp_path_factory):
    """The microtubule at rest as extended XYZ with its strengths (a valid predict input)."""
    import ase
    import ase.io

    from cgsurrogate.simulate.microtubule import microtubule_topology

    topo = microtubule_topology()
    atoms = ase.Atoms(symbols=["X"] * topo.num_nodes, positions=topo.positions * 10.0)
    atoms.info["params"] = np.array([30.0] * 5)
    path = tmp_path_factory.mktemp("pred") / "rest.xyz"
    ase.io.write(path, atoms, format="extxyz")
    return path


def test_predict_output_is_a_folder_or_under_a_file(rest_xyz, tmp_path, capsys):
    folder = tmp_path / "out.npz"
    folder.mkdir()
    assert cli.main(["predict", "--model", "reference", "--input", str(rest_xyz), "--output", str(folder),
                     "--no-progress"]) == 2
    _one_error_line(capsys, "--output", "is a folder")
    blocker = tmp_path / "FILE"
    blocker.write_text("x")
    assert cli.main(["predict", "--model", "reference", "--input", str(rest_xyz), "--output",
                     str(blocker / "sub" / "x.npz"), "--no-progress"]) == 2
    _one_error_line(capsys, "FILE is a file, not a folder")
    assert list(folder.iterdir()) == [] and blocker.read_text() == "x"


# ---- defect 4: predict --output equal to --input overwrote the trajectory ----
def test_predict_refuses_to_overwrite_its_input(rest_xyz, capsys):
    before = rest_xyz.read_bytes()
    assert cli.main(["predict", "--model", "reference", "--input", str(rest_xyz), "--output", str(rest_xyz),
                     "--no-progress"]) == 2
    _one_error_line(capsys, "is the input file")
    # the same file by another spelling
    other = rest_xyz.parent / "." / rest_xyz.name
    assert cli.main(["predict", "--model", "reference", "--input", str(rest_xyz), "--output", str(other),
                     "--no-progress"]) == 2
    _one_error_line(capsys, "is the input file")
    assert rest_xyz.read_bytes() == before


def test_predict_missing_input_and_bad_suffix(rest_xyz, tmp_path, capsys):
    assert cli.main(["predict", "--model", "reference", "--input", str(tmp_path / "none.xyz")]) == 2
    _one_error_line(capsys, "--input", "none.xyz", "no such file")
    assert cli.main(["predict", "--model", "reference", "--input", str(rest_xyz), "--output",
                     str(tmp_path / "x.csv")]) == 2
    _one_error_line(capsys, ".npz, .xyz or .extxyz")


# ---- output paths of the other commands this file's owner has ----
def test_hierarchy_out_is_a_folder_or_under_a_file(tmp_path, capsys):
    blocker = tmp_path / "FILE"
    blocker.write_text("x")
    for out, needle in ((tmp_path, "is a folder"), (blocker / "h.pt", "is a file, not a folder")):
        assert cli.main(["hierarchy", "Path(4)", "Path(2)", "--no-cache", "--out", str(out)]) == 2
        _one_error_line(capsys, "--out", needle)
    assert cli.main(["hierarchy", "--load", str(tmp_path / "missing.pt")]) == 2
    _one_error_line(capsys, "--load", "missing.pt")


def test_hierarchy_out_must_not_overwrite_the_loaded_file(tmp_path, capsys):
    out = tmp_path / "h.pt"
    assert cli.main(["hierarchy", "Path(4)", "Path(2)", "--no-cache", "--no-optimal-alpha", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["hierarchy", "--load", str(out), "--out", str(out)]) == 2
    _one_error_line(capsys, "is the input file")


def test_mcomplex_and_protein_md_output_paths(tmp_path, capsys):
    blocker = tmp_path / "FILE"
    blocker.write_text("x")
    assert cli.main(["mcomplex", "--out", str(tmp_path)]) == 2
    _one_error_line(capsys, "--out", "is a folder")
    assert cli.main(["mcomplex", "--out", str(blocker / "m.npz")]) == 2
    _one_error_line(capsys, "is a file, not a folder")
    pdb = tmp_path / "in.pdb"
    pdb.write_text("END\n")
    assert cli.main(["protein-md", "--pdb", str(pdb), "--out", str(blocker)]) == 2
    _one_error_line(capsys, "--out", "is a file, expected a folder")
    assert cli.main(["protein-md", "--pdb", str(tmp_path / "none.pdb"), "--out", str(tmp_path / "o")]) == 2
    _one_error_line(capsys, "--pdb", "no such file")
    with pytest.raises(SystemExit):
        cli.main(["protein-md", "--pdb", str(pdb), "--out", str(tmp_path / "o"), "--ns", "nan"])
    assert not (tmp_path / "o").exists()


def test_eghn_train_output_paths(tmp_path, capsys):
    blocker = tmp_path / "FILE"
    blocker.write_text("x")
    data = tmp_path / "data.npz"
    data.write_bytes(b"")
    assert cli.main(["eghn-train", "--task", "mcomplex", "--data", str(data), "--out", str(tmp_path)]) == 2
    _one_error_line(capsys, "--out", "is a folder")
    assert cli.main(["eghn-train", "--task", "mcomplex", "--data", str(data), "--out", str(blocker / "m.pt")]) == 2
    _one_error_line(capsys, "is a file, not a folder")
    assert cli.main(["eghn-train", "--task", "microtubule", "--data", str(tmp_path), "--out", str(blocker)]) == 2
    _one_error_line(capsys, "--out", "is a file, expected a folder")
    assert cli.main(["eghn-train", "--task", "mcomplex", "--data", str(tmp_path / "none.npz"),
                     "--out", str(tmp_path / "m.pt")]) == 2
    _one_error_line(capsys, "--data", "none.npz")
    with pytest.raises(SystemExit):
        cli.main(["eghn-train", "--task", "mcomplex", "--lr", "nan", "--out", str(tmp_path / "m.pt")])


def test_evaluate_json_under_a_file(tiny_checkpoint, tiny_dataset, tmp_path, capsys):
    blocker = tmp_path / "FILE"
    blocker.write_text("x")
    rc = cli.main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_dataset),
                   "--json", str(blocker / "sub" / "m.json")])
    assert rc == 2
    _one_error_line(capsys, "m.json")
    assert blocker.read_text() == "x"
    good = tmp_path / "metrics.json"
    assert cli.main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_dataset),
                     "--json", str(good)]) == 0
    assert np.isfinite(_strict_json(good.read_text())["nmse"])


def test_active_learn_bad_paths_and_runs_are_one_error_line(tiny_dataset, tmp_path, capsys):
    from cgsurrogate import cli

    f = tmp_path / "file"
    f.write_text("x")
    cases = [(["--data", str(tmp_path / "nope"), "--test", str(tiny_dataset), "--out", str(tmp_path / "o")], "nope"),
             (["--data", str(tiny_dataset), "--test", str(tiny_dataset), "--out", str(f)], "not a folder"),
             (["--data", str(tiny_dataset), "--runs", "0,999", "--test", str(tiny_dataset), "--out",
               str(tmp_path / "o")], "999"),
             (["--data", str(tiny_dataset), "--test", str(tmp_path / "no_test"), "--out", str(tmp_path / "o")],
              "no_test: dataset folder not found")]
    for args, words in cases:
        assert cli.main(["active-learn", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and words in err[0]
    assert not (tmp_path / "o").exists()  # nothing computed or written before the checks
