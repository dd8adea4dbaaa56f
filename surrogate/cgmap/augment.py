"""Training-target augmentation over the automorphisms of a featurised molecular graph.

DSGPM is permutation-equivariant: two atoms exchanged by an automorphism of its *input*
(atom feature rows, degree, cycle indicator and bond classes all preserved) get the same
embedding, so an annotation moved along such an automorphism is an equally valid target. An
expert who grouped atom 1 with atom 2 of a symmetric molecule could as well have grouped its
image; training on one arbitrary choice asks the network for an asymmetric answer it cannot
give. :func:`prepared_variants` returns the annotation and its distinct automorphic
relabellings, prepared for training; the trainer draws one of them per annotation per epoch
(:class:`cgsurrogate.surrogate.cgmap.training.DSGPMTask`).

These automorphisms are those of the features the network sees (RDKit chemistry, see
:mod:`cgsurrogate.surrogate.cgmap.features`), not those of the HAM file's bond orders that
the paper's evaluation protocol uses (:func:`cgsurrogate.surrogate.cgmap.metrics.automorphisms`).
"""
from __future__ import annotations

import itertools

import numpy as np

from cgsurrogate.surrogate.cgmap.features import atom_features, bond_classes, prepare_graph

__all__ = ["feature_automorphisms", "prepared_variants"]


def feature_automorphisms(graph, feature_set: str, max_count: int = 1000) -> list[np.ndarray]:
    """Automorphisms of a molecular graph that preserve DSGPM's inputs.

    Parameters
    ----------
    graph : cgsurrogate.data.molgraph.MolGraph
    feature_set : {"paper", "rich"}
    max_count : int  stop after this many isomorphisms (highly symmetric molecules have thousands)

    Returns
    -------
    list of int64 [n] permutations, ``perm[i]`` the image of atom i; the identity first.
    Cached on the graph.
    """
    key = ("feature_automorphisms", feature_set, max_count)
    if key not in graph._cache:
        graph._cache[key] = _feature_automorphisms(graph, feature_set, max_count)
    return graph._cache[key]


def _feature_automorphisms(graph, feature_set: str, max_count: int) -> list[np.ndarray]:
    from cgsurrogate.core.errors import require_extra

    nx = require_extra("networkx", "cgmap", "graph automorphisms")
    from networkx.algorithms.isomorphism import GraphMatcher, categorical_edge_match, categorical_node_match

    feats, extra = atom_features(graph, feature_set)
    rows = np.concatenate([feats, extra], axis=1)
    _, node_class = np.unique(rows, axis=0, return_inverse=True)
    n = graph.num_atoms
    g = nx.Graph()
    g.add_nodes_from((i, {"c": int(c)}) for i, c in enumerate(np.ravel(node_class)))
    for (i, j), c in zip(graph.edges.tolist(), bond_classes(graph, feature_set).tolist()):
        g.add_edge(i, j, c=int(c))
    gm = GraphMatcher(g, g, node_match=categorical_node_match("c", None), edge_match=categorical_edge_match("c", None))
    ident = np.arange(n, dtype=np.int64)
    out = [ident]
    for m in itertools.islice(gm.isomorphisms_iter(), max_count):
        perm = np.array([m[i] for i in range(n)], dtype=np.int64)
        if not np.array_equal(perm, ident):
            out.append(perm)
    return out


def prepared_variants(graph, labels, feature_set: str, max_variants: int = 64, max_automorphisms: int = 1000):
    """The annotation and its distinct relabellings under :func:`feature_automorphisms`, prepared.

    Parameters
    ----------
    graph : MolGraph
    labels : int [n]  bead of each atom
    feature_set : {"paper", "rich"}
    max_variants : int  keep at most this many distinct partitions (the annotation itself first)

    Returns
    -------
    list of :class:`cgsurrogate.surrogate.cgmap.features.PreparedGraph`, the first one the
    annotation as given.
    """
    from cgsurrogate.surrogate.cgmap.metrics import relabellings

    perms = feature_automorphisms(graph, feature_set, max_automorphisms)
    parts = relabellings(np.asarray(labels, dtype=np.int64), perms)[:max_variants]
    first = prepare_graph(graph, labels, feature_set=feature_set)
    out = [first]
    for lab in parts[1:]:
        pg = prepare_graph(graph, lab, feature_set=feature_set)
        out.append(pg)
    return out
