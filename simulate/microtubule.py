"""The coarse-grained microtubule of the GPCN paper: topology, resting values, units.

Scott & Mjolsness 2021 (sec. 3.1, table 1): 624 tubulin monomers on ``Tube(48, 13, 3)``,
harmonic bonds and angles (LAMMPS convention ``E = L (x - x0)^2``) whose strengths are
five parameters, each in ``{3, 9, 18, 30, 39, 48, 57}``.

Units. The paper's numbers are LAMMPS "nano" units: strengths in zJ/nm^2 (bonds) and
zJ/rad^2 (angles), mass 50 ag, time step 0.018 ns, load 9e-14 N per loaded monomer.
Everything this package computes is in OpenMM's units (nm, ps, kJ/mol, amu); the
conversion factors are the module constants below. Strength parameters keep the
paper's values (zJ) as labels and in datasets.

Examples
--------
>>> topo = microtubule_topology()
>>> topo.num_nodes, len(topo.bonds), len(topo.angles)
(624, 1232, 3648)
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.tube import LATERAL, LONGITUDINAL, SEAM, Tube

AVOGADRO = 6.02214076e23
#: 1 zJ in kJ/mol.
ZJ_TO_KJMOL = 1e-21 * AVOGADRO / 1000.0
#: 1 attogram in amu (g/mol).
AG_TO_AMU = 1e-18 * AVOGADRO
#: 1 N in kJ/mol/nm.
NEWTON_TO_KJMOL_NM = 1e-9 * AVOGADRO / 1000.0

PARAM_NAMES = ("LatAssoc", "LongAssoc", "LatAngle", "LongAngle", "QuadAngles")
#: The values each strength parameter takes in the paper's sweep (zJ/nm^2 or zJ/rad^2).
GRID_VALUES = (3.0, 9.0, 18.0, 30.0, 39.0, 48.0, 57.0)
PARAM_UNITS = ("zJ/nm^2", "zJ/nm^2", "zJ/rad^2", "zJ/rad^2", "zJ/rad^2")

#: Monomer mass: 50 attograms (the paper's 50 Da makes the 0.018 ns step explode).
MONOMER_MASS_AMU = 50.0 * AG_TO_AMU
#: Integration time step: 0.018 ns.
TIMESTEP_PS = 18.0
#: Maximum load on each loaded monomer: 9e-14 N, in kJ/mol/nm.
LOAD_FORCE_KJMOL_NM = 9e-14 * NEWTON_TO_KJMOL_NM

#: Bond types and the strength parameter (index into PARAM_NAMES) each uses.
BOND_TYPES = ("lateral", "seam", "longitudinal")
BOND_PARAM = np.array([0, 0, 1])
#: Angle types and the strength parameter each uses.
ANGLE_TYPES = ("pitch", "longitudinal", "quad_acute", "quad_obtuse")
ANGLE_PARAM = np.array([2, 3, 4, 4])
PITCH, LONG_ANGLE, QUAD_ACUTE, QUAD_OBTUSE = range(4)


@dataclass(frozen=True)
class Topology:
    """Bonds and angles of a tube-shaped coarse-grained molecule.

    Attributes
    ----------
    tube : Tube
        The graph.
    positions : ndarray [N, 3]
        Resting geometry (nm).
    bonds : ndarray [Nb, 2] int
    bond_type : ndarray [Nb] int (index into ``BOND_TYPES``)
    bond_r0 : ndarray [Nb] resting length measured from ``positions`` (nm)
    angles : ndarray [Na, 3] int, middle particle in column 1
    angle_type : ndarray [Na] int (index into ``ANGLE_TYPES``)
    angle_theta0 : ndarray [Na] resting angle measured from ``positions`` (rad)
    """

    tube: Tube
    positions: np.ndarray
    bonds: np.ndarray
    bond_type: np.ndarray
    bond_r0: np.ndarray
    angles: np.ndarray
    angle_type: np.ndarray
    angle_theta0: np.ndarray

    @property
    def num_nodes(self) -> int:
        return self.tube.num_nodes

    @property
    def bond_param(self) -> np.ndarray:
        """Strength-parameter index of each bond ``[Nb]``."""
        return BOND_PARAM[self.bond_type]

    @property
    def angle_param(self) -> np.ndarray:
        """Strength-parameter index of each angle ``[Na]``."""
        return ANGLE_PARAM[self.angle_type]

    def ring_nodes(self, rings) -> np.ndarray:
        """Node indices of the given turns (0-based; negative counts from the end)."""
        n, k = self.tube.n, self.tube.k
        rings = [r % n for r in rings]
        return np.concatenate([np.arange(r * k, (r + 1) * k) for r in rings])


def _angle(x: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a = x[tri[:, 0]] - x[tri[:, 1]]
    b = x[tri[:, 2]] - x[tri[:, 1]]
    c = np.linalg.norm(np.cross(a, b), axis=1)
    return np.arctan2(c, (a * b).sum(1))


def tube_topology(tube: Tube, radius: float = 10.5, rise: float = 5.0) -> Topology:
    """Bonds and angles of an offset tube, with resting values from its geometry.

    Bonds are the tube's edges (lateral, seam, longitudinal). Angles: the pitch angle
    at every node between its two lateral (or seam) neighbours along the helix, the
    longitudinal angle at every node between its two longitudinal neighbours, and the
    four corner angles of every lattice cell (a lateral or seam edge ``a-b`` and its
    longitudinal successors ``a'-b'``), classed acute or obtuse by their resting value.
    """
    n, k, p = tube.n, tube.k, tube.p
    x = tube.positions(radius=radius, rise=rise)
    bonds = tube.edges.copy()
    bond_type = tube.edge_kind.copy()  # LATERAL, SEAM, LONGITUDINAL are 0, 1, 2 in both

    def nxt(r, j):  # lateral successor along the helix, or None
        if j < k - 1:
            return (r, j + 1)
        return (r + p, 0) if r + p < n else None

    def up(r, j):
        return (r + 1, j) if r + 1 < n else None

    idx = lambda rj: rj[0] * k + rj[1]  # noqa: E731
    angles, types = [], []
    for r in range(n):
        for j in range(k):
            a = (r, j)
            b = nxt(*a)
            c = nxt(*b) if b is not None else None
            if c is not None:
                angles.append((idx(a), idx(b), idx(c)))
                types.append(PITCH)
            u = up(*a)
            uu = up(*u) if u is not None else None
            if uu is not None:
                angles.append((idx(a), idx(u), idx(uu)))
                types.append(LONG_ANGLE)
    quad = []
    for r in range(n):
        for j in range(k):
            a = (r, j)
            b = nxt(*a)
            if b is None:
                continue
            a2, b2 = up(*a), up(*b)
            if a2 is None or b2 is None:
                continue
            A, B, A2, B2 = idx(a), idx(b), idx(a2), idx(b2)
            quad += [(B, A, A2), (A, B, B2), (B, B2, A2), (B2, A2, A)]
    quad = np.array(quad, dtype=np.int64).reshape(-1, 3)
    qth = _angle(x, quad)
    angles = np.array(angles, dtype=np.int64).reshape(-1, 3)
    types = np.array(types, dtype=np.int64)
    qtype = np.where(qth < np.pi / 2, QUAD_ACUTE, QUAD_OBTUSE)
    angles = np.concatenate([angles, quad])
    angle_type = np.concatenate([types, qtype])
    r0 = np.linalg.norm(x[bonds[:, 0]] - x[bonds[:, 1]], axis=1)
    th0 = _angle(x, angles)
    # A longitudinal angle is exactly straight; keep it exactly pi.
    th0[angle_type == LONG_ANGLE] = np.pi
    return Topology(tube, x, bonds, bond_type, r0, angles, angle_type, th0)


@lru_cache(maxsize=8)
def microtubule_topology() -> Topology:
    """The paper's microtubule: ``tube_topology(Tube(48, 13, 3))``.

    624 monomers (alpha tubulin on even turns, beta on odd ones), 1232 bonds,
    3648 angles; resting values 5.15639 nm / 5.0 nm and 153.023 / 180 / 77.0694 /
    102.931 degrees.
    """
    return tube_topology(Tube(48, 13, 3))


def tubulin_kind(num_turns: int = 48, per_turn: int = 13) -> np.ndarray:
    """``[N]`` array of 'alpha' / 'beta' labels, alternating along each protofilament."""
    return np.where(np.repeat(np.arange(num_turns), per_turn) % 2 == 0, "alpha", "beta")


def parse_params(text: str, on_grid: bool = False) -> np.ndarray:
    """Parse ``"30,30,30,30,30"`` into a float array ``[5]`` (zJ units).

    Raises ``ValueError`` with a one-line message for the wrong count, a non-number,
    a non-positive value, or (with ``on_grid``) a value outside ``GRID_VALUES``.
    """
    parts = [s for s in str(text).replace(" ", "").split(",") if s != ""]
    if len(parts) != len(PARAM_NAMES):
        raise CGSurrogateError(
            f"strength parameters {text!r}: need {len(PARAM_NAMES)} comma-separated values "
            f"({', '.join(PARAM_NAMES)}), got {len(parts)}"
        )
    try:
        vals = np.array([float(s) for s in parts])
    except ValueError:
        raise CGSurrogateError(f"strength parameters {text!r}: not all values are numbers") from None
    if not np.all(np.isfinite(vals)) or np.any(vals <= 0):
        raise CGSurrogateError(f"strength parameters {text!r}: values must be positive and finite")
    if on_grid:
        bad = [v for v in vals if v not in GRID_VALUES]
        if bad:
            raise CGSurrogateError(
                f"strength parameter value {bad[0]:g} is outside the grid {list(GRID_VALUES)}"
            )
    return vals


def tube_system_spec(topology: Topology, name: str | None = None):
    """The :class:`cgsurrogate.core.system_spec.SystemSpec` of a tube topology under the bending
    protocol: the five strengths (zJ), 50 ag monomers, the first two turns clamped, the last two
    loaded with ``LOAD_FORCE_KJMOL_NM`` along -y, alpha/beta tubulin on even/odd turns, the
    resting geometry and the bonds."""
    from cgsurrogate.core.system_spec import SystemSpec

    t = topology.tube
    n = topology.num_nodes
    return SystemSpec(
        name=name or f"microtubule Tube({t.n},{t.k},{t.p})", num_particles=n,
        param_names=PARAM_NAMES, param_units=PARAM_UNITS, masses=(MONOMER_MASS_AMU,) * n,
        clamp_nodes=topology.ring_nodes([0, 1]), load_nodes=topology.ring_nodes([-2, -1]),
        load_force=(0.0, -LOAD_FORCE_KJMOL_NM, 0.0), default_params=(30.0,) * len(PARAM_NAMES),
        reference_positions=topology.positions, bonds=topology.bonds,
        particle_types=np.repeat(np.arange(t.n), t.k) % 2, type_names=("alpha", "beta"), type_label="tubulin")


@lru_cache(maxsize=1)
def microtubule_spec():
    """The paper's microtubule (``Tube(48, 13, 3)``) as a ``SystemSpec``: what checkpoints of its
    surrogates carry and what the wrappers read instead of this module's constants."""
    return tube_system_spec(microtubule_topology())
