"""Parameter sweeps of the microtubule protocol on Dask, written as a resumable dataset.

A sweep is a list of parameter sets (one "run" each, id = position in the list).
Runs are grouped into fixed batches of consecutive ids; each batch is one Dask task
that simulates its runs as replicas of one OpenMM System and writes each run file
itself, atomically (temporary name in the same folder, then ``os.replace``). So:

* killing the sweep at any moment loses at most the batches in flight and never
  leaves a half-written ``run_*.npz``;
* a rerun into the same folder recomputes only the batches with a missing run file
  (the whole batch, with the same seed, so the result does not depend on where the
  sweep was interrupted) and never overwrites a completed run.

By default the tasks run on a ``distributed.LocalCluster`` on this machine;
``scheduler="tcp://host:8786"`` sends them to an existing Dask cluster (for example
dask-jobqueue on SLURM, one worker per GPU). Workers need this package installed.

The on-disk format is described in :mod:`cgsurrogate.data.microtubule`.
"""
from __future__ import annotations

import itertools
import json
import os
import platform as _platform
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np

from cgsurrogate.simulate.microtubule import (
    GRID_VALUES,
    MONOMER_MASS_AMU,
    PARAM_NAMES,
    PARAM_UNITS,
    microtubule_topology,
)
from cgsurrogate.simulate.protocol import Protocol

FORMAT_NAME = "cgsurrogate-microtubule-sweep"
FORMAT_VERSION = 1
RUN_ARRAYS = ("params", "positions", "velocities", "forces", "energies", "steps")

#: The embedded default sweep of ``cli.py simulate``: the all-30 reference, the
#: softest and stiffest uniform settings, and each parameter lowered to 9 alone.
DEFAULT_PARAM_SETS = np.array(
    [
        [30, 30, 30, 30, 30],
        [9, 9, 9, 9, 9],
        [57, 57, 57, 57, 57],
        [9, 30, 30, 30, 30],
        [30, 9, 30, 30, 30],
        [30, 30, 9, 30, 30],
        [30, 30, 30, 9, 30],
        [30, 30, 30, 30, 9],
    ],
    dtype=np.float64,
)


def run_path(root, run_id: int) -> Path:
    """``<root>/runs/run_<id:05d>.npz``."""
    return Path(root) / "runs" / f"run_{int(run_id):05d}.npz"


def grid_values(spec) -> list[float]:
    """Values per parameter for a grid spec.

    Parameters
    ----------
    spec : int or str or sequence
        ``n`` (1-7): ``n`` values spread evenly over ``GRID_VALUES`` (3 -> 3, 30, 57;
        7 -> the full grid); or a list / comma string of values from ``GRID_VALUES``.

    Raises ``ValueError`` for a count outside 1..7 or a value outside the grid.
    """
    if isinstance(spec, str):
        s = spec.strip()
        if "," not in s:
            try:
                spec = int(s)
            except ValueError:
                raise ValueError(f"grid {spec!r}: expected a count 1-7 or a comma-separated list of grid values") from None
        else:
            try:
                spec = [float(v) for v in s.split(",") if v.strip()]
            except ValueError:
                raise ValueError(f"grid {spec!r}: values must be numbers") from None
    if isinstance(spec, (int, np.integer)):
        n = int(spec)
        if not 1 <= n <= len(GRID_VALUES):
            raise ValueError(f"grid size {n} is outside 1..{len(GRID_VALUES)}")
        if n == 1:
            return [GRID_VALUES[3]]
        idx = np.round(np.linspace(0, len(GRID_VALUES) - 1, n)).astype(int)
        return [GRID_VALUES[i] for i in idx]
    vals = [float(v) for v in spec]
    if not vals:
        raise ValueError("grid: no values given")
    bad = [v for v in vals if v not in GRID_VALUES]
    if bad:
        raise ValueError(f"grid value {bad[0]:g} is outside the grid {list(GRID_VALUES)}")
    return sorted(set(vals))


def grid_param_sets(spec=7) -> np.ndarray:
    """All combinations of :func:`grid_values` for the five parameters, ``[n^5, 5]`` zJ.

    Row order is ``itertools.product`` order (the last parameter varies fastest).
    """
    vals = grid_values(spec)
    return np.array(list(itertools.product(vals, repeat=len(PARAM_NAMES))), dtype=np.float64)


