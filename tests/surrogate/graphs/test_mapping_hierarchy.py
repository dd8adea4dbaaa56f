"""Mapping -> aggregation -> orthonormal prolongation -> hierarchy level; LGDD comparison; AdK backbone."""
import numpy as np
import pytest
import torch

from cgsurrogate.data.molgraph import mol_graph_from_smiles
from cgsurrogate.surrogate.graphs.mapping_hierarchy import (aggregation_matrix, coarse_adjacency, compare_with_lgdd, hierarchy_from_mappings,
                                    learned_mappings, prolongation_from_mapping)


def _path(n):
    a = np.zeros((n, n))
    for i in range(n - 1):
        a[i, i + 1] = a[i + 1, i] = 1.0
    return a


def _lap(a):
    return a - np.diag(a.sum(1))


def test_prolongation_is_orthonormal_bead_average():
    lab = np.array([2, 2, 0, 0, 0, 1])
    m = aggregation_matrix(lab)
    assert m.shape == (6, 3) and (m.sum(1) == 1).all()
    P = prolongation_from_mapping(lab)
    np.testing.assert_allclose(P.T @ P, np.eye(3), atol=1e-15)
    x = np.array([1.0, 2, 3, 4, 5, 6])
    # P P^T averages a fine signal over each bead
    np.testing.assert_allclose(P @ P.T @ x, [1.5, 1.5, 4, 4, 4, 6])


def test_coarse_adjacency_counts_crossing_bonds():
    g = mol_graph_from_smiles("c1ccccc1")  # ring of 6
    lab = np.array([0, 0, 1, 1, 2, 2])
    c = coarse_adjacency(g.adjacency(), lab)
    np.testing.assert_array_equal(c, [[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    lab2 = np.array([0, 0, 0, 1, 1, 1])  # two halves of the ring share two bonds
    np.testing.assert_array_equal(coarse_adjacency(g.adjacency(), lab2), [[0, 2], [2, 0]])
    np.testing.assert_array_equal(coarse_adjacency(g.adjacency(), lab2, weighted=False), [[0, 1], [1, 0]])


def test_lgdd_comparison_against_independent_objective():
    a = _path(8)
    lab = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    r = compare_with_lgdd(a, lab)
    P = prolongation_from_mapping(lab)
    Lf, Lc = _lap(a), _lap(coarse_adjacency(a, lab))
    assert r["mapping_distance"] == pytest.approx(np.linalg.norm(P @ Lc - Lf @ P))
    # best alpha: closed form against a dense scan of alpha
    alphas = np.linspace(0.3, 3.0, 20001)
    scan = [np.linalg.norm(P @ Lc / al - al * Lf @ P) for al in alphas]
    assert r["mapping_distance_best_alpha"] == pytest.approx(min(scan), rel=1e-6)
    assert r["mapping_alpha"] == pytest.approx(alphas[int(np.argmin(scan))], abs=1e-3)
    # the LGDD optimum over orthonormal P is no worse than the mapping's P
    assert r["lgdd_distance"] <= r["mapping_distance"] + 1e-9
    assert r["lgdd_distance_best_alpha"] <= r["mapping_distance_best_alpha"] + 1e-9
    assert r["orthonormality_error"] < 1e-14


def test_hierarchy_from_nested_mappings_round_trips(tmp_path):
    from cgsurrogate.surrogate.graphs.hierarchy import Hierarchy

    a = _path(12)
    m1 = np.repeat(np.arange(6), 2)       # 12 -> 6
    m2 = np.repeat(np.arange(3), 2)       # 6 -> 3
    h = hierarchy_from_mappings(a, [m1, m2], names=["fine", "mid", "coarse"])
    assert h.sizes == [12, 6, 3] and h.num_levels == 3
    P02 = h.prolongation(2).numpy()
    np.testing.assert_allclose(P02.T @ P02, np.eye(3), atol=1e-14)
    # composed prolongation lives on the composed mapping (4 atoms per coarse bead, equal weights 1/2)
    np.testing.assert_allclose(P02, prolongation_from_mapping(np.repeat(np.arange(3), 4)), atol=1e-14)
    np.testing.assert_allclose(h.laplacian_dense(1).numpy(), _lap(_path(6)))
    h.save(tmp_path / "h.pt")
    h2 = Hierarchy.load(tmp_path / "h.pt")
    assert h2.sizes == h.sizes
    np.testing.assert_allclose(h2.P[1].numpy(), h.P[1].numpy())
    torch.load(tmp_path / "h.pt", weights_only=True)
    with pytest.raises(ValueError):
        hierarchy_from_mappings(a, [m2])  # wrong length for level 0


def test_learned_mappings_on_adk_backbone_are_nested_and_connected():
    import networkx as nx

    from cgsurrogate.surrogate.graphs.mapping_hierarchy import adk_backbone_graph

    g = adk_backbone_graph()
    maps = learned_mappings(g, [60, 12])
    assert len(maps[0]) == 855 and len(np.unique(maps[0])) == 60
    assert len(maps[1]) == 60 and len(np.unique(maps[1])) == 12
    h = hierarchy_from_mappings(g.adjacency(), maps)
    assert h.sizes == [855, 60, 12]
    G = g.nx_graph()
    composed = maps[1][maps[0]]
    for b in range(12):
        assert nx.is_connected(G.subgraph(np.flatnonzero(composed == b).tolist()))
    P = h.prolongation(2).numpy()
    np.testing.assert_allclose(P.T @ P, np.eye(12), atol=1e-12)
    with pytest.raises(ValueError, match="decrease"):
        learned_mappings(g, [60, 80])


def test_mapping_hierarchy_feeds_a_gpcn_model():
    """A hierarchy from mappings is a drop-in for the GPCN family (contract C/D)."""
    from cgsurrogate.surrogate.gcn.registry import build_model

    a = _path(12)
    h = hierarchy_from_mappings(a, [np.repeat(np.arange(6), 2), np.repeat(np.arange(3), 2)])
    torch.manual_seed(0)
    m = build_model("gpcn-3", hierarchy=h, in_features=4)
    x = torch.randn(2, 12, 4, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 12, 1) and torch.isfinite(y).all()
    y.sum().backward()
    assert x.grad.abs().sum() > 0
    # samples are independent: changing sample 1 leaves sample 0's prediction unchanged
    x2 = x.detach().clone()
    x2[1] += 1.0
    np.testing.assert_allclose(m(x2)[0].detach().numpy(), y[0].detach().numpy(), atol=1e-6)
