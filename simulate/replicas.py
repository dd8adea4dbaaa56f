"""Run a batch of microtubule replicas through a loading protocol (OpenMM or the numba engine).

With OpenMM all replicas live in one ``System`` (see :mod:`cgsurrogate.simulate.openmm_system`), so a
batch of parameter sets is one simulation; the numba engine (:mod:`cgsurrogate.simulate.numba_engine`)
advances the same replicas with compiled CPU kernels. For every saved frame the per-particle
energy is the LAMMPS ``pe/atom`` split of the saved positions in float64: computed by
:class:`cgsurrogate.simulate.energy.TrueEnergy` (torch) for OpenMM, and by the numba engine from its
own term energies (equal to TrueEnergy's to 1e-10, tested; so a numba worker never imports torch).
Its sum over the replicas is checked against the internal (bond + angle) energy the engine reports
for the same coordinates.
"""
from __future__ import annotations

import time

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError

from cgsurrogate.simulate.integrator import advance, protocol_integrator
from cgsurrogate.simulate.microtubule import Topology, microtubule_topology
from cgsurrogate.simulate.openmm_system import (
    build_microtubule_system,
    get_platform,
    microtubule_positions,
    platform_properties,
)
from cgsurrogate.simulate.protocol import REST_CRITERION, Protocol

#: Largest relative difference allowed between OpenMM's internal energy and the torch sum.
ENERGY_CHECK_RTOL = 1e-4


class SimulationError(RuntimeError):
    """A run became unstable (non-finite coordinates) or failed its energy check."""


#: Engines that run the protocol: OpenMM (any platform) or the compiled CPU kernels of
#: :mod:`cgsurrogate.simulate.numba_engine` (the ``[fast]`` extra).
ENGINES = ("openmm", "numba")


