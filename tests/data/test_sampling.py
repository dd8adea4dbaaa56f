"""cli.py sample / data.sampling: exact labels, the dataset format, resume and refusal."""
import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.data.microtubule import MicrotubuleDataset, load_run
from cgsurrogate.data.sampling import sample_dataset
from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.simulate.sweep import run_path


@pytest.fixture(scope="module")
def sampled(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("sampled")
    res = sample_dataset(tiny_dataset, out, kinds=("perturb", "restrength", "load"), runs_per_kind=2, seed=1)
    return out, res


def test_sampled_folder_loads_in_the_dataset_format(sampled):
    out, res = sampled
    assert res["num_runs"] == 6 and len(res["computed"]) == 6
    ds = MicrotubuleDataset(out)
    x, y = ds[0]
    assert x.shape == (624, 11) and y.shape == (624, 1) and len(ds) == 6 * ds.frames_per_run


def test_labels_are_the_exact_field(sampled, rng):
    out, _ = sampled
    te = TrueEnergy()
    for r in (1, 2):  # restrength (off-grid strengths) and load (states along a loaded relaxation)
        run = load_run(run_path(out, r))
        f = int(rng.integers(run["positions"].shape[0]))
        x = torch.as_tensor(run["positions"][f])
        p = torch.as_tensor(run["params"])
        _, per = te(x, p)
        assert np.allclose(per.numpy(), run["energies"][f], rtol=1e-12, atol=1e-14)
        h = 1e-6
        for _ in range(3):  # forces: central differences of the exact total energy
            i, k = int(rng.integers(26, 624)), int(rng.integers(3))
            xp, xm = x.clone(), x.clone()
            xp[i, k] += h
            xm[i, k] -= h
            fd = -(float(te(xp, p)[0]) - float(te(xm, p)[0])) / (2 * h)
            assert fd == pytest.approx(run["forces"][f, i, k], abs=1e-5 * max(1.0, np.abs(run["forces"][f]).max()))
    strengths = load_run(run_path(out, 1))["params"]
    assert not np.isin(strengths, [3, 9, 18, 30, 39, 48, 57]).all()  # off the grid


def test_rerun_resumes_and_other_settings_are_refused(sampled, tiny_dataset):
    out, _ = sampled
    res = sample_dataset(tiny_dataset, out, kinds=("perturb", "restrength", "load"), runs_per_kind=2, seed=1)
    assert res["computed"] == [] and res["already_done"] == 6
    with pytest.raises(CGSurrogateError, match="other settings"):
        sample_dataset(tiny_dataset, out, kinds=("perturb",), runs_per_kind=2, seed=1)
    with pytest.raises(CGSurrogateError, match="unknown sample kind"):
        sample_dataset(tiny_dataset, out.parent / "x", kinds=("hot",))
    with pytest.raises(CGSurrogateError, match="itself a sampled dataset"):
        sample_dataset(out, out.parent / "y")


def test_cli_sample_and_evaluate(tiny_dataset, tmp_path, capsys):
    import json

    from cgsurrogate import cli

    out = tmp_path / "s"
    assert cli.main(["sample", "--data", str(tiny_dataset), "--out", str(out), "--kinds", "perturb",
                     "--runs-per-kind", "1", "--no-progress"]) == 0
    assert cli.main(["sample", "--data", str(tiny_dataset), "--out", str(out), "--kinds", "hot"]) == 2
    assert "error:" in capsys.readouterr().err
    assert cli.main(["evaluate", "--checkpoint", "microtubule-invariant", "--data", str(out),
                     "--json", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["runs"] == 1 and m["force_cosine_median"] > 0.999 and m["energy_rel_error_median"] < 0.01