def check_param_sets(param_sets, on_grid: bool = True) -> np.ndarray:
    """Validate ``[M, 5]`` parameter sets (positive, finite; on the grid when ``on_grid``)."""
    p = np.asarray(param_sets, dtype=np.float64)
    if p.ndim == 1 and p.size == len(PARAM_NAMES):
        p = p[None]
    if p.ndim != 2 or p.shape[1] != len(PARAM_NAMES) or len(p) == 0:
        raise ValueError(f"parameter sets have shape {p.shape}, expected [M, {len(PARAM_NAMES)}]")
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise ValueError("parameter sets must be positive and finite")
    if on_grid:
        bad = p[~np.isin(p, GRID_VALUES)]
        if bad.size:
            raise ValueError(f"strength parameter value {bad[0]:g} is outside the grid {list(GRID_VALUES)}")
    return p


def software_versions() -> dict:
    """Versions of the software that produced a dataset."""
    import openmm
    import torch

    out = {"python": _platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
           "openmm": openmm.__version__}
    try:
        import dask
        import distributed

        out["dask"] = dask.__version__
        out["distributed"] = distributed.__version__
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        out["cgsurrogate"] = version("cgsurrogate")
    except Exception:  # not installed (running from a source tree)
        out["cgsurrogate"] = "source"
    return out


def make_metadata(param_sets: np.ndarray, protocol: Protocol, batch_size: int, seed: int) -> dict:
    """The ``metadata.json`` content of a sweep."""
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
        },
        "run_file": "runs/run_{id:05d}.npz",
        "run_arrays": {
            "params": "float64 [5]",
            "positions": "float64 [F, N, 3]",
            "velocities": "float64 [F, N, 3]",
            "forces": "float64 [F, N, 3]",
            "energies": "float64 [F, N]",
            "steps": "int64 [F]",
        },
        "software": software_versions(),
    }


def _atomic_write_bytes(path: Path, writer) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path, obj) -> None:
    """Write JSON to ``path`` via a temporary file and ``os.replace``."""
    data = json.dumps(obj, indent=1).encode()
    _atomic_write_bytes(Path(path), lambda f: f.write(data))


def write_run(path, arrays: dict) -> None:
    """Write one run file atomically (``np.savez`` to a temporary name, then ``os.replace``)."""
    missing = [k for k in RUN_ARRAYS if k not in arrays]
    if missing:
        raise ValueError(f"{path}: run arrays missing {missing}")
    _atomic_write_bytes(Path(path), lambda f: np.savez(f, **{k: np.asarray(arrays[k]) for k in RUN_ARRAYS}))


