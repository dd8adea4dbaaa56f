"""From coarse-grained mappings to prolongation hierarchies, for molecules that are not tubes.

A mapping (bead label of every node) gives

* an aggregation matrix ``M`` [n, k] (``M[i, b] = 1`` when node i is in bead b),
* a coarse graph: beads joined when a bond crosses between them, weighted by the number of
  crossing bonds (the off-diagonal part of ``M^T A M``),
* a prolongation with orthonormal columns ``P = M diag(|b|)^{-1/2}`` (each column spreads a
  bead's value evenly over its atoms and has unit norm; columns have disjoint supports).

:func:`compare_with_lgdd` measures how well such a P intertwines the two Laplacians,
``|| (1/alpha) P L_coarse - alpha L_fine P ||_F`` (Scott & Mjolsness 2021, eq. 1), next to the
LGDD-optimal P for the same coarse graph (:mod:`cgsurrogate.surrogate.graphs.lgdd`). :func:`hierarchy_from_mappings`
stacks mappings into a :class:`cgsurrogate.surrogate.graphs.hierarchy.Hierarchy` (contract C) that the GPCN
models consume, and :func:`adk_backbone_hierarchy` builds a 3-level hierarchy of the
adenylate kinase backbone (MDAnalysisTests' ``adk.psf``) from DSGPM-learned mappings.
"""
from __future__ import annotations

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError

__all__ = ["aggregation_matrix", "prolongation_from_mapping", "coarse_adjacency", "coarse_graph",
           "compare_with_lgdd", "hierarchy_from_mappings", "learned_mappings", "adk_backbone_graph",
           "adk_backbone_hierarchy"]


def _labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise CGSurrogateError("a mapping is a non-empty 1-D array of bead labels")
    _, inv = np.unique(labels, return_inverse=True)
    return inv.astype(np.int64)


def aggregation_matrix(labels) -> np.ndarray:
    """0/1 aggregation matrix ``M`` [n, k] of a mapping (beads numbered by sorted label).

    Parameters
    ----------
    labels : int [n]
    """
    lab = _labels(labels)
    m = np.zeros((len(lab), lab.max() + 1))
    m[np.arange(len(lab)), lab] = 1.0
    return m


def prolongation_from_mapping(labels) -> np.ndarray:
    """Prolongation with orthonormal columns from a mapping: ``P = M diag(bead sizes)^{-1/2}``.

    Parameters
    ----------
    labels : int [n]

    Returns
    -------
    float64 [n, k] with ``P^T P = I``; ``P P^T`` averages a fine signal over each bead.
    """
    m = aggregation_matrix(labels)
    return m / np.sqrt(m.sum(0, keepdims=True))


def _dense_adjacency(graph) -> np.ndarray:
    from cgsurrogate.surrogate.graphs.weighted_graph import adjacency_of

    if hasattr(graph, "adjacency") and not hasattr(graph, "num_nodes"):  # MolGraph
        return np.asarray(graph.adjacency(), dtype=np.float64)
    return adjacency_of(graph).toarray()


def coarse_adjacency(adjacency, labels, weighted: bool = True) -> np.ndarray:
    """Adjacency of the coarse graph of a mapping, [k, k].

    Parameters
    ----------
    adjacency : float [n, n] (dense array, scipy sparse, or any graph object of :mod:`cgsurrogate.surrogate.graphs.weighted_graph`)
    labels : int [n]
    weighted : bool
        True: summed weight of the bonds between two beads (off-diagonal of ``M^T A M``);
        False: 1 where any bond joins them.
    """
    a = _dense_adjacency(adjacency) if not isinstance(adjacency, np.ndarray) else adjacency
    m = aggregation_matrix(labels)
    if a.shape[0] != m.shape[0]:
        raise CGSurrogateError(f"mapping has {m.shape[0]} labels for a graph of {a.shape[0]} nodes")
    c = m.T @ a @ m
    np.fill_diagonal(c, 0.0)
    return c if weighted else (c > 0).astype(np.float64)


def coarse_graph(adjacency, labels, weighted: bool = True, label: str = "coarse"):
    """The coarse graph of a mapping as a :class:`cgsurrogate.surrogate.graphs.weighted_graph.WeightedGraph`."""
    from cgsurrogate.surrogate.graphs.weighted_graph import WeightedGraph

    return WeightedGraph.from_adjacency(coarse_adjacency(adjacency, labels, weighted), label=label)


