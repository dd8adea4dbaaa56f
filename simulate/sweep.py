"""Parameter sweeps of the microtubule protocol, written as a resumable dataset.

A sweep is a list of parameter sets (one "run" each, id = position in the list).
Runs are grouped into fixed batches of consecutive ids; each batch is one task that
simulates its runs as replicas of one OpenMM System and writes each run file itself,
atomically (:mod:`cgsurrogate.core.atomic`). So:

* killing the sweep at any moment loses at most the batches in flight and never
  leaves a half-written ``run_*.npz``;
* a rerun into the same folder recomputes only the batches with a missing run file
  (the whole batch, with the same seed, so the result does not depend on where the
  sweep was interrupted) and never overwrites a completed run.

Where the tasks run. Without a scheduler the sweep needs no Dask: one worker runs the
batches in this process, several run them in a pool of ``n_workers`` local processes
(``concurrent.futures``, spawn); with the numba engine the pool is ``n_workers`` threads of this
process instead (its kernels release the GIL; no interpreter start, imports or JIT-cache load per
worker). ``scheduler="tcp://host:8786"`` sends them to an existing
Dask cluster (for example dask-jobqueue on SLURM, one worker per GPU), which needs the
``[sweep]`` extra; workers need this package installed and the folder on a shared file system.

The on-disk format is :mod:`cgsurrogate.simulate.run_files` (read by :mod:`cgsurrogate.data.microtubule`).
"""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.grid import (  # noqa: F401  (re-exported)
    DEFAULT_PARAM_SETS,
    check_param_sets,
    grid_param_sets,
    grid_values,
)
from cgsurrogate.simulate.microtubule import PARAM_NAMES, microtubule_topology
from cgsurrogate.simulate.protocol import Protocol
from cgsurrogate.simulate.run_files import (  # noqa: F401  (re-exported)
    FORMAT_NAME,
    FORMAT_VERSION,
    REST_ARRAYS,
    RUN_ARRAYS,
    make_metadata,
    run_is_complete,
    run_path,
    update_rest_summary,
    write_run,
)


def simulate_batch(out_dir: str, run_ids, param_sets, protocol: dict, seed: int, platform=None, threads=None,
                   engine: str = "openmm") -> dict:
    """One task: simulate one batch of runs as replicas and write the missing run files.

    Parameters
    ----------
    out_dir : str
        Dataset folder.
    run_ids : list of int
    param_sets : array [len(run_ids), 5] zJ
    protocol : dict (``Protocol.to_dict()``)
    seed : int
        Langevin seed of this batch.
    engine : "openmm" or "numba"
        See :func:`cgsurrogate.simulate.replicas.run_replicas`.

    Returns
    -------
    dict with ``run_ids``, ``written`` (ids whose file this task wrote), ``tip_deflection``
    (nm at the last frame per run), ``max_speed`` (nm/ps at the last frame per run),
    ``seconds``, ``started_at`` and ``finished_at`` (epoch seconds: when the task began and ended in its
    worker), ``energy_check``, ``platform``, ``engine``, ``steps`` and ``particles`` (for throughput),
    ``timing`` (seconds: ``integration`` including the engine's frame forces and the settle stage,
    ``settle`` (that stage alone), ``energies`` (per-particle split and rest measures), ``files``), and the
    rest measures (:data:`REST_ARRAYS`: ``residual_force``, ``at_rest``, ``tip_motion_nm`` and the settle's)
    per run.
    """
    from cgsurrogate.simulate.replicas import run_replicas, tip_deflection

    t0 = time.time()
    proto = Protocol.from_dict(protocol)
    out = run_replicas(np.asarray(param_sets), proto, platform=platform, seed=seed, threads=threads, engine=engine)
    t_files = time.time()
    written = []
    for r, rid in enumerate(run_ids):
        path = run_path(out_dir, rid)
        if path.exists():
            continue
        write_run(path, {k: (out[k][r] if k != "steps" else out[k]) for k in RUN_ARRAYS + REST_ARRAYS})
        written.append(int(rid))
    speed = np.linalg.norm(out["velocities"][:, -1], axis=-1).max(-1)
    return {
        "run_ids": [int(i) for i in run_ids],
        "written": written,
        "tip_deflection": tip_deflection(out["positions"][:, -1]).tolist(),
        "max_speed": speed.tolist(),
        "seconds": time.time() - t0,
        "started_at": t0,
        "finished_at": time.time(),
        "energy_check": out["energy_check"],
        "platform": out["platform"],
        "engine": out["engine"],
        "timing": {**out["timing"], "files": time.time() - t_files},
        "steps": int(proto.total_steps),
        "particles": int(out["positions"].shape[0] * out["positions"].shape[2]),
        **{k: np.asarray(out[k]).tolist() for k in REST_ARRAYS},
    }


