"""Scores of coarse-grained mappings against expert annotations (Li et al. 2020, sec. 4.2).

Two metrics: adjusted mutual information (AMI) between the bead labels of the atoms, and
precision / recall / F1 of the predicted cuts (bonds whose atoms lie in different beads).

Two protocols, both reported by the bench:

* :func:`evaluate_paper` follows the authors' evaluation code: for each molecule, a
  prediction is made for each bead count among its annotations; it is scored against
  every annotation and every relabelling of that annotation under the automorphisms of
  the molecular graph (element- and bond-type-preserving), and the best value of each
  metric is kept (separately per metric). Averaged over molecules.
* :func:`evaluate_strict`: one prediction per (molecule, bead count), scored against each
  raw annotation with that bead count, averaged over annotations.

A ``predict`` callable ``predict(graph, n_beads) -> labels [n]`` makes the protocols
independent of the method (DSGPM, spectral clustering, METIS, ...).
"""
from __future__ import annotations

import itertools

import numpy as np

METRICS = ("ami", "cut_precision", "cut_recall", "cut_f1")

__all__ = ["METRICS", "cut_mask", "cut_scores", "ami", "score_mapping", "automorphisms",
           "relabellings", "evaluate_paper", "evaluate_strict", "human_agreement", "selection_score"]


def cut_mask(labels, edges) -> np.ndarray:
    """Boolean [E]: True where bond (i, j) joins two different beads."""
    labels = np.asarray(labels)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return labels[edges[:, 0]] != labels[edges[:, 1]]


def cut_scores(pred, true, edges) -> tuple[float, float, float]:
    """Cut precision, recall and F1 of a predicted mapping against a reference.

    Parameters
    ----------
    pred, true : int [n]
        Bead labels.
    edges : int [E, 2]

    Returns
    -------
    (precision, recall, f1); an empty predicted (reference) cut set gives precision (recall)
    1 if the other set is empty too, else 0.
    """
    p, t = cut_mask(pred, edges), cut_mask(true, edges)
    tp = float(np.sum(p & t))
    prec = tp / p.sum() if p.sum() else float(not t.any())
    rec = tp / t.sum() if t.sum() else float(not p.any())
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return float(prec), float(rec), float(f1)


def ami(pred, true) -> float:
    """Adjusted mutual information (scikit-learn, arithmetic normalisation) between two labellings."""
    from cgsurrogate.core.errors import require_extra

    skm = require_extra("sklearn.metrics", "cgmap", "the AMI metric")
    return float(skm.adjusted_mutual_info_score(np.asarray(true), np.asarray(pred)))


def score_mapping(pred, true, edges) -> dict:
    """All four metrics of ``pred`` against ``true``: dict with keys :data:`METRICS`."""
    p, r, f = cut_scores(pred, true, edges)
    return {"ami": ami(pred, true), "cut_precision": p, "cut_recall": r, "cut_f1": f}


def automorphisms(graph, max_count: int = 1000) -> list[np.ndarray]:
    """Automorphisms of a molecular graph that keep elements and bond types.

    Parameters
    ----------
    graph : cgsurrogate.data.molgraph.MolGraph
    max_count : int
        Stop after this many (highly symmetric molecules have thousands).

    Returns
    -------
    list of int64 [n] permutations ``perm`` with ``perm[i]`` the image of atom i; the identity first.
    Cached on the graph.
    """
    key = ("automorphisms", max_count)
    if key not in graph._cache:
        graph._cache[key] = _automorphisms(graph, max_count)
    return graph._cache[key]


def _automorphisms(graph, max_count: int) -> list[np.ndarray]:
    from cgsurrogate.core.errors import require_extra

    require_extra("networkx", "cgmap", "graph automorphisms")
    from networkx.algorithms.isomorphism import GraphMatcher, categorical_edge_match, categorical_node_match

    g = graph.nx_graph()
    gm = GraphMatcher(g, g, node_match=categorical_node_match("element", None),
                      edge_match=categorical_edge_match("bondtype", None))
    n = graph.num_atoms
    out = [np.arange(n, dtype=np.int64)]
    for m in itertools.islice(gm.isomorphisms_iter(), max_count):
        perm = np.array([m[i] for i in range(n)], dtype=np.int64)
        if not np.array_equal(perm, out[0]):
            out.append(perm)
    return out


def _canonical(labels) -> tuple:
    seen: dict[int, int] = {}
    return tuple(seen.setdefault(int(x), len(seen)) for x in labels)