def _best_alpha_objective(P, L1, L2) -> tuple[float, float]:
    """min over alpha > 0 of ||(1/alpha) P L1 - alpha L2 P||_F and the minimising alpha."""
    x, y = P @ L1, L2 @ P
    nx_, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx_ == 0 or ny == 0:
        return float(np.linalg.norm(x - y)), 1.0
    d2 = 2.0 * (nx_ * ny - float(np.sum(x * y)))
    return float(np.sqrt(max(d2, 0.0))), float(np.sqrt(nx_ / ny))


def compare_with_lgdd(adjacency, labels, weighted: bool = True, alpha: float = 1.0) -> dict:
    """Diffusion-distance objective of the mapping's P against the LGDD-optimal P for the same coarse graph.

    Parameters
    ----------
    adjacency : fine graph adjacency [n, n] or graph object
    labels : int [n] mapping
    weighted : bool  coarse-graph weights (see :func:`coarse_adjacency`)
    alpha : float  the fixed alpha of the comparison (the paper's hierarchies use 1)

    Returns
    -------
    dict with ``n_fine``, ``n_coarse``, ``mapping_distance`` and ``lgdd_distance`` (objective at
    ``alpha``), ``mapping_distance_best_alpha``/``mapping_alpha`` (alpha minimised for the mapping's P),
    ``lgdd_distance_best_alpha``/``lgdd_alpha`` (global LGDD with alpha searched), and
    ``orthonormality_error`` = max |P^T P - I| of the mapping's P.
    """
    from cgsurrogate.surrogate.graphs.weighted_graph import dense_laplacian
    from cgsurrogate.surrogate.graphs.lgdd import lgdd, objective

    a = _dense_adjacency(adjacency) if not isinstance(adjacency, np.ndarray) else adjacency
    ca = coarse_adjacency(a, labels, weighted)
    L_f, L_c = dense_laplacian(a), dense_laplacian(ca)
    P = prolongation_from_mapping(labels)
    fixed = lgdd(ca, a, alpha=alpha, return_P=False)
    free = lgdd(ca, a, alpha=None, return_P=False)
    best, best_alpha = _best_alpha_objective(P, L_c, L_f)
    return {
        "n_fine": int(a.shape[0]), "n_coarse": int(ca.shape[0]),
        "mapping_distance": objective(P, L_c, L_f, alpha),
        "lgdd_distance": float(fixed.distance),
        "mapping_distance_best_alpha": best, "mapping_alpha": best_alpha,
        "lgdd_distance_best_alpha": float(free.distance), "lgdd_alpha": float(free.alpha),
        "orthonormality_error": float(np.abs(P.T @ P - np.eye(P.shape[1])).max()),
    }


def hierarchy_from_mappings(adjacency, mappings, weighted: bool = True, names=None, alpha: float = 1.0):
    """Stack nested mappings into a :class:`cgsurrogate.surrogate.graphs.hierarchy.Hierarchy` (contract C).

    Parameters
    ----------
    adjacency : fine graph adjacency [n_0, n_0] or graph object
    mappings : list of int arrays
        ``mappings[i]`` labels the nodes of level i (size n_i) with beads of level i+1.
    weighted : bool  coarse-graph edge weights (see :func:`coarse_adjacency`)
    names : list of str, optional  graph labels, finest first
    alpha : float  alpha used for the recorded per-level objective

    Returns
    -------
    Hierarchy with ``P[i] = prolongation_from_mapping(mappings[i])`` and ``distances[i]`` the
    objective ``||(1/alpha) P L_{i+1} - alpha L_i P||_F``.
    """
    from cgsurrogate.surrogate.graphs.weighted_graph import WeightedGraph, dense_laplacian
    from cgsurrogate.surrogate.graphs.hierarchy import Hierarchy
    from cgsurrogate.surrogate.graphs.lgdd import objective

    a = _dense_adjacency(adjacency) if not isinstance(adjacency, np.ndarray) else np.asarray(adjacency, float)
    names = list(names) if names is not None else [f"level{i}" for i in range(len(mappings) + 1)]
    graphs = [WeightedGraph.from_adjacency(a, label=names[0])]
    Ps, dists = [], []
    for i, lab in enumerate(mappings):
        lab = np.asarray(lab)
        if len(lab) != a.shape[0]:
            raise CGSurrogateError(f"mapping {i} has {len(lab)} labels for level {i} of {a.shape[0]} nodes")
        ca = coarse_adjacency(a, lab, weighted)
        P = prolongation_from_mapping(lab)
        dists.append(objective(P, dense_laplacian(ca), dense_laplacian(a), alpha))
        graphs.append(WeightedGraph.from_adjacency(ca, label=names[i + 1]))
        Ps.append(P)
        a = ca
    return Hierarchy(graphs, Ps, distances=dists, alpha=alpha)


