"""Offset-tube graphs ``Tube(n, k, p)`` and their resting geometry.

A tube graph has ``n`` turns ("rings") of ``k`` nodes. Node ``j`` (0..k-1) of turn
``r`` (0..n-1) has index ``r * k + j``. Edges:

* lateral: ``(r, j) - (r, j + 1)`` for ``j < k - 1`` (inside the lattice);
* seam: ``(r, k - 1) - (r + p, 0)`` for ``r + p < n`` (the helix closes with an
  offset of ``p`` turns; with ``p = 0`` the ring closes on itself);
* longitudinal: ``(r, j) - (r + 1, j)``.

The microtubule of the GPCN paper (Scott & Mjolsness 2021, sec. 3.1 and 3.3) is
``Tube(48, 13, 3)``: 624 monomers, 1232 bonds.

Examples
--------
>>> t = Tube(48, 13, 3)
>>> t.num_nodes, len(t.edges)
(624, 1232)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError

#: Edge kinds, as stored in :attr:`Tube.edge_kind`.
LATERAL, SEAM, LONGITUDINAL = 0, 1, 2
EDGE_KIND_NAMES = ("lateral", "seam", "longitudinal")


@dataclass(frozen=True)
class Tube:
    """Offset tube graph with ``n`` turns of ``k`` nodes and seam offset ``p``.

    Parameters
    ----------
    n, k, p : int
        Number of turns, nodes per turn, seam offset in turns (``0 <= p < n``).
    seam_weight : float
        Weight of the seam edges in :meth:`adjacency` (the paper tries 1 and 2).
    """

    n: int
    k: int
    p: int
    seam_weight: float = 1.0
    edges: np.ndarray = field(init=False, repr=False, compare=False)
    edge_kind: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        n, k, p = int(self.n), int(self.k), int(self.p)
        if n < 1 or k < 2 or p < 0 or (p >= n and n > 1):
            raise CGSurrogateError(f"Tube(n={n}, k={k}, p={p}): need n >= 1, k >= 2, 0 <= p < n")
        if self.seam_weight <= 0:
            raise CGSurrogateError(f"Tube seam_weight must be positive, got {self.seam_weight}")
        r = np.arange(n)
        j = np.arange(k - 1)
        lat = np.stack(
            [(r[:, None] * k + j[None, :]).ravel(), (r[:, None] * k + j[None, :] + 1).ravel()], 1
        )
        rs = np.arange(max(n - p, 0))
        seam = np.stack([rs * k + (k - 1), (rs + p) * k], 1)
        if p == 0 and k == 2:  # the seam would duplicate the single lateral edge
            seam = seam[:0]
        rl = np.arange(n - 1)
        jl = np.arange(k)
        lon = np.stack(
            [(rl[:, None] * k + jl[None, :]).ravel(), ((rl[:, None] + 1) * k + jl[None, :]).ravel()], 1
        )
        edges = np.concatenate([lat, seam, lon]).astype(np.int64)
        kind = np.concatenate(
            [np.full(len(lat), LATERAL), np.full(len(seam), SEAM), np.full(len(lon), LONGITUDINAL)]
        ).astype(np.int64)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "edge_kind", kind)

    @property
    def num_nodes(self) -> int:
        """Number of nodes ``n * k``."""
        return self.n * self.k

    @property
    def name(self) -> str:
        """Short label such as ``Tube(48,13,3)`` or ``Tube(24,3,0,w2)``."""
        w = "" if self.seam_weight == 1 else f",w{self.seam_weight:g}"
        return f"Tube({self.n},{self.k},{self.p}{w})"

    @property
    def edge_weights(self) -> np.ndarray:
        """Edge weights ``[E]``: 1, or ``seam_weight`` on seam edges."""
        w = np.ones(len(self.edges))
        w[self.edge_kind == SEAM] = self.seam_weight
        return w

    def adjacency(self):
        """Symmetric weighted adjacency matrix as ``scipy.sparse.csr_matrix`` [N, N]."""
        import scipy.sparse as sp

        i, j = self.edges.T
        w = self.edge_weights
        a = sp.coo_matrix(
            (np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))),
            shape=(self.num_nodes, self.num_nodes),
        )
        return a.tocsr()

    def node_index(self, r: int, j: int) -> int:
        """Index of node ``j`` of turn ``r``."""
        return r * self.k + j

    def positions(self, radius: float = 10.5, rise: float = 5.0) -> np.ndarray:
        """Resting geometry ``[N, 3]`` (nm): a helix around the z axis.

        Node ``j`` of turn ``r`` sits at ``radius`` from the axis, azimuth
        ``2 pi j / k`` and height ``rise * (r + p j / k)`` so that the seam edge
        has the same geometry as a lateral edge. With the defaults and
        ``Tube(48, 13, 3)`` this is the microtubule of the paper: 26 nm outer
        diameter (radius 10.5 nm plus half a 5 nm monomer on each side), lateral
        bonds 5.15639 nm, longitudinal bonds 5.0 nm.
        """
        r = np.repeat(np.arange(self.n), self.k).astype(np.float64)
        j = np.tile(np.arange(self.k), self.n).astype(np.float64)
        phi = 2 * np.pi * j / self.k
        z = rise * (r + self.p * j / self.k)
        return np.stack([radius * np.cos(phi), radius * np.sin(phi), z], 1)
