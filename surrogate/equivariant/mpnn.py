"""Non-equivariant baselines: a message-passing network (Gilmer et al. 2017, the "GNN/MPNN" row
of the EGHN tables) and the linear extrapolation x + alpha v."""
from __future__ import annotations

import torch
from torch import nn

from cgsurrogate.surrogate.equivariant.message_passing import GraphBatch, aggregate, mlp


class MPNN(nn.Module):
    """Plain message passing on raw coordinates (not E(3)-equivariant).

    Node input is ``[x, v, h]``; messages ``phi_e(h_i, h_j, a_ij)``; the output is
    ``x + decoder(h)``.

    Parameters
    ----------
    in_node : int
        Width of the invariant node features.
    edge_dim : int
    hidden : int
    n_layers : int
    """

    def __init__(self, in_node: int, edge_dim: int, hidden: int = 64, n_layers: int = 4):
        super().__init__()
        self.config = dict(name="mpnn", in_node=in_node, edge_dim=edge_dim, hidden=hidden, n_layers=n_layers)
        self.embed = nn.Linear(in_node + 6, hidden)
        self.edge_nets = nn.ModuleList([mlp([2 * hidden + edge_dim, hidden, hidden], last_act=True)
                                        for _ in range(n_layers)])
        self.node_nets = nn.ModuleList([mlp([2 * hidden, hidden, hidden]) for _ in range(n_layers)])
        self.decoder = mlp([hidden, hidden, 3])

    def forward(self, g: GraphBatch):
        """Returns predicted positions [N, 3] and ``{"h": [N, hidden]}``."""
        h = self.embed(torch.cat([g.pos, g.vel, g.h], -1))
        row, col = g.edge_index
        for en, nn_ in zip(self.edge_nets, self.node_nets):
            parts = [h[row], h[col]] + ([g.edge_attr] if g.edge_attr.shape[1] else [])
            m = en(torch.cat(parts, -1))
            h = h + nn_(torch.cat([h, aggregate(m, row, h.shape[0], reduce="sum")], -1))
        return g.pos + self.decoder(h), {"h": h}


class LinearDynamics(nn.Module):
    """Linear prediction ``x + alpha v`` with one learned scalar (the tables' "Linear" row)."""

    def __init__(self, **_):
        super().__init__()
        self.config = dict(name="linear")
        self.alpha = nn.Parameter(torch.ones(()))

    @torch.no_grad()
    def fit(self, graphs) -> float:
        """Closed-form least-squares ``alpha = sum v.(y - x) / sum v.v`` over graph dicts; returns alpha."""
        num = sum(float((g["vel"] * (g["target"] - g["pos"])).sum()) for g in graphs)
        den = sum(float((g["vel"] ** 2).sum()) for g in graphs)
        self.alpha.fill_(num / max(den, 1e-300))
        return float(self.alpha)

    def forward(self, g: GraphBatch):
        """Returns predicted positions [N, 3] and an empty dict."""
        return g.pos + self.alpha * g.vel, {}