def learned_mappings(graph, bead_counts, model=None, seed: int = 0) -> list[np.ndarray]:
    """Nested mappings of a molecule from DSGPM affinities.

    Level 1 is the DSGPM mapping of the atoms into ``bead_counts[0]`` beads (spectral
    clustering of the learned affinity, connected beads). Each further level clusters the
    previous coarse graph with the aggregated affinity ``M^T A M`` (learned affinities summed
    over the bonds between two beads) into ``bead_counts[i]`` connected beads.

    Parameters
    ----------
    graph : cgsurrogate.data.molgraph.MolGraph
    bead_counts : list of int, strictly decreasing
    model : DSGPM or None  (None: the pretrained model)
    seed : int

    Returns
    -------
    list of int64 arrays; ``out[i]`` has one label per node of level i.
    """
    from cgsurrogate.surrogate.cgmap.dsgpm import affinity_matrix, embed_graph, enforce_connectivity, load_pretrained, \
        spectral_partition

    counts = [int(k) for k in bead_counts]
    if not counts or any(b >= a for a, b in zip([graph.num_atoms] + counts, counts)):
        raise CGSurrogateError(f"bead counts must decrease strictly below the atom count {graph.num_atoms}, got {counts}")
    model = model if model is not None else load_pretrained()
    aff = affinity_matrix(embed_graph(model, graph), graph.edges, graph.num_atoms)
    out = []
    for k in counts:
        iu = np.argwhere(np.triu(aff, 1) > 0)
        lab = enforce_connectivity(spectral_partition(aff, k, seed=seed), iu, k, affinity=aff)
        out.append(lab)
        m = aggregation_matrix(lab)
        aff = m.T @ aff @ m
        np.fill_diagonal(aff, 0.0)
    return out


def adk_backbone_graph():
    """Backbone (N, CA, C, O) heavy-atom graph of adenylate kinase from MDAnalysisTests' ``adk.psf`` with the
    ``adk_open.crd`` coordinates (855 atoms; positions in Angstrom)."""
    try:
        from MDAnalysisTests.datafiles import CRD, PSF
    except ImportError as exc:
        raise FileNotFoundError("MDAnalysisTests is not installed: it provides the AdK files (adk.psf)") from exc
    from cgsurrogate.data.molgraph import mol_graph_from_structure

    return mol_graph_from_structure((PSF, CRD), selection="backbone")


def adk_backbone_hierarchy(bead_counts=(214, 54), model=None, seed: int = 0, weighted: bool = True):
    """3-level hierarchy of the AdK backbone from learned (DSGPM) mappings.

    Parameters
    ----------
    bead_counts : (int, int)  beads of levels 1 and 2 (default: ~4 atoms per bead, then ~4 beads per bead)
    model : DSGPM or None  (None: the pretrained model)
    seed : int
    weighted : bool

    Returns
    -------
    hierarchy : Hierarchy (3 levels: 855 backbone atoms, then the two bead counts)
    mappings : list of two int arrays
    comparison : list of two dicts from :func:`compare_with_lgdd`, one per level
    """
    graph = adk_backbone_graph()
    mappings = learned_mappings(graph, bead_counts, model=model, seed=seed)
    names = [f"AdK backbone ({graph.num_atoms} atoms)"] + [f"DSGPM {k} beads" for k in bead_counts]
    h = hierarchy_from_mappings(graph.adjacency(), mappings, weighted=weighted, names=names)
    comparison = []
    a = graph.adjacency()
    for lab in mappings:
        comparison.append(compare_with_lgdd(a, lab, weighted=weighted))
        a = coarse_adjacency(a, lab, weighted)
    return h, mappings, comparison
