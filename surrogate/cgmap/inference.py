"""DSGPM inference with numpy: embeddings, affinities and the predicted mapping.

The trained network (:class:`cgsurrogate.surrogate.cgmap.network.DSGPM`) is small and a
molecule is a few dozen atoms, so inference runs the same arithmetic in numpy from the
checkpoint's weight arrays: ``cgmap`` then never imports torch (about 3 s of a cold call on
the project's machines). The tests compare it with the torch module.

An :class:`Embedder` holds one or more members (an ensemble); the affinity of an ensemble
is the mean of its members' Gaussian affinities.
"""
from __future__ import annotations

import numpy as np

from cgsurrogate.data.molgraph import MolGraph
from cgsurrogate.surrogate.cgmap.features import bond_class_table, collate, prepare_graph
from cgsurrogate.surrogate.cgmap.partition import check_beads, enforce_connectivity, spectral_partition

__all__ = ["Embedder", "affinity_matrix", "adjacency_affinity", "model_affinity", "predict_mapping", "embed_graph"]


def _one_blas_thread():
    """Limit BLAS to one thread: these matrices are small, and on a loaded machine a threaded
    BLAS made one molecule's embedding 60x slower (0.46 s instead of 0.007 s, load ~8 on 2 cores).
    Nothing to do when the process already runs BLAS single-threaded (``cgmap`` sets it)."""
    import contextlib
    import os

    if os.environ.get("OPENBLAS_NUM_THREADS") == "1":
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _relu(x):
    return np.maximum(x, 0.0)


class Embedder:
    """Numpy evaluation of trained DSGPM members.

    Parameters
    ----------
    config : dict
        :class:`DSGPM` keyword arguments (``hidden``, ``out_dim``, ``steps``, ``edge_hidden``, ``feature_set``).
    members : list of dict
        One ``{parameter name: float array}`` per member (the torch ``state_dict`` as numpy).
    info : dict, optional
        Training metadata carried by the checkpoint.
    """

    def __init__(self, config: dict, members: list, info: dict | None = None):
        self.config = dict(config)
        self.members = [{k: np.asarray(v, dtype=np.float64) for k, v in m.items()} for m in members]
        self.info = info or {}
        self.feature_set = self.config.get("feature_set", "paper")
        self._table = bond_class_table(self.feature_set).astype(np.float64)

    def _embed_one(self, p: dict, feats, extra, src, dst, ecls) -> np.ndarray:
        lin = lambda x, name: x @ p[name + ".weight"].T + p[name + ".bias"]  # noqa: E731
        d = self.config["hidden"] + 2
        x = np.concatenate([_relu(lin(feats, "input_fc")), extra], axis=1)
        h = x
        if "_w_cat" not in p:  # edge network on every bond class, [K, d, d] -> [d, K d]
            w = lin(_relu(lin(self._table, "edge_net.0")), "edge_net.2").reshape(-1, d, d)
            p["_w_cat"] = np.ascontiguousarray(w.transpose(1, 0, 2).reshape(d, -1))
        w_cat = p["_w_cat"]
        n = len(x)
        for _ in range(self.config["steps"]):
            xw = (x @ w_cat).reshape(n, -1, d)
            agg = np.zeros_like(x)
            np.add.at(agg, dst, xw[src, ecls])
            m = _relu(lin(x, "root") + agg)
            gi = m @ p["gru.weight_ih"].T + p["gru.bias_ih"]
            gh = h @ p["gru.weight_hh"].T + p["gru.bias_hh"]
            r = _sigmoid(gi[:, :d] + gh[:, :d])
            z = _sigmoid(gi[:, d:2 * d] + gh[:, d:2 * d])
            cand = np.tanh(gi[:, 2 * d:] + r * gh[:, 2 * d:])
            h = (1.0 - z) * cand + z * h
            x = h
        out = np.concatenate([lin(_relu(lin(x, "output_fc.0")), "output_fc.2"), feats, extra], axis=1)
        assert out.shape[0] == n
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed(self, graph: MolGraph) -> list[np.ndarray]:
        """Embeddings of every member, list of float64 [n, q]."""
        b = collate([prepare_graph(graph, feature_set=self.feature_set)])
        args = (b.feats.astype(np.float64), b.extra.astype(np.float64), b.src, b.dst, b.edge_class)
        with _one_blas_thread():
            return [self._embed_one(p, *args) for p in self.members]

    def affinity(self, graph: MolGraph, sigma: float = 1.0) -> np.ndarray:
        """Mean Gaussian affinity of the members on bonded pairs, float64 [n, n]."""
        return np.mean([affinity_matrix(e, graph.edges, graph.num_atoms, sigma) for e in self.embed(graph)], axis=0)


def embed_graph(model, graph: MolGraph) -> np.ndarray:
    """Atom embeddings of one molecule, float64 [n, q]: an :class:`Embedder`'s first member or a torch DSGPM."""
    if isinstance(model, Embedder):
        return model.embed(graph)[0]
    import torch

    model.eval()
    with torch.no_grad():
        b = collate([prepare_graph(graph, feature_set=model.config["feature_set"])]).torch()
        return model(b).double().numpy()


def affinity_matrix(emb: np.ndarray, edges: np.ndarray, n: int, sigma: float = 1.0) -> np.ndarray:
    """Gaussian affinity on bonded pairs (eq. 5): A_ij = exp(-|x_i - x_j|^2 / (2 sigma^2)) E_ij.

    Parameters
    ----------
    emb : float [n, q]; edges : int [E, 2]; n : int; sigma : float

    Returns
    -------
    float64 [n, n], symmetric, zero off the bonds.
    """
    emb = np.asarray(emb, dtype=np.float64)
    a = np.zeros((n, n))
    if len(edges):
        w = np.exp(-((emb[edges[:, 0]] - emb[edges[:, 1]]) ** 2).sum(1) / (2.0 * sigma ** 2))
        a[edges[:, 0], edges[:, 1]] = w
        a[edges[:, 1], edges[:, 0]] = w
    return a


def adjacency_affinity(graph: MolGraph) -> np.ndarray:
    """The plain 0/1 adjacency used as affinity by the spectral-clustering baseline, [n, n]."""
    return graph.adjacency()


def model_affinity(model, graph: MolGraph) -> np.ndarray:
    """Affinity [n, n] of an :class:`Embedder` (ensemble mean), a torch DSGPM, or None (plain adjacency)."""
    if model is None:
        return adjacency_affinity(graph)
    if isinstance(model, Embedder):
        return model.affinity(graph)
    return affinity_matrix(embed_graph(model, graph), graph.edges, graph.num_atoms)


def predict_mapping(model, graph: MolGraph, n_beads: int, seed: int = 0, exact: bool = True) -> np.ndarray:
    """CG mapping of a molecule into ``n_beads`` connected beads.

    Parameters
    ----------
    model : Embedder, torch DSGPM, or None (spectral clustering of the plain adjacency)
    graph : MolGraph
    n_beads : int
    seed : int  k-means seed
    exact : bool
        True: exactly ``n_beads`` connected beads; False: the paper's post-processing only.

    Returns
    -------
    int64 [n] bead index of each atom, beads numbered by their first atom.
    """
    check_beads(n_beads, graph.num_atoms)
    aff = model_affinity(model, graph)
    labels = spectral_partition(aff, n_beads, seed=seed)
    return enforce_connectivity(labels, graph.edges, n_beads if exact else None, affinity=aff)
