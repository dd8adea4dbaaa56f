"""DSGPM: losses, message passing against a per-bond reference, spectral partition with connected
beads, metrics and protocols, checkpoints, CLI errors."""
import math
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch

from cgsurrogate.data.molgraph import MolGraph, mol_graph_from_smiles
from cgsurrogate.surrogate.cgmap.metrics import (automorphisms, cut_scores, evaluate_paper, evaluate_strict, relabellings,
                                  score_mapping)
from cgsurrogate.surrogate.cgmap.dsgpm import (DSGPM, PRETRAINED_PATH, cut_triplet_loss, dsgpm_loss, enforce_connectivity,
                                              load_dsgpm, load_dsgpm_torch, metis_partition, noncut_pair_loss,
                                              predict_mapping, prepare_graph, save_dsgpm, train_dsgpm)
from cgsurrogate.surrogate.cgmap.features import collate as _collate


def collate(prepared):
    return _collate(prepared).torch()

REPO = Path(__file__).resolve().parents[3]
SMILES = ["CC(C)NC(=O)C1=NOC(=N1)C2=CC=CNC2=O", "CCCCCCCCCC(=O)O", "c1ccc2ccccc2c1CCN", "CC(C)(C)c1ccc(O)cc1"]


def _path_graph(n):
    return MolGraph(["C"] * n, np.array([(i, i + 1) for i in range(n - 1)]), np.ones(n - 1), name=f"C{n}")


def _beads_connected(graph, labels):
    g = graph.nx_graph()
    return all(nx.is_connected(g.subgraph(np.flatnonzero(labels == b).tolist())) for b in np.unique(labels))


# ----------------------------------------------------------------------------- losses

def test_losses_vanish_on_separating_embedding():
    g = _path_graph(6)
    labels = np.array([0, 0, 0, 1, 1, 1])
    pg = prepare_graph(g, labels)
    # triplets: anchor 2 (pos 1, neg 3) and anchor 3 (pos 4, neg 2)
    assert sorted(map(tuple, pg.triplets.tolist())) == [(2, 1, 3), (3, 4, 2)]
    assert len(pg.pairs) == 4
    emb = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3)  # beads at orthogonal unit vectors: distance sqrt 2
    b = collate([pg])
    assert cut_triplet_loss(emb, b.triplets, margin=1.0).item() == 0.0  # sqrt(2) > margin
    assert noncut_pair_loss(emb, b.pairs).item() < 1e-5
    # margin above the separation: loss = margin - sqrt(2) exactly (analytic)
    assert cut_triplet_loss(emb, b.triplets, margin=2.0).item() == pytest.approx(2 - math.sqrt(2), abs=1e-5)
    total, lt, lp = dsgpm_loss(emb, b, margin=1.0, pair_weight=0.1)
    assert total.item() < 1e-5
    # a collapsed embedding costs exactly the margin per triplet
    flat = torch.ones(6, 2) / math.sqrt(2)
    assert cut_triplet_loss(flat, b.triplets, margin=1.0).item() == pytest.approx(1.0, abs=1e-5)


