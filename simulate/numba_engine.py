"""The bending protocol on the CPU with compiled numba kernels (the ``[fast]`` extra).

The same model and scheme as the OpenMM path (:mod:`cgsurrogate.simulate.openmm_system`,
:mod:`cgsurrogate.simulate.integrator`): harmonic bonds and angles in the LAMMPS convention with
the per-term constants ``build_microtubule_system`` uses, clamped particles (mass 0) never
moved, the load ``fmax * min(s / ramp, 1)`` in the force of step ``s``, and OpenMM's Langevin
"middle" step. Replicas are independent copies, each in its own frame (no offsets). The kernels
are in :mod:`cgsurrogate.simulate.numba_kernels`.

Thermal noise: a seeded xoshiro256+ stream per replica with uniform kicks of unit variance
(LAMMPS's ``fix langevin`` draws uniform numbers too); at 0 K no numbers are drawn and a run is
deterministic. Runs at a temperature above 0 differ from OpenMM's only by the random stream.

Units: nm, ps, amu, kJ/mol, K.
"""
from __future__ import annotations

import math

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError, require_extra
from cgsurrogate.simulate.microtubule import MONOMER_MASS_AMU, ZJ_TO_KJMOL, Topology

#: Boltzmann constant in kJ/mol/K (OpenMM's ``BOLTZ``, from the exact SI constants).
BOLTZ_KJMOL_K = 1.380649e-23 * 6.02214076e23 / 1000.0
_MASK64 = (1 << 64) - 1


def kernels():
    """The compiled kernel module, or :class:`~cgsurrogate.core.errors.MissingExtraError` naming ``[fast]``."""
    require_extra("numba", "fast", "the numba engine (engine='numba', --engine numba)")
    from cgsurrogate.simulate import numba_kernels

    return numba_kernels


def _splitmix64(state: int):
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def rng_states(seed: int, num_replicas: int) -> np.ndarray:
    """xoshiro256+ states ``[R, 4]`` uint64 for replica streams of ``seed`` (splitmix64-seeded)."""
    out = np.empty((num_replicas, 4), dtype=np.uint64)
    for r in range(num_replicas):
        s = (int(seed) * 0x100000001B3 + r) & _MASK64
        for w in range(4):
            s, out[r, w] = _splitmix64(s)
    return out


