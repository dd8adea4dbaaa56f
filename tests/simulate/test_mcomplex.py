"""M-complex: the rigid-body generator (sticks conserved, reproduces the reference generator's frames),
file round trip, loader graphs, and a short training run that must beat linear extrapolation."""
import json

import numpy as np
import pytest
import torch

from cgsurrogate.data.mcomplex import MComplexDataset, load_mcomplex_arrays, mcomplex_graph
from cgsurrogate.simulate.mcomplex import RigidComplexes, coulomb_forces, draw_size_sets, simulate_mcomplex, write_mcomplex_dataset
from cgsurrogate.surrogate.train.dynamics_trainer import TrainConfig, build_dynamics_model, evaluate_mse, train_dynamics


def test_forces_match_pairwise_sum_and_newton_third_law(rng):
    X = rng.normal(size=(2, 5, 3)) * 2
    q = rng.choice([1.0, -1.0], size=(2, 5))
    F = coulomb_forces(X, q, clip=np.inf)
    ref = np.zeros_like(X)
    for t in range(2):
        for i in range(5):
            for j in range(5):
                if i != j:
                    d = X[t, i] - X[t, j]
                    ref[t, i] += q[t, i] * q[t, j] * d / np.linalg.norm(d) ** 3
    assert np.allclose(F, ref, rtol=1e-12, atol=1e-12)
    assert np.abs(F.sum(1)).max() < 1e-10
    assert np.abs(coulomb_forces(X * 1e-3, q)).max() <= 100.0


def test_simulator_conserves_sticks_and_draws_sizes(rng):
    sizes = draw_size_sets(3, 3, 1, rng)[0]
    assert sorted(sizes) == [2, 3, 4]
    for s in draw_size_sets(5, 5, 4, rng):
        assert len(set(s)) == 5 and min(s) >= 2 and max(s) <= 8
    X0, V0, q, comp = __import__("cgsurrogate.simulate.mcomplex", fromlist=["initial_state"]).initial_state([2, 3, 4], 4, rng)
    sysm = RigidComplexes(X0, V0, q, comp, 3)
    pair0 = np.linalg.norm(sysm.X[:, :, None] - sysm.X[:, None], axis=-1)
    same = comp[:, :, None] == comp[:, None, :]
    for _ in range(600):
        sysm.step()
    pair1 = np.linalg.norm(sysm.X[:, :, None] - sysm.X[:, None], axis=-1)
    assert np.abs(pair1 - pair0)[same].max() < 1e-9
    assert sysm.stick_errors().max() < 1e-9
    # the complexes did move relative to each other
    assert np.abs(pair1 - pair0)[~same].max() > 1e-2


def test_generator_reproduces_reference_frames(shared_data):
    """Integrating 100 steps from frame 10 of the authors' file lands on its frame 11."""
    d = np.load(shared_data / "mcomplex" / "mcomplex_3x3.npz")
    loc, vel = d["test_loc"][:10], d["test_vel"][:10]
    sysm = RigidComplexes.from_state(loc[:, 10], vel[:, 10], d["test_charges"][:10], d["test_complex"][:10], 3)
    for _ in range(100):
        sysm.step()
    err = np.abs(sysm.X - loc[:, 11]).max(axis=(1, 2))
    assert np.median(err) < 1e-10
    assert (err < 1e-8).mean() >= 0.9


def test_write_and_load_roundtrip(tmp_path):
    p = write_mcomplex_dataset(tmp_path / "mc.npz", n_complex=3, average_size=3, n_systems=2,
                               n_train=6, n_valid=3, n_test=3, n_steps=2600, seed=1, progress=False)
    arr = load_mcomplex_arrays(p)
    assert arr["train_loc"].shape[1] == 26 and arr["metadata"]["n_systems"] == 2
    ds = MComplexDataset(p, "train")
    assert len(ds) == 6 and ds.n_clusters == 3
    g = ds[0]
    n = g["pos"].shape[0]
    assert g["edge_index"].shape[1] == n * (n - 1)
    i, j = g["local_edge_index"]
    assert bool((g["complex"][i] == g["complex"][j]).all())
    # velocities at frame 10 are consistent with rigid motion of each complex
    assert torch.allclose(g["h"][:, 0], g["vel"].norm(dim=1))


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        MComplexDataset(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, foo=np.zeros(3))
    with pytest.raises(ValueError, match="bad.npz"):
        MComplexDataset(bad)


