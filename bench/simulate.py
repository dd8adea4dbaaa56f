"""Throughput of the microtubule OpenMM simulation: atom-steps per second for batches of
1, 16 and 128 replicas on the platform at hand (CUDA/OpenCL when present, else CPU).

    python bench/simulate.py                        # fastest platform, 1/16/128 replicas
    python bench/simulate.py --platform CPU --replicas 1 16 --steps 500

Prints a table and writes JSON (default ``bench/results/simulate_<platform>.json``).
Each measurement builds the System, takes ``--warmup`` steps, then times ``--steps``
Langevin steps under full load with the short protocol's step and friction, and
reports particles x steps / seconds (clamped particles included).
"""
from __future__ import annotations

import argparse
import json
import os
import platform as _platform
import sys
import time
from pathlib import Path

import numpy as np



def measure(num_replicas: int, steps: int, warmup: int, platform: str | None, threads: int | None) -> dict:
    """Time ``steps`` Langevin steps of ``num_replicas`` replicas; returns a result row."""
    import openmm
    from openmm import unit

    from cgsurrogate.simulate.openmm_system import build_microtubule_system, get_platform, microtubule_positions, platform_properties
    from cgsurrogate.simulate.protocol import Protocol

    proto = Protocol.short()
    rng = np.random.default_rng(0)
    params = rng.choice([3.0, 30.0, 57.0], size=(num_replicas, 5))
    t0 = time.perf_counter()
    system, info = build_microtubule_system(params, load_force=proto.load)
    integ = openmm.LangevinMiddleIntegrator(proto.temperature * unit.kelvin, proto.friction / unit.picosecond,
                                            proto.timestep_ps * unit.picosecond)
    plat = get_platform(platform)
    props = platform_properties(plat)
    if threads and plat.getName() == "CPU":
        props["Threads"] = str(threads)
    ctx = openmm.Context(system, integ, plat, props)
    ctx.setPositions(microtubule_positions(num_replicas))
    build_s = time.perf_counter() - t0
    integ.step(warmup)
    ctx.getState(getEnergy=True)  # synchronise
    t1 = time.perf_counter()
    integ.step(steps)
    ctx.getState(getEnergy=True)
    run_s = time.perf_counter() - t1
    n = system.getNumParticles()
    return {
        "replicas": num_replicas,
        "particles": n,
        "steps": steps,
        "seconds": run_s,
        "atom_steps_per_s": n * steps / run_s,
        "steps_per_s": steps / run_s,
        "build_seconds": build_s,
        "platform": plat.getName(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--platform", default=None)
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 16, 128])
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: ~2e7 atom-steps per size, 100-2000)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="CPU platform threads")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import openmm

    rows = []
    for r in args.replicas:
        steps = args.steps or int(np.clip(2e7 / (624 * r), 100, 2000))
        rows.append(measure(r, steps, args.warmup, args.platform, args.threads))
        x = rows[-1]
        print(f"  measured {r} replicas: {x['atom_steps_per_s']:.3g} atom-steps/s", file=sys.stderr)
    plat = rows[0]["platform"]
    print(f"\nmicrotubule OpenMM throughput on {plat} (OpenMM {openmm.__version__}, {os.cpu_count()} CPU cores, "
          f"{_platform.processor() or _platform.machine()})")
    print(f"{'replicas':>8} {'particles':>10} {'steps':>6} {'seconds':>8} {'atom-steps/s':>14} {'steps/s':>9} {'build s':>8}")
    for x in rows:
        print(f"{x['replicas']:>8} {x['particles']:>10} {x['steps']:>6} {x['seconds']:>8.2f} "
              f"{x['atom_steps_per_s']:>14.4g} {x['steps_per_s']:>9.1f} {x['build_seconds']:>8.2f}")
    out = Path(args.json or Path(__file__).parent / "results" / f"simulate_{plat}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"platform": plat, "openmm": openmm.__version__, "cpu_count": os.cpu_count(),
                               "rows": rows}, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