def _prepare_out_dir(out_dir: Path, meta: dict) -> None:
    from cgsurrogate.core.atomic import write_json_atomic

    try:
        (out_dir / "runs").mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write_probe_{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except PermissionError:
        raise CGSurrogateError(f"output folder {out_dir} is not writable") from None
    except (NotADirectoryError, FileExistsError):
        raise CGSurrogateError(f"output folder {out_dir} is not a folder") from None
    except OSError as exc:
        raise CGSurrogateError(f"output folder {out_dir} cannot be written ({exc.strerror})") from None
    mpath = out_dir / "metadata.json"
    if mpath.exists():
        try:
            old = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CGSurrogateError(f"{mpath}: not valid JSON; remove the folder or choose another output folder") from None
        try:
            same_protocol = Protocol.from_dict(old.get("protocol", {})) == Protocol.from_dict(meta["protocol"])
        except (TypeError, ValueError):
            same_protocol = False
        same = (
            old.get("format") == FORMAT_NAME
            and old.get("param_sets") == meta["param_sets"]
            and same_protocol
            and old.get("batch_size") == meta["batch_size"]
            and old.get("seed") == meta["seed"]
            and old.get("engine", "openmm") == meta["engine"]
        )
        if not same:
            raise CGSurrogateError(
                f"{out_dir} already holds a different sweep (parameter sets, protocol, batch size, seed or engine "
                "differ); "
                "choose another output folder"
            )
    else:
        write_json_atomic(mpath, meta, indent=1)


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
    engine: str = "openmm",
) -> dict:
    """Run a sweep into a dataset folder; resumable.

    Without ``scheduler``: ``n_workers == 1`` runs the batches in this process (no Dask);
    more workers run them in a pool of local processes started with ``spawn`` (call this
    from ``cli.py``, an interactive session, or a script guarded by
    ``if __name__ == "__main__":``), or, with ``engine="numba"``, in a pool of threads. With ``scheduler`` the batches go to that Dask
    cluster (the ``[sweep]`` extra).

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
        Address of an existing Dask scheduler; default: no Dask, ``n_workers`` local
        workers of ``threads_per_worker`` OpenMM CPU threads each.
    n_workers, threads_per_worker : int
        At least 1.
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
    engine : "openmm" or "numba"
        What integrates (:func:`cgsurrogate.simulate.replicas.run_replicas`); recorded in
        ``metadata.json`` (``engine``), and a rerun with another engine is refused.
    processes : bool
        ``False`` runs every batch in this process whatever ``n_workers`` is.

    Returns
    -------
    dict: ``out_dir``, ``num_runs``, ``already_done``, ``computed`` (run ids written now),
    ``pending`` (run ids still missing), ``results`` (per-batch task results), ``rest``
    (the rest summary written into ``metadata.json``), ``seconds``.
    """
    t0 = time.time()
    out_dir = Path(out_dir)
    if param_sets is None:
        param_sets = grid_param_sets(grid) if grid is not None else DEFAULT_PARAM_SETS
    elif grid is not None:
        raise CGSurrogateError("give either parameter sets or a grid, not both")
    params = check_param_sets(param_sets, on_grid=on_grid)
    protocol = protocol or Protocol.short()
    for name, v in (("batch size", batch_size), ("workers", n_workers), ("threads per worker", threads_per_worker)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise CGSurrogateError(f"{name} must be an integer of at least 1, got {v!r}")
    if protocol.ramp != "linear":
        raise CGSurrogateError(f"protocol ramp {protocol.ramp!r} cannot be simulated; use the linear ramp")
    batch_size = int(batch_size)
    from cgsurrogate.simulate.replicas import ENGINES

    if engine not in ENGINES:
        raise CGSurrogateError(f"engine {engine!r}: expected one of {ENGINES}")
    if engine == "numba":
        from cgsurrogate.simulate.numba_engine import kernels

        if platform and platform.upper() != "CPU":
            raise CGSurrogateError(f"the numba engine runs on the CPU only, not on platform {platform!r}")
        kernels()  # the [fast] extra, checked before any folder is written
    meta = make_metadata(params, protocol, batch_size, seed)
    meta["engine"] = engine
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
                           threads_per_worker, progress, already=len(done), total=M, processes=processes, engine=engine)
        for r in results:
            computed += r["written"]
    pending = [i for i in range(M) if not run_path(out_dir, i).exists()]
    rest = update_rest_summary(out_dir, M)
    return {
        "out_dir": str(out_dir),
        "num_runs": M,
        "already_done": len(done),
        "computed": sorted(computed),
        "pending": pending,
        "results": results,
        "rest": rest,
        "seconds": time.time() - t0,
    }