def test_reference_loader_and_short_training(shared_data):
    p = shared_data / "mcomplex" / "mcomplex_3x3.npz"
    tr = MComplexDataset(p, "train", max_samples=80).graphs
    va = MComplexDataset(p, "valid", max_samples=40).graphs
    assert tr[0]["pos"].shape == (9, 3)
    lin = build_dynamics_model("linear", 1, 2)
    rl = train_dynamics(lin, tr, va, va, progress=False)
    torch.manual_seed(0)
    m = build_dynamics_model("eghn", 1, 2, 2, [3], hidden=24, layers_per_block=1, pool_layers=1)
    r = train_dynamics(m, tr, va, None, TrainConfig(epochs=6, batch_size=20, lr=1e-3, eval_every=1),
                       lambda_conn=1.0, progress=False)
    assert r["best_val_mse"] < rl["best_val_mse"]
    assert abs(evaluate_mse(m, va) - r["best_val_mse"]) < 1e-6


def test_cli_generate_train_resume(tmp_path, capsys):
    from cgsurrogate import cli
    from cgsurrogate.surrogate.train.dynamics_trainer import load_dynamics_checkpoint, load_dynamics_model
    data, ck = tmp_path / "mc.npz", tmp_path / "egnn.pt"
    assert cli.main(["mcomplex", "--out", str(data), "--train", "6", "--valid", "3", "--test", "3"]) == 0
    args = ["eghn-train", "--task", "mcomplex", "--data", str(data), "--model", "eghn", "--batch-size", "3",
            "--hidden", "8", "--out", str(ck)]
    assert cli.main(args + ["--epochs", "2"]) == 0
    st = load_dynamics_checkpoint(ck)
    assert st["epoch"] == 1 and st["model_config"]["name"] == "eghn"
    assert cli.main(args + ["--epochs", "3"]) == 0  # resumes and runs one more epoch
    st = load_dynamics_checkpoint(ck)
    assert st["epoch"] == 2 and len(st["history"]) == 3
    test = MComplexDataset(data, "test").graphs
    model = load_dynamics_model(ck)
    assert abs(evaluate_mse(model, test) - st["test_mse"]) < 1e-6
    assert cli.main(["eghn-train", "--task", "mcomplex", "--data", str(tmp_path / "no.npz"), "--out", str(ck)]) == 2
    assert "no.npz" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(ValueError, match="bad.pt"):
        load_dynamics_checkpoint(bad)


def test_cli_eghn_options_reach_model_and_training(tmp_path):
    """eghn-train's EGHN shape and training options (issue 13) end up in the model and its config."""
    from cgsurrogate import cli
    from cgsurrogate.surrogate.equivariant.eghn import EGHN
    from cgsurrogate.surrogate.train.dynamics_trainer import load_dynamics_checkpoint, load_dynamics_model
    data, ck = tmp_path / "mc.npz", tmp_path / "eghn.pt"
    assert cli.main(["mcomplex", "--out", str(data), "--train", "6", "--valid", "3", "--test", "3"]) == 0
    assert cli.main(["eghn-train", "--task", "mcomplex", "--data", str(data), "--model", "eghn", "--batch-size", "3",
                     "--hidden", "8", "--epochs", "2", "--eval-every", "1", "--patience", "4", "--clip-grad", "0.5",
                     "--layers-per-block", "1", "--pool-layers", "3", "--unpool-init", "identity",
                     "--conn-norm", "squared", "--out", str(ck)]) == 0
    st = load_dynamics_checkpoint(ck)
    mc, tc = st["model_config"], st["train_config"]
    assert (mc["layers_per_block"], mc["pool_layers"], mc["unpool_init"], mc["conn_norm"]) == (1, 3, "identity", "squared")
    assert (tc["eval_every"], tc["patience"], tc["clip_grad"]) == (1, 4, 0.5)
    model = load_dynamics_model(ck)
    assert isinstance(model, EGHN) and model.conn_norm == "squared"
    assert len(model.pools[0].layers) == 3 and len(model.enc[0]) == 1
    assert cli.main(["eghn-train", "--task", "mcomplex", "--data", str(data), "--patience", "-1",
                     "--out", str(tmp_path / "x.pt")]) == 2
