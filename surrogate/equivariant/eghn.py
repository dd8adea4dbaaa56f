"""Equivariant Graph Hierarchy-based Network (Han et al. 2022, NeurIPS), sec. 3.

Components
----------
EPool    eqs. 7-11: internal EMMP on the connectivity graph A_local, soft cluster scores
         ``S = softmax(MLP(h'))`` [N, K], score-weighted means of the directional matrices
         (division by the column sums of S keeps translation equivariance), ``A_high = S^T A S``.
EUnPool  eqs. 12-15: ``Z_agg = S Z_high``, ``h_out = MLP(Zhat^T Zhat, h_low, h_agg)``,
         ``Z_out = Zhat H + Z_agg`` with ``Zhat = [Z_low - mean, Z_agg - mean]``.
EGHN     the equivariant U-Net of sec. 3.4: for every level an external EGNN-form layer block on the
         distance-based ``A_global`` (rescored ``S^T A S`` at coarser levels), an E-Pool whose internal
         EMMP runs on ``A_local``; at the top an EGNN block on the cluster graph; the decoder applies
         E-UnPool with the score matrix of the matching E-Pool (skip connection), each preceded by an
         EGNN block at the coarser level. Loss: eq. 16, see :func:`connectivity_loss`.
         ``pool_design="input"`` and ``pool_degree`` select the authors' code's pooling/decoder and a
         degree feature for the scores (:mod:`cgsurrogate.surrogate.equivariant.eghn_pooling`).

Heads: ``head="dynamics"`` predicts positions (first column of the output matrix, the paper's task);
``head="energy"`` additionally reads an invariant per-node energy from the final ``h`` (summed for
the total), so forces ``-dE/dx`` are equivariant and the model can serve as a surrogate energy.

All graphs are stored flat (see :mod:`cgsurrogate.surrogate.equivariant.message_passing`); cluster ``k`` of graph ``b``
is high-level node ``b*K + k``.
"""
from __future__ import annotations

import torch
from torch import nn

from cgsurrogate.surrogate.equivariant.egnn import EGNNLayer
from cgsurrogate.surrogate.equivariant.eghn_pooling import POOL_DESIGNS, OffsetUnPool, cluster_offsets, local_degree
from cgsurrogate.surrogate.equivariant.emmp import EMMP, frobenius_invariant
from cgsurrogate.surrogate.equivariant.message_passing import GraphBatch, aggregate, fully_connected_edges, graph_mean, mlp


def _egnn_block(layers: nn.ModuleList, x, v, h, edge_index, edge_attr):
    row, col = edge_index
    d0 = ((x[row] - x[col]) ** 2).sum(-1, keepdim=True)
    ea = torch.cat([edge_attr, d0], -1) if edge_attr is not None else d0
    for layer in layers:
        x, v, h = layer(x, v, h, edge_index, ea)
    return x, v, h


def pool_dense(S: torch.Tensor, values: torch.Tensor, batch: torch.Tensor, num_graphs: int,
               normalise: bool = True) -> torch.Tensor:
    """Score-weighted per-graph pooling ``(S^T V) / colsum(S)`` (eqs. 9-10).

    Parameters
    ----------
    S : Tensor [N, K]
        Soft assignment of each node (rows sum to 1).
    values : Tensor [N, *F]
    batch : LongTensor [N]
    num_graphs : int
    normalise : bool
        Divide by ``sum_i S_ik`` of the graph (needed for translation equivariance).

    Returns
    -------
    Tensor [num_graphs * K, *F]
    """
    K = S.shape[1]
    flatv = values.reshape(values.shape[0], -1)
    weighted = S.unsqueeze(-1) * flatv.unsqueeze(1)  # [N, K, F]
    out = aggregate(weighted, batch, num_graphs)  # [B, K, F]
    if normalise:
        out = out / aggregate(S, batch, num_graphs).clamp_min(1e-8).unsqueeze(-1)
    return out.reshape((num_graphs * K,) + tuple(values.shape[1:]))


