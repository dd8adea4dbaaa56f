"""DiffPool variant of the 3-level GPCN (paper sec. 4.4, Ying et al. 2018).

Same structure as the GPCN, but each prolongation ``P_{i,i+1}`` is replaced by a
DiffPool assignment ``S^{(i)} = softmax_rows(GCN_pool(Z_i, X_i))`` [B, n_i, n_{i+1}]
computed from the data, and the coarse structure matrices are ``Z_{i+1} = S^T Z_i S``
(eq. 5, dense, per sample). The coarse signal is ``X_{i+1} = S^T X_i`` and each level's
output is carried back to the fine graph with ``S^{(0)} ... S^{(i-1)}`` and summed, as in
eq. 2. ``GCN_pool`` is one graph convolution layer ``Z X W + b`` with ``n_{i+1}`` output
channels (no activation before the row softmax).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from cgsurrogate.surrogate.gcn.layers import DEFAULT_DENSE, GCN, GraphConv, NodeDense, StructureMatrix


class DenseGCN(nn.Module):
    """A GCN (graph convolutions + node-wise dense head) on a per-sample dense structure
    matrix ``z [B, n, n]``; ``forward(z, x [B, n, F]) -> [B, n, out]``."""

    def __init__(self, in_features: int, filters: Sequence[int], dense: Sequence[int] = DEFAULT_DENSE):
        super().__init__()
        sizes = [in_features, *filters]
        self.convs = nn.ModuleList(GraphConv(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = NodeDense(sum(filters), dense)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        outs, h = [], x
        for conv in self.convs:
            h = conv(z, h)
            outs.append(h)
        return self.head(torch.cat(outs, dim=-1))

    def flops(self, n: int, nnz: int) -> float:
        """Forward FLOPs of one sample on an n-node graph with ``nnz`` structure nonzeros."""
        return sum(c.flops(n, nnz) for c in self.convs) + self.head.flops(n)


class DiffPoolGPCN(nn.Module):
    """3-level (in general k-level) GPCN whose prolongations are DiffPool assignments.

    Parameters
    ----------
    laplacian : [n_0, n_0] fine structure matrix
    sizes : sequence of int
        Node counts of the coarse levels (e.g. (312, 72) as in the microtubule hierarchy).
    in_features : int
    filters : sequence of sequences of int, finest first (3-level GPCN: 16s, 32s, 64s)
    dense : sequence of int

    Notes
    -----
    ``forward(x)``: [B, n_0, F] -> [B, n_0, 1].
    """

    def __init__(self, laplacian, sizes: Sequence[int], in_features: int,
                 filters: Sequence[Sequence[int]], dense: Sequence[int] = DEFAULT_DENSE,
                 input_skip: bool = False):
        super().__init__()
        if len(filters) != len(sizes) + 1:
            raise ValueError(f"{len(sizes) + 1} levels need {len(sizes) + 1} filter lists, got {len(filters)}")
        self.z0 = StructureMatrix(laplacian)
        self.sizes = (self.z0.n, *[int(s) for s in sizes])
        self.num_levels = len(self.sizes)
        self.fine = GCN(self.z0, in_features, filters[0], dense, input_skip)
        self.coarse = nn.ModuleList(DenseGCN(in_features, f, dense) for f in filters[1:])
        self.pools = nn.ModuleList(GraphConv(in_features, s, activation=False) for s in self.sizes[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fine(x)
        z = None  # level-0 structure is the sparse z0
        xi = x
        ss = []
        for i, (pool, gcn) in enumerate(zip(self.pools, self.coarse)):
            logits = pool.preactivation(self.z0 if z is None else z, xi)
            s = torch.softmax(logits, dim=-1)  # [B, n_i, n_{i+1}], rows sum to 1
            st = s.transpose(1, 2)
            xi = st @ xi
            zs = self.z0(s) if z is None else z @ s
            z = st @ zs
            ss.append(s)
            yi = gcn(z, xi)
            for sj in reversed(ss):
                yi = sj @ yi
            y = y + yi
        return y

    def flops_by_level(self) -> list[float]:
        """Forward FLOPs of one sample per level: level 0 its GCN; level ``i > 0`` the pooling
        layer on level ``i-1``, ``S^T X``, ``S^T Z S`` (dense products), its GCN on the dense
        ``n_i x n_i`` matrix and the products carrying its output back to the fine graph."""
        out = [self.fine.flops()]
        nnz_prev = self.z0.nnz
        for i in range(1, self.num_levels):
            n_prev, n_i = self.sizes[i - 1], self.sizes[i]
            f_in = self.pools[i - 1].in_features
            cost = self.pools[i - 1].flops(n_prev, nnz_prev)
            cost += n_i * n_prev * f_in  # S^T X
            cost += n_prev * n_prev * n_i + n_i * n_prev * n_i  # Z S, S^T (Z S)
            cost += self.coarse[i - 1].flops(n_i, n_i * n_i)
            carried = 0
            for j in range(i, 0, -1):  # S^{(j-1)} times an [n_j, 1] output
                carried += self.sizes[j - 1] * self.sizes[j]
            cost += carried
            out.append(float(cost))
            nnz_prev = n_i * n_i
        return out

    def flops(self) -> float:
        """Forward FLOPs of one sample."""
        return float(sum(self.flops_by_level()))


__all__ = ["DiffPoolGPCN", "DenseGCN"]