def run_replicas(
    params,
    protocol: Protocol | None = None,
    platform: str | None = None,
    seed: int = 0,
    topology: Topology | None = None,
    progress: bool = False,
    threads: int | None = None,
    integrator: str | None = None,
    engine: str = "openmm",
    settle_device: str | None = None,
) -> dict:
    """Simulate ``R`` replicas through a protocol and collect the frames.

    Parameters
    ----------
    params : array [R, 5]
        Strength parameters per replica (zJ/nm^2, zJ/rad^2).
    protocol : Protocol, optional
        Defaults to :meth:`Protocol.paper`.
    platform : str, optional
        OpenMM platform name ("CUDA", "OpenCL", "CPU", "Reference"); default the fastest. The
        numba engine runs on the CPU only (``None`` or "CPU").
    seed : int
        Langevin random seed (``0`` is replaced by 1: OpenMM treats 0 as "random").
    topology : Topology, optional
    progress : bool
        Show a tqdm progress bar over integration chunks.
    threads : int, optional
        CPU platform thread count (OpenMM; the numba engine uses one thread).
    integrator : "custom" or "host", optional
        How the per-step ramp is driven (:mod:`cgsurrogate.simulate.integrator`); default
        "host" on the CPU and Reference platforms (faster there), "custom" on GPUs. OpenMM only.
    engine : "openmm" or "numba"
        What integrates: OpenMM, or the compiled CPU kernels (same force field, same Langevin
        "middle" scheme and per-step ramp; needs the ``[fast]`` extra).

    Returns
    -------
    dict with
        ``params`` float64 [R, 5];
        ``positions`` float64 [R, F, N, 3] nm (each replica in its own frame, offsets removed);
        ``velocities`` float64 [R, F, N, 3] nm/ps;
        ``forces`` float64 [R, F, N, 3] kJ/mol/nm (internal force, bonds + angles);
        ``energies`` float64 [R, F, N] kJ/mol (per-particle split);
        ``steps`` int64 [F];
        ``engine_energy`` float64 [F] (internal energy of all replicas as the engine computes it,
        kJ/mol; also under its old name ``openmm_energy``);
        ``energy_check`` float (largest relative difference between it and the per-particle sums);
        the rest measures of :func:`rest_measures` [R] (``residual_force``, ``at_rest``, ``tip_motion_nm``,
        ``settle_tip_shift_nm``, ``settle_max_shift_nm``, ``settle_iterations``); when the protocol settles
        (``settle_tol > 0``) the last frame is the settled state (velocities zero);
        ``platform`` str; ``engine`` str; ``timing`` dict (seconds: ``integration``, with the engine's
        set-up, frame forces and the settle stage, ``settle``, that stage alone, and ``energies``, the
        per-particle split, checks and rest measures).
    """
    protocol = protocol or Protocol.paper()
    topo = topology or microtubule_topology()
    t0 = time.perf_counter()
    if engine == "numba":
        if platform and platform.upper() != "CPU":
            raise CGSurrogateError(f"the numba engine runs on the CPU only, not on platform {platform!r}")
        from cgsurrogate.simulate.numba_engine import simulate_frames

        fr = simulate_frames(params, protocol, seed=int(seed) if seed else 1, topology=topo, progress=progress)
    elif engine == "openmm":
        fr = _openmm_frames(params, protocol, platform, seed, topo, progress, threads, integrator, settle_device)
    else:
        raise CGSurrogateError(f"engine {engine!r}: expected one of {ENGINES}")
    t1 = time.perf_counter()
    pos, vel, frc, eng_e = fr["positions"], fr["velocities"], fr["forces"], fr["internal_energy"]
    R, F, N = pos.shape[:3]
    finite = np.isfinite(pos).all(axis=(0, 2, 3))
    if not finite.all():
        step = protocol.save_steps[int(np.argmin(finite))]
        raise SimulationError(
            f"simulation became unstable (non-finite positions) at step {step}; parameters {fr['params'].tolist()}"
        )

    if "energies" in fr:  # the numba engine splits its own term energies (equal to TrueEnergy's, tested)
        energies = fr["energies"]
    else:
        import torch

        from cgsurrogate.simulate.energy import TrueEnergy

        te = TrueEnergy(topo)
        with torch.no_grad():
            _, per = te(
                torch.from_numpy(pos.reshape(R * F, N, 3)),
                torch.from_numpy(np.repeat(fr["params"], F, axis=0)),
            )
        energies = per.numpy().reshape(R, F, N)
    tot = energies.sum(axis=(0, 2))
    check = float(np.max(np.abs(tot - eng_e) / np.maximum(np.abs(eng_e), 1e-12)))
    if check > ENERGY_CHECK_RTOL:
        raise SimulationError(
            f"per-particle energies sum to {tot.tolist()} but the {engine} engine reports {eng_e.tolist()} kJ/mol "
            f"(relative difference {check:.2e})"
        )
    rest = rest_measures(pos, frc, protocol, fr["clamp_nodes"], fr["load_nodes"], topo, settle=fr.get("settle"))
    timing = {"integration": t1 - t0, "energies": time.perf_counter() - t1,
              "settle": float(fr["settle"]["settle_seconds"]) if fr.get("settle") else 0.0}
    return {
        **rest,
        "params": fr["params"].copy(),
        "positions": pos,
        "velocities": vel,
        "forces": frc,
        "energies": energies,
        "steps": np.asarray(protocol.save_steps, dtype=np.int64),
        "engine_energy": eng_e,
        "openmm_energy": eng_e,
        "energy_check": check,
        "platform": fr["platform"],
        "engine": engine,
        "timing": timing,
    }


