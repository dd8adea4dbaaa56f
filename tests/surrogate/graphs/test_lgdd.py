"""Linear graph diffusion distance: orthogonality, analytic costs, exact alpha search vs brute force,
spectrum-containment zeros, Stiefel refinement."""
import itertools
import math

import networkx as nx
import numpy as np
import pytest

from cgsurrogate.simulate.tube import Tube
from cgsurrogate.surrogate.graphs.weighted_graph import Grid, WeightedGraph, dense_laplacian, parse_graph
from cgsurrogate.surrogate.graphs.lgdd import (
    alpha_search,
    assignment,
    assignment_cost,
    laplacian_spectrum,
    lgdd,
    objective,
    prolongation,
    prolongation_from_assignment,
    refine_stiefel,
)


def random_graph(n, p, seed, weighted=False):
    rng = np.random.default_rng(seed)
    g = nx.gnp_random_graph(n, p, seed=int(seed))
    if weighted:
        for u, v in g.edges:
            g[u][v]["weight"] = float(rng.uniform(0.5, 2.0))
    return WeightedGraph.from_adjacency(nx.to_numpy_array(g), label=f"G({n},{p},{seed})")


def grid_min(lam1, lam2, alphas):
    return min(assignment_cost(lam1, lam2, assignment(lam1, lam2, a), a) for a in alphas)


PAIRS = [
    (parse_graph("Path(5)"), parse_graph("Cycle(9)")),
    (Grid(3, 4), Tube(4, 5, 1)),
    (Tube(6, 3, 0, 2.0), Tube(12, 5, 2)),
    (random_graph(7, 0.5, 3, weighted=True), random_graph(11, 0.4, 4)),
]


@pytest.mark.parametrize("g1,g2", PAIRS, ids=lambda g: g.name)
def test_orthonormal_and_analytic_cost(g1, g2):
    (lam1, U1), (lam2, U2) = laplacian_spectrum(g1), laplacian_spectrum(g2)
    L1, L2 = dense_laplacian(g1), dense_laplacian(g2)
    np.testing.assert_allclose(U1 @ np.diag(lam1) @ U1.T, L1, atol=1e-10)
    for alpha in (1.0, 0.63, 1.7):
        pi = assignment(lam1, lam2, alpha)
        assert len(set(pi.tolist())) == len(pi)  # an injection
        P = prolongation_from_assignment(U1, U2, pi)
        assert P.shape == (len(lam2), len(lam1))
        assert np.abs(P.T @ P - np.eye(len(lam1))).max() < 1e-8
        # Frobenius objective computed from the matrices == analytic eigenvalue cost
        direct = np.linalg.norm(P @ L1 / alpha - alpha * L2 @ P)
        analytic = math.sqrt(sum((lam1[j] / alpha - alpha * lam2[pi[j]]) ** 2 for j in range(len(lam1))))
        assert direct == pytest.approx(analytic, rel=1e-9, abs=1e-10)
        assert objective(P, g1, g2, alpha) == pytest.approx(direct, rel=1e-12, abs=1e-12)


