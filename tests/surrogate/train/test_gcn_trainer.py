"""Training loop, schedules, resumable checkpoints, the train/evaluate CLI."""
import csv
import json

import numpy as np
import pytest
import torch

from cgsurrogate.simulate.tube import Tube
from cgsurrogate.surrogate.checkpoint import load_checkpoint, rebuild_model, save_checkpoint
from cgsurrogate.surrogate.graphs.hierarchy import Hierarchy
from cgsurrogate.surrogate.gcn.registry import build_model
from cgsurrogate.surrogate.train.gcn_trainer import Schedule, TrainConfig, epoch_batches, multigrid_cycle, train, validation_nmse


@pytest.fixture(scope="module")
def hier(pair_pool):
    return Hierarchy([Tube(8, 4, 1), Tube(4, 4, 0), Tube(2, 4, 0)], [pair_pool(8, 4), pair_pool(4, 4)])


@pytest.fixture(scope="module")
def toy_data(hier):
    """Targets from a smooth function of the inputs on the graph: y = tanh(L x w) (normalised)."""
    g = torch.Generator().manual_seed(0)
    lap = hier.laplacians[0].to_dense().float()
    X = torch.randn(120, 32, 4, generator=g)
    w = torch.randn(4, 1, generator=g)
    Y = torch.tanh(torch.einsum("ij,bjf->bif", lap, X) @ w / 4) + 0.3 * (X[..., :1] ** 2)
    Y = (Y - Y.mean()) / Y.std()
    return X[:96], Y[:96], X[96:], Y[96:]


def test_multigrid_cycles_visit_documented_levels():
    assert multigrid_cycle(1, 3) == [0, 1, 2, 1, 0]
    assert multigrid_cycle(2, 3) == [0, 1, 2, 2, 1, 1, 2, 2, 1, 0]
    assert multigrid_cycle(3, 3) == [0, 1, 2, 2, 2, 1, 1, 2, 2, 2, 1, 1, 2, 2, 2, 1, 0]
    assert multigrid_cycle(0, 3) == [0, 1, 2]
    assert multigrid_cycle(2, 2) == [0, 1, 1, 0]
    # coarsest level is visited gamma^(levels-1) times per cycle
    for gamma in (1, 2, 3):
        assert multigrid_cycle(gamma, 4).count(3) == gamma ** 3


def test_schedule_epoch_by_epoch():
    s = Schedule("gamma1", 3)
    seen = [s.levels(e) for e in range(7)]
    assert [t for _, t in seen] == [(0,), (1,), (2,), (1,), (0,), (0,), (1,)]
    assert all(f == (0, 1, 2) for f, _ in seen)
    assert Schedule("all", 3).levels(5) == ((0, 1, 2), (0, 1, 2))
    with pytest.raises(ValueError, match="multilevel"):
        Schedule("gamma2", 1)


def test_coarse_to_fine_phases_advance_after_patience():
    s = Schedule("coarse-to-fine", 3, patience=3)
    visited = []
    vals = [1.0, 0.9, 0.95, 0.93, 0.92, 0.8, 0.85, 0.84, 0.83, 0.5]  # 3 non-improving epochs after 0.9, then 0.8
    for e, v in enumerate(vals):
        visited.append(s.levels(e)[1])
        s.update(v)
    assert visited[:5] == [(2,)] * 5
    assert visited[5] == (1, 2)  # after epochs 2, 3, 4 did not improve on 0.9
    assert visited[9] == (0, 1, 2)
    st = s.state_dict()
    s2 = Schedule("coarse-to-fine", 3, patience=3)
    s2.load_state_dict(st)
    assert s2.levels(10) == s.levels(10)


def test_batches_depend_only_on_seed_and_epoch():
    a = epoch_batches(50, 3, seed=7, batches=20, batch_size=8)
    b = epoch_batches(50, 3, seed=7, batches=20, batch_size=8)
    c = epoch_batches(50, 4, seed=7, batches=20, batch_size=8)
    assert a.shape == (20, 8) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() < 50
    # every sample appears before any repeats (a permutation per pass)
    assert len(set(a.flatten()[:50].tolist())) == 50


