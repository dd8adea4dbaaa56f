"""Nested cross-validation: selection never sees a test fold; intervals."""
import numpy as np
import pytest

from cgsurrogate.data.ham import ham_folds
from cgsurrogate.data.molgraph import mol_graph_from_smiles
from cgsurrogate.surrogate.cgmap.nested_cv import dsgpm_fit, fold_interval, nested_cv

MOLS = [("CCCCCO", [0, 0, 0, 1, 1, 1]), ("CCCCCCCN", [0, 0, 0, 0, 1, 1, 1, 1]),
        ("CCC(=O)CC#N", [0, 0, 1, 1, 2, 2, 2]), ("Oc1ccccc1CC", [0, 0, 1, 1, 2, 2, 1, 3, 3]),
        ("CCOCCOCC", [0, 0, 0, 1, 1, 2, 2, 2]), ("NCCCCCCCCO", [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]),
        ("c1ccccc1C(=O)O", [0, 0, 0, 0, 0, 0, 1, 1, 1]), ("CC(C)CC(C)C", [0, 0, 0, 1, 1, 1, 1]),
        ("OCC(O)CO", [0, 0, 1, 1, 2, 2]), ("CCN(CC)CC", [0, 0, 1, 2, 2, 3, 3])]


class Ann:
    def __init__(self, smiles, labels, k):
        self.graph = mol_graph_from_smiles(smiles)
        self.labels = np.array(labels)
        self.path = f"{k}_{smiles}.json"

    @property
    def smiles(self):
        return self.graph.name

    @property
    def n_beads(self):
        return int(self.labels.max()) + 1


@pytest.fixture(scope="module")
def anns():
    out = []
    for k, (s, lab) in enumerate(MOLS):
        out.append(Ann(s, lab, 2 * k))
        out.append(Ann(s, lab, 2 * k + 1))  # a second annotation of the same molecule
    return out


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
