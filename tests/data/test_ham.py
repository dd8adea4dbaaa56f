"""HAM loader, heavy-atom graph features, grouped folds, mapping JSON round trip."""
import json

import numpy as np
import pytest

from cgsurrogate.data.ham import ham_folds, load_ham, load_ham_file
from cgsurrogate.data.molgraph import BOND_TYPES, ELEMENTS, mol_graph_from_smiles, mol_graph_from_structure, write_mapping_json


@pytest.fixture(scope="module")
def ham(shared_data):
    return load_ham(shared_data / "ham")


def test_load_ham_counts_and_consistency(ham):
    assert len(ham) == 1603
    assert len({a.smiles for a in ham}) == 956
    for a in ham[::37]:
        g = a.graph
        assert len(a.labels) == g.num_atoms
        assert sorted(set(a.labels.tolist())) == list(range(a.n_beads))
        # the file's own bead list (cgnodes) is an independent record of the same partition
        cg = json.load(open(a.path))["cgnodes"]
        assert len(cg) == a.n_beads
        for bead in cg:
            assert len(set(a.labels[bead].tolist())) == 1
        assert set(g.bond_types.tolist()) <= set(BOND_TYPES)


def test_features_match_independent_counts(ham):
    for a in ham[:50]:
        g = a.graph
        oh = g.atom_onehot()
        assert oh.shape == (g.num_atoms, len(ELEMENTS))
        np.testing.assert_array_equal(oh.sum(1), 1.0)
        np.testing.assert_array_equal(g.degree(), g.adjacency().sum(1))
        bo = g.bond_onehot()
        assert bo.shape == (g.num_bonds, 4)
        np.testing.assert_array_equal(np.array(BOND_TYPES)[bo.argmax(1)], g.bond_types)


def test_cycle_indicator_and_smiles_graph():
    g = mol_graph_from_smiles("c1ccccc1CCO")  # toluene-like ring + ethanol tail
    assert g.elements == ["C"] * 8 + ["O"]
    np.testing.assert_array_equal(g.in_cycle(), [1, 1, 1, 1, 1, 1, 0, 0, 0])
    assert sorted(set(g.bond_types.tolist())) == [1.0, 1.5]
    assert g.num_bonds == 9 and g.degree().tolist() == [2, 2, 2, 2, 2, 3, 2, 2, 1]
    g2 = mol_graph_from_smiles("C#CC=O")
    assert sorted(g2.bond_types.tolist()) == [1.0, 2.0, 3.0]


def test_bad_smiles_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot parse"):
        mol_graph_from_smiles("C1CC(")
    with pytest.raises(ValueError, match="cannot parse"):
        mol_graph_from_smiles("")


def test_folds_are_grouped_by_molecule(ham):
    folds = ham_folds(ham, n_folds=5, seed=0)
    allidx = np.concatenate(folds)
    assert sorted(allidx.tolist()) == list(range(len(ham)))
    owner = {}
    for k, f in enumerate(folds):
        for i in f:
            assert owner.setdefault(ham[i].smiles, k) == k  # every annotation of a molecule in one fold
    sizes = [len({ham[i].smiles for i in f}) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        load_ham_file(bad)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"smiles": "CC", "nodes": [{"id": 0, "element": "C"}]}))
    with pytest.raises(ValueError, match="partial.json"):
        load_ham_file(partial)
    with pytest.raises(FileNotFoundError):
        load_ham(tmp_path / "nowhere")


def test_mapping_json_round_trip(tmp_path):
    g = mol_graph_from_smiles("CC(=O)Nc1ccc(O)cc1")
    labels = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3, 4, 4])[: g.num_atoms]
    labels = np.resize(labels, g.num_atoms)
    path = write_mapping_json(tmp_path / "m.json", g, labels)
    back = load_ham_file(path)
    assert back.graph.elements == g.elements
    np.testing.assert_array_equal(back.graph.edges, g.edges)
    # same partition (labels may be renumbered)
    same = labels[:, None] == labels[None, :]
    np.testing.assert_array_equal(back.labels[:, None] == back.labels[None, :], same)
    d = json.loads(path.read_text())
    assert sorted(a for bead in d["cgnodes"] for a in bead) == list(range(g.num_atoms))


def test_structure_file_graph():
    from MDAnalysisTests.datafiles import CRD, PSF

    g = mol_graph_from_structure((PSF, CRD), selection="backbone")
    assert g.num_atoms == 855
    assert set(g.elements) == {"N", "C", "O"}  # a PSF has no element field: from the masses
    assert g.connected_components() == 1
    assert g.num_bonds == 855 - 1  # backbone of one chain is a tree: N-CA-C(=O)-N...
    assert g.positions.shape == (855, 3)
    with pytest.raises(FileNotFoundError):
        mol_graph_from_structure("/nonexistent/file.pdb")
