"""EGHN with the energy head on the microtubule dataset (same data, split and normaliser as GPCN).

Graph per frame: positions (nm) and velocities (nm/ps) as the equivariant inputs; invariant node
features ``[normalised five strengths, |v| (nm/ps)]``; A_global joins particles within two bonds
(bond and angle partners: the range of the force field), A_local the 1232 bonds. The target is
the normalised per-node energy (``Normalizer.normalize_y``), so the validation metric is the
same NMSE the GPCN trainer reports.

:class:`EGHNMicrotubuleEnergy` wraps a trained model with the call signature of
``simulate.energy.TrueEnergy`` (positions [B, N, 3] nm, params [B, 5] zJ -> total [B],
per-node [B, N] kJ/mol), so optimisers and calculators accept it like a GPCN surrogate.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from surrogate.message_passing import collate_graphs

PARAM_COLS = slice(6, 11)


def two_hop_edge_index(bonds: np.ndarray, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Directed edges within two bonds and a bond indicator.

    Returns
    -------
    edge_index : LongTensor [2, E];  is_bond : Tensor [E, 1]
    """
    from data.mocap import two_hop_edges  # same construction as the skeleton graphs
    ei, is_bond = two_hop_edges(np.asarray(bonds), n)
    return torch.as_tensor(ei), torch.as_tensor(is_bond, dtype=torch.float32).unsqueeze(1)


class MicrotubuleGraphs:
    """Builds EGHN graphs from microtubule samples.

    Parameters
    ----------
    bonds : int array [B, 2]
    num_nodes : int
    normalizer : data.microtubule.Normalizer
    """

    def __init__(self, bonds, num_nodes: int, normalizer):
        self.n = num_nodes
        self.edge_index, self.edge_attr = two_hop_edge_index(bonds, num_nodes)
        b = torch.as_tensor(np.asarray(bonds)).T
        self.local_edge_index = torch.cat([b, b.flip(0)], 1)
        self.local_edge_attr = torch.ones(self.local_edge_index.shape[1], 1)
        self.normalizer = normalizer

    def graph(self, x: torch.Tensor, y_norm: torch.Tensor | None = None) -> dict:
        """One frame.

        Parameters
        ----------
        x : Tensor [N, 11]  raw features (positions nm, velocities nm/ps, strengths zJ)
        y_norm : Tensor [N, 1], optional  normalised per-node energy
        """
        nx = self.normalizer.normalize_x(x.to(torch.float64).unsqueeze(0))[0].to(x.dtype)
        vel = x[:, 3:6]
        h = torch.cat([nx[:, PARAM_COLS], vel.norm(dim=1, keepdim=True)], 1)
        return dict(pos=x[:, :3], vel=vel, h=h, edge_index=self.edge_index, edge_attr=self.edge_attr,
                    local_edge_index=self.local_edge_index, local_edge_attr=self.local_edge_attr,
                    target=y_norm)

    def graphs(self, X: torch.Tensor, Y: torch.Tensor) -> list[dict]:
        """Graphs of a stack of frames ``X`` [M, N, 11] with raw energies ``Y`` [M, N, 1] (kJ/mol)."""
        Yn = self.normalizer.normalize_y(Y.to(torch.float64)).to(torch.float32)
        return [self.graph(X[i].float(), Yn[i]) for i in range(X.shape[0])]


class EGHNMicrotubuleEnergy(nn.Module):
    """A trained energy-head EGHN as a differentiable energy function.

    Parameters
    ----------
    model : surrogate.eghn.EGHN with ``head="energy"``
    builder : MicrotubuleGraphs
    """

    def __init__(self, model: nn.Module, builder: MicrotubuleGraphs):
        super().__init__()
        if getattr(model, "energy_head", None) is None:
            raise ValueError("EGHNMicrotubuleEnergy needs an EGHN built with head='energy'")
        self.model, self.builder = model, builder

    def forward(self, positions: torch.Tensor, params: torch.Tensor, velocities: torch.Tensor | None = None):
        """Energies in kJ/mol.

        Parameters
        ----------
        positions : Tensor [B, N, 3] nm
        params : Tensor [B, 5] zJ (order ``simulate.microtubule.PARAM_NAMES``)
        velocities : Tensor [B, N, 3] nm/ps, optional (zeros)

        Returns
        -------
        total : Tensor [B];  per_node : Tensor [B, N]
        """
        B, N = positions.shape[:2]
        dtype = next(self.model.parameters()).dtype
        vel = torch.zeros_like(positions) if velocities is None else velocities
        X = torch.cat([positions, vel, params[:, None, :].expand(B, N, 5)], -1).to(dtype)
        g = collate_graphs([self.builder.graph(X[b]) for b in range(B)])
        _, aux = self.model(g)
        e = aux["node_energy"].view(B, N, 1).to(torch.float64)
        per_node = self.builder.normalizer.denormalize_y(e)[..., 0]
        return per_node.sum(1), per_node
