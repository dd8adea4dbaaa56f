"""The microtubule force field as a vectorised, differentiable torch function.

This is the reference "true energy": the same terms OpenMM integrates, with the
per-particle split of LAMMPS ``compute pe/atom`` (each bond's energy 1/2 to each end,
each angle's 1/3 to each of its three particles), which produced the paper's targets.

Units: positions in nm, strength parameters in the paper's zJ/nm^2 and zJ/rad^2,
energies in kJ/mol.
"""
from __future__ import annotations

import numpy as np
import torch

from cgsurrogate.core.energy_model import EnergyModel
from cgsurrogate.simulate.microtubule import ZJ_TO_KJMOL, Topology, microtubule_spec, microtubule_topology, tube_system_spec


class TrueEnergy(EnergyModel):
    """Per-particle potential energy of a tube topology (an :class:`~cgsurrogate.core.energy_model.EnergyModel`).

    Parameters
    ----------
    topology : Topology, optional
        Defaults to the paper's microtubule.

    Notes
    -----
    Computes in the dtype of ``positions`` (float32 or float64; ``compute_dtype = None``).
    Invariant under rotations, reflections and translations (bonds and angles only).

    Examples
    --------
    >>> f = TrueEnergy()
    >>> x = torch.as_tensor(f.topology.positions)[None]      # [1, 624, 3] nm
    >>> total, per_node = f(x, torch.full((1, 5), 30.0, dtype=torch.float64))
    >>> float(total.abs().max()) < 1e-9
    True
    """

    rotation_invariant = True
    translation_invariant = True
    compute_dtype = None

    def __init__(self, topology: Topology | None = None):
        spec = microtubule_spec() if topology is None else tube_system_spec(topology)
        super().__init__(spec)
        self.topology = topology or microtubule_topology()
        t = self.topology
        self.register_buffer("bonds", torch.as_tensor(t.bonds), persistent=False)
        self.register_buffer("bond_param", torch.as_tensor(t.bond_param), persistent=False)
        self.register_buffer("bond_r0", torch.as_tensor(t.bond_r0), persistent=False)
        self.register_buffer("angles", torch.as_tensor(t.angles), persistent=False)
        self.register_buffer("angle_param", torch.as_tensor(t.angle_param), persistent=False)
        self.register_buffer("angle_theta0", torch.as_tensor(t.angle_theta0), persistent=False)
        straight = np.isclose(t.angle_theta0, np.pi)
        self.register_buffer("straight", torch.as_tensor(straight), persistent=False)

    def energy_per_particle(self, positions: torch.Tensor, params: torch.Tensor, velocities=None) -> torch.Tensor:
        """Per-particle energies ``[B, N]`` kJ/mol of checked inputs (see ``EnergyModel``).

        Parameters
        ----------
        positions : Tensor [B, N, 3], nm
        params : Tensor [B, 5]
            Strengths (LatAssoc, LongAssoc, LatAngle, LongAngle, QuadAngles) in zJ/nm^2
            and zJ/rad^2.
        velocities : unused (None)
        """
        dtype = positions.dtype
        params = params * ZJ_TO_KJMOL
        B = positions.shape[0]
        per_node = positions.new_zeros(B, self.num_nodes)

        i, j = self.bonds[:, 0], self.bonds[:, 1]
        d = positions[:, j] - positions[:, i]
        r = torch.linalg.vector_norm(d, dim=-1)
        eb = params[:, self.bond_param] * (r - self.bond_r0.to(dtype)) ** 2  # [B, Nb]
        half = 0.5 * eb
        per_node.index_add_(1, i, half)
        per_node.index_add_(1, j, half)

        a, m, c = self.angles[:, 0], self.angles[:, 1], self.angles[:, 2]
        u = positions[:, a] - positions[:, m]
        v = positions[:, c] - positions[:, m]
        dot = (u * v).sum(-1)
        cross2 = torch.linalg.cross(u, v).pow(2).sum(-1)
        norm2 = (u * u).sum(-1) * (v * v).sum(-1)
        # theta = atan2(|u x v|, u.v). Near theta = pi the sqrt has an infinite
        # derivative; for straight resting angles we use the deviation
        # delta = atan2(|u x v|, -u.v) whose square is smooth, with its series
        # delta^2 = s/d^2 - 2/3 (s/d^2)^2 where |u x v| is negligible.
        tiny = torch.finfo(dtype).eps ** 2 * norm2
        small = cross2 <= tiny
        s_safe = torch.where(small, torch.ones_like(cross2), cross2)
        sq = torch.sqrt(s_safe)
        theta = torch.atan2(torch.where(small, torch.zeros_like(sq), sq), dot)
        q = cross2 / dot.pow(2)
        dev2_series = q - (2.0 / 3.0) * q * q
        dev2 = torch.where(small, dev2_series, torch.atan2(sq, -dot) ** 2)
        straight = self.straight
        diff2 = torch.where(straight, dev2, (theta - self.angle_theta0.to(dtype)) ** 2)
        ea = params[:, self.angle_param] * diff2
        third = ea / 3.0
        per_node.index_add_(1, a, third)
        per_node.index_add_(1, m, third)
        per_node.index_add_(1, c, third)

        return per_node


def true_energy(positions, params, topology: Topology | None = None):
    """Functional form of :class:`TrueEnergy`; returns ``(total [B], per_node [B, N])`` kJ/mol."""
    return TrueEnergy(topology).to(positions.device)(positions, params)
