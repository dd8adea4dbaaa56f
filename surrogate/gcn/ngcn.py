"""N-GCN baseline (Abu-El-Haija et al. 2018; paper sec. 4.5): an ensemble of GCNs whose
members use powers ``Z^r`` of the structure matrix, radii (1, 2, 4) or (1, 2, 4, 8, 16),
each member with filters 64, 64, 64 and the dense head 256, 32, 8, 1 (table 2), summed.

The paper's structure matrix is the unnormalised Laplacian ``L = A - D`` whose spectrum on
the microtubule graph reaches ``rho`` of about 8, so ``L^16`` would have entries near
``8^16``. The paper does not say how it scaled the powers; here member ``r`` uses
``rho (L / rho)^r``: radius 1 is exactly ``L`` and every power keeps spectral radius
``rho``, so all members see signals of the same magnitude.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from cgsurrogate.surrogate.gcn.layers import (DEFAULT_DENSE, DEFAULT_FILTERS, GCN, StructureMatrix, _MemberSum, _to_coo,
                          spectral_radius)


def scaled_power(laplacian, r: int) -> torch.Tensor:
    """``rho (L / rho)^r`` as a dense float64 tensor [n, n] (``rho``: spectral radius of L)."""
    idx, val, n = _to_coo(laplacian)
    dense = torch.sparse_coo_tensor(idx, val, (n, n), check_invariants=True).to_dense()
    rho = spectral_radius(dense)
    z = dense / rho
    return rho * torch.linalg.matrix_power(z, int(r))


class NGCN(_MemberSum):
    """Sum of GCNs on scaled Laplacian powers.

    Parameters
    ----------
    laplacian : [n, n] structure matrix of the fine graph
    in_features : int
    radii : sequence of int, e.g. (1, 2, 4)
    filters : sequence of int (per member)
    dense : sequence of int

    Notes
    -----
    ``forward(x)``: [B, n, F] -> [B, n, 1]. Powers more than 25 % full are applied densely.
    ``flops_by_level()``: forward FLOPs of one sample per member (``|Z^r|`` nonzeros in the
    layer cost); ``flops()`` their sum.
    """

    def __init__(self, laplacian, in_features: int, radii: Sequence[int] = (1, 2, 4),
                 filters: Sequence[int] = DEFAULT_FILTERS, dense: Sequence[int] = DEFAULT_DENSE,
                 input_skip: bool = False):
        super().__init__()
        self.radii = tuple(int(r) for r in radii)
        members = []
        for r in self.radii:
            z = scaled_power(laplacian, r)
            z[z.abs() < 1e-12 * z.abs().max()] = 0.0  # exact structural zeros stay sparse
            members.append(GCN(StructureMatrix(z), in_features, filters, dense, input_skip))
        self.members = nn.ModuleList(members)


__all__ = ["NGCN", "scaled_power"]
