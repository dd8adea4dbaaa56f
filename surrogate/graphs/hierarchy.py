"""Graph hierarchies for GPCN models: graphs (finest first), Laplacians and prolongation matrices.

Scott & Mjolsness 2021, sec. 2.4 and 3.3: a hierarchy ``G_1 (finest), G_2, ..., G_k`` with
``P_{i,i+1} = argmin_{P^T P = I} || P L(G_{i+1}) - L(G_i) P ||_F`` (alpha = 1, the
eigenvector/assignment construction of :mod:`cgsurrogate.surrogate.graphs.lgdd`, optionally polished on the
Stiefel manifold) and the composed ``P_{1,i} = P_{1,2} P_{2,3} ... P_{i-1,i}``.

The microtubule hierarchy of the paper is ``Tube(48,13,3) -> Tube(24,13,1) -> Tube(24,3,0)``
(624 -> 312 -> 72 nodes). Hierarchies are cached on disk, keyed by the graphs' content, in
``cache_dir``, else ``$CGS_CACHE_DIR``, else ``~/.cache/cgsurrogate``; a second call loads
the file instead of recomputing.

On-disk format: a checkpoint of kind ``"hierarchy"`` (:mod:`cgsurrogate.core.checkpoint_io`:
atomic write, ``weights_only`` read, one-line errors) whose payload is
:meth:`Hierarchy.state_dict`: ``format`` = "cgsurrogate.hierarchy", ``format_version``,
``graphs`` (list of plain descriptors, see :func:`cgsurrogate.surrogate.graphs.weighted_graph.graph_to_dict`), ``sizes``,
``P`` (list of float64 tensors [n_i, n_{i+1}]), ``laplacian_indices`` / ``laplacian_values``
(COO parts of each Laplacian), ``distances`` (objective ``||P L_{i+1} - L_i P||_F`` of each P),
``alpha``, ``refined``.

Examples
--------
>>> h = microtubule_hierarchy()          # doctest: +SKIP
>>> h.sizes, h.P[0].shape, h.prolongation(2).shape
([624, 312, 72], torch.Size([624, 312]), torch.Size([624, 72]))
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from cgsurrogate.core.checkpoint_io import read_checkpoint, write_checkpoint
from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.tube import Tube
from cgsurrogate.surrogate.graphs.weighted_graph import graph_from_dict, graph_key, graph_to_dict, laplacian

__all__ = ["Hierarchy", "build_hierarchy", "microtubule_hierarchy", "search_coarse_tubes", "hierarchy_report",
           "MICROTUBULE_GRAPHS", "default_cache_dir"]

FORMAT = "cgsurrogate.hierarchy"
FORMAT_VERSION = 1
#: The paper's microtubule hierarchy, finest first (sec. 3.3).
MICROTUBULE_GRAPHS = (Tube(48, 13, 3), Tube(24, 13, 1), Tube(24, 3, 0))


def default_cache_dir() -> Path:
    """``$CGS_CACHE_DIR`` if set, else ``~/.cache/cgsurrogate``."""
    env = os.environ.get("CGS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "cgsurrogate"


class Hierarchy:
    """A graph hierarchy with its Laplacians and prolongation matrices.

    Parameters
    ----------
    graphs : list of graph objects (Tube, Grid, WeightedGraph), finest first
    P : list of float64 tensors or arrays, ``P[i]`` of shape [n_i, n_{i+1}] with orthonormal columns
    distances : list of float, optional  objective of each ``P[i]`` (kJ-free, graph units)
    alpha : float  the alpha the matrices were computed at
    refined : bool  whether the matrices were polished on the Stiefel manifold

    Attributes
    ----------
    graphs, sizes (list of int), laplacians (list of sparse COO float64 tensors [n_i, n_i], L = A - D),
    P (list of dense float64 tensors [n_i, n_{i+1}]), distances, alpha, refined, num_levels
    """

    def __init__(self, graphs, P, distances=None, alpha: float = 1.0, refined: bool = False):
        self.graphs = list(graphs)
        if not self.graphs:
            raise CGSurrogateError("a hierarchy needs at least one graph")
        self.sizes = [int(g.num_nodes) for g in self.graphs]
        self.P = [torch.as_tensor(np.asarray(p) if not isinstance(p, torch.Tensor) else p).to(torch.float64)
                  for p in P]
        if len(self.P) != len(self.graphs) - 1:
            raise CGSurrogateError(f"{len(self.graphs)} graphs need {len(self.graphs) - 1} prolongations, got {len(self.P)}")
        for i, p in enumerate(self.P):
            if tuple(p.shape) != (self.sizes[i], self.sizes[i + 1]):
                raise CGSurrogateError(f"P[{i}] has shape {tuple(p.shape)}, expected {(self.sizes[i], self.sizes[i + 1])}")
        self.laplacians = [laplacian(g) for g in self.graphs]
        self.distances = [float(d) for d in distances] if distances is not None else [float("nan")] * len(self.P)
        self.alpha = float(alpha)
        self.refined = bool(refined)
        self._composed: dict[int, torch.Tensor] = {}

    @property
    def num_levels(self) -> int:
        """Number of graphs in the hierarchy."""
        return len(self.graphs)

    @property
    def names(self) -> list[str]:
        """Graph labels, finest first."""
        return [g.name for g in self.graphs]

    def prolongation(self, i: int) -> torch.Tensor:
        """Composed prolongation ``P_{1,i}`` (0-based level ``i``) as float64 tensor [n_0, n_i].

        ``prolongation(0)`` is the identity [n_0, n_0]; ``prolongation(i) = P[0] @ ... @ P[i-1]``.
        """
        if not 0 <= i < self.num_levels:
            raise CGSurrogateError(f"level {i} outside 0..{self.num_levels - 1}")
        if i not in self._composed:
            out = torch.eye(self.sizes[0], dtype=torch.float64)
            for p in self.P[:i]:
                out = out @ p
            self._composed[i] = out
        return self._composed[i]

    def laplacian_dense(self, i: int) -> torch.Tensor:
        """Dense Laplacian of level ``i``, float64 [n_i, n_i]."""
        return self.laplacians[i].to_dense()

    def state_dict(self) -> dict:
        """Plain dict of tensors and python values (loads with ``torch.load(weights_only=True)``)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "graphs": [graph_to_dict(g) for g in self.graphs],
            "sizes": list(self.sizes),
            "P": [p.clone() for p in self.P],
            "laplacian_indices": [lap.indices().clone() for lap in self.laplacians],
            "laplacian_values": [lap.values().clone() for lap in self.laplacians],
            "distances": list(self.distances),
            "alpha": self.alpha,
            "refined": self.refined,
        }

    @classmethod
    def from_state_dict(cls, d: dict, source: str = "hierarchy state") -> "Hierarchy":
        """Rebuild from :meth:`state_dict` output; validates everything.

        Raises
        ------
        CGSurrogateError
            Naming ``source`` and the problem, for a foreign, old, malformed or inconsistent dict.
        """
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CGSurrogateError(f"{source}: not a cgsurrogate hierarchy (missing format tag {FORMAT!r})")
        if d.get("format_version") != FORMAT_VERSION:
            raise CGSurrogateError(f"{source}: hierarchy format version {d.get('format_version')!r}, "
                             f"this code reads version {FORMAT_VERSION}")
        for key in ("graphs", "sizes", "P", "laplacian_indices", "laplacian_values", "distances", "alpha", "refined"):
            if key not in d:
                raise CGSurrogateError(f"{source}: malformed hierarchy, missing {key!r}")
        try:
            graphs = [graph_from_dict(g) for g in d["graphs"]]
        except ValueError as exc:
            raise CGSurrogateError(f"{source}: {exc}") from None
        sizes = [int(g.num_nodes) for g in graphs]
        if list(d["sizes"]) != sizes:
            raise CGSurrogateError(f"{source}: sizes {list(d['sizes'])} do not match the graphs {sizes}")
        P = d["P"]
        if not isinstance(P, (list, tuple)) or len(P) != len(graphs) - 1:
            raise CGSurrogateError(f"{source}: {len(graphs)} graphs need {len(graphs) - 1} prolongation matrices")
        for i, p in enumerate(P):
            if not isinstance(p, torch.Tensor) or tuple(p.shape) != (sizes[i], sizes[i + 1]):
                shape = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
                raise CGSurrogateError(f"{source}: P[{i}] is {shape}, expected a tensor of shape {(sizes[i], sizes[i + 1])}")
            if not torch.isfinite(p).all():
                raise CGSurrogateError(f"{source}: P[{i}] has non-finite entries")
            p64 = p.to(torch.float64)
            err = (p64.T @ p64 - torch.eye(p.shape[1], dtype=torch.float64)).abs().max().item()
            if err > 1e-6:
                raise CGSurrogateError(f"{source}: P[{i}] columns are not orthonormal (max |P^T P - I| = {err:.2e})")
        if len(d["laplacian_indices"]) != len(graphs) or len(d["laplacian_values"]) != len(graphs):
            raise CGSurrogateError(f"{source}: expected {len(graphs)} Laplacians")
        h = cls(graphs, P, d["distances"], d["alpha"], d["refined"])
        for i, (idx, val) in enumerate(zip(d["laplacian_indices"], d["laplacian_values"])):
            lap = h.laplacians[i]
            if (not isinstance(idx, torch.Tensor) or not isinstance(val, torch.Tensor)
                    or idx.shape != lap.indices().shape or not torch.equal(idx, lap.indices())
                    or not torch.equal(val.to(torch.float64), lap.values())):
                raise CGSurrogateError(f"{source}: stored Laplacian of level {i} does not match graph {h.names[i]}")
        return h

    def save(self, path) -> Path:
        """Write as a ``"hierarchy"`` checkpoint (:func:`cgsurrogate.core.checkpoint_io.write_checkpoint`,
        atomic). Returns the path."""
        return write_checkpoint(path, "hierarchy", self.state_dict(), version=FORMAT_VERSION)

    @classmethod
    def load(cls, path) -> "Hierarchy":
        """Load a file written by :meth:`save` (``torch.load(weights_only=True)``).

        Raises
        ------
        cgsurrogate.core.errors.InputFileError
            Missing, corrupt or foreign file (also a ``FileNotFoundError`` and ``ValueError``).
        CGSurrogateError
            Naming the file, if its hierarchy is not consistent.
        """
        _, _, payload = read_checkpoint(path, "hierarchy", max_version=FORMAT_VERSION)
        return cls.from_state_dict(payload, source=str(path))

    def matches(self, graphs) -> bool:
        """True if this hierarchy was built for exactly these graphs (same content, same order)."""
        return len(graphs) == self.num_levels and all(
            graph_key(a) == graph_key(b) for a, b in zip(graphs, self.graphs))

    def __repr__(self) -> str:
        return f"Hierarchy({' -> '.join(self.names)}, sizes={self.sizes}, alpha={self.alpha:g}, refined={self.refined})"


