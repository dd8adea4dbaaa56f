"""Graphs for prolongation hierarchies: grid graphs, generic weighted graphs, descriptors,
and the graph Laplacian with the GPCN paper's sign.

Scott & Mjolsness 2021, sec. 2.2: ``L(G) = A(G) - diag(A(G) 1)`` (negative semi-definite;
some authors use the opposite sign). Tube graphs come from :class:`cgsurrogate.simulate.tube.Tube`;
this module adds :class:`Grid` (an ``n x k`` lattice without the tube's closing edges,
sec. 5.3) and :class:`WeightedGraph` (any graph given by its edge list).

Every graph here can be turned into a plain-python *descriptor* (:func:`graph_to_dict`)
and rebuilt from it (:func:`graph_from_dict`), so hierarchies can be stored in
checkpoints that load with ``torch.load(weights_only=True)``.

Examples
--------
>>> from cgsurrogate.simulate.tube import Tube
>>> L = laplacian(Tube(4, 3, 0).adjacency())
>>> L.shape
torch.Size([12, 12])
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.tube import Tube

__all__ = [
    "Grid",
    "WeightedGraph",
    "Tube",
    "laplacian",
    "laplacian_csr",
    "dense_laplacian",
    "adjacency_of",
    "graph_to_dict",
    "graph_from_dict",
    "graph_key",
    "parse_graph",
]


@dataclass(frozen=True)
class Grid:
    """Rectangular lattice graph with ``n`` rows of ``k`` nodes (paper sec. 5.3, ``Grid(n, k)``).

    Node ``j`` of row ``r`` has index ``r * k + j``; edges join horizontal and vertical
    neighbours (no wrap-around).

    Parameters
    ----------
    n, k : int
        Number of rows and nodes per row (both >= 1).
    """

    n: int
    k: int
    edges: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        n, k = int(self.n), int(self.k)
        if n < 1 or k < 1:
            raise CGSurrogateError(f"Grid(n={n}, k={k}): need n >= 1 and k >= 1")
        idx = np.arange(n * k).reshape(n, k)
        lat = np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1)
        lon = np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1)
        object.__setattr__(self, "edges", np.concatenate([lat, lon]).astype(np.int64))

    @property
    def num_nodes(self) -> int:
        """Number of nodes ``n * k``."""
        return self.n * self.k

    @property
    def name(self) -> str:
        """Label such as ``Grid(24,13)``."""
        return f"Grid({self.n},{self.k})"

    @property
    def edge_weights(self) -> np.ndarray:
        """Edge weights ``[E]`` (all 1)."""
        return np.ones(len(self.edges))

    def adjacency(self):
        """Symmetric adjacency matrix as ``scipy.sparse.csr_matrix`` [N, N]."""
        return _adjacency_from_edges(self.num_nodes, self.edges, self.edge_weights)


@dataclass(frozen=True)
class WeightedGraph:
    """Undirected weighted graph given by an edge list.

    Parameters
    ----------
    num_nodes : int
    edges : array [E, 2] of int
        Node pairs (each undirected edge once; self-loops are not allowed).
    weights : array [E] of float, optional
        Positive edge weights (default 1).
    label : str, optional
        Name shown in tables.
    """

    num_nodes: int
    edges: np.ndarray = field(compare=False)
    weights: np.ndarray | None = field(default=None, compare=False)
    label: str = "graph"

    def __post_init__(self):
        e = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        w = np.ones(len(e)) if self.weights is None else np.asarray(self.weights, dtype=np.float64).ravel()
        if len(w) != len(e):
            raise CGSurrogateError(f"WeightedGraph: {len(e)} edges but {len(w)} weights")
        if len(e) and (e.min() < 0 or e.max() >= self.num_nodes):
            raise CGSurrogateError(f"WeightedGraph: edge index outside 0..{self.num_nodes - 1}")
        if np.any(e[:, 0] == e[:, 1]):
            raise CGSurrogateError("WeightedGraph: self-loops are not allowed")
        if np.any(~np.isfinite(w)) or np.any(w <= 0):
            raise CGSurrogateError("WeightedGraph: edge weights must be finite and positive")
        object.__setattr__(self, "edges", e)
        object.__setattr__(self, "weights", w)

    @property
    def name(self) -> str:
        return self.label

    @property
    def edge_weights(self) -> np.ndarray:
        return self.weights

    def adjacency(self):
        """Symmetric weighted adjacency matrix as ``scipy.sparse.csr_matrix`` [N, N]."""
        return _adjacency_from_edges(self.num_nodes, self.edges, self.weights)

    @classmethod
    def from_adjacency(cls, adjacency, label: str = "graph") -> "WeightedGraph":
        """Build from a symmetric (dense or scipy sparse) adjacency matrix [N, N]."""
        import scipy.sparse as sp

        a = sp.coo_matrix(adjacency)
        if a.shape[0] != a.shape[1]:
            raise CGSurrogateError(f"adjacency must be square, got shape {a.shape}")
        d = abs(a - a.T)
        if d.nnz and d.max() > 1e-12:
            raise CGSurrogateError("adjacency must be symmetric")
        m = a.row < a.col
        return cls(a.shape[0], np.stack([a.row[m], a.col[m]], 1), a.data[m], label)


def _adjacency_from_edges(n: int, edges: np.ndarray, w: np.ndarray):
    import scipy.sparse as sp

    i, j = np.asarray(edges, dtype=np.int64).T
    a = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
    return a.tocsr()


def adjacency_of(graph):
    """Adjacency matrix of a graph as ``scipy.sparse.csr_matrix`` [N, N] (float64).

    Parameters
    ----------
    graph : Tube, Grid, WeightedGraph, scipy sparse matrix, ndarray or torch tensor [N, N]
    """
    import scipy.sparse as sp

    if hasattr(graph, "adjacency"):
        return sp.csr_matrix(graph.adjacency(), dtype=np.float64)
    if isinstance(graph, torch.Tensor):
        graph = graph.to_dense().detach().cpu().numpy() if graph.is_sparse else graph.detach().cpu().numpy()
    a = sp.csr_matrix(graph, dtype=np.float64)
    if a.shape[0] != a.shape[1]:
        raise CGSurrogateError(f"adjacency must be square, got shape {a.shape}")
    return a


def laplacian_csr(graph):
    """The graph Laplacian ``L = A - diag(A 1)`` (paper sign, eigenvalues <= 0) as
    ``scipy.sparse.csr_matrix`` float64 [N, N]: the project's one Laplacian builder.

    Parameters
    ----------
    graph : Tube, Grid, WeightedGraph, or an adjacency matrix [N, N] (scipy sparse, ndarray,
        torch tensor); anything :func:`adjacency_of` accepts.
    """
    import scipy.sparse as sp

    a = adjacency_of(graph)
    return (a - sp.diags(np.asarray(a.sum(1)).ravel())).tocsr()


def dense_laplacian(graph) -> np.ndarray:
    """:func:`laplacian_csr` as a dense float64 ndarray [N, N]."""
    return laplacian_csr(graph).toarray()


def laplacian(adjacency) -> torch.Tensor:
    """:func:`laplacian_csr` as a coalesced sparse COO torch tensor, float64 [N, N].

    Parameters
    ----------
    adjacency : scipy sparse matrix, ndarray, torch tensor [N, N], or a graph object
        (:class:`~cgsurrogate.simulate.tube.Tube`, :class:`Grid`, :class:`WeightedGraph`).
    """
    lap = laplacian_csr(adjacency).tocoo()
    idx = torch.from_numpy(np.stack([lap.row, lap.col]).astype(np.int64))
    val = torch.from_numpy(lap.data.astype(np.float64))
    return torch.sparse_coo_tensor(idx, val, lap.shape, dtype=torch.float64, check_invariants=True).coalesce()


def graph_to_dict(graph) -> dict:
    """Plain-python descriptor of a graph (safe for ``torch.load(weights_only=True)``).

    Returns
    -------
    dict
        ``{"kind": "tube", "n", "k", "p", "seam_weight"}``, ``{"kind": "grid", "n", "k"}``
        or ``{"kind": "weighted", "num_nodes", "edges" (list of pairs), "weights", "label"}``.
    """
    if isinstance(graph, Tube):
        return {"kind": "tube", "n": int(graph.n), "k": int(graph.k), "p": int(graph.p),
                "seam_weight": float(graph.seam_weight)}
    if isinstance(graph, Grid):
        return {"kind": "grid", "n": int(graph.n), "k": int(graph.k)}
    if isinstance(graph, WeightedGraph):
        return {"kind": "weighted", "num_nodes": int(graph.num_nodes), "edges": graph.edges.tolist(),
                "weights": graph.weights.tolist(), "label": str(graph.label)}
    raise CGSurrogateError(f"cannot describe graph of type {type(graph).__name__}; use Tube, Grid or WeightedGraph")


def graph_from_dict(d: dict):
    """Rebuild a graph from :func:`graph_to_dict` output; raises CGSurrogateError on a malformed descriptor."""
    if not isinstance(d, dict) or "kind" not in d:
        raise CGSurrogateError(f"malformed graph descriptor: {d!r:.80}")
    try:
        kind = d["kind"]
        if kind == "tube":
            return Tube(int(d["n"]), int(d["k"]), int(d["p"]), float(d.get("seam_weight", 1.0)))
        if kind == "grid":
            return Grid(int(d["n"]), int(d["k"]))
        if kind == "weighted":
            return WeightedGraph(int(d["num_nodes"]), np.asarray(d["edges"], dtype=np.int64).reshape(-1, 2),
                                 np.asarray(d["weights"], dtype=np.float64), str(d.get("label", "graph")))
    except (KeyError, TypeError) as exc:
        raise CGSurrogateError(f"malformed {d.get('kind')} graph descriptor: missing or bad field {exc}") from None
    raise CGSurrogateError(f"unknown graph kind {kind!r} (expected tube, grid or weighted)")


def graph_key(graph) -> str:
    """Content hash (hex, 16 chars) of a graph's node count, edges and weights; equal graphs share a key."""
    a = adjacency_of(graph).tocoo()
    order = np.lexsort((a.col, a.row))
    h = hashlib.sha256()
    h.update(np.int64(a.shape[0]).tobytes())
    h.update(np.ascontiguousarray(a.row[order], dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(a.col[order], dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(a.data[order], dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


_TUBE_RE = re.compile(r"^tube\((\d+),(\d+),(\d+)(?:,w?([0-9.]+))?\)$")
_GRID_RE = re.compile(r"^grid\((\d+),(\d+)\)$")
_PATH_RE = re.compile(r"^(path|cycle)\((\d+)\)$")


def parse_graph(text: str):
    """Parse a graph spec: ``Tube(n,k,p)``, ``Tube(n,k,p,w2)`` (seam weight 2), ``Grid(n,k)``,
    ``Path(n)`` or ``Cycle(n)`` (case-insensitive, spaces ignored).

    Raises
    ------
    CGSurrogateError
        For anything else, with the accepted forms in the message.
    """
    s = str(text).replace(" ", "").lower()
    m = _TUBE_RE.match(s)
    if m:
        w = float(m.group(4)) if m.group(4) else 1.0
        return Tube(int(m.group(1)), int(m.group(2)), int(m.group(3)), w)
    m = _GRID_RE.match(s)
    if m:
        return Grid(int(m.group(1)), int(m.group(2)))
    m = _PATH_RE.match(s)
    if m:
        n = int(m.group(2))
        if n < 2:
            raise CGSurrogateError(f"{text}: need at least 2 nodes")
        e = np.stack([np.arange(n - 1), np.arange(1, n)], 1)
        if m.group(1) == "cycle":
            if n < 3:
                raise CGSurrogateError(f"{text}: a cycle needs at least 3 nodes")
            e = np.concatenate([e, [[n - 1, 0]]])
        return WeightedGraph(n, e, None, f"{m.group(1).capitalize()}({n})")
    raise CGSurrogateError(f"cannot parse graph {text!r}: expected Tube(n,k,p), Tube(n,k,p,w2), Grid(n,k), Path(n) or Cycle(n)")
