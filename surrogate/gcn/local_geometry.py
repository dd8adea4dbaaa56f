"""Rigid-motion-invariant local geometry of a bonded coarse-grained molecule.

The invariant surrogate (:mod:`cgsurrogate.surrogate.gcn.potential`) reads nothing but the
quantities computed here: for every bond its squared deviation from the resting length,
``(r - r0)^2`` (nm^2), and for every angle its squared deviation from the resting angle,
``(theta - theta0)^2`` (rad^2). Both depend only on distances and angles, so they are
invariant under rotations, reflections and translations, and they are defined for a tube of
any length (the topology supplies bonds, angles and resting values).

Straight resting angles (theta0 = pi, the microtubule's longitudinal angles) need care: the
derivative of ``theta`` is infinite there. Their squared deviation is computed as
``atan2(|u x v|, -u.v)^2``, and, where ``|u x v|`` is below float resolution, by its series
``q - 2/3 q^2`` with ``q = |u x v|^2 / (u.v)^2``; both are smooth, so forces stay finite at rest.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Interaction kinds: the three bond types then the four angle types of
#: ``cgsurrogate.simulate.microtubule`` (BOND_TYPES, ANGLE_TYPES).
NUM_BOND_KINDS, NUM_ANGLE_KINDS = 3, 4
NUM_KINDS = NUM_BOND_KINDS + NUM_ANGLE_KINDS


class InteractionGeometry(nn.Module):
    """Squared deviations of every bond and angle of a topology from rest.

    Parameters
    ----------
    topology : cgsurrogate.simulate.microtubule.Topology
        Bonds ``[Nb, 2]``, angles ``[Na, 3]`` (middle particle in column 1), their types,
        parameter indices and resting values.

    Attributes (buffers)
    --------------------
    bonds [Nb, 2], angles [Na, 3] : int64
    kind [Nb + Na] : int64, bond type (0-2) for bonds, 3 + angle type (3-6) for angles
    param [Nb + Na] : int64, index of the strength parameter of each interaction (0-4)
    """

    def __init__(self, topology):
        super().__init__()
        t = topology
        self.num_nodes = int(t.num_nodes)
        self.register_buffer("bonds", torch.as_tensor(t.bonds, dtype=torch.long), persistent=False)
        self.register_buffer("angles", torch.as_tensor(t.angles, dtype=torch.long), persistent=False)
        self.register_buffer("r0", torch.as_tensor(t.bond_r0, dtype=torch.float64), persistent=False)
        self.register_buffer("theta0", torch.as_tensor(t.angle_theta0, dtype=torch.float64), persistent=False)
        self.register_buffer("straight", torch.as_tensor(np.isclose(t.angle_theta0, np.pi)), persistent=False)
        kind = np.concatenate([np.asarray(t.bond_type), NUM_BOND_KINDS + np.asarray(t.angle_type)])
        param = np.concatenate([np.asarray(t.bond_param), np.asarray(t.angle_param)])
        self.register_buffer("kind", torch.as_tensor(kind, dtype=torch.long), persistent=False)
        self.register_buffer("param", torch.as_tensor(param, dtype=torch.long), persistent=False)
        # share of each interaction's energy that goes to each of its particles (LAMMPS pe/atom)
        self.num_bonds, self.num_angles = len(t.bonds), len(t.angles)

    @property
    def num_interactions(self) -> int:
        """``Nb + Na``."""
        return self.num_bonds + self.num_angles

    def squared_deviations(self, positions: torch.Tensor) -> torch.Tensor:
        """``[B, Nb + Na]`` squared deviations from rest: bonds in nm^2, then angles in rad^2.

        Parameters
        ----------
        positions : Tensor [B, N, 3] nm (any floating dtype; the result has the same dtype)
        """
        x = positions
        dtype = x.dtype
        i, j = self.bonds[:, 0], self.bonds[:, 1]
        r = torch.linalg.vector_norm(x[:, j] - x[:, i], dim=-1)
        qb = (r - self.r0.to(dtype)) ** 2
        u = x[:, self.angles[:, 0]] - x[:, self.angles[:, 1]]
        v = x[:, self.angles[:, 2]] - x[:, self.angles[:, 1]]
        dot = (u * v).sum(-1)
        c2 = torch.linalg.cross(u, v).pow(2).sum(-1)
        tiny = c2 <= torch.finfo(dtype).eps ** 2 * (u * u).sum(-1) * (v * v).sum(-1)
        c = torch.sqrt(torch.where(tiny, torch.ones_like(c2), c2))
        c = torch.where(tiny, torch.zeros_like(c), c)
        theta = torch.atan2(c, dot)
        ratio = c2 / dot.pow(2).clamp_min(torch.finfo(dtype).tiny)  # finite when particles coincide
        straight_dev2 = torch.where(tiny, ratio - (2.0 / 3.0) * ratio * ratio, torch.atan2(c, -dot) ** 2)
        qa = torch.where(self.straight, straight_dev2, (theta - self.theta0.to(dtype)) ** 2)
        return torch.cat([qb, qa], dim=-1)

    def scatter_to_nodes(self, e: torch.Tensor) -> torch.Tensor:
        """Per-particle split of per-interaction energies ``e [B, Nb + Na]`` -> ``[B, N]``:
        half of each bond to each end, a third of each angle to each of its three particles
        (the LAMMPS ``pe/atom`` split of the dataset's targets)."""
        B = e.shape[0]
        out = e.new_zeros(B, self.num_nodes)
        eb, ea = e[:, : self.num_bonds] * 0.5, e[:, self.num_bonds:] / 3.0
        out.index_add_(1, self.bonds[:, 0], eb)
        out.index_add_(1, self.bonds[:, 1], eb)
        for col in range(3):
            out.index_add_(1, self.angles[:, col], ea)
        return out


__all__ = ["InteractionGeometry", "NUM_KINDS", "NUM_BOND_KINDS", "NUM_ANGLE_KINDS"]