def coarsen_adjacency(S: torch.Tensor, edge_index: torch.Tensor, weight: torch.Tensor | None,
                      batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Per-graph ``S^T A S`` for a sparse (weighted) adjacency (eq. 11).

    Parameters
    ----------
    S : Tensor [N, K]
    edge_index : LongTensor [2, E]
    weight : Tensor [E], optional
        Edge weights (1 when omitted).
    batch : LongTensor [N]
    num_graphs : int

    Returns
    -------
    Tensor [num_graphs, K, K]
    """
    row, col = edge_index
    msg = S[col] if weight is None else S[col] * weight.unsqueeze(-1)
    AS = aggregate(msg, row, S.shape[0])  # [N, K]
    return aggregate(S.unsqueeze(-1) * AS.unsqueeze(1), batch, num_graphs)  # [B, K, K]


CONN_NORMS = ("frobenius", "squared")


def connectivity_loss(A_high: torch.Tensor, eps: float = 1e-8, norm: str = "frobenius") -> torch.Tensor:
    """Eq. 16 second term: ``mean_b || rownorm(S^T A S) - I ||_F`` (or its square).

    Rows are normalised to unit Euclidean length (as the authors' implementation does) before
    the comparison with the identity. ``norm="frobenius"`` is the plain Frobenius norm, as in
    eq. 16 and the official code; ``"squared"`` is its square (what this project used before:
    measured on the M-complex reference file it trained to a worse test MSE, see issue 13).

    Parameters
    ----------
    A_high : Tensor [B, K, K]
    norm : {"frobenius", "squared"}

    Returns
    -------
    Tensor []
    """
    if norm not in CONN_NORMS:
        raise ValueError(f"connectivity_loss: norm must be one of {CONN_NORMS}, got {norm!r}")
    A = A_high / A_high.norm(dim=-1, keepdim=True).clamp_min(eps)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    sq = ((A - eye) ** 2).sum((-1, -2))
    if norm == "squared":
        return sq.mean()
    # square root with a finite (zero) gradient where A is exactly the identity
    pos = sq > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), torch.zeros_like(sq)).mean()


def cluster_edges(num_graphs: int, K: int, device=None) -> torch.Tensor:
    """Fully connected (no self loops) edges among the K clusters of every graph.

    Returns
    -------
    LongTensor [2, num_graphs * K * (K - 1)]
    """
    e = fully_connected_edges(K).to(device)
    off = (torch.arange(num_graphs, device=device) * K).repeat_interleave(e.shape[1])
    return e.repeat(1, num_graphs) + off


class EPool(nn.Module):
    """E-Pool (eqs. 7-11).

    Parameters
    ----------
    m : int
        Columns of the input directional matrix (column 0 = positions).
    hidden : int
    edge_dim : int
        Width of the A_local edge attributes.
    n_clusters : int
        K.
    n_layers : int
        Internal EMMP layers.
    """

    def __init__(self, m: int, hidden: int, edge_dim: int, n_clusters: int, n_layers: int = 2):
        super().__init__()
        self.K = n_clusters
        self.layers = nn.ModuleList([EMMP(m, hidden, edge_dim, n_translating=1) for _ in range(n_layers)])
        self.score = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.Tanh(), nn.Linear(4 * hidden, n_clusters))

    def forward(self, Z, h, local_edge_index, local_edge_attr, batch, num_graphs, h_extra=None):
        """Coarsen a level.

        Parameters
        ----------
        Z : Tensor [N, 3, m]
        h : Tensor [N, hidden]
        h_extra : Tensor [N, hidden], optional
            Added to ``h`` for the scores only (``h_high`` pools ``h``).
        local_edge_index : LongTensor [2, E_l];  local_edge_attr : Tensor [E_l, edge_dim]
        batch : LongTensor [N];  num_graphs : int

        Returns
        -------
        Z_high : Tensor [B*K, 3, m]
        h_high : Tensor [B*K, hidden]
        S : Tensor [N, K]
            Soft scores (rows sum to one).
        """
        Zp, hp = Z, (h if h_extra is None else h + h_extra)
        for layer in self.layers:
            Zp, hp = layer(Zp, hp, local_edge_index, batch, num_graphs, local_edge_attr)
        S = torch.softmax(self.score(hp), dim=-1)
        Z_high = pool_dense(S, Zp, batch, num_graphs)
        h_high = pool_dense(S, h, batch, num_graphs)
        return Z_high, h_high, S


class EUnPool(nn.Module):
    """E-UnPool (eqs. 12-15).

    Parameters
    ----------
    m_low, m_high : int
        Columns of the low-level and high-level directional matrices (column 0 = positions);
        the output has ``m_high`` columns.
    hidden : int
    init : {"standard", "identity"}
        ``standard``: PyTorch's default initialisation of every layer (as the official code).
        ``identity``: the bias of the mixing matrix H starts at [I; -I] on the shared columns
        and its weights are scaled by 0.1, so an untrained E-UnPool returns
        ``Z_low - mean(Z_low) + mean(Z_agg)``. Measured on the M-complex reference file
        (issue 13): ``identity`` trained to test MSE 0.163, ``standard`` to 0.141, hence the
        default.
    """

    INITS = ("standard", "identity")

    def __init__(self, m_low: int, m_high: int, hidden: int, init: str = "standard"):
        super().__init__()
        if init not in self.INITS:
            raise ValueError(f"EUnPool: init must be one of {self.INITS}, got {init!r}")
        self.m_low, self.m_high = m_low, m_high
        k = m_low + m_high
        self.net = mlp([k * k + 2 * hidden, hidden, hidden], last_act=True)
        self.mix = nn.Linear(hidden, k * m_high)
        self.h_out = mlp([hidden, hidden, hidden])
        if init == "standard":
            return
        with torch.no_grad():
            self.mix.weight.mul_(0.1)
            bias = torch.zeros(k, m_high)
            c = min(m_low, m_high)
            bias[torch.arange(c), torch.arange(c)] = 1.0
            bias[m_low + torch.arange(c), torch.arange(c)] = -1.0
            self.mix.bias.copy_(bias.flatten())

    def forward(self, Z_low, h_low, Z_high, h_high, S, batch, num_graphs):
        """Refine a level from its coarser one.

        Parameters
        ----------
        Z_low : Tensor [N, 3, m_low];  h_low : Tensor [N, hidden]
        Z_high : Tensor [B*K, 3, m_high];  h_high : Tensor [B*K, hidden]
        S : Tensor [N, K]  (scores of the matching E-Pool)
        batch : LongTensor [N];  num_graphs : int

        Returns
        -------
        Z_out : Tensor [N, 3, m_high];  h_out : Tensor [N, hidden]
        """
        K = S.shape[1]
        Zh = Z_high.reshape(num_graphs, K, -1)[batch]  # [N, K, 3*m_high]
        Z_agg = torch.einsum("nk,nkf->nf", S, Zh).reshape(-1, 3, self.m_high)
        Hh = h_high.reshape(num_graphs, K, -1)[batch]
        h_agg = torch.einsum("nk,nkf->nf", S, Hh)
        lo = torch.cat([Z_low[..., :1] - graph_mean(Z_low[..., :1], batch, num_graphs)[batch], Z_low[..., 1:]], -1)
        ag = torch.cat([Z_agg[..., :1] - graph_mean(Z_agg[..., :1], batch, num_graphs)[batch], Z_agg[..., 1:]], -1)
        zhat = torch.cat([lo, ag], -1)
        m = self.net(torch.cat([frobenius_invariant(zhat), h_low, h_agg], -1))
        H = self.mix(m).view(-1, self.m_low + self.m_high, self.m_high)
        Z_out = torch.einsum("nik,nko->nio", zhat, H) + Z_agg
        return Z_out, h_low + self.h_out(m)


class EGHN(nn.Module):
    """The EGHN U-Net.

    Parameters
    ----------
    in_node : int
        Width of the invariant node features.
    edge_dim : int
        Width of the A_global edge attributes.
    local_edge_dim : int
        Width of the A_local edge attributes.
    hidden : int
    n_clusters : list of int
        Clusters per pooling level (one entry per E-Pool), e.g. ``[3]`` for M-complex (3, 3).
    layers_per_block : int
        EGNN layers in each external block.
    pool_layers : int
        Internal EMMP layers per E-Pool.
    head : {"dynamics", "energy"}
        ``energy`` adds the invariant per-node energy read-out.
    lambda_conn : float
        Weight of the connectivity loss (kept in ``config`` for the trainer).
    unpool_init : {"standard", "identity"}
        Initialisation of the E-UnPool mixing layers (see :class:`EUnPool`).
    conn_norm : {"frobenius", "squared"}
        Form of the connectivity loss (see :func:`connectivity_loss`).
    pool_design : {"hidden", "input"}
        ``hidden``: the coarser level starts from the pooled encoder outputs and E-UnPool mixes
        mean-centred coordinates (:class:`EUnPool`). ``input``: the authors' code's design, E-Pool
        pools the level's input ``x`` and ``v`` and the decoder refines each node's offset from
        its cluster (:mod:`cgsurrogate.surrogate.equivariant.eghn_pooling`).
    pool_degree : bool
        Give each E-Pool's scores the embedded ``log(1 + degree)`` on the connectivity graph (not in
        the paper; see :func:`cgsurrogate.surrogate.equivariant.eghn_pooling.local_degree`).
    """

    def __init__(self, in_node: int, edge_dim: int, local_edge_dim: int, hidden: int = 64,
                 n_clusters=(3,), layers_per_block: int = 2, pool_layers: int = 2,
                 head: str = "dynamics", lambda_conn: float = 1.0, tanh: bool = False,
                 unpool_init: str = "standard", conn_norm: str = "frobenius", pool_design: str = "hidden",
                 pool_degree: bool = False):
        super().__init__()
        n_clusters = [int(k) for k in n_clusters]
        if not n_clusters or min(n_clusters) < 1:
            raise ValueError(f"EGHN: n_clusters must be a non-empty list of positive ints, got {n_clusters}")
        if head not in ("dynamics", "energy"):
            raise ValueError(f"EGHN: head must be 'dynamics' or 'energy', got {head!r}")
        if conn_norm not in CONN_NORMS:
            raise ValueError(f"EGHN: conn_norm must be one of {CONN_NORMS}, got {conn_norm!r}")
        if pool_design not in POOL_DESIGNS:
            raise ValueError(f"EGHN: pool_design must be one of {POOL_DESIGNS}, got {pool_design!r}")
        self.config = dict(name="eghn", in_node=in_node, edge_dim=edge_dim, local_edge_dim=local_edge_dim,
                           hidden=hidden, n_clusters=n_clusters, layers_per_block=layers_per_block,
                           pool_layers=pool_layers, head=head, lambda_conn=lambda_conn, tanh=tanh,
                           unpool_init=unpool_init, conn_norm=conn_norm, pool_design=pool_design,
                           pool_degree=bool(pool_degree))
        self.conn_norm, self.offsets = conn_norm, pool_design == "input"
        self.n_clusters = n_clusters
        self.embed = nn.Linear(in_node, hidden)
        L = len(n_clusters)

        def block(ed):
            return nn.ModuleList([EGNNLayer(hidden, ed + 1, tanh) for _ in range(layers_per_block)])

        # encoder blocks: level 0 uses the data's edge attributes; coarser levels the weight S^T A S
        self.enc = nn.ModuleList([block(edge_dim if l == 0 else 1) for l in range(L)])
        self.pools = nn.ModuleList([EPool(3, hidden, local_edge_dim if l == 0 else 1, n_clusters[l], pool_layers)
                                    for l in range(L)])
        self.top = block(1)
        # decoder: blocks at level l+1 preceding the UnPool to level l (the top block serves the last level)
        self.dec = nn.ModuleList([block(1) for _ in range(L - 1)])
        self.unpools = nn.ModuleList([OffsetUnPool(4, hidden) if self.offsets else EUnPool(3, 3, hidden, unpool_init)
                                      for _ in range(L)])
        self.deg_embed = nn.ModuleList([nn.Linear(1, hidden) for _ in range(L)]) if pool_degree else None
        self.energy_head = mlp([hidden, hidden, 1]) if head == "energy" else None

    def forward(self, g: GraphBatch):
        """Run the U-Net.

        Parameters
        ----------
        g : GraphBatch

        Returns
        -------
        x : Tensor [N, 3]
            Predicted positions.
        aux : dict
            ``scores`` list of [N_l, K_l] score matrices (finest first), ``conn_loss`` scalar,
            ``h`` [N, hidden] and, for the energy head, ``node_energy`` [N] and ``energy`` [B].
        """
        x, v, h = g.pos, g.vel, self.embed(g.h)
        batch, B = g.batch, g.num_graphs
        gl_index, gl_attr = g.edge_index, g.edge_attr
        lo_index, lo_attr = g.local_edge_index, g.local_edge_attr
        lo_weight = None
        skips, scores, conn, coarse, x_in = [], [], [], [], []
        for l, K in enumerate(self.n_clusters):
            x1, v1, h1 = _egnn_block(self.enc[l], x, v, h, gl_index, gl_attr)
            Z = torch.stack([x1, v1, x1 - x], -1)  # [N, 3, 3]
            hx = self.deg_embed[l](local_degree(lo_index, lo_weight, h1.shape[0], h1.dtype)) if self.deg_embed else None
            Z_high, h_high, S = self.pools[l](Z, h1, lo_index, lo_attr, batch, B, hx)
            # rescored adjacencies of the coarser level
            gw = gl_attr[:, 0] if l > 0 else None
            A_gl = coarsen_adjacency(S, gl_index, gw, batch, B)
            A_lo = coarsen_adjacency(S, lo_index, lo_weight, batch, B)
            conn.append(connectivity_loss(A_lo, norm=self.conn_norm))
            if self.offsets:  # pool the level's input x, v; the decoder gets each node's offset
                Z_high = pool_dense(S, torch.stack([x, v], -1), batch, B)  # [B*K, 3, 2]
                off = cluster_offsets(S, x, v, Z_high[..., 0], Z_high[..., 1], batch, B)
                Z = torch.cat([off, Z[..., 2:], v1[..., None]], -1)  # [x - SX, v - SV, x1 - x, v1]
            skips.append((Z, h1, S, batch, B))
            scores.append(S)
            ce = cluster_edges(B, K, x.device)
            eb = ce[0] // K
            gl_index, gl_attr = ce, A_gl[eb, ce[0] % K, ce[1] % K].unsqueeze(-1)
            lo_index, lo_weight = ce, A_lo[eb, ce[0] % K, ce[1] % K]
            lo_attr = lo_weight.unsqueeze(-1)
            coarse.append((gl_index, gl_attr))
            batch = torch.arange(B, device=x.device).repeat_interleave(K)
            x, v, h = Z_high[..., 0], Z_high[..., 1], h_high
            x_in.append(x)
        x, v, h = _egnn_block(self.top, x, v, h, gl_index, gl_attr)
        Z_top = torch.stack([x, v, x - Z_high[..., 0]], -1)
        for l in reversed(range(len(self.n_clusters))):
            Z_low, h_low, S, b_low, _ = skips[l]
            Z_top, h = self.unpools[l](Z_low, h_low, Z_top, h, S, b_low, B)
            if l > 0:
                # EGNN block on the coarse graph made by pool l-1, before the next UnPool
                ci, ca = coarse[l - 1]
                xd, vd, h = _egnn_block(self.dec[l - 1], Z_top[..., 0], Z_top[..., 1], h, ci, ca)
                Z_top = torch.stack([xd, vd, xd - x_in[l - 1] if self.offsets else Z_top[..., 2]], -1)
        aux = {"scores": scores, "conn_loss": torch.stack(conn).sum(), "h": h}
        if self.energy_head is not None:
            e = self.energy_head(h).squeeze(-1)
            aux["node_energy"] = e
            aux["energy"] = aggregate(e, g.batch, g.num_graphs)
        return Z_top[..., 0], aux
