"""Masked-atom pretraining of DSGPM: honest inputs, a loss that learns, clear errors."""
import math

import numpy as np
import pytest

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.data.ham import ham_folds
from cgsurrogate.data.molgraph import ELEMENTS, mol_graph_from_smiles
from cgsurrogate.surrogate.cgmap import pretraining
from cgsurrogate.surrogate.cgmap.features import collate, prepare_graph
from cgsurrogate.surrogate.cgmap.nested_cv import dsgpm_fit, nested_cv

SMALL = dict(hidden=16, out_dim=8, steps=2)


def test_pretraining_reads_only_training_fold_molecules(anns, monkeypatch):
    real = pretraining.pretrain_dsgpm
    given = []

    def recording(graphs, **kw):  # the real pretraining, recording which molecules it was handed
        given.append({g.name for g in graphs})
        return real(graphs, **kw)

    monkeypatch.setattr(pretraining, "pretrain_dsgpm", recording)
    folds = ham_folds(anns, n_folds=5, seed=0)

    def fit(train):
        return dsgpm_fit(train, epochs=1, eval_every=1, inner_parts=3, model_config=SMALL,
                         pretrain={"epochs": 1, "mask_fraction": 0.3}, refit=1)

    res = nested_cv(anns, folds, fit, lambda pred, test: {"n": len(test)})
    assert len(given) == 5  # once per outer fold (one feature set; members and refit reuse it)
    for k, (seen, r) in enumerate(zip(given, res)):
        test_mols = {anns[i].smiles for i in folds[k]}
        train_mols = {a.smiles for i, a in enumerate(anns) if i not in set(folds[k].tolist())}
        assert seen == train_mols
        assert not seen & test_mols
        assert r["selection"]["pretrain"]["rich"]["molecules"] == len(train_mols)


def test_training_molecules_are_distinct_in_order(anns, mols):
    graphs = pretraining.training_molecules(anns)
    assert [g.name for g in graphs] == [s for s, _ in mols]


def test_mask_atoms_zeroes_rows_and_targets_the_elements(mols):
    graphs = [mol_graph_from_smiles(s) for s, _ in mols[:4]]
    batch = collate([prepare_graph(g, feature_set="rich") for g in graphs])
    masked, index, target = pretraining.mask_atoms(batch, 0.5, np.random.default_rng(3))
    types = np.concatenate([g.atom_types() for g in graphs])  # independent of the feature columns
    assert len(index) > 0
    np.testing.assert_array_equal(target, types[index])
    assert np.all(masked.feats[index] == 0.0)
    keep = np.setdiff1d(np.arange(len(types)), index)
    np.testing.assert_array_equal(masked.feats[keep], batch.feats[keep])
    assert np.any(batch.feats[index] != 0.0)  # the input batch is left unchanged


def test_masked_atom_loss_decreases_against_untrained_baseline(mols):
    import torch

    from cgsurrogate.surrogate.cgmap.network import DSGPM

    graphs = [mol_graph_from_smiles(s) for s, _ in mols]
    cfg = dict(SMALL, feature_set="rich")
    model, hist, head = pretraining.pretrain_dsgpm(graphs, epochs=25, mask_fraction=0.3, batch_size=4, lr=1e-2,
                                                   seed=0, model_config=cfg, return_head=True)
    torch.manual_seed(0)
    untrained = DSGPM(**cfg)
    baseline_head = torch.nn.Linear(untrained.embedding_dim, len(ELEMENTS))
    before = pretraining.masked_atom_loss(untrained, baseline_head, graphs, 0.3, seed=5)
    after = pretraining.masked_atom_loss(model, head, graphs, 0.3, seed=5)
    # a near-uniform guess over the K elements costs about ln K nats
    assert abs(before - math.log(len(ELEMENTS))) < 0.5
    assert after < 0.6 * before
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert len(hist) == 25


@pytest.mark.parametrize("kw", [dict(epochs=0), dict(epochs=-2), dict(epochs=1.5), dict(mask_fraction=0.0),
                                dict(mask_fraction=1.0), dict(mask_fraction=1.2), dict(mask_fraction=-0.1)])
def test_bad_settings_give_one_clear_error(kw):
    graphs = [mol_graph_from_smiles("CCO")]
    args = dict(epochs=1, mask_fraction=0.15, model_config=SMALL, **{})
    args.update(kw)
    with pytest.raises(CGSurrogateError, match="pretraining epochs|mask fraction") as err:
        pretraining.pretrain_dsgpm(graphs, **args)
    assert "\n" not in str(err.value)


def test_no_molecules_is_an_error():
    with pytest.raises(CGSurrogateError, match="at least one molecule"):
        pretraining.pretrain_dsgpm([], epochs=1)