def relabellings(labels, perms) -> list[np.ndarray]:
    """Distinct partitions obtained by moving an annotation along graph automorphisms.

    ``out[perm[i]] = labels[i]`` for each permutation; duplicates (as partitions) are dropped.
    """
    labels = np.asarray(labels)
    seen, out = set(), []
    for perm in perms:
        moved = np.empty_like(labels)
        moved[perm] = labels
        key = _canonical(moved)
        if key not in seen:
            seen.add(key)
            out.append(np.array(key, dtype=np.int64))
    return out


def _mean(records: list[dict]) -> dict:
    out = {k: float(np.mean([r[k] for r in records])) for k in METRICS}
    out["count"] = len(records)
    return out


def evaluate_paper(annotations, predict, max_automorphisms: int = 1000, progress: bool = False) -> dict:
    """The authors' protocol: best score over annotations and automorphic relabellings, per molecule.

    Parameters
    ----------
    annotations : list of cgsurrogate.data.ham.HAMAnnotation
    predict : callable (graph, n_beads) -> int [n]
    max_automorphisms : int
    progress : bool

    Returns
    -------
    dict: mean over molecules of each metric in :data:`METRICS` (each maximised separately), and ``count``.
    """
    from tqdm import tqdm

    from cgsurrogate.data.ham import group_by_molecule

    records = []
    for smiles, idx in tqdm(group_by_molecule(annotations).items(), disable=not progress, leave=False):
        graph = annotations[idx[0]].graph
        perms = automorphisms(graph, max_automorphisms)
        best = {k: -np.inf for k in METRICS}
        preds: dict[int, np.ndarray] = {}
        for i in idx:
            a = annotations[i]
            if a.n_beads not in preds:
                preds[a.n_beads] = predict(graph, a.n_beads)
            for lab in relabellings(a.labels, perms):
                s = score_mapping(preds[a.n_beads], lab, graph.edges)
                for k in METRICS:
                    best[k] = max(best[k], s[k])
        records.append(best)
    return _mean(records)


def evaluate_strict(annotations, predict, progress: bool = False) -> dict:
    """Strict protocol: one prediction per (molecule, bead count), scored against each raw annotation.

    Returns
    -------
    dict: mean over annotations of each metric in :data:`METRICS`, and ``count``.
    """
    from tqdm import tqdm

    preds: dict[tuple, np.ndarray] = {}
    records = []
    for a in tqdm(annotations, disable=not progress, leave=False):
        key = (a.smiles, a.n_beads)
        if key not in preds:
            preds[key] = predict(a.graph, a.n_beads)
        records.append(score_mapping(preds[key], a.labels, a.graph.edges))
    return _mean(records)


def human_agreement(annotations, use_automorphisms: bool = False, max_automorphisms: int = 1000) -> dict:
    """Agreement between two experts' annotations of the same molecule with the same bead count.

    Every such pair is scored once (first annotation as prediction, second as reference);
    with ``use_automorphisms`` the best over automorphic relabellings of the reference is kept
    (per metric), as in :func:`evaluate_paper`.

    Returns
    -------
    dict: mean of each metric over pairs, ``count`` (pairs) and ``molecules``.
    """
    from cgsurrogate.data.ham import group_by_molecule

    records, mols = [], 0
    for smiles, idx in group_by_molecule(annotations).items():
        graph = annotations[idx[0]].graph
        perms = automorphisms(graph, max_automorphisms) if use_automorphisms else [np.arange(graph.num_atoms)]
        found = False
        for i, j in itertools.combinations(idx, 2):
            a, b = annotations[i], annotations[j]
            if a.n_beads != b.n_beads:
                continue
            found = True
            best = {k: -np.inf for k in METRICS}
            for lab in relabellings(b.labels, perms):
                s = score_mapping(a.labels, lab, graph.edges)
                for k in METRICS:
                    best[k] = max(best[k], s[k])
            records.append(best)
        mols += found
    out = _mean(records) if records else {k: float("nan") for k in METRICS} | {"count": 0}
    out["molecules"] = mols
    return out



def selection_score(embedder, annotations) -> float:
    """Model-selection score: mean of AMI and cut F1 under the paper's protocol on ``annotations``.

    Parameters
    ----------
    embedder : cgsurrogate.surrogate.cgmap.inference.Embedder (or a torch DSGPM)
    annotations : list of HAMAnnotation  (validation molecules of a training fold)
    """
    from cgsurrogate.surrogate.cgmap.inference import predict_mapping

    r = evaluate_paper(annotations, lambda g, k: predict_mapping(embedder, g, k))
    return 0.5 * (r["ami"] + r["cut_f1"])
