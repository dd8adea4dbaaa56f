"""DSGPM triplet sampling: ``"per-cut-edge"`` (the authors' code: one random triplet per cut bond, random
orientation, a random in-bead neighbour of the anchor as positive, the other end when the anchor has
none) against hand-enumerated outcomes on small graphs, and the mode given to ``train_dsgpm`` reaches
the recorded loss; an unknown mode is one clear CGSurrogateError."""
from collections import Counter

import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.data.molgraph import mol_graph_from_smiles
from cgsurrogate.surrogate.cgmap.features import prepare_graph, sample_cut_edge_triplets
from cgsurrogate.surrogate.cgmap.network import DSGPM
from cgsurrogate.surrogate.cgmap.training import torch_embedder, train_dsgpm

CFG = dict(hidden=16, out_dim=8, steps=2, feature_set="rich")


def draws(smiles, labels, n=2000, seed=0):
    pg = prepare_graph(mol_graph_from_smiles(smiles), labels, feature_set="paper")
    rng = np.random.default_rng(seed)
    return pg, Counter(tuple(map(tuple, sample_cut_edge_triplets(pg, rng).tolist())) for _ in range(n))


def test_chain_both_orientations_equally_often():
    # C0-C1-C2-C3, beads {0,1} {2,3}: the one cut bond 1-2 gives (1,0,2) or (2,3,1), each with probability 1/2
    _, c = draws("CCCC", [0, 0, 1, 1])
    assert set(c) == {((1, 0, 2),), ((2, 3, 1),)}
    assert c[((1, 0, 2),)] / 2000 == pytest.approx(0.5, abs=0.05)    # 5 binomial standard deviations: 0.056


def test_anchor_without_bead_neighbour_swaps_and_isolated_cut_is_skipped():
    # C0-C1-C2-C3, beads {0,1} {2} {3}: bond 1-2 always (1,0,2) (atom 2 has no bead neighbour); 2-3 none
    _, c = draws("CCCC", [0, 0, 1, 2], n=200)
    assert set(c) == {((1, 0, 2),)}


def test_positive_drawn_among_bead_neighbours():
    # isobutane C0-C1(-C2)-C3, beads {0,1,2} {3}: cut 1-3, anchor 1, positive 0 or 2 with probability 1/2
    pg, c = draws("CC(C)C", [0, 0, 0, 1])
    assert set(c) == {((1, 0, 3),), ((1, 2, 3),)}
    assert c[((1, 0, 3),)] / 2000 == pytest.approx(0.5, abs=0.05)
    assert {tuple(t) for t in pg.triplets.tolist()} == {(1, 0, 3), (1, 2, 3)}   # "all": both, every time


def test_samples_are_a_subset_of_all_triplets(anns):
    rng = np.random.default_rng(4)
    for a in anns:
        pg = prepare_graph(a.graph, a.labels, feature_set="rich")
        every = {tuple(t) for t in pg.triplets.tolist()}
        cut = [(i, j) for i, j in a.graph.edges.tolist() if a.labels[i] != a.labels[j]]
        has = lambda u: any(a.labels[w] == a.labels[u] for e in a.graph.edges.tolist() if u in e  # noqa: E731
                            for w in e if w != u)
        t = sample_cut_edge_triplets(pg, rng)
        assert {tuple(x) for x in t.tolist()} <= every
        assert len(t) == sum(1 for i, j in cut if has(i) or has(j))     # one per cut bond with a positive
        assert all(a.labels[x] == a.labels[p] != a.labels[n] for x, p, n in t.tolist())


def test_per_cut_edge_reaches_training(anns):
    # CCCCCO, beads {0,1,2} {3,4,5}: the cut bond 2-3 gives (2,1,3) or (3,4,2); "all" uses both
    torch.set_num_threads(1)
    one = [anns[0]]
    outcomes = []
    for seed in range(6):
        _, hist = train_dsgpm(one, None, epochs=1, batch_size=1, lr=1e-12, seed=seed, model_config=CFG,
                              triplets="per-cut-edge")
        _, hist_all = train_dsgpm(one, None, epochs=1, batch_size=1, lr=1e-12, seed=seed, model_config=CFG)
        torch.manual_seed(seed)
        x = torch_embedder(DSGPM(**CFG)).embed(one[0].graph)[0]
        d = lambda i, j: np.linalg.norm(x[i] - x[j])  # noqa: E731
        l1, l2 = max(d(2, 1) - d(2, 3) + 1.0, 0.0), max(d(3, 4) - d(3, 2) + 1.0, 0.0)
        assert hist_all[0]["triplet"] == pytest.approx((l1 + l2) / 2, rel=1e-4)
        got = hist[0]["triplet"]
        assert got == pytest.approx(l1, rel=1e-4) or got == pytest.approx(l2, rel=1e-4)
        outcomes.append(got == pytest.approx(l1, rel=1e-4))
    assert len(set(outcomes)) == 2       # both orientations occur over the seeds (P(not) = 2^-5)


def test_unknown_triplet_mode_is_one_clear_error(anns):
    with pytest.raises(CGSurrogateError, match="unknown DSGPM triplet sampling 'some'"):
        train_dsgpm(anns, None, epochs=1, model_config=CFG, triplets="some")