def test_tiny_training_run_lowers_validation_error(hier, toy_data):
    Xt, Yt, Xv, Yv = toy_data
    torch.manual_seed(0)
    m = build_model("a-gpcn-3", hier, in_features=4, filters=[[8, 8], [8, 8], [8, 8]], dense=[16, 1])
    before = validation_nmse(m, Xv, Yv)
    res = train(m, Xt, Yt, Xv, Yv, TrainConfig(epochs=8, steps_per_epoch=10, lr=3e-3, seed=0), progress=False)
    assert res["best_val_nmse"] < 0.6 * before
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"]
    # FLOPs: 8 epochs x 10 batches x 8 samples x 3 x forward (all levels trained every step)
    assert res["flops"] == pytest.approx(8 * 10 * 8 * 3 * m.flops())


def test_multigrid_step_updates_only_the_visited_level(hier, toy_data):
    Xt, Yt, Xv, Yv = toy_data
    torch.manual_seed(0)
    m = build_model("a-gpcn-3", hier, in_features=4, filters=[[4], [4], [4]], dense=[4, 1])
    before = {k: v.clone() for k, v in m.state_dict().items()}
    # gamma1 cycle starts 0, 1, 2: run 3 epochs; then level 2 (coarse GCN + P_{1,2}) changed last
    res = train(m, Xt, Yt, Xv, Yv, TrainConfig(epochs=1, steps_per_epoch=2), schedule="gamma1", progress=False)
    after = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("gcns.0.") for k in changed)
    assert res["history"][0]["trained_levels"] == "0"
    # charged: forward of all levels + 2x backward of level 0, per sample
    f = m.flops_by_level()
    assert res["flops"] == pytest.approx(2 * 8 * (sum(f) + 2 * f[0]))


