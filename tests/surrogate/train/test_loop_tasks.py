"""One trainer for every task (issue 11): the task registry, epochs as passes, and resumes that
repeat a straight run for the dynamics and energy-head tasks as for the others."""
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.train.loop import TASKS, Task, TrainConfig, epoch_pass, task_class


def test_every_registered_task_is_a_task_of_that_name():
    assert set(TASKS) == {"gcn", "dynamics", "eghn-energy", "potential", "dsgpm"}
    for name in TASKS:
        cls = task_class(name)
        assert issubclass(cls, Task) and cls.name == name
    with pytest.raises(CGSurrogateError, match="unknown training task"):
        task_class("nope")


def test_epoch_pass_visits_every_sample_once_in_a_seeded_order():
    a = epoch_pass(23, 4, seed=1, batch_size=5)
    assert [len(b) for b in a] == [5, 5, 5, 5, 3]
    assert sorted(torch.cat(a).tolist()) == list(range(23))
    assert all(torch.equal(x, y) for x, y in zip(a, epoch_pass(23, 4, seed=1, batch_size=5)))
    assert not torch.equal(torch.cat(a), torch.cat(epoch_pass(23, 5, seed=1, batch_size=5)))
    with pytest.raises(CGSurrogateError, match="steps_per_epoch"):
        TrainConfig(steps_per_epoch=-1).check()


def test_dynamics_resume_repeats_the_straight_run(shared_data, tmp_path):
    from cgsurrogate.data.mcomplex import MComplexDataset
    from cgsurrogate.surrogate.train.dynamics_trainer import build_dynamics_model, load_dynamics_checkpoint, train_dynamics

    p = shared_data / "mcomplex" / "mcomplex_3x3.npz"
    tr = MComplexDataset(p, "train", max_samples=24).graphs
    va = MComplexDataset(p, "valid", max_samples=8).graphs

    def run(epochs, ck):
        torch.manual_seed(0)
        m = build_dynamics_model("egnn", 1, 2, hidden=8, n_layers=1)
        cfg = TrainConfig(epochs=epochs, batch_size=10, lr=1e-3, eval_every=1, progress=False)
        return m, train_dynamics(m, tr, va, va, cfg, checkpoint=ck, progress=False)

    straight, r1 = run(3, tmp_path / "a.pt")
    run(2, tmp_path / "b.pt")
    resumed, r2 = run(3, tmp_path / "b.pt")
    for k, v in straight.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-7), k
    assert [h["val_mse"] for h in r1["history"]] == pytest.approx([h["val_mse"] for h in r2["history"]], rel=1e-6)
    # 24 graphs in batches of 10: one pass is 3 steps, the last of 4 graphs
    st = load_dynamics_checkpoint(tmp_path / "b.pt")
    assert st["epoch"] == 2 and st["best_val_mse"] == pytest.approx(r1["best_val_mse"], rel=1e-6)
    assert st["test_mse"] == pytest.approx(r1["test_mse"], rel=1e-6)


def test_energy_head_resumes_from_last_pt_and_refuses_changes(tiny_dataset, tmp_path):
    from cgsurrogate.surrogate.checkpoint import load_checkpoint
    from cgsurrogate.surrogate.train.energy_head_training import train_microtubule_energy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        kw = dict(batches_per_epoch=1, batch_size=2, hidden=8, n_clusters=4, max_val_samples=2, progress=False)
        r1 = train_microtubule_energy(tiny_dataset, tmp_path, epochs=1, **kw)
        assert (tmp_path / "last.pt").is_file() and r1["epochs_run"] == 1
        r2 = train_microtubule_energy(tiny_dataset, tmp_path, epochs=2, **kw)
        assert r2["epochs_run"] == 2
        ck = load_checkpoint(tmp_path / "best.pt")
        assert ck["metrics"]["epochs_run"] == 2 and ck["metrics"]["best_val_nmse"] == pytest.approx(r2["best_val_nmse"])
        assert ck["system_spec"]["num_particles"] == 624 and len(ck["system_spec"]["param_names"]) == 5
        with pytest.raises(CGSurrogateError, match="lr"):
            train_microtubule_energy(tiny_dataset, tmp_path, epochs=3, lr=5e-4, **kw)
    finally:
        torch.set_num_threads(threads)