def _cache_key(graphs, alpha: float, refine: bool) -> str:
    payload = json.dumps({"v": FORMAT_VERSION, "graphs": [graph_key(g) for g in graphs],
                          "alpha": float(alpha), "refine": bool(refine)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def build_hierarchy(graphs, alpha: float = 1.0, refine: bool = False, cache_dir=None, use_cache: bool = True,
                    refine_iterations: int = 50, progress: bool = False) -> Hierarchy:
    """Compute (or load from the cache) the hierarchy of ``graphs`` (finest first).

    Parameters
    ----------
    graphs : list of graph objects with non-increasing sizes
    alpha : float  alpha of the prolongation problem (the paper uses 1)
    refine : bool  polish each P on the Stiefel manifold (pymanopt); never increases the objective
    cache_dir : path or None  cache folder (default :func:`default_cache_dir`)
    use_cache : bool  read and write the cache
    refine_iterations : int
    progress : bool  show a tqdm bar over levels

    Returns
    -------
    Hierarchy
    """
    from cgsurrogate.surrogate.graphs.lgdd import lgdd
    from cgsurrogate.surrogate.graphs.spectrum import laplacian_spectrum

    graphs = list(graphs)
    for i in range(len(graphs) - 1):
        if graphs[i + 1].num_nodes > graphs[i].num_nodes:
            raise CGSurrogateError(f"graphs must be finest first: {graphs[i].name} has fewer nodes than {graphs[i + 1].name}")
    cache_file = None
    if use_cache:
        cache_file = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        cache_file = cache_file / f"hierarchy-{_cache_key(graphs, alpha, refine)}.pt"
        if cache_file.is_file():
            try:
                h = Hierarchy.load(cache_file)
                if h.matches(graphs) and h.alpha == float(alpha) and h.refined == bool(refine):
                    return h
            except ValueError as exc:
                warnings.warn(f"ignoring unusable cache entry: {exc}", stacklevel=2)
    spectra = [laplacian_spectrum(g) for g in graphs]
    P, dist = [], []
    levels = range(len(graphs) - 1)
    if progress:
        from tqdm import tqdm

        levels = tqdm(levels, desc="prolongations", unit="level")
    for i in levels:
        r = lgdd(graphs[i + 1], graphs[i], alpha, refine=refine, refine_iterations=refine_iterations,
                 spectra=(spectra[i + 1], spectra[i]))
        P.append(torch.from_numpy(np.ascontiguousarray(r.P)))
        dist.append(r.distance)
    h = Hierarchy(graphs, P, dist, alpha, refine)
    if cache_file is not None:
        try:
            h.save(cache_file)
        except (OSError, CGSurrogateError) as exc:
            warnings.warn(f"could not write hierarchy cache {cache_file}: {exc}", stacklevel=2)
    return h


def microtubule_hierarchy(levels: int = 3, cache_dir=None, refine: bool = False, use_cache: bool = True) -> Hierarchy:
    """The paper's microtubule hierarchy ``Tube(48,13,3) -> Tube(24,13,1) -> Tube(24,3,0)``.

    Parameters
    ----------
    levels : int in 1..3  number of graphs (1: the microtubule only; 2: plus the dimer graph)
    cache_dir : path or None  see :func:`build_hierarchy`
    refine : bool  Stiefel polishing of the alpha = 1 matrices
    use_cache : bool

    Returns
    -------
    Hierarchy with sizes ``[624, 312, 72][:levels]``.
    """
    if not 1 <= int(levels) <= len(MICROTUBULE_GRAPHS):
        raise CGSurrogateError(f"microtubule hierarchy has 1..{len(MICROTUBULE_GRAPHS)} levels, got {levels}")
    return build_hierarchy(MICROTUBULE_GRAPHS[: int(levels)], alpha=1.0, refine=refine, cache_dir=cache_dir,
                           use_cache=use_cache)


def search_coarse_tubes(fine=MICROTUBULE_GRAPHS[0], n: int = 24, ks=range(3, 13), ps=range(0, 4),
                        seam_weights=(1.0, 2.0), progress: bool = False) -> list[dict]:
    """Coarse-graph search of paper sec. 3.3 / fig. 6: ``D(Tube(n, k, p, w), fine)`` over a grid.

    Parameters
    ----------
    fine : graph  the fine graph (default ``Tube(48, 13, 3)``)
    n : int  turns of the candidate tubes
    ks, ps, seam_weights : iterables  nodes per turn, seam offsets, seam-edge weights to try
    progress : bool  tqdm bar

    Returns
    -------
    list of dict, one per candidate (sorted by the alpha-optimal distance), keys ``graph``,
    ``n``, ``k``, ``p``, ``seam_weight``, ``nodes``, ``distance`` (alpha free), ``alpha``,
    ``distance_alpha1`` (alpha = 1, the hierarchy's matrices), ``num_rlap``.
    Candidates larger than ``fine`` are skipped.
    """
    from cgsurrogate.surrogate.graphs.alpha_search import alpha_search
    from cgsurrogate.surrogate.graphs.spectrum import assignment, assignment_cost, laplacian_spectrum

    lam2 = laplacian_spectrum(fine, vectors=False)[0]
    cands = [Tube(n, k, p, w) for k in ks for p in ps for w in seam_weights if p < n and n * k <= len(lam2)]
    it = cands
    if progress:
        from tqdm import tqdm

        it = tqdm(cands, desc="coarse tubes", unit="graph")
    rows = []
    for g in it:
        lam1 = laplacian_spectrum(g, vectors=False)[0]
        res = alpha_search(lam1, lam2)
        d1 = math.sqrt(assignment_cost(lam1, lam2, assignment(lam1, lam2, 1.0), 1.0))
        rows.append({"graph": g.name, "n": g.n, "k": g.k, "p": g.p, "seam_weight": g.seam_weight,
                     "nodes": g.num_nodes, "distance": res.distance, "alpha": res.alpha,
                     "distance_alpha1": d1, "num_rlap": res.num_rlap})
    rows.sort(key=lambda r: r["distance"])
    return rows


def hierarchy_report(h: Hierarchy, optimal_alpha: bool = True) -> list[dict]:
    """One row per level: ``level``, ``graph``, ``nodes``, ``edges`` and, for levels >= 1, the
    distance to the next finer level: ``distance`` (objective of the stored ``P`` at the
    hierarchy's alpha) and, if ``optimal_alpha``, ``distance_opt`` / ``alpha_opt`` (alpha
    optimised exactly, :func:`cgsurrogate.surrogate.graphs.lgdd.alpha_search`).
    """
    from cgsurrogate.surrogate.graphs.alpha_search import alpha_search
    from cgsurrogate.surrogate.graphs.spectrum import laplacian_spectrum

    spectra = [laplacian_spectrum(g, vectors=False)[0] for g in h.graphs] if optimal_alpha else None
    rows = []
    for i, g in enumerate(h.graphs):
        row = {"level": i, "graph": g.name, "nodes": h.sizes[i], "edges": int(len(g.edges))}
        if i > 0:
            row["distance"] = h.distances[i - 1]
            if optimal_alpha:
                res = alpha_search(spectra[i], spectra[i - 1])
                row["distance_opt"], row["alpha_opt"] = res.distance, res.alpha
        rows.append(row)
    return rows