class NumbaEngine:
    """``R`` microtubule replicas advanced by the compiled Langevin-middle step.

    Parameters
    ----------
    params : array [R, 5] (or [5])
        Strengths in zJ/nm^2 and zJ/rad^2 (LatAssoc, LongAssoc, LatAngle, LongAngle, QuadAngles).
    protocol : Protocol
        Step, temperature, friction, load and ramp.
    topology : Topology, optional
        Defaults to the microtubule.
    seed : int
        Noise seed.
    clamp_nodes, load_nodes : arrays of int, optional
        Default: the first two and the last two rings (as :func:`build_microtubule_system`).
    mass : float
        Particle mass, amu.

    Attributes
    ----------
    positions, velocities : ndarray [R, N, 3] (nm, nm/ps), starting at rest in the resting geometry.
    step : int
        Protocol steps taken.
    """

    def __init__(self, params, protocol, topology: Topology | None = None, seed: int = 1, clamp_nodes=None,
                 load_nodes=None, mass: float = MONOMER_MASS_AMU):
        from cgsurrogate.simulate.openmm_system import replica_setup

        self._k = kernels()
        topo, p, clamp, load = replica_setup(params, topology, clamp_nodes, load_nodes)
        R, N = p.shape[0], topo.num_nodes
        if not (np.isfinite(mass) and mass > 0):
            raise CGSurrogateError(f"mass {mass!r}: must be positive and finite")
        self.protocol, self.topology, self.params = protocol, topo, p
        self.clamp_nodes, self.load_nodes = clamp, load
        self.num_replicas, self.num_nodes = R, N

        straight = np.isclose(topo.angle_theta0, np.pi)
        order = np.concatenate([np.flatnonzero(~straight), np.flatnonzero(straight)])
        ang = topo.angles[order]
        th0 = topo.angle_theta0[order]
        nb, na = len(topo.bonds), len(ang)
        bi, bj = (np.ascontiguousarray(topo.bonds[:, c], dtype=np.int64) for c in range(2))
        aa, am, ac = (np.ascontiguousarray(ang[:, c], dtype=np.int64) for c in range(3))
        sth0 = np.where(straight[order], 0.0, np.sin(th0))
        cth0 = np.where(straight[order], -1.0, np.cos(th0))
        # contributions T: bond on i, on j, angle on a, c, m; each particle sums its own (CSR)
        owner = np.concatenate([np.stack([bi, bj], 1).ravel(), np.stack([aa, ac], 1).ravel(), am])
        idx = 3 * np.argsort(owner, kind="stable").astype(np.int64)
        ptr = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=N))]).astype(np.int64)
        self._top = (bi, bj, np.ascontiguousarray(topo.bond_r0, dtype=np.float64), aa, am, ac,
                     np.ascontiguousarray(cth0), np.ascontiguousarray(sth0), int((~straight).sum()), ptr, idx)
        self._angle_order = order
        kp = 2.0 * p * ZJ_TO_KJMOL
        self._k2b = np.ascontiguousarray(kp[:, topo.bond_param])
        self._k2a = np.ascontiguousarray(kp[:, topo.angle_param[order]])

        invm = np.full(N, 1.0 / float(mass))
        invm[clamp] = 0.0
        self._invm = invm
        self._fric_a = float(np.exp(-protocol.friction * protocol.timestep_ps))
        kt = BOLTZ_KJMOL_K * protocol.temperature
        b = math.sqrt(max(0.0, 1.0 - self._fric_a ** 2) * kt)
        self._noise = b * np.sqrt(invm)
        loadf = np.zeros(N)
        loadf[load] = -float(protocol.load)
        self._loadf = loadf
        self._rng = rng_states(seed, R)
        self._scratch = (np.empty(3 * nb), np.empty(6 * na), np.empty(6 * nb + 9 * na))
        self.positions = np.repeat(np.asarray(topo.positions, dtype=np.float64)[None], R, axis=0)
        self.velocities = np.zeros((R, N, 3))
        self.step = 0

    def advance(self, num_steps: int) -> None:
        """Take ``num_steps`` protocol steps (from :attr:`step`), every replica; raises
        :class:`CGSurrogateError` naming the parameters if a coordinate becomes non-finite."""
        EB, UV, T = self._scratch
        stop = self.step + int(num_steps)
        self._k.run_steps(self.positions, self.velocities, self._top, self._k2b, self._k2a, self._invm, self._noise,
                          self._loadf, EB, UV, T, self._rng, self.step, stop,
                          int(self.protocol.ramp_steps), float(self.protocol.timestep_ps), self._fric_a)
        self.step = stop

    def net_forces(self, positions, active=None):
        """Internal forces plus the full load, ``[R, N, 3]`` kJ/mol/nm, at ``positions`` ``[R, N, 3]`` nm; rows of
        replicas with ``active[r]`` False are zero."""
        x = np.ascontiguousarray(positions, dtype=np.float64)
        act = np.ones(x.shape[0], dtype=np.bool_) if active is None else np.ascontiguousarray(active, dtype=np.bool_)
        EB, UV, T = self._scratch
        F = np.zeros_like(x)
        self._k.internal_forces(x, self._top, self._k2b, self._k2a, F, act, EB, UV, T)
        F[act, :, 1] += self._loadf
        return F

    def settle(self) -> dict:
        """The protocol's settle stage (:func:`cgsurrogate.simulate.settle.settle_replicas`): positions become
        the settled ones, velocities zero. Returns the settle measures."""
        from cgsurrogate.simulate.numba_settle import fire_settle_compiled
        from cgsurrogate.simulate.settle import settle_replicas

        def fire(x0, free, load, tol, max_iter):
            return fire_settle_compiled(self, x0, free, load, tol, max_iter)

        out = settle_replicas(self.positions, self.net_forces, self.clamp_nodes, self.load_nodes, self.protocol, fire=fire)
        self.positions[:] = out.pop("positions")
        self.velocities[:] = 0.0
        return out

    def forces_energies(self, positions=None, per_particle: bool = False):
        """Internal forces ``[R, N, 3]`` kJ/mol/nm and energies ``[R]`` kJ/mol (bonds + angles, no load)
        at ``positions`` ``[R, N, 3]`` nm (default: the current ones); with ``per_particle`` also the
        per-particle split ``[R, N]`` kJ/mol (:func:`split_energies`)."""
        x = self.positions if positions is None else np.ascontiguousarray(positions, dtype=np.float64)
        R = x.shape[0]
        if x.shape != (R, self.num_nodes, 3) or R != self.num_replicas:
            raise CGSurrogateError(f"positions have shape {x.shape}, expected {(self.num_replicas, self.num_nodes, 3)}")
        EB, UV, T = self._scratch
        F = np.empty_like(x)
        EB_ = np.empty((R, self._k2b.shape[1]))
        EA_ = np.empty((R, self._k2a.shape[1]))
        self._k.forces_energies(x, self._top, self._k2b, self._k2a, F, EB_, EA_, EB, UV, T)
        if per_particle:
            ea = np.empty_like(EA_)
            ea[:, self._angle_order] = EA_  # back to the topology's angle order
            return F, EB_.sum(1) + EA_.sum(1), split_energies(self.topology, EB_, ea)
        return F, EB_.sum(1) + EA_.sum(1)


