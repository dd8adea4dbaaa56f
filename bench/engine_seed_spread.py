"""How far apart two realisations of one run are, against how far apart the engines are (issue 15).

At the protocol's bath temperature (0.01 K) a run is stochastic: its final tip depends on the noise
stream, and soft runs (all strengths 3) end in one of several nearby minima. So "engine A's tip within
0.2 nm of engine B's" compares two draws, not two engines. This bench runs ``--realisations`` copies of
one strength set (independent noise: replicas of one System / one LAMMPS instance, each with its own
stream) in each engine and compares the distributions of the final tip:

* **dynamics** (settle stage off, as LAMMPS runs the protocol): last-frame tips of OpenMM CPU, numba and
  LAMMPS;
* **settled** (the protocol's settle stage): last-frame tips of OpenMM CPU and numba (LAMMPS has no
  settle stage).

For each engine: mean, standard deviation, range; for each pair: the difference of the means with a
95 % Welch interval, and the largest |tip difference| between realisations of one engine (the spread a
single-draw comparison sees). Each engine runs in its own subprocess, one thread.

    python bench/engine_seed_spread.py                      # all strengths 3, 8 realisations
    python bench/engine_seed_spread.py --params 30,30,30,30,30 --realisations 4

Writes ``bench/results/engine_seed_spread.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def child(params: list, engine: str, settle: bool, realisations: int) -> dict:
    """Final tips (nm) of ``realisations`` independent copies of one strength set in one engine."""
    import dataclasses

    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.replicas import tip_deflection

    proto = Protocol.short()
    if not settle:
        proto = dataclasses.replace(proto, settle_tol=0.0)
    P = np.repeat(np.asarray(params, dtype=np.float64)[None], realisations, 0)
    t0 = time.perf_counter()
    if engine == "lammps":
        sys.path.insert(0, str(HERE))
        from lammps_microtubule import run_lammps

        pos = run_lammps(P, proto, seed=7)["positions"]
    else:
        from cgsurrogate.simulate.replicas import run_replicas

        pos = run_replicas(P, proto, platform="CPU", threads=1, seed=7, engine=engine)["positions"]
    return {"tips": tip_deflection(pos[:, -1]).tolist(), "seconds": time.perf_counter() - t0}


def _run_child(*args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENMM_CPU_THREADS="1", NUMBA_NUM_THREADS="1")
    r = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=3600)
    if r.returncode:
        raise RuntimeError(f"child {args[1:]} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def welch(a, b) -> dict:
    """Difference of means ``mean(a) - mean(b)`` with a 95 % Welch interval."""
    from scipy import stats

    a, b = np.asarray(a), np.asarray(b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else 1.0
    t = stats.t.ppf(0.975, dof)
    d = float(a.mean() - b.mean())
    return {"diff": d, "low": d - t * se, "high": d + t * se}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="3,3,3,3,3")
    ap.add_argument("--realisations", type=int, default=8)
    ap.add_argument("--out", default=str(HERE / "results" / "engine_seed_spread.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return 0
    sys.path.insert(0, str(HERE))
    from lammps_microtubule import lammps_available

    params = [float(v) for v in args.params.split(",")]
    have_lammps = lammps_available()[0]
    res = {"params": params, "realisations": args.realisations, "uptime_start": _uptime(), "runs": {}}
    plan = [("dynamics", "openmm"), ("dynamics", "numba")] + ([("dynamics", "lammps")] if have_lammps else []) + \
           [("settled", "openmm"), ("settled", "numba")]
    if not have_lammps:
        print("LAMMPS not installed (pip install \"lammps[mpi]\"): its column is skipped")
    for stage, engine in plan:
        out = _run_child(params, engine, stage == "settled", args.realisations)
        t = np.asarray(out["tips"])
        res["runs"].setdefault(stage, {})[engine] = {
            **out, "mean": float(t.mean()), "std": float(t.std(ddof=1)), "min": float(t.min()), "max": float(t.max()),
            "largest_pair_diff": float(t.max() - t.min())}
        print(f"{stage:9s} {engine:7s} tip {t.mean():8.3f} +- {t.std(ddof=1):.3f} nm (range {t.min():.3f} .. "
              f"{t.max():.3f}, {out['seconds']:.0f} s)", flush=True)
    res["pairs"] = {}
    for stage, engines in res["runs"].items():
        names = list(engines)
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                w = welch(engines[names[i]]["tips"], engines[names[j]]["tips"])
                res["pairs"][f"{stage}: {names[i]} - {names[j]}"] = w
                print(f"{stage}: {names[i]} - {names[j]}: {w['diff']:+.3f} nm [{w['low']:+.3f}, {w['high']:+.3f}]")
    res["uptime_end"] = _uptime()
    from cgsurrogate.core.atomic import write_json_atomic, write_text_atomic

    out = Path(args.out)
    write_json_atomic(out, res, indent=1)
    lines = [f"# Final tips over {args.realisations} realisations, strengths {params}, short protocol, 0.01 K",
             "", "| stage | engine | mean tip (nm) | std | min | max | seconds |", "|---|---|---|---|---|---|---|"]
    for stage, engines in res["runs"].items():
        for e, r in engines.items():
            lines.append(f"| {stage} | {e} | {r['mean']:.3f} | {r['std']:.3f} | {r['min']:.3f} | {r['max']:.3f} | "
                         f"{r['seconds']:.0f} |")
    lines += ["", "| pair | difference of means (nm) | 95 % Welch interval |", "|---|---|---|"]
    lines += [f"| {k} | {v['diff']:+.3f} | [{v['low']:+.3f}, {v['high']:+.3f}] |" for k, v in res["pairs"].items()]
    lines += ["", f"load: {res['uptime_start']} / {res['uptime_end']}"]
    write_text_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
