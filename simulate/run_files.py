"""The on-disk format of a microtubule sweep: ``metadata.json`` and one ``runs/run_XXXXX.npz`` per run.

Format "cgsurrogate-microtubule-sweep" (read by :mod:`cgsurrogate.data.microtubule`). Run files
hold the arrays :data:`RUN_ARRAYS` (names, shapes and units in :func:`make_metadata`) and, since
the linear ramp, the rest measures :data:`REST_ARRAYS`. Every write is atomic
(:mod:`cgsurrogate.core.atomic`): a run file exists complete or not at all.
"""
from __future__ import annotations

import json
import platform as _platform
import zipfile
from pathlib import Path

import numpy as np

from cgsurrogate.core.atomic import atomic_path, write_json_atomic
from cgsurrogate.core.errors import CGSurrogateError, InputFileError
from cgsurrogate.simulate.microtubule import (
    GRID_VALUES,
    MONOMER_MASS_AMU,
    PARAM_NAMES,
    PARAM_UNITS,
    microtubule_topology,
)
from cgsurrogate.simulate.protocol import REST_CRITERION, Protocol

FORMAT_NAME = "cgsurrogate-microtubule-sweep"
FORMAT_VERSION = 1
RUN_ARRAYS = ("params", "positions", "velocities", "forces", "energies", "steps")
#: Per-run rest measures (scalars), stored in the run file and summarised in the metadata.
REST_ARRAYS = ("tip_motion_nm", "residual_force", "at_rest", "settle_tip_shift_nm", "settle_max_shift_nm",
               "settle_iterations")


def run_path(root, run_id: int) -> Path:
    """``<root>/runs/run_<id:05d>.npz``."""
    return Path(root) / "runs" / f"run_{int(run_id):05d}.npz"


