"""Nested cross-validation: selection never sees a test fold; intervals."""
import numpy as np
import pytest

from cgsurrogate.data.ham import ham_folds
from cgsurrogate.surrogate.cgmap.nested_cv import dsgpm_fit, fold_interval, nested_cv

def test_selection_never_reads_the_test_fold(anns):
    folds = ham_folds(anns, n_folds=5, seed=0)
    seen_by_scorer, seen_by_score = [], []

    def scorer(embedder, val):  # the inner validation score DSGPM's selection uses
        seen_by_scorer.append({a.path for a in val})
        return float(np.random.default_rng(len(seen_by_scorer)).random())

    def fit(train):
        return dsgpm_fit(train, members=2, epochs=2, eval_every=1, inner_parts=3, feature_sets=("paper", "rich"),
                         model_config=dict(hidden=8, out_dim=4, steps=1), scorer=scorer)

    def score(pred, test):
        seen_by_score.append({a.path for a in test})
        return {"n": len(test)}

    res = nested_cv(anns, folds, fit, score)
    assert len(res) == 5
    calls_per_fold = 2 * 2 + 1 * 2  # two feature sets for member 0, one set for member 1; two epochs each
    assert len(seen_by_scorer) == 5 * calls_per_fold
    for k, r in enumerate(res):
        test_paths = {anns[i].path for i in folds[k]}
        assert seen_by_score[k] == test_paths  # the test fold is scored, once
        assert not test_paths & set(r["train_paths"])
        for val in seen_by_scorer[k * calls_per_fold:(k + 1) * calls_per_fold]:
            assert val and not val & test_paths  # selection only ever scored training-fold molecules
            assert val <= set(r["train_paths"])
        sel = r["selection"]
        assert sel["feature_set"] in ("paper", "rich") and len(sel["members"]) == 2
        # the chosen epoch is the best inner validation score of its member
        for m in sel["members"]:
            best = max(m["history"], key=lambda h: h["val_score"])
            assert m["selected_epoch"] == best["epoch"]


def test_fold_interval_against_a_t_table():
    r = fold_interval([1.0, 2.0, 3.0])
    # mean 2, sample std 1, t(0.975, 2 dof) = 4.303 (printed tables)
    assert r["mean"] == 2.0 and r["std"] == pytest.approx(1.0)
    assert r["high"] - r["mean"] == pytest.approx(4.303 / np.sqrt(3), abs=1e-3)
    assert r["low"] == pytest.approx(2 * r["mean"] - r["high"])


def test_refit_sees_only_the_training_folds(anns, monkeypatch):
    """With ``refit`` the extra networks train on all training-fold annotations, without validation;
    selection still scores only inner validation molecules and the test fold is scored once."""
    from cgsurrogate.surrogate.cgmap import training

    real = training.train_dsgpm
    calls = []

    def spy(train, val=None, **kw):  # the real training, with its inputs recorded
        calls.append(({a.path for a in train}, None if val is None else {a.path for a in val}, kw["epochs"]))
        return real(train, val, **kw)

    monkeypatch.setattr(training, "train_dsgpm", spy)
    folds = ham_folds(anns, n_folds=5, seed=0)
    picks = iter(np.random.default_rng(3).random(1000))
    seen_by_score = []

    def fit(train):
        calls.clear()
        emb, rec = dsgpm_fit(train, members=1, epochs=3, eval_every=1, inner_parts=3, refit=2,
                             model_config=dict(hidden=8, out_dim=4, steps=1), lr_final=1e-5,
                             scorer=lambda e, v: float(next(picks)))
        rec["calls"] = list(calls)
        return emb, rec

    def score(pred, test):
        seen_by_score.append({a.path for a in test})
        return {"n": len(test), "members": len(pred.members)}

    res = nested_cv(anns, folds, fit, score)
    for k, r in enumerate(res):
        test_paths = {anns[i].path for i in folds[k]}
        train_paths = set(r["train_paths"])
        assert seen_by_score[k] == test_paths and r["test"]["members"] == 2
        sel, refits = r["selection"]["calls"][0], r["selection"]["calls"][1:]
        assert sel[1] and not (sel[0] | sel[1]) & test_paths and sel[0] | sel[1] == train_paths
        n = r["selection"]["members"][0]["selected_epoch"] + 1
        assert len(refits) == 2
        for tr, val, ep in refits:
            assert val is None and tr == train_paths and ep == n  # every training molecule, no test molecule
        assert [f["seed"] for f in r["selection"]["refit"]] == [0, 1]
        assert all(f["n_annotations"] == len(train_paths) for f in r["selection"]["refit"])


def test_refit_follows_the_first_epochs_of_the_schedule(anns):
    """A refit for the selected n epochs reproduces, on the same data and seed, the weights the
    full-length run had after n epochs (same per-epoch learning rates)."""
    import torch

    from cgsurrogate.surrogate.cgmap.nested_cv import dsgpm_refit, truncated_lr_final
    from cgsurrogate.surrogate.cgmap.training import train_dsgpm

    train, cfg = anns[:12], dict(hidden=8, out_dim=4, steps=1, feature_set="rich")
    # selection keeps the state after epoch index 1 (the scorer prefers the 2nd evaluation) of 4 epochs
    order = iter([0.1, 0.9, 0.2, 0.3])
    full, hist = train_dsgpm(train, anns[12:14], epochs=4, eval_every=1, lr_final=1e-5, seed=5,
                             model_config=cfg, scorer=lambda e, v: next(order))
    assert [h["epoch"] for h in hist if h["selected"]] == [1]
    record = dict(feature_set="rich", members=[dict(selected_epoch=1)])
    refit, info = dsgpm_refit(train, record, 0, epochs=4, lr_final=1e-5, seed=5, model_config=cfg)
    assert info["epochs"] == 2 and info["lr_final"] == pytest.approx(1e-3 * 1e-2 ** (1 / 3))
    a, b = full.state_dict(), refit.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # the rate schedule matters: compressing the decay into 2 epochs gives other weights
    other, _ = train_dsgpm(train, None, epochs=2, eval_every=2, lr_final=1e-5, seed=5, model_config=cfg)
    assert not all(torch.allclose(a[k], other.state_dict()[k], atol=1e-6) for k in a)
    assert truncated_lr_final(1e-3, 1e-5, 50, 50) == pytest.approx(1e-5) and truncated_lr_final(1e-3, 0.0, 50, 7) == 0


def test_refit_full_length_trains_the_whole_schedule(anns):
    """``length="full"`` ignores the selected epoch: the refit equals an unvalidated run of all epochs."""
    import torch

    from cgsurrogate.surrogate.cgmap.nested_cv import dsgpm_refit
    from cgsurrogate.surrogate.cgmap.training import train_dsgpm

    train, cfg = anns[:8], dict(hidden=8, out_dim=4, steps=1, feature_set="paper")
    record = dict(feature_set="paper", members=[dict(selected_epoch=0)])
    refit, info = dsgpm_refit(train, record, 1, epochs=3, lr_final=1e-5, seed=2, model_config=cfg, length="full")
    assert info["epochs"] == 3 and info["seed"] == 3 and info["lr_final"] == pytest.approx(1e-5)
    ref, _ = train_dsgpm(train, None, epochs=3, eval_every=1, lr_final=1e-5, seed=3, model_config=cfg)
    assert all(torch.allclose(v, ref.state_dict()[k], atol=1e-6) for k, v in refit.state_dict().items())
    with pytest.raises(ValueError, match="refit length"):
        dsgpm_refit(train, record, 0, epochs=3, length="best")