def test_training_resumes_exactly(hier, toy_data, tmp_path):
    Xt, Yt, Xv, Yv = toy_data

    def fresh():
        torch.manual_seed(5)
        return build_model("gpcn-3", hier, in_features=4, filters=[[4], [4], [4]], dense=[4, 1])

    cfg = dict(steps_per_epoch=3, seed=2)
    straight = fresh()
    r1 = train(straight, Xt, Yt, Xv, Yv, TrainConfig(epochs=4, **cfg), tmp_path / "a", schedule="gamma2", hierarchy=hier,
               progress=False)
    part = fresh()
    train(part, Xt, Yt, Xv, Yv, TrainConfig(epochs=2, **cfg), tmp_path / "b", schedule="gamma2", hierarchy=hier,
          progress=False)
    resumed = fresh()  # a new process would rebuild the model, then resume from last.pt
    r2 = train(resumed, Xt, Yt, Xv, Yv, TrainConfig(epochs=4, **cfg), tmp_path / "b", schedule="gamma2", hierarchy=hier,
               progress=False)
    for k, v in straight.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-6), k
    assert r2["flops"] == pytest.approx(r1["flops"])
    rows = list(csv.DictReader(open(tmp_path / "b" / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert float(rows[-1]["best_val_nmse"]) == pytest.approx(r1["best_val_nmse"])
    ck = load_checkpoint(tmp_path / "b" / "best.pt")
    assert ck["metrics"]["best_val_nmse"] == pytest.approx(r1["best_val_nmse"])
    c2f = fresh()
    r3 = train(c2f, Xt, Yt, Xv, Yv, TrainConfig(epochs=2, steps_per_epoch=2), tmp_path / "c",
               schedule="coarse-to-fine", hierarchy=hier, progress=False)
    best, _, _ = rebuild_model(load_checkpoint(tmp_path / "c" / "best.pt"))
    assert best.active_levels == (2,)  # only the coarse level was on when the best error was measured
    assert validation_nmse(best, Xv, Yv) == pytest.approx(r3["best_val_nmse"], rel=1e-5)
    with pytest.raises(ValueError, match="schedule"):
        train(fresh(), Xt, Yt, Xv, Yv, TrainConfig(epochs=5, steps_per_epoch=3, seed=2), tmp_path / "b",
              schedule="all", progress=False)


def test_checkpoint_roundtrip_and_bad_files(hier, tmp_path):
    from cgsurrogate.data.microtubule import Normalizer

    torch.manual_seed(0)
    from cgsurrogate.core.system_spec import SystemSpec

    m = build_model("a-gpcn-3", hier, in_features=8)  # positions, velocities, two parameters
    with torch.no_grad():
        m.P[0].mul_(1.1)  # trained P must come back from the state dict, not the hierarchy
    norm = Normalizer.fit(torch.randn(5, 32, 8), torch.randn(5, 32, 1))
    path = save_checkpoint(tmp_path / "m.pt", m, norm, hier, dataset_info={"path": "x", "hash": "h"},
                           metrics={"best_val_nmse": 0.5}, system_spec=SystemSpec.minimal(32, 2))
    ck = load_checkpoint(path)
    assert ck["units"]["energy"].startswith("kJ/mol") and ck["format_version"] == 1
    m2, norm2, h2 = rebuild_model(ck)
    x = torch.randn(2, 32, 8)
    assert torch.allclose(m2(x), m.eval()(x), atol=1e-6)
    assert torch.equal(norm2.y_std, norm.y_std) and h2.sizes == hier.sizes
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(bad)
    torch.save({"format": "something-else"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="foreign.pt: not a cgsurrogate"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def _write_tiny_dataset(root, runs=3, frames=2):
    """A dataset in the on-disk format of contract A; energies from the reference force field."""
    from cgsurrogate.simulate.energy import TrueEnergy
    from cgsurrogate.simulate.microtubule import GRID_VALUES, PARAM_NAMES

    energy = TrueEnergy()
    rest = torch.as_tensor(energy.topology.positions)
    (root / "runs").mkdir(parents=True)
    meta = {"format": "cgsurrogate-microtubule-sweep", "topology": "Tube(48,13,3)", "frames_per_run": frames,
            "param_names": list(PARAM_NAMES), "units": {"positions": "nm", "energies": "kJ/mol"}}
    (root / "metadata.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    for r in range(runs):
        params = np.array([GRID_VALUES[(r + i) % 7] for i in range(5)], dtype=np.float64)
        pos = rest[None].repeat(frames, 1, 1) + 0.05 * torch.as_tensor(rng.normal(size=(frames, 624, 3)))
        _, per = energy(pos, torch.as_tensor(params)[None].repeat(frames, 1))
        np.savez(root / "runs" / f"run_{r:05d}.npz", params=params, positions=pos.numpy(),
                 velocities=0.01 * rng.normal(size=(frames, 624, 3)), forces=np.zeros((frames, 624, 3)),
                 energies=per.detach().numpy(), steps=np.arange(frames, dtype=np.int64))


def test_cli_train_resume_and_evaluate(tmp_path, capsys):
    from cgsurrogate import cli

    data = tmp_path / "mt"
    _write_tiny_dataset(data)
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--model", "gpcn-2", "--schedule", "gamma1", "--epochs", "2",
            "--batches-per-epoch", "2", "--batch-size", "2", "--out", str(out)]
    assert cli.main(args) == 0
    args[args.index("--epochs") + 1] = "3"
    assert cli.main(args) == 0  # resumes at epoch 2
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["trained_levels"] for r in rows] == ["0", "1", "0"]
    assert cli.main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(data),
                     "--json", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["runs"] == 1 and m["nmse"] > 0 and m["rmse_node_kjmol"] > 0
    ck = load_checkpoint(out / "best.pt")
    assert ck["dataset"]["val_ids"] and set(ck["dataset"]["parameter_ranges"]) == {
        "LatAssoc", "LongAssoc", "LatAngle", "LongAngle", "QuadAngles"}
    assert cli.main(["train", "--data", str(tmp_path / "nope"), "--model", "gcn", "--out", str(out)]) == 2
    assert cli.main(["train", "--data", str(data), "--model", "gcn", "--schedule", "gamma2", "--out",
                     str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "multilevel" in err
