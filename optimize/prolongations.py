"""Coarse stage variables: prolongations from a hierarchy, coarse displacement fields, and the
affine map from a stage's variables to fine positions.

A stage at level ``k > 0`` moves only the coarse modes of the hierarchy,
``X = X_s + M (P_{1,k} Y_k)`` with ``P_{1,k}`` the composed prolongation ``[N, n_k]`` and ``M``
zeroing the rows of clamped nodes (a coarse mode moves every fine node, so clamping is applied
to the displacement, not to ``Y``); its gradient is ``dE/dY = (M P_{1,k})^T dE/dX``. A stage at
level 0 moves every free fine coordinate.
"""
from __future__ import annotations

import torch

from cgsurrogate.core.errors import CGSurrogateError

class StageMap:
    """Affine map from a stage's variables ``y [M]`` to fine positions ``[N, 3]``.

    ``basis`` is None for the fine level (``y`` are the free nodes' coordinates) or a
    dense ``[N, 3, M]`` tensor of displacement fields (rows of clamped nodes zeroed).
    """

    def __init__(self, x_start: torch.Tensor, free: torch.Tensor, basis: torch.Tensor | None):
        self.x_start = x_start.clone()
        self.free = free
        if basis is None:  # fine level: the free rows themselves
            self.basis = None
            self.m = 3 * int(free.sum())
        else:
            b = basis.to(torch.float64).clone()
            b[~free] = 0.0
            self.n = b.shape[0]
            self.m = b.shape[2]
            self.basis = b.reshape(-1, self.m)  # [3N, M]

    def displacement(self, y: torch.Tensor) -> torch.Tensor:
        """Fine displacement ``[N, 3]`` of stage variables ``y [M]``."""
        if self.basis is None:
            d = torch.zeros_like(self.x_start)
            d[self.free] = y.view(-1, 3)
            return d
        return (self.basis @ y).view(-1, 3)

    def positions(self, y: torch.Tensor) -> torch.Tensor:
        return self.x_start + self.displacement(y)

    def restrict(self, g: torch.Tensor) -> torch.Tensor:
        """Stage gradient ``[M]`` from the fine gradient ``g [N, 3]``."""
        if self.basis is None:
            return g[self.free].reshape(-1).clone()
        return self.basis.T @ g.reshape(-1)



def coarse_basis(prolongation: torch.Tensor, positions: torch.Tensor, space: str = "rigid") -> torch.Tensor:
    """Displacement fields of a coarse stage, ``[N, 3, M]``.

    Parameters
    ----------
    prolongation : Tensor [N, n_k]
        Composed prolongation ``P_{1,k}`` (columns orthonormal).
    positions : Tensor [N, 3]
        Fine positions at the start of the stage (nm); used by the rotations.
    space : {"translate", "rigid"}
        ``"translate"``: ``X = X_s + P Y`` with ``Y [n_k, 3]`` (``M = 3 n_k``), the
        displacement of the paper's sec. 5.1. ``"rigid"``: each coarse mode ``j``
        also carries a small rotation about its centre ``c_j = sum_i P_ij^2 x_i``:
        ``d_i = sum_j P_ij (t_j + w_j x (x_i - c_j))`` (``M = 6 n_k``), the rigid-body
        modes that smoothed-aggregation multigrid adds for elasticity, so a coarse
        stage can bend a tube without stretching it. Rotation fields are scaled to unit
        norm.

    Returns
    -------
    Tensor [N, 3, M] float64
    """
    P = torch.as_tensor(prolongation, dtype=torch.float64)
    x = torch.as_tensor(positions, dtype=torch.float64)
    n, m = P.shape
    eye = torch.eye(3, dtype=torch.float64)
    trans = P[:, None, :, None] * eye[None, :, None, :]  # [N, 3, m, 3]
    trans = trans.reshape(n, 3, 3 * m)
    if space == "translate":
        return trans
    if space != "rigid":
        raise CGSurrogateError(f"coarse space {space!r}: choose 'translate' or 'rigid'")
    w = P * P
    c = (w.T @ x) / w.sum(0).clamp_min(1e-300)[:, None]  # [m, 3]
    r = x[:, None, :] - c[None, :, :]  # [N, m, 3]
    rot = torch.empty(n, 3, m, 3, dtype=torch.float64)
    for a in range(3):
        rot[:, :, :, a] = (torch.linalg.cross(eye[a].expand_as(r), r, dim=-1) * P[:, :, None]).permute(0, 2, 1)
    norms = rot.pow(2).sum((0, 1)).sqrt().clamp_min(1e-300)  # [m, 3]
    rot = (rot / norms).reshape(n, 3, 3 * m)
    return torch.cat([trans, rot], dim=2)



def prolongations_from_hierarchy(hierarchy, num_nodes: int, kind: str = "spectral") -> list[torch.Tensor]:
    """Prolongations ``P_{1,k}`` of every level of a hierarchy, checked against the structure.

    Parameters
    ----------
    hierarchy : cgsurrogate.surrogate.graphs.hierarchy.Hierarchy
    num_nodes : int
        Number of fine nodes of the structure being relaxed.
    kind : {"spectral", "lgdd"}
        ``"lgdd"``: the hierarchy's own composed matrices ``P_{1,k} = P_{1,2} ... P_{k-1,k}``
        (eigenvalue-matched LGDD prolongations, paper sec. 2.2/3.2). ``"spectral"``: a
        prolongation of the same shape ``[N, n_k]`` with orthonormal columns spanning the
        ``n_k`` lowest-frequency eigenvectors of the hierarchy's fine Laplacian (the LGDD
        construction ``U_fine Pi U_coarse^T`` with the eigenvalue matching replaced by rank
        order). The LGDD matching at alpha = 1 leaves out every other long-wavelength
        mode of the microtubule (a 48-turn tube against 24-turn coarse graphs), which a
        relaxation needs most; see the README for the measured effect.

    Returns
    -------
    list of Tensor, entry ``k`` of shape ``[num_nodes, n_k]`` float64 (entry 0 the identity).

    Raises
    ------
    CGSurrogateError
        If the hierarchy's finest graph does not have ``num_nodes`` nodes, or for an
        unknown ``kind``.
    """
    sizes = list(hierarchy.sizes)
    if sizes[0] != num_nodes:
        raise CGSurrogateError(
            f"the hierarchy's finest graph has {sizes[0]} nodes, the structure has {num_nodes}"
        )
    if kind not in ("spectral", "lgdd"):
        raise CGSurrogateError(f"prolongation kind {kind!r}: choose 'spectral' or 'lgdd'")
    out = [torch.eye(num_nodes, dtype=torch.float64)]
    if kind == "spectral" and hierarchy.num_levels > 1:
        L = hierarchy.laplacians[0]
        L = (L.to_dense() if L.is_sparse else torch.as_tensor(L)).to(torch.float64)
        lam, U = torch.linalg.eigh(-L)  # paper sign L = A - D: -L is positive semi-definite
        order = torch.argsort(lam, stable=True)
    for k in range(1, hierarchy.num_levels):
        if kind == "lgdd":
            p = torch.as_tensor(hierarchy.prolongation(k))
            p = (p.to_dense() if p.is_sparse else p).to(torch.float64)
        else:
            p = U[:, order[: sizes[k]]].contiguous()
        if tuple(p.shape) != (num_nodes, sizes[k]):
            raise CGSurrogateError(
                f"prolongation P_1,{k} has shape {tuple(p.shape)}, expected ({num_nodes}, {sizes[k]})"
            )
        out.append(p)
    return out