def _execute(out_dir, todo, params, protocol, seed, platform, scheduler, n_workers, threads_per_worker,
             progress, already, total, processes=True, engine="openmm"):
    from tqdm.auto import tqdm

    pdict = protocol.to_dict()
    tasks = [(str(out_dir), ids, params[ids], pdict, seed * 100003 + b + 1, platform, threads_per_worker, engine)
             for b, ids in todo]
    bar = tqdm(total=total, initial=already, desc="runs", unit="run", disable=not progress)
    if scheduler:
        done = _on_dask(scheduler, tasks)
    elif n_workers == 1 or not processes or len(tasks) == 1:
        done = (simulate_batch(*t) for t in tasks)
    else:
        done = _on_local_pool(n_workers, tasks, threads=engine == "numba")
    results = []
    try:
        for res in done:
            results.append(res)
            bar.update(len(res["written"]))
    finally:
        bar.close()
        if hasattr(done, "close"):
            done.close()
    return sorted(results, key=lambda r: r["run_ids"][0])


def _on_local_pool(n_workers, tasks, threads: bool):
    """Yield task results as local workers finish them: threads of this process, or spawned processes.

    Threads serve the numba engine: its kernels, the settle's compiled loop included, release the GIL,
    so ``n_workers`` threads integrate in parallel, start at once and share the kernels this process
    has loaded, where a spawned process pays its interpreter start, imports and JIT-cache load (about
    1.8 s, measured). A process pool is shut down without waiting for its processes to exit (they are
    idle once every result is in; the interpreter joins them at exit), so the caller goes on
    (metadata, trajectory, PNG) while they tear down their libraries: about 3 s under load, measured."""
    import concurrent.futures as cf

    if threads:
        pool = cf.ThreadPoolExecutor(max_workers=int(n_workers), thread_name_prefix="cgs-sweep")
    else:
        import multiprocessing

        pool = cf.ProcessPoolExecutor(max_workers=int(n_workers), mp_context=multiprocessing.get_context("spawn"))
    try:
        futs = [pool.submit(simulate_batch, *t) for t in tasks]
        for fut in cf.as_completed(futs):
            yield fut.result()
    finally:
        pool.shutdown(wait=threads, cancel_futures=True)


def _on_dask(scheduler, tasks):
    """Yield task results from an existing Dask scheduler as they complete."""
    from cgsurrogate.core.errors import require_extra

    distributed = require_extra("distributed", "sweep", "a sweep on a Dask scheduler (--scheduler)")
    try:
        client = distributed.Client(scheduler, timeout="20s")
    except OSError as exc:
        raise CGSurrogateError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    try:
        futs = [client.submit(simulate_batch, *t, key=f"mt-batch-{t[4]}-{uuid.uuid4().hex[:8]}", pure=False)
                for t in tasks]
        for fut in distributed.as_completed(futs):
            yield fut.result()
    finally:
        client.close()


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
    from cgsurrogate.simulate.microtubule import microtubule_spec
    from cgsurrogate.simulate.trajectory_io import write_extxyz

    path = run_path(out_dir, run_id)
    if not run_is_complete(path):
        from cgsurrogate.core.errors import InputFileError

        raise InputFileError(f"{path}: run {run_id} has not been computed")
    with np.load(path, allow_pickle=False) as z:
        r = {k: z[k] for k in RUN_ARRAYS}
    out_dir = Path(out_dir)
    xyz = write_extxyz(out_dir / f"trajectory_run_{run_id:05d}.xyz", r["positions"], r["energies"],
                       r["velocities"], r["forces"], r["steps"], r["params"], system_spec=microtubule_spec())
    defl = float(tip_deflection(r["positions"][-1]))
    title = (f"run {run_id}: strengths " + ", ".join(f"{n} {v:g}" for n, v in zip(PARAM_NAMES, r["params"]))
             + f"; step {int(r['steps'][-1])}, tip {defl:.1f} nm below the axis")
    png = render_tube(out_dir / f"tube_run_{run_id:05d}.png", r["positions"][-1], r["energies"][-1],
                      microtubule_topology().positions, title=title)
    return {"trajectory": str(xyz), "png": str(png), "tip_deflection": defl}
