"""The pooling and decoder design of the EGHN authors' code, as an option of
:class:`cgsurrogate.surrogate.equivariant.eghn.EGHN` (``pool_design="input"``).

In this design the E-Pool carries the *input* positions and velocities of a level to the coarser
level, ``X = colnorm(S)^T x`` and ``V = colnorm(S)^T v`` (the score-weighted cluster means of
eq. 9 applied to ``x`` and ``v`` rather than to the coordinates updated by the level's encoder
block), and the decoder gives every fine node its offset from its cluster,
``x - S X`` and ``v - S V``, so the fine level refines a position *relative to its cluster*:

    x_out = S X' + (x - S X) + [Zhat H]_0

where ``X'`` are the positions the coarser level predicts and ``Zhat H`` a learned equivariant
mixing (eqs. 12-15) of translation-invariant vectors only: the offsets, the level's encoder
displacement ``x1 - x`` and velocity ``v1``, the cluster displacement ``S (X' - X)`` and the
cluster velocity ``S V'``. With ``H = 0`` each node moves rigidly with its cluster.

Functions here take flat graph batches (see
:mod:`cgsurrogate.surrogate.equivariant.message_passing`); cluster ``k`` of graph ``b`` is
coarse node ``b*K + k``.
"""
from __future__ import annotations

import torch
from torch import nn

from cgsurrogate.surrogate.equivariant.emmp import frobenius_invariant
from cgsurrogate.surrogate.equivariant.message_passing import aggregate, mlp

POOL_DESIGNS = ("hidden", "input")


def unpool_dense(S: torch.Tensor, values_high: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Each fine node's score-weighted combination of its graph's cluster values, ``S V_high``.

    Parameters
    ----------
    S : Tensor [N, K]
        Soft assignment (rows sum to one).
    values_high : Tensor [num_graphs * K, *F]
    batch : LongTensor [N]
    num_graphs : int

    Returns
    -------
    Tensor [N, *F]
    """
    K = S.shape[1]
    trailing = tuple(values_high.shape[1:])
    vh = values_high.reshape(num_graphs, K, -1)[batch]  # [N, K, F]
    return torch.einsum("nk,nkf->nf", S, vh).reshape((S.shape[0],) + trailing)


def cluster_offsets(S: torch.Tensor, x: torch.Tensor, v: torch.Tensor, X: torch.Tensor, V: torch.Tensor,
                    batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Offsets of the fine nodes from their clusters, ``[x - S X, v - S V]``.

    Both columns are translation invariant and rotate with the input.

    Parameters
    ----------
    S : Tensor [N, K];  x, v : Tensor [N, 3] (positions, velocities of the fine level)
    X, V : Tensor [num_graphs * K, 3]  (pooled positions and velocities)
    batch : LongTensor [N];  num_graphs : int

    Returns
    -------
    Tensor [N, 3, 2]
    """
    XV = unpool_dense(S, torch.stack([X, V], -1), batch, num_graphs)
    return torch.stack([x, v], -1) - XV


def local_degree(edge_index: torch.Tensor, weight: torch.Tensor | None, num_nodes: int,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``log(1 + sum_j A_ij)`` of every node on a (weighted) connectivity graph.

    An invariant, permutation-equivariant node feature. ``EGHN(pool_degree=True)`` adds its
    embedding to the E-Pool score features, so that the scores can tell connected components
    of different sizes apart from the first step (M-complex: complexes of 2, 3 and 4 particles).

    Parameters
    ----------
    edge_index : LongTensor [2, E]  (row = receiver)
    weight : Tensor [E], optional  (1 when omitted)
    num_nodes : int
    dtype : torch.dtype
        Of the result when ``weight`` is omitted.

    Returns
    -------
    Tensor [num_nodes, 1]
    """
    w = torch.ones(edge_index.shape[1], dtype=dtype, device=edge_index.device) if weight is None else weight
    return torch.log1p(aggregate(w.unsqueeze(-1), edge_index[0], num_nodes))


class OffsetUnPool(nn.Module):
    """E-UnPool of the authors' design: the fine level refines its offset from its cluster.

    Parameters
    ----------
    m_low : int
        Columns of the fine-level matrix (translation-invariant vectors; the first two must be
        the offsets ``x - S X`` and ``v - S V``).
    hidden : int

    The coarse input ``Z_high`` has three columns ``[X', V', X' - X]`` (predicted cluster
    positions, velocities and displacements); the output has the same three columns at the
    fine level, ``[x', v', d]`` with ``x' = S X' + (x - S X) + [Zhat H]_0`` and
    ``v' = S V' + (v - S V) + [Zhat H]_1``.
    """

    def __init__(self, m_low: int, hidden: int):
        super().__init__()
        if m_low < 2:
            raise ValueError(f"OffsetUnPool: m_low must be at least 2 (the two offsets), got {m_low}")
        self.m_low = m_low
        k = m_low + 2  # fine columns plus the cluster velocity and displacement
        self.net = mlp([k * k + 2 * hidden, hidden, hidden], last_act=True)
        self.mix = nn.Linear(hidden, k * 3)
        self.h_out = mlp([hidden, hidden, hidden])

    def forward(self, Z_low, h_low, Z_high, h_high, S, batch, num_graphs):
        """Refine a level from its coarser one.

        Parameters
        ----------
        Z_low : Tensor [N, 3, m_low]  (offsets first; all columns translation invariant)
        h_low : Tensor [N, hidden]
        Z_high : Tensor [B*K, 3, 3]  ``[X', V', X' - X]``
        h_high : Tensor [B*K, hidden]
        S : Tensor [N, K]  (scores of the matching E-Pool)
        batch : LongTensor [N];  num_graphs : int

        Returns
        -------
        Z_out : Tensor [N, 3, 3]  ``[x', v', d]`` (``d`` a learned displacement; callers may
            replace it);  h_out : Tensor [N, hidden]
        """
        Z_agg = unpool_dense(S, Z_high, batch, num_graphs)  # [N, 3, 3]
        h_agg = unpool_dense(S, h_high, batch, num_graphs)
        zhat = torch.cat([Z_low, Z_agg[..., 1:]], -1)  # no absolute position: translation invariant
        m = self.net(torch.cat([frobenius_invariant(zhat), h_low, h_agg], -1))
        H = self.mix(m).view(-1, self.m_low + 2, 3)
        skip = torch.cat([Z_low[..., :2], torch.zeros_like(Z_low[..., :1])], -1)
        Z_out = Z_agg + skip + torch.einsum("nik,nko->nio", zhat, H)
        return Z_out, h_low + self.h_out(m)


__all__ = ["POOL_DESIGNS", "unpool_dense", "cluster_offsets", "local_degree", "OffsetUnPool"]
