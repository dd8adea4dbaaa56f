"""DSGPM input features of a molecular graph, and molecules batched as one disjoint graph.

Two feature sets (the checkpoint records which one a model was trained with):

* ``"paper"`` (Li et al. 2020, sec. 3.3): element one-hot; degree and cycle indicator;
  bond classes = the four bond orders (single, aromatic, double, triple).
* ``"rich"``: the paper's plus aromaticity, hybridisation (SP, SP2, SP3, other), formal
  charge (-1, 0, +1; clipped), hydrogen count (0, 1, 2, 3+) and the ring sizes the atom lies
  on (3, 4, 5, 6, 7+); bond classes = order x conjugated x in-ring (16 classes).

Bond orders and all chemistry come from RDKit for every graph that has them
(:attr:`MolGraph.atom_chem` / :attr:`MolGraph.bond_chem`), so a SMILES and the HAM file of
the same molecule give identical features; the file's own bond orders are not used.
Graphs of structure files have no chemistry: their extra atom columns are zero, bonds are
single, not conjugated, not in a ring (a model trained on small molecules knows little of
proteins; see :mod:`cgsurrogate.surrogate.cgmap.protein`).

Why not :class:`cgsurrogate.surrogate.equivariant.message_passing.GraphBatch`: that batch is
a geometric one (positions and velocities [N, 3], an A_global and an A_local edge set with
float edge attributes) for E(n)-equivariant models. A molecular graph from a SMILES has no
coordinates, DSGPM needs integer bond classes to evaluate its edge network once per class,
and its training batch carries the metric-learning supervision (triplets and non-cut pairs)
with node-index offsets. Filling the geometric fields with zeros would let the two families
share a name but not a meaning, so :class:`MolBatch` stays DSGPM's own.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cgsurrogate.data.molgraph import BOND_TYPES, ELEMENTS, HYBRIDISATIONS, RING_SIZES, MolGraph

__all__ = ["FEATURE_SETS", "atom_feature_dim", "bond_class_table", "atom_features", "bond_classes",
           "PreparedGraph", "prepare_graph", "MolBatch", "collate", "TRIPLET_MODES", "sample_cut_edge_triplets"]

FEATURE_SETS = ("paper", "rich")
_CHARGES = (-1, 0, 1)
_HS = 4


def _check_set(feature_set: str) -> None:
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; choose from {FEATURE_SETS}")


def atom_feature_dim(feature_set: str) -> int:
    """Width F of :func:`atom_features` (without the degree and cycle columns)."""
    _check_set(feature_set)
    if feature_set == "paper":
        return len(ELEMENTS)
    return len(ELEMENTS) + 1 + len(HYBRIDISATIONS) + len(_CHARGES) + _HS + len(RING_SIZES)


def bond_class_table(feature_set: str) -> np.ndarray:
    """Feature vector of every bond class, float32 [K, D] (the edge network's inputs).

    ``"paper"``: K = 4 one-hots of the bond orders. ``"rich"``: K = 16, class
    ``4 * order + 2 * conjugated + in_ring`` -> [order one-hot (4), conjugated, in_ring].
    """
    _check_set(feature_set)
    nb = len(BOND_TYPES)
    if feature_set == "paper":
        return np.eye(nb, dtype=np.float32)
    rows = []
    for order in range(nb):
        for conj in (0, 1):
            for ring in (0, 1):
                rows.append(np.concatenate([np.eye(nb)[order], [conj, ring]]))
    return np.array(rows, dtype=np.float32)


def atom_features(graph: MolGraph, feature_set: str) -> tuple[np.ndarray, np.ndarray]:
    """Atom features of a molecule.

    Returns
    -------
    feats : float32 [n, F] (F = :func:`atom_feature_dim`)
    extra : float32 [n, 2] degree and cycle indicator
    """
    _check_set(feature_set)
    n = graph.num_atoms
    onehot = np.zeros((n, len(ELEMENTS)), dtype=np.float32)
    onehot[np.arange(n), graph.atom_types()] = 1.0
    extra = np.stack([graph.degree(), graph.in_cycle()], axis=1).astype(np.float32)
    if feature_set == "paper":
        return onehot, extra
    chem = graph.atom_chem
    cols = np.zeros((n, atom_feature_dim("rich") - len(ELEMENTS)), dtype=np.float32)
    if chem is not None:
        nh, nc = len(HYBRIDISATIONS), len(_CHARGES)
        cols[:, 0] = chem[:, 0]
        cols[np.arange(n), 1 + chem[:, 1]] = 1.0
        cols[np.arange(n), 1 + nh + np.clip(chem[:, 2], -1, 1) + 1] = 1.0
        cols[np.arange(n), 1 + nh + nc + np.clip(chem[:, 3], 0, _HS - 1)] = 1.0
        bits = (chem[:, 4:5] >> np.arange(len(RING_SIZES))[None, :]) & 1
        cols[:, 1 + nh + nc + _HS:] = bits
    return np.concatenate([onehot, cols], axis=1), extra


def bond_classes(graph: MolGraph, feature_set: str) -> np.ndarray:
    """Bond class of each bond (row of :func:`bond_class_table`), int64 [E].

    Uses RDKit's bond orders where the graph has them (``bond_chem``), else the graph's own.
    """
    _check_set(feature_set)
    if graph.bond_chem is not None:
        order, conj, ring = graph.bond_chem[:, 0], graph.bond_chem[:, 1], graph.bond_chem[:, 2]
    else:
        order = graph.bond_type_indices()
        conj = ring = np.zeros_like(order)
    if feature_set == "paper":
        return order.astype(np.int64)
    return (4 * order + 2 * conj + ring).astype(np.int64)


@dataclass
class PreparedGraph:
    """Numpy arrays of one molecule (and optionally one annotation) ready for batching.

    Attributes
    ----------
    n : int  atoms
    feats : float32 [n, F]  atom features
    extra : float32 [n, 2]  degree, cycle indicator
    edges : int64 [E, 2]  bonds (i < j)
    edge_class : int64 [E]  bond class (row of :func:`bond_class_table`)
    triplets : int64 [T, 3] or None  (anchor, positive, negative): a-p bonded inside a bead, a-n across
    pairs : int64 [S, 2] or None  non-cut bonds
    """

    n: int
    feats: np.ndarray
    extra: np.ndarray
    edges: np.ndarray
    edge_class: np.ndarray
    triplets: np.ndarray | None = None
    pairs: np.ndarray | None = None


def _triplets_and_pairs(edges: np.ndarray, labels: np.ndarray, n: int):
    same = labels[edges[:, 0]] == labels[edges[:, 1]]
    pairs = edges[same]
    nbr_same: list[list[int]] = [[] for _ in range(n)]
    nbr_diff: list[list[int]] = [[] for _ in range(n)]
    for (i, j), s in zip(edges.tolist(), same.tolist()):
        (nbr_same if s else nbr_diff)[i].append(j)
        (nbr_same if s else nbr_diff)[j].append(i)
    trip = [(a, p, q) for a in range(n) for p in nbr_same[a] for q in nbr_diff[a]]
    return np.array(trip, dtype=np.int64).reshape(-1, 3), pairs.astype(np.int64).reshape(-1, 2)


TRIPLET_MODES = ("all", "per-cut-edge")


def sample_cut_edge_triplets(pg: PreparedGraph, rng: np.random.Generator) -> np.ndarray:
    """One random triplet per cut bond of an annotated graph (the sampling of the authors' code).

    For every cut bond (u, v) (a bond of ``pg.edges`` that is not a non-cut pair) in a random
    orientation, the anchor is u, the negative v and the positive a random neighbour of u in
    u's bead; if u has none, the roles of u and v swap; if neither has one, the bond gives no
    triplet. The paper's text (and ``pg.triplets``) instead uses every (anchor, positive, negative).

    Parameters
    ----------
    pg : PreparedGraph with ``pairs`` (prepared with labels)
    rng : numpy Generator

    Returns
    -------
    int64 [T, 3] (anchor, positive, negative), T <= number of cut bonds.
    """
    if pg.pairs is None:
        raise ValueError("cut-edge triplets need an annotated graph (prepare_graph with labels)")
    same: list[list[int]] = [[] for _ in range(pg.n)]
    for i, j in pg.pairs.tolist():
        same[i].append(j)
        same[j].append(i)
    inside = set(map(tuple, pg.pairs.tolist()))
    trip = []
    for u, v in pg.edges.tolist():
        if (u, v) in inside:
            continue
        if rng.random() < 0.5:
            u, v = v, u
        if not same[u]:
            u, v = v, u
        if same[u]:
            trip.append((u, same[u][int(rng.integers(len(same[u])))], v))
    return np.array(trip, dtype=np.int64).reshape(-1, 3)


def prepare_graph(graph: MolGraph, labels=None, feature_set: str = "paper") -> PreparedGraph:
    """Arrays of a molecule and, given a partition (int [n]), its triplets and non-cut pairs."""
    feats, extra = atom_features(graph, feature_set)
    pg = PreparedGraph(n=graph.num_atoms, feats=feats, extra=extra, edges=graph.edges.astype(np.int64),
                       edge_class=bond_classes(graph, feature_set))
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != graph.num_atoms:
            raise ValueError(f"{graph.name}: {len(labels)} labels for {graph.num_atoms} atoms")
        pg.triplets, pg.pairs = _triplets_and_pairs(pg.edges, labels, graph.num_atoms)
    return pg


@dataclass
class MolBatch:
    """Several molecules as one disjoint graph (numpy arrays; :meth:`torch` converts).

    Attributes
    ----------
    feats : float32 [N, F]; extra : float32 [N, 2]
    src, dst : int64 [2E]  directed message edges (both directions of each bond)
    edge_class : int64 [2E]
    sizes, offsets : list of int  molecule m owns rows ``offsets[m]:offsets[m]+sizes[m]``
    triplets : int64 [T, 3] or None; pairs : int64 [S, 2] or None
    """

    feats: np.ndarray
    extra: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    edge_class: np.ndarray
    sizes: list
    offsets: list
    triplets: np.ndarray | None = None
    pairs: np.ndarray | None = None

    def torch(self) -> "MolBatch":
        """The same batch with torch tensors."""
        import torch

        conv = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        return MolBatch(conv(self.feats), conv(self.extra), conv(self.src), conv(self.dst),
                        conv(self.edge_class), self.sizes, self.offsets, conv(self.triplets), conv(self.pairs))


def collate(prepared: list[PreparedGraph]) -> MolBatch:
    """Stack prepared molecules into one disjoint graph with node-index offsets."""
    sizes = [p.n for p in prepared]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    edges = np.concatenate([p.edges + o for p, o in zip(prepared, offsets)])
    ec = np.concatenate([p.edge_class for p in prepared])
    batch = MolBatch(feats=np.concatenate([p.feats for p in prepared]),
                     extra=np.concatenate([p.extra for p in prepared]),
                     src=np.concatenate([edges[:, 0], edges[:, 1]]), dst=np.concatenate([edges[:, 1], edges[:, 0]]),
                     edge_class=np.concatenate([ec, ec]), sizes=sizes, offsets=offsets.tolist())
    if all(p.triplets is not None for p in prepared):
        batch.triplets = np.concatenate([p.triplets + o for p, o in zip(prepared, offsets)])
        batch.pairs = np.concatenate([p.pairs + o for p, o in zip(prepared, offsets)])
    return batch