def test_message_passing_matches_per_bond_reference():
    """The once-per-pass edge matrices give the same step as evaluating the edge network per bond."""
    torch.manual_seed(0)
    m = DSGPM(hidden=16, out_dim=8, steps=1, feature_set="rich").double()
    g = mol_graph_from_smiles("C#CC(=O)c1ccccc1")
    b = collate([prepare_graph(g, feature_set="rich")])
    b.extra = b.extra.double()
    onehot = b.feats.double()
    x = torch.cat([torch.relu(m.input_fc(onehot)), b.extra], 1)
    agg = torch.zeros_like(x)
    conj = {(int(i), int(j)): (int(c), int(r)) for (i, j), (_, c, r) in zip(g.edges, g.bond_chem)}
    for s, d, t in zip(b.src.tolist(), b.dst.tolist(), b.edge_class.tolist()):
        c, r = conj[(min(s, d), max(s, d))]  # the bond's own RDKit flags, independent of the class table
        vec = torch.cat([torch.nn.functional.one_hot(torch.tensor(t // 4), 4).double(), torch.tensor([c, r]).double()])
        w = m.edge_net(vec).view(m.d, m.d)
        agg[d] += x[s] @ w
    h = m.gru(torch.relu(m.root(x) + agg), x)
    ref = torch.nn.functional.normalize(torch.cat([m.output_fc(h), onehot, b.extra], 1), dim=1)
    np.testing.assert_allclose(m(b).detach().numpy(), ref.detach().numpy(), atol=1e-12)


def test_embedding_is_permutation_equivariant_and_batch_independent():
    torch.manual_seed(1)
    m = DSGPM(hidden=32, out_dim=16, steps=3).eval()
    g = mol_graph_from_smiles(SMILES[0])
    perm = np.random.default_rng(0).permutation(g.num_atoms)
    inv = np.argsort(perm)
    gp = MolGraph([g.elements[i] for i in perm], inv[g.edges], g.bond_types, name="perm",
                  atom_chem=g.atom_chem[perm], bond_chem=g.bond_chem)
    with torch.no_grad():
        e = m(collate([prepare_graph(g)]))
        ep = m(collate([prepare_graph(gp)]))
        both = m(collate([prepare_graph(mol_graph_from_smiles(SMILES[1])), prepare_graph(g)]))
    np.testing.assert_allclose(ep.numpy(), e.numpy()[perm], atol=1e-5)
    np.testing.assert_allclose(both.numpy()[-g.num_atoms:], e.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(e.numpy(), axis=1), 1.0, atol=1e-6)


def test_loss_gradient_matches_finite_differences():
    torch.manual_seed(2)
    m = DSGPM(hidden=8, out_dim=4, steps=2).double()
    g = mol_graph_from_smiles(SMILES[3])
    labels = np.array([0, 1, 0, 0, 2, 2, 2, 2, 3, 2, 2][: g.num_atoms])
    b = collate([prepare_graph(g, labels)])
    b.extra = b.extra.double()
    p = m.root.weight
    loss = dsgpm_loss(m(b), b)[0]
    grad = torch.autograd.grad(loss, p)[0]
    for idx in [(0, 0), (3, 5), (9, 2)]:
        with torch.no_grad():
            old = p[idx].item()
            p[idx] = old + 1e-6
            up = dsgpm_loss(m(b), b)[0].item()
            p[idx] = old - 1e-6
            dn = dsgpm_loss(m(b), b)[0].item()
            p[idx] = old
        assert grad[idx].item() == pytest.approx((up - dn) / 2e-6, rel=1e-4, abs=1e-8)


# ----------------------------------------------------------------------------- partition

@pytest.mark.parametrize("smiles", SMILES)
def test_partition_has_requested_number_of_connected_beads(smiles):
    g = mol_graph_from_smiles(smiles)
    torch.manual_seed(0)
    m = DSGPM(hidden=16, out_dim=16, steps=2)
    for k in (1, 2, 3, 5, g.num_atoms // 2, g.num_atoms - 1, g.num_atoms):
        for model in (m, None):
            lab = predict_mapping(model, g, k)
            assert len(np.unique(lab)) == k
            assert _beads_connected(g, lab)
        lab = enforce_connectivity(metis_partition(g, k), g.edges, k)
        assert len(np.unique(lab)) == k and _beads_connected(g, lab)


def test_enforce_connectivity_splits_merges_and_refuses():
    g = _path_graph(6)
    # cluster 0 = {0, 5} is disconnected: the paper's post-processing splits it
    lab = enforce_connectivity(np.array([0, 1, 1, 1, 1, 0]), g.edges)
    assert len(np.unique(lab)) == 3 and _beads_connected(g, lab)
    # exact count: merge back to 2 beads along the path
    lab2 = enforce_connectivity(np.array([0, 1, 1, 1, 1, 0]), g.edges, n_beads=2)
    assert len(np.unique(lab2)) == 2 and _beads_connected(g, lab2)
    # too few beads: split the largest along its weakest bond
    aff = np.zeros((6, 6))
    for i, w in enumerate([1.0, 1.0, 0.1, 1.0, 1.0]):
        aff[i, i + 1] = aff[i + 1, i] = w
    lab3 = enforce_connectivity(np.zeros(6, int), g.edges, n_beads=2, affinity=aff)
    assert lab3.tolist() == [0, 0, 0, 1, 1, 1]
    two = MolGraph(["C"] * 4, np.array([[0, 1], [2, 3]]), np.ones(2))
    with pytest.raises(ValueError, match="disconnected fragments"):
        enforce_connectivity(np.zeros(4, int), two.edges, n_beads=1)


def test_bead_count_errors():
    g = mol_graph_from_smiles("CCO")
    with pytest.raises(ValueError, match="exceeds the atom count"):
        predict_mapping(None, g, 4)
    with pytest.raises(ValueError, match="positive integer"):
        predict_mapping(None, g, 0)


# ----------------------------------------------------------------------------- metrics

def test_cut_scores_and_ami_analytic():
    g = _path_graph(6)
    true = np.array([0, 0, 0, 1, 1, 1])  # one cut: bond (2,3)
    pred = np.array([0, 0, 1, 1, 2, 2])  # cuts (1,2) and (3,4)
    assert cut_scores(pred, true, g.edges) == (0.0, 0.0, 0.0)
    pred2 = np.array([0, 0, 0, 1, 1, 2])  # cuts (2,3), (4,5): precision 1/2, recall 1
    p, r, f = cut_scores(pred2, true, g.edges)
    assert (p, r) == (0.5, 1.0) and f == pytest.approx(2 / 3)
    s = score_mapping(true[::-1] * 7, true, g.edges)  # relabelled identical partition
    assert s["ami"] == pytest.approx(1.0) and s["cut_f1"] == 1.0


def test_automorphisms_and_protocols():
    benzene = mol_graph_from_smiles("c1ccccc1")
    assert len(automorphisms(benzene)) == 12  # dihedral group D6
    # a 3-bead mapping of benzene has 2 distinct images (the two ways to cut pairs of bonds)
    assert len(relabellings(np.array([0, 0, 1, 1, 2, 2]), automorphisms(benzene))) == 2
    g = _path_graph(5)

    class A:  # minimal annotation stand-in
        def __init__(self, labels):
            self.graph, self.labels = g, np.array(labels)
            self.smiles, self.n_beads = g.name, len(set(labels))

    anns = [A([0, 0, 1, 1, 1]), A([0, 0, 0, 1, 1])]
    pred = lambda graph, k: np.array([0, 0, 0, 1, 1])  # noqa: E731
    strict = evaluate_strict(anns, pred)
    paper = evaluate_paper(anns, pred)
    assert strict["count"] == 2 and paper["count"] == 1
    # the reversed path maps annotation 0 onto the prediction: perfect under the paper's protocol
    assert paper["ami"] == pytest.approx(1.0) and paper["cut_f1"] == 1.0
    assert strict["cut_f1"] == pytest.approx(0.5)  # one annotation perfect, the other cut elsewhere
    assert paper["ami"] >= strict["ami"]


# ----------------------------------------------------------------------------- training, checkpoints

def test_training_lowers_loss_and_checkpoint_round_trip(tmp_path):
    from cgsurrogate.data.molgraph import mol_graph_from_smiles as mg

    torch.manual_seed(0)

    class A:
        def __init__(self, smiles, labels):
            self.graph = mg(smiles)
            self.labels = np.array(labels)
            self.smiles, self.n_beads = smiles, len(set(labels))

    # no mirror symmetry, so every atom can be told apart by message passing
    anns = [A("CCCCCO", [0, 0, 0, 1, 1, 1]), A("CCCCCCCN", [0, 0, 0, 0, 1, 1, 1, 1]),
            A("CCC(=O)CC#N", [0, 0, 1, 1, 2, 2, 2]), A("Oc1ccccc1CC", [0, 0, 1, 1, 2, 2, 1, 3, 3])]
    model, hist = train_dsgpm(anns, None, epochs=60, batch_size=2, lr=3e-3,
                              model_config=dict(hidden=16, out_dim=16, steps=3), progress=False)
    assert hist[-1]["loss"] < 0.6 * hist[0]["loss"]
    path = save_dsgpm(tmp_path / "m.pt", model, {"note": "test"})
    back = load_dsgpm_torch(path)[0]
    ck = torch.load(path, weights_only=True)
    assert ck["format"] == "cgsurrogate" and ck["kind"] == "dsgpm" and ck["payload"]["config"] == model.config
    b = collate([prepare_graph(anns[3].graph)])
    with torch.no_grad():
        np.testing.assert_allclose(back(b).numpy(), model(b).numpy(), atol=1e-7)
        # the torch-free reader and numpy forward give the same embedding
        np.testing.assert_allclose(load_dsgpm(path).embed(anns[3].graph)[0], model(b).numpy(), atol=1e-5)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_dsgpm(bad)
    torch.save({"format": "something-else"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="foreign.pt"):
        load_dsgpm_torch(tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="foreign.pt"):
        load_dsgpm(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError):
        load_dsgpm(tmp_path / "missing.pt")


def test_pretrained_model_ships_and_is_small():
    assert PRETRAINED_PATH.is_file()
    assert PRETRAINED_PATH.stat().st_size < 2_000_000
    m = load_dsgpm(PRETRAINED_PATH)
    g = mol_graph_from_smiles(SMILES[0])
    lab = predict_mapping(m, g, 7)
    assert len(np.unique(lab)) == 7 and _beads_connected(g, lab)


# ----------------------------------------------------------------------------- CLI

def _cli(capsys, *args):
    """Run ``cli.py cgmap`` in-process (same parser and error handling as the script)."""
    sys.path.insert(0, str(REPO))
    from cgsurrogate import cli

    rc = cli.main(["cgmap", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_cgmap_smiles_writes_json_and_png(tmp_path, capsys):
    import json

    rc, out, err = _cli(capsys, "--smiles", "CC(C)NC(=O)c1ccccc1O", "--beads", "4", "--out",
                        str(tmp_path / "map.json"), "--png", str(tmp_path / "map.png"))
    assert rc == 0, err
    d = json.loads((tmp_path / "map.json").read_text())
    assert len(d["cgnodes"]) == 4 and len(d["nodes"]) == 13
    assert (tmp_path / "map.png").stat().st_size > 1000


def test_cli_cgmap_errors(tmp_path, capsys):
    rc, _, err = _cli(capsys, "--smiles", "C1CC(", "--beads", "2", "--out", str(tmp_path / "x.json"))
    assert rc == 2 and err.startswith("error:") and "cannot parse" in err and err.count("\n") == 1
    rc, _, err = _cli(capsys, "--smiles", "CCO", "--beads", "5", "--out", str(tmp_path / "x.json"))
    assert rc == 2 and "exceeds the atom count" in err
    rc, _, err = _cli(capsys, "--smiles", "CCO", "--beads", "0", "--out", str(tmp_path / "x.json"))
    assert rc == 2 and "positive integer" in err and err.count("\n") == 1
    rc, _, err = _cli(capsys, "--structure", str(tmp_path / "none.pdb"), "--beads", "5", "--out",
                      str(tmp_path / "x.json"))
    assert rc == 2 and "none.pdb" in err
    assert not (tmp_path / "x.json").exists()
