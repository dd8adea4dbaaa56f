"""Partitioning a weighted bond graph into beads: spectral clustering, METIS, connected beads.

Spectral clustering is written here with numpy (normalised-Laplacian embedding, then
k-means++ / Lloyd with several restarts: the algorithm of scikit-learn's
``spectral_clustering`` with ``assign_labels="kmeans"``), so mapping a molecule does not
import scikit-learn or SciPy (about 3 s of a cold ``cgmap`` call). Graphs above
:data:`DENSE_LIMIT` atoms use SciPy's sparse eigensolver.
"""
from __future__ import annotations

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError

__all__ = ["check_beads", "spectral_embedding", "kmeans", "spectral_partition", "metis_partition",
           "enforce_connectivity", "DENSE_LIMIT"]

#: Largest atom count whose Laplacian eigenvectors are computed densely (numpy ``eigh``).
DENSE_LIMIT = 4000


def check_beads(n_beads, n: int) -> None:
    """Raise :class:`CGSurrogateError` unless ``1 <= n_beads <= n`` (an integer)."""
    if isinstance(n_beads, bool) or not isinstance(n_beads, (int, np.integer)) or n_beads < 1:
        raise CGSurrogateError(f"number of beads must be a positive integer, got {n_beads!r}")
    if n_beads > n:
        raise CGSurrogateError(f"cannot map {n} atoms to {n_beads} beads: the bead count exceeds the atom count")


