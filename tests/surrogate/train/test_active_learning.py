"""Active learning: a round labels the configurations where the model and the exact field disagree
most, and retraining on them lowers the error there; selection, the data format and the resume."""
import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.train.active_learning import (
    ActiveLearningConfig,
    active_round,
    concat_frames,
    read_frames,
    run_active_learning,
    select,
    train_model,
    write_labelled,
)


@pytest.fixture(scope="module")
def setting():
    from cgsurrogate.data.sampling import exact_labels
    from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM, MONOMER_MASS_AMU, microtubule_topology

    topo = microtubule_topology()
    meta = {"clamp_nodes": topo.ring_nodes([0, 1]).tolist(), "load_nodes": topo.ring_nodes([-2, -1]).tolist(),
            "protocol": {"load": LOAD_FORCE_KJMOL_NM}, "monomer_mass_amu": MONOMER_MASS_AMU, "format_version": 1}
    rng = np.random.default_rng(0)
    free = np.ones(topo.num_nodes, bool)
    free[meta["clamp_nodes"]] = False
    X = topo.positions[None] + 0.05 * rng.standard_normal((4, topo.num_nodes, 3)) * free[:, None]
    P = np.tile([[10.0, 20.0, 30.0, 15.0, 25.0]], (4, 1))  # one strength set: a weak start
    e, f = exact_labels(X, P)
    initial = {"positions": torch.as_tensor(X), "params": torch.as_tensor(P), "energies": torch.as_tensor(e.sum(1)),
               "forces": torch.as_tensor(f)}
    return meta, initial, free


def _force_errors(model, X, P, free):
    """Independent reference: relative force RMSE of ``model`` against TrueEnergy's autograd forces."""
    from cgsurrogate.simulate.energy import TrueEnergy

    out = []
    for fld in (model, TrueEnergy()):
        x = torch.as_tensor(X).clone().requires_grad_(True)
        tot, _ = fld(x, torch.as_tensor(P))
        (g,) = torch.autograd.grad(tot.sum(), x)
        out.append(-g.detach().numpy()[:, free])
    d, ref = out[0] - out[1], out[1]
    return np.sqrt((d ** 2).mean((1, 2))) / np.sqrt((ref ** 2).mean((1, 2)))


def test_round_selects_worst_and_retraining_lowers_their_error(setting, tmp_path):
    meta, initial, free = setting
    cfg = ActiveLearningConfig(per_round=3, candidates=9, md_steps=4, relax_iterations=4, epochs=40)
    model = train_model(initial, cfg, seed=0)
    sel = active_round(model, initial, meta, cfg, np.random.default_rng(1))
    pool = np.sort(sel["pool_scores"])[::-1]
    assert len(sel["scores"]) == 3 and len(pool) == 9
    np.testing.assert_allclose(np.sort(sel["scores"])[::-1], pool[:3])  # the three largest disagreements
    before = _force_errors(model, sel["positions"], sel["params"], free)
    np.testing.assert_allclose(before, sel["scores"], rtol=1e-8)  # scores are the measured errors
    assert before.min() > 0.05  # the weak model has real errors there (new strengths)
    write_labelled(tmp_path / "r1", sel["positions"], sel["params"], sel["energies"], sel["forces"], meta, {"round": 1})
    added = read_frames(tmp_path / "r1")
    np.testing.assert_allclose(added["energies"].numpy(), sel["energies"].sum(1))
    retrained = train_model(concat_frames([initial, added]), cfg, seed=0)
    after = _force_errors(retrained, sel["positions"], sel["params"], free)
    assert after.mean() < 0.5 * before.mean(), (before, after)


def test_select_random_and_bad_strategy():
    rng = np.random.default_rng(0)
    s = np.array([0.1, 0.9, 0.5, 0.7])
    assert select(s, 2, "disagreement", rng).tolist() == [1, 3]
    r = select(s, 3, "random", rng)
    assert len(set(r.tolist())) == 3 and r.min() >= 0 and r.max() < 4
    with pytest.raises(CGSurrogateError):
        select(s, 2, "greedy", rng)
    with pytest.raises(CGSurrogateError):
        ActiveLearningConfig(strategy="greedy").check()


def test_run_resumes_and_refuses_other_settings(setting, tmp_path):
    meta, initial, free = setting
    cfg = ActiveLearningConfig(rounds=1, per_round=2, candidates=3, md_steps=2, relax_iterations=2, epochs=5)
    recs = run_active_learning(initial, initial, meta, tmp_path, cfg, progress=False)
    assert [r["round"] for r in recs] == [0, 1] and recs[1]["train_size"] == 6
    again = run_active_learning(initial, initial, meta, tmp_path, cfg, progress=False)
    assert again == recs  # read back from disk, nothing recomputed
    with pytest.raises(CGSurrogateError, match="other settings"):
        run_active_learning(initial, initial, meta, tmp_path, ActiveLearningConfig(rounds=1, per_round=1, candidates=3,
                                                                                   epochs=5), progress=False)
