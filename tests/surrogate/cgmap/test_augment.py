"""Automorphism augmentation: the relabellings are symmetries of the network's input, checked
against RDKit's symmetry classes and self-matches, and the variants are the expected partitions."""
import numpy as np
import pytest

from cgsurrogate.data.molgraph import mol_graph_from_smiles
from cgsurrogate.surrogate.cgmap.augment import feature_automorphisms, prepared_variants
from cgsurrogate.surrogate.cgmap.features import FEATURE_SETS, atom_features, bond_classes

Chem = pytest.importorskip("rdkit.Chem")

# (SMILES, number of automorphisms of the heavy-atom graph with elements and aromatic bond orders)
CASES = [("CC(C)C", 6), ("c1ccccc1", 12), ("Oc1ccccc1", 2), ("CC(C)(C)O", 6), ("OCC(O)CO", 2),
         ("CCOC(=O)C", 1), ("CC(=O)Oc1ccccc1C#N", 1), ("CN(C)C(=O)c1ccncc1", 4)]


@pytest.mark.parametrize("feature_set", FEATURE_SETS)
@pytest.mark.parametrize("smiles,count", CASES)
def test_feature_automorphisms_are_rdkit_symmetries(smiles, count, feature_set):
    g = mol_graph_from_smiles(smiles)
    perms = feature_automorphisms(g, feature_set)
    mol = Chem.MolFromSmiles(smiles)
    assert [a.GetSymbol() for a in mol.GetAtoms()] == list(g.elements)  # same atom order
    rdkit_perms = {tuple(m) for m in mol.GetSubstructMatches(mol, uniquify=False, maxMatches=100000)}
    assert len(perms) == count == len(rdkit_perms)
    assert {tuple(p.tolist()) for p in perms} == rdkit_perms
    ranks = np.array(list(Chem.CanonicalRankAtoms(mol, breakTies=False)))
    feats, extra = atom_features(g, feature_set)
    rows = np.concatenate([feats, extra], axis=1)
    classes = {(min(i, j), max(i, j)): c for (i, j), c in zip(g.edges.tolist(), bond_classes(g, feature_set).tolist())}
    assert np.array_equal(perms[0], np.arange(g.num_atoms))
    for p in perms:
        assert np.array_equal(ranks[p], ranks)  # atoms only move within RDKit's symmetry classes
        assert np.array_equal(rows[p], rows)  # the network's input rows are preserved
        moved = {(min(p[i], p[j]), max(p[i], p[j])): c for (i, j), c in classes.items()}
        assert moved == classes  # bonds map to bonds of the same class


def test_variants_of_isobutane_by_hand():
    g = mol_graph_from_smiles("CC(C)C")  # atom 1 is the centre, 0, 2, 3 the methyls
    variants = prepared_variants(g, [0, 0, 1, 2], "rich")
    assert len(variants) == 3  # the centre's bead partner can be any of the three methyls
    noncut = sorted(tuple(sorted(v.pairs[0].tolist())) for v in variants)
    assert noncut == [(0, 1), (1, 2), (1, 3)]
    for v in variants:
        a, b = v.pairs[0]
        partner = a if b == 1 else b
        # triplets: anchor-positive is the bead's bond, anchor-negative a cut bond at the same atom
        expected = {(1, partner, m) for m in (0, 2, 3) if m != partner}
        assert {tuple(t) for t in v.triplets.tolist()} == expected
    assert np.array_equal(variants[0].pairs, [[0, 1]])  # the annotation as given comes first


def test_asymmetric_molecule_has_one_variant():
    g = mol_graph_from_smiles("CC(=O)Oc1ccccc1C#N")
    assert len(prepared_variants(g, np.arange(g.num_atoms) // 3, "rich")) == 1


def test_training_draws_automorphic_variants():
    from cgsurrogate.surrogate.cgmap.training import DSGPMTask, group_samples, train_dsgpm

    class Ann:
        def __init__(self, smiles, labels):
            self.graph, self.labels = mol_graph_from_smiles(smiles), np.array(labels)

    train = [Ann("CC(C)C", [0, 0, 1, 2]), Ann("CCOC(=O)C", [0, 0, 1, 1, 1, 2])]
    model, hist = train_dsgpm(train, epochs=2, augment="automorphisms", lr_final=1e-4,
                              model_config=dict(hidden=8, out_dim=4, steps=1, feature_set="rich"))
    assert len(hist) == 2 and all(np.isfinite(h["loss"]) for h in hist)
    prepared = [prepared_variants(a.graph, a.labels, "rich") for a in train]
    task = DSGPMTask(group_samples(train, prepared), None, None, seed=0)
    picks = set()
    for epoch in range(30):
        task.begin_epoch(None, epoch)
        assert task._pick[1] == (0, 0)  # the asymmetric ester has one variant
        picks.add(task._pick[0][1])
    assert picks == {0, 1, 2}  # every relabelling of isobutane's annotation gets drawn
    with pytest.raises(ValueError, match="augmentation"):
        train_dsgpm(train, epochs=1, augment="mirror", model_config=dict(hidden=8, out_dim=4, steps=1))


def test_molecule_sampling_draws_one_annotation_per_molecule_per_epoch():
    from cgsurrogate.core.errors import CGSurrogateError
    from cgsurrogate.surrogate.cgmap.features import prepare_graph
    from cgsurrogate.surrogate.cgmap.training import DSGPMTask, group_samples, train_dsgpm

    class Ann:
        def __init__(self, smiles, labels):
            self.graph, self.labels = mol_graph_from_smiles(smiles), np.array(labels)

        @property
        def smiles(self):
            return self.graph.name

    train = [Ann("CCOC(=O)C", [0, 0, 1, 1, 1, 2]), Ann("CC(C)C", [0, 0, 1, 2]),
             Ann("CCOC(=O)C", [0, 1, 1, 2, 2, 2])]
    assert train[0].smiles == train[2].smiles != train[1].smiles
    prepared = [[prepare_graph(a.graph, a.labels, feature_set="rich")] for a in train]
    samples = group_samples(train, prepared, "molecule")
    assert len(samples) == 2 and len(samples[0]) == 2 and len(samples[1]) == 1
    assert samples[0][1][0] is prepared[2][0]
    task = DSGPMTask(samples, None, None, seed=0, sampling="molecule")
    assert task.num_train == 2 and task.settings()["sampling"] == "molecule"
    drawn = set()
    for epoch in range(20):
        task.begin_epoch(None, epoch)
        assert task._pick[1] == (0, 0)
        drawn.add(task._pick[0][0])
    assert drawn == {0, 1}  # both annotations of the ester are used across epochs
    model, hist = train_dsgpm(train, epochs=2, sampling="molecule", lr_final=1e-4,
                              model_config=dict(hidden=8, out_dim=4, steps=1, feature_set="rich"))
    assert len(hist) == 2 and all(np.isfinite(h["loss"]) for h in hist)
    with pytest.raises(CGSurrogateError, match="sampling"):
        train_dsgpm(train, epochs=1, sampling="smiles", model_config=dict(hidden=8, out_dim=4, steps=1))