def run_is_complete(path) -> bool:
    """True iff the run file exists; raises ``ValueError`` naming it if it exists but is corrupt."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = {n[:-4] for n in z.namelist() if n.endswith(".npy")}
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"{path}: corrupt run file ({exc}); delete it and rerun to recompute") from None
    if bad is not None or not set(RUN_ARRAYS) <= names:
        raise ValueError(f"{path}: corrupt run file (damaged or missing arrays); delete it and rerun to recompute")
    return True


def simulate_batch(out_dir: str, run_ids, param_sets, protocol: dict, seed: int, platform=None, threads=None) -> dict:
    """Dask task: simulate one batch of runs as replicas and write the missing run files.

    Parameters
    ----------
    out_dir : str
        Dataset folder.
    run_ids : list of int
    param_sets : array [len(run_ids), 5] zJ
    protocol : dict (``Protocol.to_dict()``)
    seed : int
        Langevin seed of this batch.

    Returns
    -------
    dict with ``run_ids``, ``written`` (ids whose file this task wrote), ``tip_deflection``
    (nm at the last frame per run), ``max_speed`` (nm/ps at the last frame per run),
    ``seconds`` and ``energy_check``.
    """
    from cgsurrogate.simulate.replicas import run_replicas, tip_deflection

    t0 = time.time()
    proto = Protocol.from_dict(protocol)
    out = run_replicas(np.asarray(param_sets), proto, platform=platform, seed=seed, threads=threads)
    written = []
    for r, rid in enumerate(run_ids):
        path = run_path(out_dir, rid)
        if path.exists():
            continue
        write_run(path, {k: (out[k][r] if k != "steps" else out[k]) for k in RUN_ARRAYS})
        written.append(int(rid))
    speed = np.linalg.norm(out["velocities"][:, -1], axis=-1).max(-1)
    return {
        "run_ids": [int(i) for i in run_ids],
        "written": written,
        "tip_deflection": tip_deflection(out["positions"][:, -1]).tolist(),
        "max_speed": speed.tolist(),
        "seconds": time.time() - t0,
        "energy_check": out["energy_check"],
        "platform": out["platform"],
    }


def _prepare_out_dir(out_dir: Path, meta: dict) -> None:
    try:
        (out_dir / "runs").mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write_probe_{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except PermissionError:
        raise PermissionError(f"output folder {out_dir} is not writable") from None
    except (NotADirectoryError, FileExistsError):
        raise ValueError(f"output folder {out_dir} is not a folder") from None
    except OSError as exc:
        raise PermissionError(f"output folder {out_dir} cannot be written ({exc.strerror})") from None
    mpath = out_dir / "metadata.json"
    if mpath.exists():
        try:
            old = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{mpath}: not valid JSON; remove the folder or choose another output folder") from None
        same = (
            old.get("format") == FORMAT_NAME
            and old.get("param_sets") == meta["param_sets"]
            and Protocol.from_dict(old.get("protocol", {})) == Protocol.from_dict(meta["protocol"])
            and old.get("batch_size") == meta["batch_size"]
            and old.get("seed") == meta["seed"]
        )
        if not same:
            raise ValueError(
                f"{out_dir} already holds a different sweep (parameter sets, protocol, batch size or seed differ); "
                "choose another output folder"
            )
    else:
        write_json_atomic(mpath, meta)


def run_sweep(
    out_dir,
    param_sets=None,
    grid=None,
    protocol: Protocol | None = None,
    batch_size: int = 4,
    scheduler: str | None = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    platform: str | None = None,
    seed: int = 0,
    progress: bool = True,
    on_grid: bool = True,
    max_batches: int | None = None,
    processes: bool = True,
) -> dict:
    """Run a sweep into a dataset folder on Dask; resumable.

    The default LocalCluster starts worker processes with ``spawn``: call this from
    ``cli.py``, an interactive session, or a script guarded by
    ``if __name__ == "__main__":``.

    Parameters
    ----------
    out_dir : path
        Dataset folder (created). A rerun with the same settings resumes.
    param_sets : array [M, 5], optional
        Strength parameter sets (zJ). Default: ``grid`` if given, else
        :data:`DEFAULT_PARAM_SETS`.
    grid : int or str or list, optional
        Grid spec for :func:`grid_param_sets` (``3`` -> values 3, 30, 57; 243 runs).
    protocol : Protocol
        Default :meth:`Protocol.short`.
    batch_size : int
        Replicas per task (one OpenMM System).
    scheduler : str, optional
        Address of an existing Dask scheduler; default a ``LocalCluster`` with
        ``n_workers`` processes of ``threads_per_worker`` threads.
    platform : str, optional
        OpenMM platform for the workers (default: the fastest each worker has).
    seed : int
        Base Langevin seed; batch ``b`` uses ``seed * 100003 + b + 1``.
    progress : bool
        tqdm progress bar over runs.
    on_grid : bool
        Require every value to be one of ``GRID_VALUES``.
    max_batches : int, optional
        Submit at most this many of the pending batches (to split a sweep into pieces).
    processes : bool
        LocalCluster workers as processes (default) or as threads of this process.

    Returns
    -------
    dict: ``out_dir``, ``num_runs``, ``already_done``, ``computed`` (run ids written now),
    ``pending`` (run ids still missing), ``results`` (per-batch task results), ``seconds``.
    """
    t0 = time.time()
    out_dir = Path(out_dir)
    if param_sets is None:
        param_sets = grid_param_sets(grid) if grid is not None else DEFAULT_PARAM_SETS
    elif grid is not None:
        raise ValueError("give either parameter sets or a grid, not both")
    params = check_param_sets(param_sets, on_grid=on_grid)
    protocol = protocol or Protocol.short()
    if int(batch_size) < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    batch_size = int(batch_size)
    meta = make_metadata(params, protocol, batch_size, seed)
    _prepare_out_dir(out_dir, meta)

    M = len(params)
    batches = [list(range(s, min(s + batch_size, M))) for s in range(0, M, batch_size)]
    done = {i for i in range(M) if run_is_complete(run_path(out_dir, i))}
    todo = [(b, ids) for b, ids in enumerate(batches) if any(i not in done for i in ids)]
    if max_batches is not None:
        todo = todo[: int(max_batches)]
    results, computed = [], []
    if todo:
        results = _execute(out_dir, todo, params, protocol, seed, platform, scheduler, n_workers,
                           threads_per_worker, progress, already=len(done), total=M, processes=processes)
        for r in results:
            computed += r["written"]
    pending = [i for i in range(M) if not run_path(out_dir, i).exists()]
    return {
        "out_dir": str(out_dir),
        "num_runs": M,
        "already_done": len(done),
        "computed": sorted(computed),
        "pending": pending,
        "results": results,
        "seconds": time.time() - t0,
    }


def _execute(out_dir, todo, params, protocol, seed, platform, scheduler, n_workers, threads_per_worker,
             progress, already, total, processes=True):
    from distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    else:
        kw = {"host": "127.0.0.1"} if processes else {}  # threads talk in-process, processes on loopback
        cluster = LocalCluster(
            n_workers=int(n_workers), threads_per_worker=int(threads_per_worker), processes=bool(processes),
            dashboard_address=":0", silence_logs=40, **kw,
        )
        client = Client(cluster)
    pdict = protocol.to_dict()
    results = []
    try:
        futs = [
            client.submit(
                simulate_batch, str(out_dir), ids, params[ids], pdict, seed * 100003 + b + 1, platform,
                threads_per_worker, key=f"mt-batch-{b}-{uuid.uuid4().hex[:8]}", pure=False,
            )
            for b, ids in todo
        ]
        bar = tqdm(total=total, initial=already, desc="runs", unit="run", disable=not progress)
        for fut in as_completed(futs):
            res = fut.result()
            results.append(res)
            bar.update(len(res["written"]))
        bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return sorted(results, key=lambda r: r["run_ids"][0])


def write_run_extras(out_dir, run_id: int = 0) -> dict:
    """Write the trajectory (extended XYZ) and a PNG of one completed run's last frame.

    Files: ``<out_dir>/trajectory_run_<id>.xyz`` (every frame, per-particle energies;
    see :mod:`cgsurrogate.simulate.trajectory_io`) and ``<out_dir>/tube_run_<id>.png`` (the bent
    tube coloured by per-monomer energy, over the resting tube).

    Returns
    -------
    dict with the two paths and the run's final tip deflection (nm).
    """
    from cgsurrogate.simulate.render import render_tube
    from cgsurrogate.simulate.replicas import tip_deflection
    from cgsurrogate.simulate.trajectory_io import write_extxyz

    path = run_path(out_dir, run_id)
    if not run_is_complete(path):
        raise FileNotFoundError(f"{path}: run {run_id} has not been computed")
    with np.load(path, allow_pickle=False) as z:
        r = {k: z[k] for k in RUN_ARRAYS}
    out_dir = Path(out_dir)
    xyz = write_extxyz(out_dir / f"trajectory_run_{run_id:05d}.xyz", r["positions"], r["energies"],
                       r["velocities"], r["forces"], r["steps"], r["params"])
    defl = float(tip_deflection(r["positions"][-1]))
    title = (f"run {run_id}: strengths " + ", ".join(f"{n} {v:g}" for n, v in zip(PARAM_NAMES, r["params"]))
             + f"; step {int(r['steps'][-1])}, tip {defl:.1f} nm below the axis")
    png = render_tube(out_dir / f"tube_run_{run_id:05d}.png", r["positions"][-1], r["energies"][-1],
                      microtubule_topology().positions, title=title)
    return {"trajectory": str(xyz), "png": str(png), "tip_deflection": defl}