def software_versions() -> dict:
    """Versions of the software that produced a dataset."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": _platform.python_version(), "numpy": np.__version__}
    for dist in ("torch", "openmm", "dask", "distributed", "numba"):  # read without importing them
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    try:
        out["cgsurrogate"] = version("cgsurrogate")
    except PackageNotFoundError:  # not installed (running from a source tree)
        out["cgsurrogate"] = "source"
    return out


def make_metadata(param_sets: np.ndarray, protocol: Protocol, batch_size: int, seed: int) -> dict:
    """The ``metadata.json`` content of a sweep (``rest`` is filled in by :func:`update_rest_summary`)."""
    topo = microtubule_topology()
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "topology": topo.tube.name,
        "num_nodes": topo.num_nodes,
        "num_bonds": int(len(topo.bonds)),
        "num_angles": int(len(topo.angles)),
        "param_names": list(PARAM_NAMES),
        "param_units": list(PARAM_UNITS),
        "grid_values": list(GRID_VALUES),
        "param_sets": param_sets.tolist(),
        "num_runs": int(len(param_sets)),
        "frames_per_run": protocol.num_frames,
        "protocol": protocol.to_dict(),
        "batch_size": int(batch_size),
        "seed": int(seed),
        "clamp_nodes": topo.ring_nodes([0, 1]).tolist(),
        "load_nodes": topo.ring_nodes([-2, -1]).tolist(),
        "load_direction": [0.0, -1.0, 0.0],
        "monomer_mass_amu": MONOMER_MASS_AMU,
        "units": {
            "positions": "nm",
            "velocities": "nm/ps",
            "forces": "kJ/mol/nm (internal: -d(bond+angle energy)/dx)",
            "energies": "kJ/mol per particle (LAMMPS pe/atom split: bond 1/2 per end, angle 1/3 per particle)",
            "params": "zJ/nm^2 (LatAssoc, LongAssoc), zJ/rad^2 (LatAngle, LongAngle, QuadAngles)",
            "steps": "integration steps",
            "time": "ps",
            "mass": "amu",
            "tip_motion_nm": "nm",
            "residual_force": "multiples of the full load on one particle",
            "settle_tip_shift_nm": "nm",
            "settle_max_shift_nm": "nm",
            "settle_iterations": "force evaluations",
        },
        "run_file": "runs/run_{id:05d}.npz",
        "run_arrays": {
            "params": "float64 [5]",
            "positions": "float64 [F, N, 3]",
            "velocities": "float64 [F, N, 3]",
            "forces": "float64 [F, N, 3]",
            "energies": "float64 [F, N]",
            "steps": "int64 [F]",
            "tip_motion_nm": "float64 [] (tip displacement between the last two frames)",
            "residual_force": "float64 [] (max |internal + load force| on a free particle, last frame, / load)",
            "at_rest": "bool [] (residual_force at most rest.criterion.residual_force)",
            "settle_tip_shift_nm": "float64 [] (|tip change| from the last dynamic state to the settled last frame)",
            "settle_max_shift_nm": "float64 [] (largest particle displacement by the settle)",
            "settle_iterations": "int64 [] (FIRE force evaluations of the settle; -1 without one)",
        },
        "rest": {"criterion": protocol.rest_criterion(), **{k: [] for k in REST_ARRAYS}},
        "software": software_versions(),
    }


def write_run(path, arrays: dict) -> None:
    """Write one run file atomically: the :data:`RUN_ARRAYS` and whichever :data:`REST_ARRAYS` are given."""
    missing = [k for k in RUN_ARRAYS if k not in arrays]
    if missing:
        raise CGSurrogateError(f"{path}: run arrays missing {missing}")
    keep = {k: np.asarray(arrays[k]) for k in RUN_ARRAYS + REST_ARRAYS if k in arrays}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **keep)


def run_is_complete(path) -> bool:
    """True iff the run file exists; raises :class:`InputFileError` naming it if it exists but is corrupt."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = {n[:-4] for n in z.namelist() if n.endswith(".npy")}
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputFileError(f"{path}: corrupt run file ({exc}); delete it and rerun to recompute") from None
    if bad is not None or not set(RUN_ARRAYS) <= names:
        raise InputFileError(f"{path}: corrupt run file (damaged or missing arrays); delete it and rerun to recompute")
    return True


def update_rest_summary(root, num_runs: int) -> dict:
    """Collect each complete run's rest measures into ``metadata.json`` (``rest``; ``None`` where absent).

    Returns the ``rest`` dict written.
    """
    mpath = Path(root) / "metadata.json"
    meta = json.loads(mpath.read_text())
    try:
        criterion = Protocol.from_dict(meta["protocol"]).rest_criterion()
    except (KeyError, TypeError, ValueError, CGSurrogateError):
        criterion = dict(REST_CRITERION)
    rest = {"criterion": criterion}
    cols = {k: [None] * num_runs for k in REST_ARRAYS}
    for i in range(num_runs):
        p = run_path(root, i)
        if not p.exists():
            continue
        with np.load(p, allow_pickle=False) as z:
            for k in REST_ARRAYS:
                if k in z.files:
                    v = z[k].item()
                    if k == "at_rest":
                        cols[k][i] = bool(v)
                    elif k == "settle_iterations":
                        cols[k][i] = int(v) if v >= 0 else None  # -1: no settle
                    else:
                        cols[k][i] = float(v) if np.isfinite(v) else None  # NaN: no settle (JSON has no NaN)
    rest.update(cols)
    done = [v for v in cols["at_rest"] if v is not None]
    rest["num_at_rest"] = int(sum(done))
    rest["num_measured"] = len(done)
    resid = [v for v in cols["residual_force"] if v is not None]
    rest["max_residual_force"] = max(resid) if resid else None
    shifts = [v for v in cols["settle_tip_shift_nm"] if v is not None]
    rest["max_settle_tip_shift_nm"] = max(shifts) if shifts else None
    meta["rest"] = rest
    write_json_atomic(mpath, meta, indent=1)
    return rest
