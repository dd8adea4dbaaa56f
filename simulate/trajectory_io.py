"""Extended-XYZ trajectories of the microtubule with per-particle energies.

The files follow the extended XYZ convention that ASE (``ase.io.read(path, ":")``) and
OVITO read. Units are ASE's: positions in Angstrom, per-particle energies
(``energies``) and the frame's total ``energy`` in eV, ``forces`` in eV/Angstrom; the
velocity column ``vel`` is in Angstrom/ps. Every particle is the dummy species ``X``;
the integer column ``tubulin`` is 0 for alpha and 1 for beta tubulin, ``clamped`` and
``loaded`` flag the protocol's clamped and pulled monomers. The comment line of each
frame holds ``step``, the five strength parameters and the units.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np

from cgsurrogate.simulate.microtubule import PARAM_NAMES, microtubule_topology

#: kJ/mol -> eV.
KJMOL_TO_EV = 1.0 / 96.48533212331
NM_TO_ANGSTROM = 10.0


def write_extxyz(path, positions, energies, velocities=None, forces=None, steps=None, params=None,
                 clamp_nodes=None, load_nodes=None) -> Path:
    """Write a trajectory as extended XYZ, atomically (temporary file + ``os.replace``).

    Parameters
    ----------
    path : path of the ``.xyz`` file
    positions : array [F, N, 3] nm
    energies : array [F, N] kJ/mol (per particle)
    velocities : array [F, N, 3] nm/ps, optional
    forces : array [F, N, 3] kJ/mol/nm, optional
    steps : array [F] int, optional
    params : array [5] zJ, optional (written into every comment line)
    clamp_nodes, load_nodes : int arrays, optional (default the microtubule's first / last two rings)

    Returns
    -------
    Path of the written file.
    """
    pos = np.asarray(positions, dtype=np.float64)
    en = np.asarray(energies, dtype=np.float64)
    if pos.ndim == 2:
        pos, en = pos[None], en[None]
        velocities = None if velocities is None else np.asarray(velocities)[None]
        forces = None if forces is None else np.asarray(forces)[None]
    F, N, _ = pos.shape
    if en.shape != (F, N):
        raise ValueError(f"energies have shape {en.shape}, expected {(F, N)}")
    topo = microtubule_topology() if N == 624 else None
    kind = (np.arange(N) // 13) % 2 if topo is not None else np.zeros(N, dtype=int)
    clamped = np.zeros(N, dtype=int)
    loaded = np.zeros(N, dtype=int)
    if topo is not None:
        clamped[topo.ring_nodes([0, 1]) if clamp_nodes is None else clamp_nodes] = 1
        loaded[topo.ring_nodes([-2, -1]) if load_nodes is None else load_nodes] = 1
    vel = np.zeros_like(pos) if velocities is None else np.asarray(velocities, dtype=np.float64)
    frc = np.zeros_like(pos) if forces is None else np.asarray(forces, dtype=np.float64)
    props = "species:S:1:pos:R:3:vel:R:3:forces:R:3:energies:R:1:tubulin:I:1:clamped:I:1:loaded:I:1"
    units = 'units="pos:Angstrom vel:Angstrom/ps forces:eV/Angstrom energies:eV energy:eV"'
    ptxt = ""
    if params is not None:
        ptxt = " " + " ".join(f"{n}={float(v):g}" for n, v in zip(PARAM_NAMES, np.asarray(params).ravel()))
    lines = []
    for f in range(F):
        step = int(steps[f]) if steps is not None else f
        etot = float(en[f].sum() * KJMOL_TO_EV)
        lines.append(f"{N}\n")
        lines.append(f'Properties={props} step={step} energy={etot:.10e}{ptxt} {units} pbc="F F F"\n')
        p = pos[f] * NM_TO_ANGSTROM
        v = vel[f] * NM_TO_ANGSTROM
        fo = frc[f] * KJMOL_TO_EV / NM_TO_ANGSTROM
        e = en[f] * KJMOL_TO_EV
        for i in range(N):
            lines.append(
                f"X {p[i, 0]:.6f} {p[i, 1]:.6f} {p[i, 2]:.6f} {v[i, 0]:.6e} {v[i, 1]:.6e} {v[i, 2]:.6e} "
                f"{fo[i, 0]:.6e} {fo[i, 1]:.6e} {fo[i, 2]:.6e} {e[i]:.8e} {kind[i]} {clamped[i]} {loaded[i]}\n"
            )
    return write_text_atomic(path, "".join(lines))


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary name in the same folder, then ``os.replace``).

    Returns
    -------
    Path of the written file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
