"""E(n)-equivariant graph network (Satorras, Hoogeboom & Welling 2021) with velocities.

Layer: ``m_ij = phi_e(h_i, h_j, |x_i - x_j|^2, a_ij)``;
``v_i' = phi_v(h_i) v_i + C sum_j (x_i - x_j) phi_x(m_ij)``; ``x_i' = x_i + v_i'``;
``h_i' = h_i + phi_h(h_i, sum_j m_ij)``, with ``C`` the mean over neighbours.
"""
from __future__ import annotations

import torch
from torch import nn

from cgsurrogate.surrogate.equivariant.message_passing import GraphBatch, aggregate, mlp


class EGNNLayer(nn.Module):
    """One EGNN layer with a velocity channel.

    Parameters
    ----------
    hidden : int
        Width of ``h``.
    edge_dim : int
        Width of invariant edge attributes.
    tanh : bool
        Squash the coordinate weight with tanh (stabilises training on large systems).
    """

    def __init__(self, hidden: int, edge_dim: int = 0, tanh: bool = False):
        super().__init__()
        self.edge_net = mlp([2 * hidden + 1 + edge_dim, hidden, hidden], last_act=True)
        layers = [nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1, bias=False)]
        torch.nn.init.xavier_uniform_(layers[-1].weight, gain=0.001)
        if tanh:
            layers.append(nn.Tanh())
        self.coord_net = nn.Sequential(*layers)
        self.vel_net = mlp([hidden, hidden, 1])
        self.node_net = mlp([2 * hidden, hidden, hidden])

    def forward(self, x, v, h, edge_index, edge_attr=None):
        """Update positions, velocities and features.

        Parameters
        ----------
        x, v : Tensor [N, 3]
        h : Tensor [N, hidden]
        edge_index : LongTensor [2, E]
        edge_attr : Tensor [E, edge_dim], optional

        Returns
        -------
        x, v : Tensor [N, 3];  h : Tensor [N, hidden]
        """
        row, col = edge_index
        diff = x[row] - x[col]
        d2 = (diff * diff).sum(-1, keepdim=True)
        parts = [h[row], h[col], d2]
        if edge_attr is not None and edge_attr.shape[1]:
            parts.append(edge_attr)
        m = self.edge_net(torch.cat(parts, -1))
        n = x.shape[0]
        acc = aggregate(diff * self.coord_net(m), row, n, reduce="mean")
        v = self.vel_net(h) * v + acc
        x = x + v
        h = h + self.node_net(torch.cat([h, aggregate(m, row, n, reduce="sum")], -1))
        return x, v, h


class EGNN(nn.Module):
    """Stack of :class:`EGNNLayer` mapping a :class:`GraphBatch` to predicted positions.

    Parameters
    ----------
    in_node : int
        Width of the invariant node features ``GraphBatch.h``.
    edge_dim : int
        Width of ``GraphBatch.edge_attr`` (the squared distance is appended internally).
    hidden : int
    n_layers : int
    """

    def __init__(self, in_node: int, edge_dim: int, hidden: int = 64, n_layers: int = 4, tanh: bool = False):
        super().__init__()
        self.config = dict(name="egnn", in_node=in_node, edge_dim=edge_dim, hidden=hidden,
                           n_layers=n_layers, tanh=tanh)
        self.embed = nn.Linear(in_node, hidden)
        self.layers = nn.ModuleList([EGNNLayer(hidden, edge_dim + 1, tanh) for _ in range(n_layers)])

    def forward(self, g: GraphBatch):
        """Predict positions after the task's time span.

        Returns
        -------
        x : Tensor [N, 3]
            Predicted positions.
        aux : dict
            ``h`` [N, hidden] final invariant features.
        """
        x, v = g.pos, g.vel
        h = self.embed(g.h)
        row, col = g.edge_index
        d0 = ((x[row] - x[col]) ** 2).sum(-1, keepdim=True)
        ea = torch.cat([g.edge_attr, d0], -1)
        for layer in self.layers:
            x, v, h = layer(x, v, h, g.edge_index, ea)
        return x, {"h": h}