def split_energies(topology: Topology, bond_energy, angle_energy) -> np.ndarray:
    """Per-particle energies ``[R, N]`` kJ/mol from term energies, the LAMMPS ``pe/atom`` split of
    :class:`~cgsurrogate.simulate.energy.TrueEnergy`: half of each bond to each end, a third of each angle
    to each of its particles.

    Parameters
    ----------
    topology : Topology
    bond_energy : array [R, Nb] kJ/mol (in ``topology.bonds`` order)
    angle_energy : array [R, Na] kJ/mol (in ``topology.angles`` order)
    """
    R, N = bond_energy.shape[0], topology.num_nodes
    out = np.zeros((R, N))
    half, third = 0.5 * bond_energy, angle_energy / 3.0
    for r in range(R):
        for col in range(2):
            out[r] += np.bincount(topology.bonds[:, col], weights=half[r], minlength=N)
        for col in range(3):
            out[r] += np.bincount(topology.angles[:, col], weights=third[r], minlength=N)
    return out


def simulate_frames(params, protocol, seed: int = 1, topology: Topology | None = None, progress: bool = False) -> dict:
    """Run the protocol with :class:`NumbaEngine` and collect the frames :func:`run_replicas` saves.

    Returns
    -------
    dict: ``positions``, ``velocities``, ``forces`` [R, F, N, 3] (nm, nm/ps, internal kJ/mol/nm),
    ``internal_energy`` [F] (bonds + angles of all replicas, kJ/mol), ``energies`` [R, F, N] (the
    per-particle split, kJ/mol, computed here so a numba worker never imports torch), ``params`` [R, 5],
    ``clamp_nodes``, ``load_nodes``, ``platform`` ("numba CPU"), ``settle`` (the settle measures of
    :func:`cgsurrogate.simulate.settle.settle_replicas`, or ``None`` when the protocol does not settle;
    then the last frame is the settled state).
    """
    eng = NumbaEngine(params, protocol, topology, seed=seed)
    R, N, F = eng.num_replicas, eng.num_nodes, protocol.num_frames
    pos, vel, frc = (np.empty((R, F, N, 3)) for _ in range(3))
    per = np.empty((R, F, N))
    energy = np.empty(F)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=protocol.total_steps, desc=f"{R} replicas", unit="step", leave=False)
    settled = None
    for i in range(F):
        eng.advance(protocol.save_every)
        if bar is not None:
            bar.update(protocol.save_every)
        if i == F - 1 and protocol.settles and np.isfinite(eng.positions).all():
            settled = eng.settle()
        f, e, per[:, i] = eng.forces_energies(per_particle=True)
        pos[:, i], vel[:, i], frc[:, i] = eng.positions, eng.velocities, f
        energy[i] = e.sum()
    if bar is not None:
        bar.close()
    return {"positions": pos, "velocities": vel, "forces": frc, "internal_energy": energy, "energies": per,
            "params": eng.params.copy(),
            "clamp_nodes": eng.clamp_nodes, "load_nodes": eng.load_nodes, "platform": "numba CPU", "settle": settled}
