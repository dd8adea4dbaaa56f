"""The coarse-grained microtubule as an OpenMM ``System``, with batch replicas.

One ``System`` holds ``R`` independent copies of the molecule ("replicas"), each with
its own five strength parameters and no interaction between copies, so a sweep keeps
one device busy with many parameter sets at once.

Force field (Scott & Mjolsness 2021, table 1) in the LAMMPS harmonic convention
``E = L (x - x0)^2``: OpenMM's ``HarmonicBondForce`` / ``HarmonicAngleForce`` use
``E = k/2 (x - x0)^2``, so ``k = 2 L`` (converted from zJ to kJ/mol).

Force groups
------------
``BOND_GROUP`` (0) bonds, ``ANGLE_GROUP`` (1) angles: together the internal energy,
which the torch :class:`cgsurrogate.simulate.energy.TrueEnergy` reproduces and splits per particle.
``LOAD_GROUP`` (2): the external load, a ``CustomExternalForce`` ``E = s f y`` on each
loaded particle (force ``-s f`` along y), with the global parameter ``s``
(``LOAD_SCALE_PARAM``, the ramp fraction: 1 = full load).

Clamping: clamped particles have mass 0, so every OpenMM integrator and
``openmm.LocalEnergyMinimizer`` keep them fixed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.microtubule import (
    LOAD_FORCE_KJMOL_NM,
    MONOMER_MASS_AMU,
    PARAM_NAMES,
    ZJ_TO_KJMOL,
    Topology,
    microtubule_topology,
)

BOND_GROUP, ANGLE_GROUP, LOAD_GROUP = 0, 1, 2
#: Force groups whose energy is the internal (bond + angle) potential energy.
INTERNAL_GROUPS = frozenset({BOND_GROUP, ANGLE_GROUP})
#: Name of the global parameter scaling the load (ramp fraction).
LOAD_SCALE_PARAM = "load_scale"
#: Distance (nm) between neighbouring replicas along x; the tube is 26 nm wide.
REPLICA_SPACING_NM = 40.0


@dataclass
class SystemInfo:
    """What :func:`build_microtubule_system` put where.

    Attributes
    ----------
    num_replicas : int
    num_nodes : int
        Particles per replica (624 for the microtubule).
    params : ndarray [R, 5]
        Strength parameters of each replica (zJ/nm^2, zJ/rad^2).
    clamp_nodes, load_nodes : ndarray int
        Node indices (within one replica) that are clamped / loaded.
    load_force : float
        Full load per loaded node (kJ/mol/nm, along -y).
    mass : float
        Mass of each unclamped particle (amu).
    offsets : ndarray [R, 3]
        Where each replica's copy sits relative to the resting geometry (nm).
    """

    num_replicas: int
    num_nodes: int
    params: np.ndarray
    clamp_nodes: np.ndarray
    load_nodes: np.ndarray
    load_force: float
    mass: float
    offsets: np.ndarray
    bond_group: int = BOND_GROUP
    angle_group: int = ANGLE_GROUP
    load_group: int = LOAD_GROUP
    internal_groups: frozenset = field(default_factory=lambda: INTERNAL_GROUPS)
    load_scale_param: str = LOAD_SCALE_PARAM

    def replica_slice(self, r: int) -> slice:
        """Particle index range of replica ``r`` in the System."""
        return slice(r * self.num_nodes, (r + 1) * self.num_nodes)


def replica_setup(params, topology=None, clamp_nodes=None, load_nodes=None):
    """Checked inputs of a set of replicas, shared by the engines.

    Parameters
    ----------
    params : array [R, 5] (or [5]) of strengths (zJ)
    topology : Topology, optional (default the paper's tube)
    clamp_nodes, load_nodes : int arrays, optional (default the first / last two rings)

    Returns
    -------
    topology, params [R, 5] float64, clamp nodes, load nodes (int64 arrays)

    Raises
    ------
    CGSurrogateError
        Bad parameters, or node indices outside the topology.
    """
    topo = topology or microtubule_topology()
    p = _check_params(params)
    N = topo.num_nodes
    clamp = topo.ring_nodes([0, 1]) if clamp_nodes is None else np.asarray(clamp_nodes, dtype=np.int64)
    load = topo.ring_nodes([-2, -1]) if load_nodes is None else np.asarray(load_nodes, dtype=np.int64)
    for name, nodes in (("clamp_nodes", clamp), ("load_nodes", load)):
        if nodes.size and (nodes.min() < 0 or nodes.max() >= N):
            raise CGSurrogateError(f"{name} must lie in 0..{N - 1}")
    return topo, p, clamp, load


def _check_params(params) -> np.ndarray:
    p = np.asarray(params, dtype=np.float64)
    if p.ndim == 1:
        p = p[None]
    if p.ndim != 2 or p.shape[1] != len(PARAM_NAMES) or p.shape[0] < 1:
        raise CGSurrogateError(
            f"strength parameters have shape {tuple(np.shape(params))}, expected [R, {len(PARAM_NAMES)}]"
        )
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise CGSurrogateError("strength parameters must be positive and finite")
    return p


def replica_offsets(num_replicas: int) -> np.ndarray:
    """Offsets ``[R, 3]`` (nm) laying replicas side by side along x, ``REPLICA_SPACING_NM`` apart."""
    off = np.zeros((num_replicas, 3))
    off[:, 0] = REPLICA_SPACING_NM * np.arange(num_replicas)
    return off


def microtubule_positions(num_replicas: int = 1, topology: Topology | None = None) -> np.ndarray:
    """Resting positions of ``R`` replicas, ``[R * N, 3]`` nm, replicas offset along x.

    Parameters
    ----------
    num_replicas : int
    topology : Topology, optional
        Defaults to the microtubule ``Tube(48, 13, 3)``.
    """
    topo = topology or microtubule_topology()
    off = replica_offsets(num_replicas)
    return (topo.positions[None] + off[:, None]).reshape(-1, 3)


def build_microtubule_system(
    params,
    topology: Topology | None = None,
    clamp_nodes=None,
    load_nodes=None,
    load_force: float = LOAD_FORCE_KJMOL_NM,
    mass: float = MONOMER_MASS_AMU,
):
    """Build an OpenMM System of ``R`` independent microtubule replicas.

    Parameters
    ----------
    params : array [R, 5] (or [5])
        Strengths (LatAssoc, LongAssoc, LatAngle, LongAngle, QuadAngles) in zJ/nm^2 and
        zJ/rad^2, one row per replica.
    topology : Topology, optional
        Defaults to the microtubule.
    clamp_nodes : array of int, optional
        Nodes held fixed (mass 0); defaults to the first two rings (nodes 0-25).
    load_nodes : array of int, optional
        Nodes pulled along -y; defaults to the last two rings (nodes 598-623).
    load_force : float
        Full load on each loaded node, kJ/mol/nm (default 9e-14 N).
    mass : float
        Particle mass, amu (default 50 ag).

    Returns
    -------
    system : openmm.System
        ``R * N`` particles; replica ``r`` holds particles ``r N .. (r + 1) N - 1``.
    info : SystemInfo
    """
    import openmm

    topo, p, clamp, load = replica_setup(params, topology, clamp_nodes, load_nodes)
    R, N = p.shape[0], topo.num_nodes
    if not np.isfinite(load_force):
        raise CGSurrogateError("load_force must be finite")

    system = openmm.System()
    masses = np.full(N, float(mass))
    masses[clamp] = 0.0
    for _ in range(R):
        for m in masses:
            system.addParticle(float(m))

    kb = 2.0 * p[:, topo.bond_param] * ZJ_TO_KJMOL  # [R, Nb] kJ/mol/nm^2
    ka = 2.0 * p[:, topo.angle_param] * ZJ_TO_KJMOL  # [R, Na] kJ/mol/rad^2
    bonds = openmm.HarmonicBondForce()
    bonds.setForceGroup(BOND_GROUP)
    angles = openmm.HarmonicAngleForce()
    angles.setForceGroup(ANGLE_GROUP)
    ext = openmm.CustomExternalForce(f"{LOAD_SCALE_PARAM} * f * y")
    ext.addGlobalParameter(LOAD_SCALE_PARAM, 1.0)
    ext.addPerParticleParameter("f")
    ext.setForceGroup(LOAD_GROUP)
    b0, b1 = topo.bonds[:, 0].tolist(), topo.bonds[:, 1].tolist()
    r0 = topo.bond_r0.tolist()
    a0, a1, a2 = (topo.angles[:, c].tolist() for c in range(3))
    th0 = topo.angle_theta0.tolist()
    for r in range(R):
        o = r * N
        kbr, kar = kb[r].tolist(), ka[r].tolist()
        for i in range(len(b0)):
            bonds.addBond(o + b0[i], o + b1[i], r0[i], kbr[i])
        for i in range(len(a0)):
            angles.addAngle(o + a0[i], o + a1[i], o + a2[i], th0[i], kar[i])
        for n in load.tolist():
            ext.addParticle(o + n, [float(load_force)])
    system.addForce(bonds)
    system.addForce(angles)
    system.addForce(ext)
    info = SystemInfo(
        num_replicas=R,
        num_nodes=N,
        params=p,
        clamp_nodes=clamp,
        load_nodes=load,
        load_force=float(load_force),
        mass=float(mass),
        offsets=replica_offsets(R),
    )
    return system, info


def get_platform(name: str | None = None):
    """An OpenMM platform by name, or the fastest available (CUDA, OpenCL, CPU, Reference).

    Raises ``ValueError`` naming the available platforms when ``name`` is not one of them.
    """
    import openmm

    avail = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name:
        for a in avail:
            if a.lower() == name.lower():
                return openmm.Platform.getPlatformByName(a)
        raise CGSurrogateError(f"OpenMM platform {name!r} is not available here (available: {', '.join(avail)})")
    for pref in ("CUDA", "HIP", "OpenCL", "CPU", "Reference"):
        if pref in avail:
            return openmm.Platform.getPlatformByName(pref)
    return openmm.Platform.getPlatform(0)


def platform_properties(platform) -> dict:
    """Default properties for a platform: double precision on GPUs is not needed; mixed is used."""
    name = platform.getName()
    if name in ("CUDA", "OpenCL", "HIP"):
        return {"Precision": "mixed"}
    return {}
