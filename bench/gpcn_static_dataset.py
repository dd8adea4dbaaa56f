"""Static equilibria straight from the rest geometry: a cheap large dataset for the GCN family (issue 13).

The paper's runs end at rest (sec. 3.1) and its hold frames are static equilibria under the full
load. A dynamic run costs ~3.7 s per run per core here; relaxing the resting tube directly to the
static equilibrium under the full load (the settle stage's compiled FIRE, clamps held, residual force
<= 1e-4 of the load, :mod:`cgsurrogate.simulate.numba_settle`) costs a fraction of it, so many more
strength sets fit in the same time. One frame per run (velocities zero); parameter sets drawn from
the paper's 7-value grid without replacement. Deviation from the paper's data: soft tubes have
several minima, and FIRE from rest may find another one than the dynamics would; the hold frames'
load fraction only (no ramp frames). Resumable: existing run files are kept.

    python bench/gpcn_static_dataset.py --runs 2000 --out runs/gpcn_static_g7_2000
    python bench/gpcn_static_dataset.py --runs 16807 --out runs/gpcn_static_g7_full   # the whole 7^5 grid

The whole grid (16,807 runs, 0.86 GB) took 4,607 s on one core at load 2 (0.27 s per run); split 80/20
it gives the paper's 13,446 training runs.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    from cgsurrogate.core.atomic import write_json_atomic
    from cgsurrogate.simulate.grid import GRID_VALUES
    from cgsurrogate.simulate.microtubule import microtubule_topology
    from cgsurrogate.simulate.numba_engine import NumbaEngine
    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.run_files import make_metadata, run_path, update_rest_summary, write_run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    out = Path(a.out)
    rng = np.random.default_rng(a.seed)
    G = len(GRID_VALUES)
    flat = rng.choice(G ** 5, size=a.runs, replace=False)
    idx = np.stack(np.unravel_index(flat, (G,) * 5), 1)
    params = np.asarray(GRID_VALUES, dtype=np.float64)[idx]
    proto = Protocol.short()
    meta = make_metadata(params, proto, a.batch, a.seed)
    meta["frames_per_run"] = 1
    meta["derived_from"] = {"script": "bench/gpcn_static_dataset.py", "frames": (
        "one frame per run: the static equilibrium under the full load reached by FIRE from the resting "
        "geometry (clamps held, residual <= settle_tol x load), not a dynamic run; steps = [0]")}
    old = out / "metadata.json"
    if old.exists():
        import json

        prev = json.loads(old.read_text())
        if prev.get("param_sets") != meta["param_sets"]:
            raise SystemExit(f"{out} holds another dataset (parameter sets differ); use a new folder")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    write_json_atomic(old, meta, indent=1)
    topo = microtubule_topology()
    t0, done = time.perf_counter(), 0
    for b0 in range(0, a.runs, a.batch):
        ids = [i for i in range(b0, min(b0 + a.batch, a.runs)) if not run_path(out, i).exists()]
        if not ids:
            continue
        eng = NumbaEngine(params[ids], proto, topo)
        st = eng.settle()
        F, _, per = eng.forces_energies(per_particle=True)
        net = eng.net_forces(eng.positions)
        free = np.setdiff1d(np.arange(topo.num_nodes), eng.clamp_nodes)
        resid = np.linalg.norm(net[:, free], axis=-1).max(-1) / abs(proto.load)
        for j, rid in enumerate(ids):
            write_run(run_path(out, rid), {
                "params": params[rid], "positions": eng.positions[j][None], "velocities": np.zeros((1, topo.num_nodes, 3)),
                "forces": F[j][None], "energies": per[j][None], "steps": np.zeros(1, dtype=np.int64),
                "residual_force": resid[j], "at_rest": resid[j] <= proto.settle_tol, "tip_motion_nm": np.nan,
                "settle_tip_shift_nm": st["settle_tip_shift_nm"][j], "settle_max_shift_nm": st["settle_max_shift_nm"][j],
                "settle_iterations": st["settle_iterations"][j]})
        done += len(ids)
        el = time.perf_counter() - t0
        print(f"{b0 + len(ids)}/{a.runs} runs, {el:.0f} s, {el / done:.2f} s per run", flush=True)
    update_rest_summary(out, a.runs)
    return 0


if __name__ == "__main__":
    main()