def spectral_embedding(affinity: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` lowest eigenvectors of the normalised Laplacian, divided by sqrt(degree).

    Parameters
    ----------
    affinity : float [n, n], symmetric, non-negative
    k : int

    Returns
    -------
    float64 [n, k]; each column's sign fixed so its largest-magnitude entry is positive.
    """
    a = np.asarray(affinity, dtype=np.float64)
    n = a.shape[0]
    deg = a.sum(1)
    dinv = 1.0 / np.sqrt(np.maximum(deg, 1e-300))
    norm_adj = a * dinv[:, None] * dinv[None, :]
    if n <= DENSE_LIMIT:
        _, vecs = np.linalg.eigh(norm_adj)
        u = vecs[:, ::-1][:, :k]                       # largest of D^-1/2 A D^-1/2 = lowest of L_sym
    else:
        from scipy.sparse import csr_matrix, identity
        from scipy.sparse.linalg import eigsh

        m = csr_matrix(norm_adj) + identity(n)
        _, vecs = eigsh(m, k=k, which="LA", v0=np.full(n, 1.0 / np.sqrt(n)))
        u = vecs[:, ::-1]
    u = u * dinv[:, None]
    big = np.abs(u).argmax(0)
    u = u * np.sign(u[big, np.arange(u.shape[1])])[None, :]
    return u


def kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 10, max_iter: int = 100) -> np.ndarray:
    """k-means (k-means++ seeding, Lloyd iterations), best of ``n_init`` restarts by inertia.

    Parameters
    ----------
    x : float [n, f]
    k : int
    seed : int

    Returns
    -------
    int64 [n] cluster labels.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    sq = (x ** 2).sum(1)
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        idx = [int(rng.integers(n))]
        d2 = np.maximum(sq - 2 * x @ x[idx[0]] + sq[idx[0]], 0.0)
        for _ in range(1, k):  # k-means++: next centre with probability ~ squared distance
            total = d2.sum()
            nxt = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
            idx.append(nxt)
            d2 = np.minimum(d2, np.maximum(sq - 2 * x @ x[nxt] + sq[nxt], 0.0))
        c = x[idx].copy()
        labels = np.full(n, -1, dtype=np.int64)
        for _ in range(max_iter):
            dist = sq[:, None] - 2 * x @ c.T + (c ** 2).sum(1)[None, :]
            new = dist.argmin(1)
            if np.array_equal(new, labels):
                break
            labels = new
            counts = np.bincount(labels, minlength=k)
            sums = np.zeros_like(c)
            np.add.at(sums, labels, x)
            filled = counts > 0
            c[filled] = sums[filled] / counts[filled, None]
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best_inertia - 1e-12:
            best, best_inertia = labels.copy(), inertia
    return best


def spectral_partition(affinity: np.ndarray, n_beads: int, seed: int = 0) -> np.ndarray:
    """Spectral clustering of a precomputed affinity into ``n_beads`` clusters.

    Parameters
    ----------
    affinity : float [n, n]
    n_beads : int
    seed : int
        Seed of the k-means restarts (10 restarts; 2 when atoms x beads > 20,000).

    Returns
    -------
    int64 [n] cluster labels (not yet connected; see :func:`enforce_connectivity`).
    """
    n = affinity.shape[0]
    check_beads(n_beads, n)
    if n_beads == 1:
        return np.zeros(n, dtype=np.int64)
    if n_beads == n:
        return np.arange(n, dtype=np.int64)
    aff = np.asarray(affinity, dtype=np.float64) + np.eye(n) * 1e-9  # isolated atoms keep a nonzero degree
    n_init = 10 if n * n_beads <= 20000 else 2  # large structures: two restarts keep k-means to seconds
    return kmeans(spectral_embedding(aff, n_beads), n_beads, seed=seed, n_init=n_init)


def metis_partition(graph, n_beads: int, seed: int = 0) -> np.ndarray:
    """METIS k-way partition (``pymetis``) of the bond graph into ``n_beads`` parts, int64 [n]."""
    from cgsurrogate.core.errors import require_extra

    pymetis = require_extra("pymetis", "cgmap", "the METIS baseline")
    n = graph.num_atoms
    check_beads(n_beads, n)
    if n_beads == 1:
        return np.zeros(n, dtype=np.int64)
    if n_beads >= n:
        return np.arange(n, dtype=np.int64)
    adj = [[] for _ in range(n)]
    for i, j in graph.edges.tolist():
        adj[i].append(j)
        adj[j].append(i)
    if hasattr(pymetis, "Options"):
        _, parts = pymetis.part_graph(n_beads, adjacency=adj, options=pymetis.Options(seed=seed))
    else:
        _, parts = pymetis.part_graph(n_beads, adjacency=adj)
    return np.asarray(parts, dtype=np.int64)


def _components(nodes: list[int], adj: list[set]) -> list[list[int]]:
    nodes_set = set(nodes)
    seen: set[int] = set()
    comps = []
    for s in nodes:
        if s in seen:
            continue
        stack, comp = [s], []
        seen.add(s)
        while stack:
            u = stack.pop()
            comp.append(u)
            for v in adj[u]:
                if v in nodes_set and v not in seen:
                    seen.add(v)
                    stack.append(v)
        comps.append(sorted(comp))
    return comps


def _merge_smallest(beads, adj, w, n):
    owner = np.empty(n, dtype=np.int64)
    for b, members in enumerate(beads):
        owner[members] = b
    for b in sorted(range(len(beads)), key=lambda c: (len(beads[c]), c)):
        score: dict[int, float] = {}
        for u in beads[b]:
            for v in adj[u]:
                if owner[v] != b:
                    score[int(owner[v])] = score.get(int(owner[v]), 0.0) + float(w(u, v))
        if score:
            target = max(score, key=lambda c: (score[c], -c))
            beads[target] = sorted(beads[target] + beads[b])
            del beads[b]
            return


def _split_largest(beads, adj, w, n):
    b = max(range(len(beads)), key=lambda c: (len(beads[c]), -c))
    members = beads[b]
    ms = set(members)
    inner = sorted((float(w(u, v)), u, v) for u in members for v in adj[u] if v in ms and u < v)
    sub = [set(v for v in adj[u] if v in ms) if u in ms else set() for u in range(n)]
    for _, u, v in inner:
        sub[u].discard(v)
        sub[v].discard(u)
        comps = _components(members, sub)
        if len(comps) == 2:
            beads[b:b + 1] = comps
            return


def enforce_connectivity(labels, edges: np.ndarray, n_beads: int | None = None,
                         affinity: np.ndarray | None = None) -> np.ndarray:
    """Make every bead a connected set of atoms (paper sec. 3.5), optionally with exactly ``n_beads`` beads.

    First each cluster that falls into several connected pieces is split into one bead per
    piece (the paper's post-processing). If ``n_beads`` is given, the count is then brought
    back to it: while there are too many beads, the smallest bead is merged into the bonded
    neighbour bead with the largest summed affinity across their bonds (bond count when no
    affinity is given); while there are too few, the largest bead is split by removing its
    weakest internal bonds until it falls into two connected pieces.

    Parameters
    ----------
    labels : int [n]
    edges : int [E, 2]
    n_beads : int, optional
    affinity : float [n, n], optional

    Returns
    -------
    int64 [n] bead labels 0..k-1 numbered in order of each bead's first atom (the order
    of HAM's ``cgnodes``), every bead connected.

    Raises
    ------
    CGSurrogateError
        When ``n_beads`` connected beads are impossible (more fragments than beads, or more
        beads than atoms).
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    adj: list[set] = [set() for _ in range(n)]
    for i, j in edges.tolist():
        adj[i].add(j)
        adj[j].add(i)
    w = (lambda i, j: affinity[i, j]) if affinity is not None else (lambda i, j: 1.0)
    beads: list[list[int]] = []
    for c in np.unique(labels):
        beads.extend(_components(np.flatnonzero(labels == c).tolist(), adj))
    if n_beads is not None:
        check_beads(n_beads, n)
        n_frag = len(_components(list(range(n)), adj))
        if n_frag > n_beads:
            raise CGSurrogateError(f"the molecule has {n_frag} disconnected fragments: it cannot be mapped "
                                   f"to {n_beads} connected beads")
        while len(beads) > n_beads:
            _merge_smallest(beads, adj, w, n)
        while len(beads) < n_beads:
            _split_largest(beads, adj, w, n)
    out = np.empty(n, dtype=np.int64)
    beads.sort(key=lambda m: m[0])
    for k, members in enumerate(beads):
        out[members] = k
    return out
