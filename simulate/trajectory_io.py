"""Extended-XYZ trajectories with per-particle energies: the project's one extended-XYZ writer.

The files follow the extended XYZ convention that ASE (``ase.io.read(path, ":")``) and OVITO
read. Units are ASE's (conversion factors from :mod:`cgsurrogate.core.units`): positions in
Angstrom, per-particle energies (``energies``) and the frame's total ``energy`` in eV,
``forces`` in eV/Angstrom; the velocity column ``vel`` is in Angstrom/ps. Every particle is the
dummy species ``X``. With a :class:`~cgsurrogate.core.system_spec.SystemSpec` the integer columns
``<type_label>`` (e.g. ``tubulin``: 0 alpha, 1 beta), ``clamped`` and ``loaded`` flag the
particles' types and the protocol's clamped and pulled particles, and the parameters are written
one key per name (``LatAssoc=30 ...``); without one, as ``params="..."``. The comment line of
each frame also holds ``step`` and the units.

The comment line and the columns are written here, without importing ASE (``ase.io`` takes 1.2-2 s
to import, longer than writing a sweep's trajectory); the tests read every file back with
``ase.io.read``. Columns carry 11 significant digits, because ASE's own writer rounds per-atom
columns to 8 decimals (1e-8 eV), a relative error of ~1e-5 on a microtubule monomer's energy
(~3e-4 eV).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from cgsurrogate.core.atomic import write_text_atomic
from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.core.units import KJ_PER_MOL_IN_EV, KJ_PER_MOL_NM_IN_EV_PER_ANGSTROM, NM_IN_ANGSTROM

UNITS_TEXT = "pos:Angstrom vel:Angstrom/ps forces:eV/Angstrom energies:eV energy:eV"


def write_extxyz(path, positions, energies, velocities=None, forces=None, steps=None, params=None,
                 system_spec=None) -> Path:
    """Write configurations and their per-particle energies as extended XYZ, atomically.

    Parameters
    ----------
    path : path of the ``.xyz`` / ``.extxyz`` file
    positions : array [F, N, 3] (or [N, 3]) nm
    energies : array [F, N] (or [N]) kJ/mol (per particle)
    velocities : array [F, N, 3] nm/ps, optional (column ``vel``)
    forces : array [F, N, 3] kJ/mol/nm, optional (column ``forces``)
    steps : array [F] int, optional (``step`` of each frame; default the frame index)
    params : array [P] (every frame) or [F, P], optional
    system_spec : SystemSpec, optional
        Names the parameters and adds the type, ``clamped`` and ``loaded`` columns.

    Returns
    -------
    Path of the written file.

    Raises
    ------
    CGSurrogateError
        Arrays of inconsistent shapes, or an unwritable path (the message names ``path``).
    """
    path = Path(path)
    pos = np.asarray(positions, dtype=np.float64)
    en = np.asarray(energies, dtype=np.float64)
    single = pos.ndim == 2
    if single:
        pos, en = pos[None], en[None]
    if pos.ndim != 3 or pos.shape[2] != 3:
        raise CGSurrogateError(f"{path}: positions have shape {pos.shape}, expected [F, N, 3] (nm)")
    F, N, _ = pos.shape
    if en.shape != (F, N):
        raise CGSurrogateError(f"{path}: energies have shape {en.shape}, expected {(F, N)} (kJ/mol)")
    vel = _frames(velocities, (F, N, 3), single, "velocities", path)
    frc = _frames(forces, (F, N, 3), single, "forces", path)
    par = None
    if params is not None:
        par = np.asarray(params, dtype=np.float64)
        par = np.broadcast_to(par, (F, par.shape[-1])) if par.ndim == 1 else par
        if par.ndim != 2 or par.shape[0] != F:
            raise CGSurrogateError(f"{path}: params have shape {np.shape(params)}, expected [P] or [{F}, P]")
    spec = system_spec
    if spec is not None and spec.num_particles != N:
        raise CGSurrogateError(f"{path}: {N} particles, the system spec {spec.name!r} has {spec.num_particles}")

    cols, props = [pos * NM_IN_ANGSTROM], ["species:S:1", "pos:R:3"]
    if vel is not None:
        cols.append(vel * NM_IN_ANGSTROM)
        props.append("vel:R:3")
    if frc is not None:
        cols.append(frc * KJ_PER_MOL_NM_IN_EV_PER_ANGSTROM)
        props.append("forces:R:3")
    cols.append(en[..., None] * KJ_PER_MOL_IN_EV)
    props.append("energies:R:1")
    ints, int_props = [], []
    if spec is not None:
        if spec.particle_types is not None:
            ints.append(np.asarray(spec.particle_types))
            int_props.append(f"{spec.type_label}:I:1")
        for name, nodes in (("clamped", spec.clamp_nodes), ("loaded", spec.load_nodes)):
            flag = np.zeros(N, dtype=np.int64)
            flag[list(nodes)] = 1
            ints.append(flag)
            int_props.append(f"{name}:I:1")
    real = np.concatenate(cols, axis=-1)  # [F, N, R]
    fmt = "X " + " ".join(["%.10e"] * real.shape[-1]) + "".join([" %d"] * len(ints))
    int_block = np.stack(ints, axis=1) if ints else np.zeros((N, 0), dtype=np.int64)

    out = io.StringIO()
    for f in range(F):
        info = {"step": int(steps[f]) if steps is not None else f,
                "energy": float(en[f].sum() * KJ_PER_MOL_IN_EV)}
        if par is not None:
            if spec is not None and par.shape[1] == spec.num_params:
                info.update({n: float(v) for n, v in zip(spec.param_names, par[f])})
            else:
                info["params"] = par[f]
        info["units"] = UNITS_TEXT
        info["pbc"] = np.array([False, False, False])
        out.write(f"{N}\n")
        out.write(f"Properties={':'.join(props + int_props)} {_key_values(info)}\n")
        rows = np.concatenate([real[f], int_block], axis=1) if ints else real[f]
        np.savetxt(out, rows, fmt=fmt)
    return write_text_atomic(path, out.getvalue())


def _key_values(info: dict) -> str:
    """The comment line's ``key=value`` pairs in the extended XYZ convention: ints and floats as Python
    writes them (floats round-trip exactly), strings with a space and arrays quoted, booleans as T / F."""
    def one(v):
        if isinstance(v, (bool, np.bool_)):
            return "T" if v else "F"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            return repr(float(v))
        if isinstance(v, np.ndarray):
            return '"' + " ".join(one(x) for x in v.ravel()) + '"'
        text = str(v)
        return f'"{text}"' if (" " in text or "=" in text) else text

    return " ".join(f"{k}={one(v)}" for k, v in info.items())


def _frames(a, shape, single, what, path):
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    if single:
        a = a[None]
    if a.shape != shape:
        raise CGSurrogateError(f"{path}: {what} have shape {a.shape}, expected {list(shape)}")
    return a


__all__ = ["write_extxyz", "write_text_atomic"]