def test_rlap_matches_exhaustive_injections():
    g1, g2 = random_graph(4, 0.8, 7, weighted=True), random_graph(7, 0.5, 8, weighted=True)
    lam1, lam2 = laplacian_spectrum(g1)[0], laplacian_spectrum(g2)[0]
    for alpha in (0.5, 1.0, 1.9):
        best = min(assignment_cost(lam1, lam2, np.array(p), alpha)
                   for p in itertools.permutations(range(7), 4))
        got = assignment_cost(lam1, lam2, assignment(lam1, lam2, alpha), alpha)
        assert got == pytest.approx(best, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("g", [Tube(6, 4, 1), Grid(3, 5), random_graph(9, 0.4, 1, weighted=True)],
                         ids=lambda g: g.name)
def test_graph_against_itself_is_zero(g):
    r = lgdd(g, g)
    assert r.distance < 1e-9 and r.alpha == pytest.approx(1.0, rel=1e-6)
    assert lgdd(g, g, 1.0).distance < 1e-9
    assert np.abs(r.P.T @ r.P - np.eye(g.num_nodes)).max() < 1e-8


@pytest.mark.parametrize("seed", range(6))
def test_alpha_search_never_worse_than_dense_grid(seed):
    rng = np.random.default_rng(seed)
    n1 = int(rng.integers(4, 8))
    n2 = int(rng.integers(n1, 13))
    g1 = random_graph(n1, 0.6, 100 + seed, weighted=bool(seed % 2))
    g2 = random_graph(n2, 0.45, 200 + seed, weighted=bool(seed % 3))
    lam1, lam2 = laplacian_spectrum(g1)[0], laplacian_spectrum(g2)[0]
    res = alpha_search(lam1, lam2)
    alphas = np.geomspace(0.05, 20.0, 1500)
    gmin = grid_min(lam1, lam2, alphas)
    assert res.distance ** 2 <= gmin + 1e-10 * max(gmin, 1.0)
    # the reported (alpha, assignment) really attain the reported distance
    assert assignment_cost(lam1, lam2, res.assignment, res.alpha) == pytest.approx(res.distance ** 2, abs=1e-10)
    # exact: equals the closed-form minimum over all injections, min 2 (sqrt(A B) - C)
    if n2 <= 8:
        A = float(lam1 @ lam1)
        exact = min(2 * (math.sqrt(A * float(lam2[list(p)] @ lam2[list(p)])) - float(lam1 @ lam2[list(p)]))
                    for p in itertools.permutations(range(n2), n1))
        assert res.distance ** 2 == pytest.approx(exact, abs=1e-9)
    # and a local grid refined around the optimum cannot beat it either
    fine = np.linspace(res.alpha * 0.98, res.alpha * 1.02, 201)
    assert res.distance ** 2 <= grid_min(lam1, lam2, fine) + 1e-10


@pytest.mark.parametrize("g1,g2", [(Tube(4, 3, 0), Tube(8, 4, 1)), (Grid(3, 3), Tube(6, 3, 2, 2.0))],
                         ids=lambda g: g.name)
def test_alpha_search_degenerate_spectra_vs_grid(g1, g2):
    # tube and grid spectra are highly degenerate: many assignments tie
    lam1, lam2 = laplacian_spectrum(g1)[0], laplacian_spectrum(g2)[0]
    res = alpha_search(lam1, lam2)
    gmin = grid_min(lam1, lam2, np.geomspace(0.2, 5.0, 2000))
    assert res.distance ** 2 <= gmin + 1e-10
    assert res.tolerance > 0 and res.num_rlap >= 1


@pytest.mark.parametrize("small,large", [
    ("Path(8)", "Path(16)"),
    ("Cycle(8)", "Cycle(16)"),
    ("Grid(4,4)", "Grid(8,8)"),
    ("Tube(24,13,0)", "Tube(48,13,0)"),  # a 13 x 24 cylinder in a 13 x 48 one
])
def test_contained_spectrum_gives_zero(small, large):
    r = lgdd(parse_graph(small), parse_graph(large), return_P=False)
    assert r.distance < 1e-9
    assert r.alpha == pytest.approx(1.0, rel=1e-6)


def test_scaled_spectrum_found_at_nonunit_alpha():
    # L1 = 2 L(C8): spectrum of L1 / alpha^2 is inside spec L(C16) for alpha^2 = 2
    c8 = parse_graph("Cycle(8)")
    g1 = WeightedGraph(8, c8.edges, 2.0 * np.ones(8), "2C8")
    r = lgdd(g1, parse_graph("Cycle(16)"))
    assert r.distance < 1e-9
    assert r.alpha == pytest.approx(math.sqrt(2.0), rel=1e-9)
    assert lgdd(g1, parse_graph("Cycle(16)"), 1.0).distance > 1.0


def test_wrong_order_rejected():
    with pytest.raises(ValueError, match=r"\|G1\| <= \|G2\|"):
        lgdd(Tube(4, 4, 0), Tube(2, 4, 0))


def test_riemannian_gradient_vanishes_at_eigen_start():
    g1, g2 = random_graph(6, 0.6, 11, weighted=True), random_graph(10, 0.4, 12, weighted=True)
    L1, L2 = dense_laplacian(g1), dense_laplacian(g2)
    for alpha in (1.0, 0.8):
        P = lgdd(g1, g2, alpha).P
        R = P @ L1 / alpha - alpha * L2 @ P
        G = 2 * (R @ L1 / alpha - alpha * L2 @ R)
        sym = P.T @ G
        rgrad = G - P @ (sym + sym.T) / 2
        assert np.abs(rgrad).max() < 1e-9 * max(1.0, np.abs(G).max())


def test_stiefel_refinement_never_increases_and_eigen_start_is_optimal():
    g1, g2 = random_graph(6, 0.5, 21, weighted=True), random_graph(10, 0.4, 22, weighted=True)
    L1, L2 = dense_laplacian(g1), dense_laplacian(g2)
    rng = np.random.default_rng(0)
    for alpha in (1.0, 0.7):
        r = lgdd(g1, g2, alpha, refine=True, refine_iterations=50)
        info = r.refine_info
        assert info["end"] <= info["start"] + 1e-12
        assert info["start"] == pytest.approx(r.eigen_distance, rel=1e-10)
        assert np.abs(r.P.T @ r.P - np.eye(6)).max() < 1e-8
        for _ in range(3):  # random starts descend, and never beat the eigenvector construction
            Q, _ = np.linalg.qr(rng.normal(size=(10, 6)))
            P, inf = refine_stiefel(Q, L1, L2, alpha, max_iterations=500)
            assert inf["end"] <= inf["start"] and inf["end"] < inf["start"] - 1e-6
            assert inf["end"] >= r.eigen_distance - 1e-7
            assert objective(P, L1, L2, alpha) == pytest.approx(inf["end"], rel=1e-10)
            assert np.abs(P.T @ P - np.eye(6)).max() < 1e-8


def test_prolongation_shape_and_microtubule_pair():
    P = prolongation(Tube(8, 13, 3), Tube(4, 13, 1))
    assert P.shape == (104, 52) and np.abs(P.T @ P - np.eye(52)).max() < 1e-8
