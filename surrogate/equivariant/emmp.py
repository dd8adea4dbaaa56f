"""Equivariant Matrix Message Passing (EMMP), EGHN paper eqs. 3-6.

Each node carries a directional matrix ``Z_i`` [3, m] (columns are vectors: centred position,
velocity, displacement, ...) and invariant features ``h_i`` [c]. For an edge (i, j)
``Zhat_ij = [Z_i - Zbar, Z_j - Zbar]`` [3, 2m] where ``Zbar`` is the graph mean for the columns
that translate (positions) and zero for the others. The invariant ``Zhat^T Zhat`` [2m, 2m] is
divided by its Frobenius norm (paper sec. 3.1, following GMN) before entering the edge MLP,
which outputs a mixing matrix ``H_ij`` [2m, m_out] and a scalar message ``h_ij``; the vector
message is ``M_ij = Zhat_ij H_ij``.
"""
from __future__ import annotations

import torch
from torch import nn

from cgsurrogate.surrogate.equivariant.message_passing import aggregate, graph_mean, mlp


def frobenius_invariant(zhat: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalised Gram matrix of directional matrices.

    Parameters
    ----------
    zhat : Tensor [E, 3, k]

    Returns
    -------
    Tensor [E, k*k]
        ``Zhat^T Zhat / ||Zhat^T Zhat||_F`` flattened; invariant under O(3) acting on axis 1.
    """
    gram = torch.einsum("eik,eil->ekl", zhat, zhat).flatten(1)
    return gram / (gram.norm(dim=1, keepdim=True) + eps)


class EMMP(nn.Module):
    """One EMMP layer.

    Parameters
    ----------
    m_in : int
        Number of vector columns of the input ``Z``.
    hidden : int
        Width of ``h`` (input and output) and of the MLPs.
    edge_dim : int
        Width of the invariant edge attributes.
    m_out : int, optional
        Columns of the output matrix (defaults to ``m_in``; the residual ``Z + sum M`` needs
        ``m_out == m_in``, otherwise the output is ``sum M`` plus the first ``m_out`` columns).
    n_translating : int
        How many leading columns of ``Z`` are positions (shifted by translations).
    vector_aggr : {"mean", "sum"}
        Aggregation of the vector messages (the authors' code averages; the paper writes a sum).
    """

    def __init__(self, m_in: int, hidden: int, edge_dim: int = 0, m_out: int | None = None,
                 n_translating: int = 1, vector_aggr: str = "mean"):
        super().__init__()
        self.m_in, self.m_out = m_in, m_out or m_in
        self.n_translating = n_translating
        self.vector_aggr = vector_aggr
        k = 2 * m_in
        self.edge_net = mlp([k * k + 2 * hidden + edge_dim, hidden, hidden], last_act=True)
        self.mix_net = nn.Linear(hidden, k * self.m_out)
        self.node_net = mlp([2 * hidden, hidden, hidden])

    def forward(self, Z: torch.Tensor, h: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor,
                num_graphs: int, edge_attr: torch.Tensor | None = None):
        """Update ``(Z, h)``.

        Parameters
        ----------
        Z : Tensor [N, 3, m_in]
        h : Tensor [N, hidden]
        edge_index : LongTensor [2, E]  (row receives)
        batch : LongTensor [N]
        num_graphs : int
        edge_attr : Tensor [E, edge_dim], optional

        Returns
        -------
        Z_new : Tensor [N, 3, m_out]
        h_new : Tensor [N, hidden]
        """
        row, col = edge_index
        Zc = Z
        if self.n_translating:
            mean = graph_mean(Z[..., : self.n_translating], batch, num_graphs)[batch]
            Zc = torch.cat([Z[..., : self.n_translating] - mean, Z[..., self.n_translating:]], dim=-1)
        zhat = torch.cat([Zc[row], Zc[col]], dim=-1)  # [E, 3, 2m]
        inv = frobenius_invariant(zhat)
        parts = [inv, h[row], h[col]]
        if edge_attr is not None and edge_attr.shape[1]:
            parts.append(edge_attr)
        m = self.edge_net(torch.cat(parts, dim=-1))
        H = self.mix_net(m).view(-1, 2 * self.m_in, self.m_out)
        M = torch.einsum("eik,eko->eio", zhat, H)  # [E, 3, m_out]
        n = Z.shape[0]
        dZ = aggregate(M, row, n, reduce=self.vector_aggr)
        h_new = h + self.node_net(torch.cat([h, aggregate(m, row, n, reduce="sum")], dim=-1))
        base = Z if self.m_out == self.m_in else Z[..., : self.m_out]
        return base + dZ, h_new
