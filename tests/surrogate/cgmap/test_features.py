"""One featurisation for SMILES and HAM JSON; numpy inference against torch; the torch-free
checkpoint reader against checkpoint_io; partition building blocks against references."""
import io
import json
import pickle
import zipfile

import networkx as nx
import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import InputFileError
from cgsurrogate.data.ham import load_ham_file
from cgsurrogate.data.molgraph import MolGraph, _atoms_on_cycles, mol_graph_from_smiles
from cgsurrogate.surrogate.cgmap.checkpoint import read_checkpoint_numpy, save_dsgpm, load_dsgpm
from cgsurrogate.surrogate.cgmap.features import FEATURE_SETS, bond_classes, collate, prepare_graph
from cgsurrogate.surrogate.cgmap.inference import affinity_matrix, embed_graph
from cgsurrogate.surrogate.cgmap.network import DSGPM
from cgsurrogate.surrogate.cgmap.partition import kmeans, spectral_partition
from cgsurrogate.surrogate.cgmap.training import torch_embedder

SMILES = "CC(=O)Oc1ccccc1C#N"  # ester, aromatic ring, nitrile: no two atoms alike
SYMMETRIC = "CC(=O)Oc1ccccc1C(=O)[O-]"  # aspirin anion: the two carboxylate O differ only by RDKit's Kekule choice


def _write_ham_json(path, smiles, perm, wrong_orders=True):
    """The molecule as a HAM file with atoms in another order and bond orders as a bad annotator wrote them."""
    g = mol_graph_from_smiles(smiles)
    inv = np.argsort(perm)  # new index of old atom i
    nodes = [{"id": int(k), "element": g.elements[perm[k]], "cg": 0} for k in range(g.num_atoms)]
    edges = []
    for (i, j), b in zip(g.edges.tolist(), g.bond_types.tolist()):
        order = {1.0: 2.0, 1.5: 1.0, 2.0: 1.0}.get(b, b) if wrong_orders else b  # every order wrong
        edges.append({"source": int(inv[j]), "target": int(inv[i]), "bondtype": order})
    path.write_text(json.dumps({"smiles": smiles, "nodes": nodes, "edges": edges, "cgnodes": [list(range(len(nodes)))]}))
    return g


@pytest.mark.parametrize("feature_set", FEATURE_SETS)
def test_smiles_and_its_json_graph_get_the_same_features(tmp_path, feature_set):
    perm = np.random.default_rng(3).permutation(mol_graph_from_smiles(SMILES).num_atoms)
    g = _write_ham_json(tmp_path / "a.json", SMILES, perm)
    h = load_ham_file(tmp_path / "a.json").graph
    assert not np.array_equal(np.sort(h.bond_types), np.sort(g.bond_types))  # the file's orders really differ
    ps, pj = prepare_graph(g, feature_set=feature_set), prepare_graph(h, feature_set=feature_set)
    np.testing.assert_array_equal(pj.feats, ps.feats[perm])
    np.testing.assert_array_equal(pj.extra, ps.extra[perm])
    cls_s = {tuple(sorted((int(i), int(j)))): c for (i, j), c in zip(g.edges, ps.edge_class)}
    for (i, j), c in zip(h.edges.tolist(), pj.edge_class.tolist()):
        assert cls_s[tuple(sorted((int(perm[i]), int(perm[j]))))] == c
    # and the same embedding from the same model, atom by atom
    torch.manual_seed(0)
    m = DSGPM(hidden=16, out_dim=8, steps=2, feature_set=feature_set)
    np.testing.assert_allclose(embed_graph(m, h), embed_graph(m, g)[perm], atol=1e-6)


@pytest.mark.parametrize("feature_set", FEATURE_SETS)
def test_symmetric_groups_get_the_same_features_up_to_symmetry(tmp_path, feature_set):
    """With every bond order wrong, the carboxylate O atoms cannot be told apart: the featured graphs are isomorphic."""
    perm = np.random.default_rng(3).permutation(mol_graph_from_smiles(SYMMETRIC).num_atoms)
    g = _write_ham_json(tmp_path / "s.json", SYMMETRIC, perm)
    h = load_ham_file(tmp_path / "s.json").graph

    def featured(graph):
        p = prepare_graph(graph, feature_set=feature_set)
        out = nx.Graph()
        for i in range(graph.num_atoms):
            out.add_node(i, f=tuple(p.feats[i]) + tuple(p.extra[i]))
        for (i, j), c in zip(graph.edges.tolist(), p.edge_class.tolist()):
            out.add_edge(i, j, c=c)
        return out
    assert nx.is_isomorphic(featured(g), featured(h), node_match=lambda a, b: a["f"] == b["f"],
                            edge_match=lambda a, b: a["c"] == b["c"])
    # with the file's orders right, the match follows them exactly
    g2 = _write_ham_json(tmp_path / "r.json", SYMMETRIC, perm, wrong_orders=False)
    h2 = load_ham_file(tmp_path / "r.json").graph
    np.testing.assert_array_equal(prepare_graph(h2, feature_set=feature_set).feats,
                                  prepare_graph(g2, feature_set=feature_set).feats[perm])


