"""Energy + force training of the invariant potential on the one loop: it learns, resumes only
with the same settings, and reports bad input as one error."""
import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.surrogate.gcn.potential import InvariantPotential
from cgsurrogate.surrogate.train.loop import TrainConfig, fit
from cgsurrogate.surrogate.train.potential_task import PotentialLoss, PotentialTask


def _frames(n=6, sigma=0.1, seed=0):
    """Perturbed resting tubes with random strengths, labelled by the exact field."""
    g = torch.Generator().manual_seed(seed)
    te = TrueEnergy()
    x0 = torch.as_tensor(te.topology.positions)
    x = x0 + sigma * torch.randn(n, *x0.shape, generator=g, dtype=torch.float64)
    x[:, :26] = x0[:26]
    p = torch.exp(np.log(3) + (np.log(57) - np.log(3)) * torch.rand(n, 5, generator=g, dtype=torch.float64))
    xg = x.clone().requires_grad_(True)
    e, _ = te(xg, p)
    (grad,) = torch.autograd.grad(e.sum(), xg)
    return {"positions": x, "params": p, "energies": e.detach(), "forces": -grad}


def _force_error(model, d):
    x = d["positions"].clone().requires_grad_(True)
    e, _ = model(x, d["params"])
    (g,) = torch.autograd.grad(e.sum(), x)
    return float(((-g - d["forces"]) ** 2).sum() / (d["forces"] ** 2).sum()) ** 0.5


@pytest.mark.parametrize("anharmonic", [True, False])
def test_a_few_steps_of_energy_force_training_lower_the_force_error(anharmonic):
    torch.manual_seed(0)
    model = InvariantPotential(hidden=8, anharmonic=anharmonic).double()
    train, val = _frames(6, seed=1), _frames(3, seed=2)
    task = PotentialTask(train, val, PotentialLoss(noise_prob=0.0, restrength_prob=0.0),
                         linear_pool=None if anharmonic else 0)
    before = _force_error(model, val)
    res = fit(model, task, TrainConfig(epochs=2, steps_per_epoch=8, batch_size=3, lr=3e-2, progress=False))
    after = _force_error(model, val)
    assert after < 0.7 * before, (before, after)
    assert res["best_metrics"]["force_rel_rmse_median"] < before


def test_resume_refuses_changed_settings_and_extends(tmp_path):
    train = _frames(4, seed=3)
    cfg = dict(steps_per_epoch=2, batch_size=2, lr=1e-2, progress=False)

    def run(epochs, loss=None, **kw):
        torch.manual_seed(0)
        model = InvariantPotential(hidden=4, anharmonic=True).double()
        task = PotentialTask(train, None, loss or PotentialLoss(noise_prob=0.0, restrength_prob=0.0),
                             settings={"data": "x"})
        return fit(model, task, TrainConfig(epochs=epochs, **{**cfg, **kw}), tmp_path)

    r1 = run(1)
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file()
    r2 = run(2)  # more epochs: resumes
    assert [h["epoch"] for h in r2["history"]] == [0, 1] and r1["history"][0] == r2["history"][0]
    with pytest.raises(CGSurrogateError, match="lr"):
        run(3, lr=5e-3)
    with pytest.raises(CGSurrogateError, match="w_force"):
        run(3, loss=PotentialLoss(w_force=2.0, noise_prob=0.0, restrength_prob=0.0))
    with pytest.raises(CGSurrogateError, match="batch_size"):
        run(3, batch_size=1)


def test_config_and_output_errors(tmp_path):
    with pytest.raises(CGSurrogateError, match="epochs"):
        TrainConfig(epochs=0).check()
    with pytest.raises(CGSurrogateError, match="lr"):
        TrainConfig(lr=float("nan")).check()
    f = tmp_path / "file"
    f.write_text("x")
    model = InvariantPotential(hidden=4).double()
    task = PotentialTask(_frames(2), None, linear_pool=0)
    with pytest.raises(CGSurrogateError, match="not a folder"):
        fit(model, task, TrainConfig(epochs=1, steps_per_epoch=1, progress=False), f)


def test_cli_train_out_file_is_one_error_line(tmp_path, capsys):
    from cgsurrogate import cli

    f = tmp_path / "out.txt"
    f.write_text("x")
    assert cli.main(["train", "--data", str(tmp_path), "--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a folder" in err and "Traceback" not in err


def test_missing_runs_warn(tmp_path, tiny_dataset):
    import shutil

    from cgsurrogate.surrogate.train.potential_task import load_frames

    d = tmp_path / "copy"
    shutil.copytree(tiny_dataset, d)
    (d / "runs" / "run_00002.npz").unlink()
    with pytest.warns(UserWarning, match="1 of 6 runs are missing"):
        frames = load_frames(d, val_fraction=0.2)
    n = sum(len(v) for v in frames["info"]["train_ids"].values()) + sum(len(v) for v in frames["info"]["val_ids"].values())
    assert n == 5