def _openmm_frames(params, protocol, platform, seed, topo, progress, threads, integrator, settle_device=None) -> dict:
    """The protocol in OpenMM (one System of R replicas): frames as :func:`numba_engine.simulate_frames` returns them."""
    import openmm
    from openmm import unit

    system, info = build_microtubule_system(params, topo, load_force=protocol.load)
    R, N = info.num_replicas, info.num_nodes
    plat = get_platform(platform)
    kind = integrator or ("host" if plat.getName() in ("CPU", "Reference") else "custom")
    integ = protocol_integrator(protocol, info.load_scale_param, seed, kind)
    props = platform_properties(plat)
    if threads and plat.getName() == "CPU":
        props["Threads"] = str(int(threads))
    ctx = openmm.Context(system, integ, plat, props)
    ctx.setPositions(microtubule_positions(R, topo))
    ctx.setVelocities(np.zeros((R * N, 3)))
    ctx.setParameter(info.load_scale_param, protocol.load_scale(0))
    offsets = info.offsets

    F = protocol.num_frames
    pos = np.empty((R, F, N, 3))
    vel = np.empty((R, F, N, 3))
    frc = np.empty((R, F, N, 3))
    omm_e = np.empty(F)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=protocol.total_steps, desc=f"{R} replicas", unit="step", leave=False)
    kj = unit.kilojoule_per_mole
    settled = None
    for i, step in enumerate(protocol.save_steps):
        advance(ctx, integ, protocol, info.load_scale_param, step - protocol.save_every, step)
        if bar is not None:
            bar.update(protocol.save_every)
        if i == F - 1 and protocol.settles:
            settled = _openmm_settle(ctx, info, protocol, topo, settle_device)
        st = ctx.getState(
            getPositions=True, getVelocities=True, getForces=True, getEnergy=True, groups=set(info.internal_groups)
        )
        x = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer).reshape(R, N, 3)
        pos[:, i] = x - offsets[:, None]
        if not np.all(np.isfinite(x)):
            pos[:, i + 1:] = np.nan
            break
        vel[:, i] = st.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond).reshape(R, N, 3)
        frc[:, i] = st.getForces(asNumpy=True).value_in_unit(kj / unit.nanometer).reshape(R, N, 3)
        omm_e[i] = st.getPotentialEnergy().value_in_unit(kj)
    if bar is not None:
        bar.close()
    return {"positions": pos, "velocities": vel, "forces": frc, "internal_energy": omm_e, "params": info.params,
            "clamp_nodes": info.clamp_nodes, "load_nodes": info.load_nodes, "platform": plat.getName(),
            "settle": settled}


def _openmm_settle(ctx, info, protocol, topo=None, device=None):
    """The settle stage in an OpenMM Context (:func:`cgsurrogate.simulate.settle.settle_replicas` with the
    Context's forces at the full load, or on a torch ``device`` with the exact field, see
    :func:`run_replicas`); leaves the settled positions and zero velocities in it.
    Returns the settle measures, or ``None`` if the dynamic state is not finite."""
    from openmm import unit

    from cgsurrogate.simulate.settle import settle_replicas

    R, N = info.num_replicas, info.num_nodes
    off = info.offsets[:, None]
    x = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer).reshape(R, N, 3)
    if not np.isfinite(x).all():
        return None
    ctx.setParameter(info.load_scale_param, protocol.load_scale(protocol.total_steps))
    device = _settle_device(ctx, device)
    if device == "context":
        fu = unit.kilojoule_per_mole / unit.nanometer

        def net_forces(xr, active):
            ctx.setPositions((xr + off).reshape(-1, 3))
            return ctx.getState(getForces=True).getForces(asNumpy=True).value_in_unit(fu).reshape(R, N, 3)

        out = settle_replicas(x - off, net_forces, info.clamp_nodes, info.load_nodes, protocol)
    else:
        import torch

        from cgsurrogate.simulate.settle_torch import exact_net_forces, fire_settle_torch

        net = exact_net_forces(info.params, info.load_nodes, info.load_force, topo, device)

        def fire(x0, free, load, tol, max_iter):
            res = fire_settle_torch(torch.as_tensor(x0, device=device), net, free, load, tol, max_iter)
            return {k: t.cpu().numpy() for k, t in res.items()}

        out = settle_replicas(x - off, None, info.clamp_nodes, info.load_nodes, protocol, fire=fire)
        out["settle_device"] = str(device)
    ctx.setPositions((out.pop("positions") + off).reshape(-1, 3))
    ctx.setVelocities(np.zeros((R * N, 3)))
    return out


