"""The microtubule dataset format and loader: features, split by run, normalisation."""
import json

import numpy as np
import pytest
import torch

from cgsurrogate.data.microtubule import (
    MicrotubuleDataset,
    Normalizer,
    load_microtubule_splits,
    load_run,
    split_runs,
)
from cgsurrogate.simulate.protocol import Protocol
from cgsurrogate.simulate.sweep import grid_param_sets, make_metadata, run_path, write_run

F, N = 3, 624


def _write_dataset(root, num_runs=5, seed=0):
    rng = np.random.default_rng(seed)
    params = grid_param_sets(3)[:num_runs]
    proto = Protocol(ramp_steps=4, hold_steps=2, save_every=2, ramp_increments=2)
    (root / "runs").mkdir(parents=True)
    meta = make_metadata(params, proto, batch_size=2, seed=0)
    (root / "metadata.json").write_text(json.dumps(meta))
    runs = {}
    for i, p in enumerate(params):
        arr = {
            "params": p,
            "positions": rng.normal(size=(F, N, 3)) * 10,
            "velocities": rng.normal(size=(F, N, 3)) * 1e-4,
            "forces": rng.normal(size=(F, N, 3)),
            "energies": rng.gamma(2.0, size=(F, N)),
            "steps": np.array([2, 4, 6], dtype=np.int64),
        }
        arr["velocities"][:, :26] = 0.0  # clamped nodes never move
        arr["positions"][:, :26] = 1.5
        write_run(run_path(root, i), arr)
        runs[i] = arr
    return runs


@pytest.fixture
def dataset_dir(tmp_path):
    root = tmp_path / "ds"
    runs = _write_dataset(root)
    return root, runs


def test_samples_have_contract_layout(dataset_dir):
    root, runs = dataset_dir
    ds = MicrotubuleDataset(root)
    assert ds.run_ids == [0, 1, 2, 3, 4] and len(ds) == 5 * F
    x, y = ds[2 * F + 1]  # run 2, frame 1
    assert x.shape == (N, 11) and y.shape == (N, 1) and x.dtype == torch.float32
    r = runs[2]
    assert np.allclose(x[:, 0:3], r["positions"][1], rtol=1e-6)
    assert np.allclose(x[:, 3:6], r["velocities"][1], rtol=1e-6, atol=1e-12)
    assert np.allclose(x[:, 6:11], np.broadcast_to(r["params"], (N, 5)))
    assert np.allclose(y[:, 0], r["energies"][1], rtol=1e-6)
    X, Y = ds.tensors()
    assert X.shape == (5 * F, N, 11) and torch.equal(X[2 * F + 1], x) and torch.equal(Y[2 * F + 1], y)
    assert ds.edge_index.shape == (2, 2 * 1232) and ds.topology.num_nodes == N


def test_split_is_by_run_disjoint_and_reproducible():
    ids = list(range(243))
    tr, va = split_runs(ids, 0.2, seed=0)
    assert len(va) == 49 and len(tr) == 194 and not set(tr) & set(va) and sorted(tr + va) == ids
    assert split_runs(ids, 0.2, seed=0) == (tr, va)
    assert split_runs(ids, 0.2, seed=1) != (tr, va)
    tr2, va2 = split_runs([4, 7], 0.2)
    assert len(tr2) == 1 and len(va2) == 1
    with pytest.raises(ValueError, match="val_fraction"):
        split_runs(ids, 1.5)


def test_normalizer_uses_training_runs_only(dataset_dir):
    root, runs = dataset_dir
    train, val, norm = load_microtubule_splits(root, val_fraction=0.4, seed=0)
    assert len(val.run_ids) == 2 and not set(train.run_ids) & set(val.run_ids)
    Xtr = np.concatenate([np.concatenate([runs[i]["positions"], runs[i]["velocities"],
                                          np.broadcast_to(runs[i]["params"], (F, N, 5))], -1) for i in train.run_ids])
    Ytr = np.concatenate([runs[i]["energies"][..., None] for i in train.run_ids])
    assert norm.x_mean.shape == (N, 11) and norm.y_std.shape == (N, 1)
    assert np.allclose(norm.x_mean.numpy()[26:], Xtr.mean(0)[26:], rtol=1e-5, atol=1e-6)
    assert np.allclose(norm.x_std.numpy()[26:, :3], Xtr.std(0)[26:, :3], rtol=1e-4)
    assert np.allclose(norm.y_mean.numpy(), Ytr.mean(0), rtol=1e-5)
    assert np.allclose(norm.y_std.numpy(), Ytr.std(0), rtol=1e-4)
    # clamped nodes: zero variance floored to a positive std, normalised values finite
    assert torch.all(norm.x_std[:26, :6] > 0)
    X, Y = train.tensors()
    Xn = norm.normalize_x(X)
    assert torch.isfinite(Xn).all() and Xn.dtype == torch.float32
    assert torch.allclose(Xn[:, 26:, :3].mean(0), torch.zeros(N - 26, 3), atol=1e-4)
    assert torch.allclose(norm.denormalize_y(norm.normalize_y(Y)), Y, rtol=1e-5, atol=1e-5)
    # in-memory fit agrees with the streaming fit
    n2 = Normalizer.fit(X, Y)
    assert torch.allclose(n2.x_mean, norm.x_mean, rtol=1e-6, atol=1e-8)
    assert torch.allclose(n2.y_std, norm.y_std, rtol=1e-6)


def test_normalizer_state_dict_roundtrip_weights_only(dataset_dir, tmp_path):
    root, _ = dataset_dir
    ds = MicrotubuleDataset(root)
    norm = Normalizer.fit_dataset(ds)
    path = tmp_path / "norm.pt"
    torch.save(norm.state_dict(), path)
    n2 = Normalizer.from_state_dict(torch.load(path, weights_only=True))
    x, _ = ds[0]
    assert torch.equal(n2.normalize_x(x), norm.normalize_x(x))


def test_corrupt_and_missing_shards_give_clear_errors(dataset_dir):
    root, _ = dataset_dir
    p = run_path(root, 3)
    p.write_bytes(p.read_bytes()[:1000])  # truncated
    ds = MicrotubuleDataset(root)
    with pytest.raises(ValueError, match=r"run_00003\.npz: corrupt run file"):
        ds[3 * F]
    with pytest.raises(ValueError, match="corrupt"):
        load_run(p)
    with pytest.raises(FileNotFoundError, match="missing for run ids"):
        MicrotubuleDataset(root, run_ids=[0, 99])
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        MicrotubuleDataset(root / "runs")
    (root / "metadata.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        MicrotubuleDataset(root)


def test_wrong_shapes_are_rejected(tmp_path):
    root = tmp_path / "ds"
    _write_dataset(root, num_runs=1)
    bad = {"params": np.ones(5), "positions": np.zeros((3, 10, 3)), "velocities": np.zeros((3, 10, 3)),
           "forces": np.zeros((3, 10, 3)), "energies": np.zeros((3, 10)), "steps": np.arange(3)}
    write_run(run_path(root, 0), bad)
    with pytest.raises(ValueError, match="inconsistent array shapes"):
        MicrotubuleDataset(root)[0]