def test_ham_files_use_rdkit_chemistry(shared_data):
    """HAM files whose bond orders disagree with RDKit's get RDKit's features (same as their SMILES)."""
    from cgsurrogate.data.ham import load_ham

    anns = load_ham(shared_data / "ham")
    checked = 0
    for a in anns:
        g = a.graph
        file_orders = np.array([1.0, 1.5, 2.0, 3.0])[g.bond_chem[:, 0]]
        if np.array_equal(file_orders, g.bond_types):
            continue
        s = mol_graph_from_smiles(a.smiles)
        if s.elements != g.elements:
            continue
        for fs in FEATURE_SETS:
            np.testing.assert_array_equal(prepare_graph(g, feature_set=fs).feats, prepare_graph(s, feature_set=fs).feats)
            assert sorted(zip(map(tuple, g.edges.tolist()), bond_classes(g, fs).tolist())) == \
                sorted(zip(map(tuple, s.edges.tolist()), bond_classes(s, fs).tolist()))
        checked += 1
        if checked == 25:
            break
    assert checked == 25


def test_rich_features_read_the_chemistry():
    g = mol_graph_from_smiles("C1CC1c1ccccc1[N+](=O)[O-]")  # cyclopropyl, benzene, nitro group
    f = prepare_graph(g, feature_set="rich").feats
    el = 13
    arom, charge_minus, charge_plus = f[:, el], f[:, el + 5], f[:, el + 7]
    ring3, ring6 = f[:, el + 12], f[:, el + 15]
    np.testing.assert_array_equal(arom, [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(ring3, [1, 1, 1] + [0] * 9)
    np.testing.assert_array_equal(ring6, [0, 0, 0] + [1] * 6 + [0, 0, 0])
    assert charge_plus[9] == 1 and charge_minus[11] == 1 and charge_minus.sum() == 1


def test_cycle_indicator_matches_networkx_cycle_basis():
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(2, 25))
        g = nx.gnm_random_graph(n, int(rng.integers(1, 2 * n)), seed=int(rng.integers(1e6)))
        ref = np.zeros(n)
        for cyc in nx.cycle_basis(g):
            ref[cyc] = 1
        edges = np.array(list(g.edges), dtype=np.int64).reshape(-1, 2)
        np.testing.assert_array_equal(_atoms_on_cycles(n, edges), ref)


@pytest.mark.parametrize("feature_set", FEATURE_SETS)
def test_numpy_inference_matches_torch(feature_set):
    torch.manual_seed(1)
    models = [DSGPM(hidden=24, out_dim=12, steps=3, feature_set=feature_set) for _ in range(2)]
    emb = torch_embedder(models)
    g = mol_graph_from_smiles("CC(C)NC(=O)c1ccccc1O")
    b = collate([prepare_graph(g, feature_set=feature_set)]).torch()
    with torch.no_grad():
        refs = [m.eval()(b).double().numpy() for m in models]
    for e, r in zip(emb.embed(g), refs):
        np.testing.assert_allclose(e, r, atol=1e-5)
    aff = np.mean([affinity_matrix(r, g.edges, g.num_atoms) for r in refs], axis=0)
    np.testing.assert_allclose(emb.affinity(g), aff, atol=1e-5)


def test_numpy_checkpoint_reader_equals_checkpoint_io(tmp_path):
    from cgsurrogate.core.checkpoint_io import read_checkpoint, write_checkpoint

    torch.manual_seed(0)
    models = [DSGPM(hidden=8, out_dim=4, steps=1, feature_set="rich") for _ in range(2)]
    path = save_dsgpm(tmp_path / "e.pt", models, {"note": [1.5, "x", None, True]})
    _, v1, p1 = read_checkpoint(path, "dsgpm", max_version=2)
    _, v2, p2 = read_checkpoint_numpy(path, "dsgpm", max_version=2)
    assert v1 == v2 == 2 and p1["config"] == p2["config"] and p1["info"] == p2["info"]
    for m1, m2 in zip(p1["members"], p2["members"]):
        assert list(m1) == list(m2)
        for k in m1:
            np.testing.assert_array_equal(m1[k].numpy(), m2[k])
    assert len(load_dsgpm(path).members) == 2
    # other kinds, newer versions, corrupt files and foreign code are refused with one line naming the file
    write_checkpoint(tmp_path / "h.pt", "hierarchy", {"x": torch.zeros(2)})
    with pytest.raises(InputFileError, match="h.pt.*'hierarchy'"):
        load_dsgpm(tmp_path / "h.pt")
    write_checkpoint(tmp_path / "v9.pt", "dsgpm", {"x": 1}, version=9)
    with pytest.raises(InputFileError, match="newer"):
        load_dsgpm(tmp_path / "v9.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(InputFileError, match="junk.pt: corrupt or not a cgsurrogate file"):
        load_dsgpm(tmp_path / "junk.pt")
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as zf:
        buf = io.BytesIO()
        pickle.dump({"format": "cgsurrogate", "payload": print}, buf, protocol=2)  # a global that is not allowed
        zf.writestr("evil/data.pkl", buf.getvalue())
        zf.writestr("evil/byteorder", "little")
    with pytest.raises(InputFileError, match="evil.pt"):
        load_dsgpm(evil)


def test_kmeans_and_spectral_partition_recover_planted_structure():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    x = np.concatenate([c + rng.normal(size=(20, 2)) for c in centres])
    lab = kmeans(x, 3, seed=1)
    for b in range(3):  # each blob is one cluster
        assert len(set(lab[20 * b:20 * b + 20])) == 1
    assert len(set(lab)) == 3
    # two 5-cliques joined by one weak bond: spectral clustering cuts that bond
    a = np.zeros((10, 10))
    a[:5, :5] = a[5:, 5:] = 1.0
    np.fill_diagonal(a, 0)
    a[4, 5] = a[5, 4] = 0.1
    lab = spectral_partition(a, 2)
    assert set(map(tuple, [lab[:5], lab[5:]])) == {(lab[0],) * 5, (lab[5],) * 5} and lab[0] != lab[5]