def _settle_device(ctx, device):
    """``device`` checked, or the default (see :func:`run_replicas`)."""
    if device is None:
        if ctx.getPlatform().getName() in ("CUDA", "OpenCL", "HIP"):
            import torch

            if torch.cuda.is_available():
                return "cuda"
        return "context"
    if device != "context":
        import torch

        try:
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError) as exc:
            raise CGSurrogateError(f"settle_device {device!r}: not a usable torch device ({exc})") from None
    return device


#: Settle measures recorded per run (NaN / -1 when the protocol does not settle).
SETTLE_MEASURES = ("settle_tip_shift_nm", "settle_max_shift_nm", "settle_iterations")


def rest_measures(positions, forces, protocol: Protocol, clamp_nodes, load_nodes, topology=None, settle=None) -> dict:
    """How close each run is to rest at its last frame (see :data:`REST_CRITERION`).

    Parameters
    ----------
    positions : array [R, F, N, 3] nm
    forces : array [R, F, N, 3] kJ/mol/nm (internal)
    protocol : Protocol (load, its scale at the last frame, the criterion's ``settle_tol``)
    clamp_nodes, load_nodes : int arrays
    settle : dict, optional
        The settle measures (:func:`cgsurrogate.simulate.settle.settle_replicas`) when the last frame is settled.

    Returns
    -------
    dict: ``residual_force`` [R] (max over free particles of |internal + load force| at the last
    frame / full load per particle: the criterion), ``at_rest`` bool [R] (``residual_force`` at most
    ``protocol.rest_criterion()["residual_force"]``), ``tip_motion_nm`` [R] (|tip deflection change|
    between the last two frames, nm; the deflection itself for a 1-frame run; recorded),
    ``settle_tip_shift_nm``, ``settle_max_shift_nm`` [R] (nm) and ``settle_iterations`` int [R] (NaN, NaN
    and -1 without a settle).
    """
    positions, forces = np.asarray(positions), np.asarray(forces)
    R = positions.shape[0]
    d = tip_deflection(positions[:, -2:], topology)
    motion = np.abs(d[:, -1] - d[:, 0]) if positions.shape[1] > 1 else np.abs(d[:, -1])
    net = forces[:, -1].copy()
    net[:, load_nodes, 1] -= protocol.load * protocol.load_scale(protocol.total_steps)
    free = np.setdiff1d(np.arange(positions.shape[2]), clamp_nodes)
    resid = np.linalg.norm(net[:, free], axis=-1).max(-1) / max(abs(protocol.load), 1e-300)
    at_rest = resid <= protocol.rest_criterion()["residual_force"]
    out = {"tip_motion_nm": motion, "residual_force": resid, "at_rest": at_rest,
           "settle_tip_shift_nm": np.full(R, np.nan), "settle_max_shift_nm": np.full(R, np.nan),
           "settle_iterations": np.full(R, -1, dtype=np.int64)}
    if settle is not None:
        for k in SETTLE_MEASURES:
            out[k] = np.asarray(settle[k])
    return out


def tip_deflection(positions: np.ndarray, topology: Topology | None = None) -> np.ndarray:
    """Deflection of the loaded end along -y: ``-(mean y of the last two rings)``, nm.

    Parameters
    ----------
    positions : array [..., N, 3] nm (replica frame, as returned by :func:`run_replicas`)

    Returns
    -------
    array [...] nm; positive when the tip moved in -y (the resting tube is centred on the z axis).
    """
    topo = topology or microtubule_topology()
    tip = topo.ring_nodes([-2, -1])
    rest = topo.positions[tip, 1].mean()
    return -(np.asarray(positions)[..., tip, 1].mean(-1) - rest)
