"""Can one hold-phase friction bring every run of the grid to rest? (issue 15, runs at rest)

Runs the short protocol with the numba engine for a few strength sets (the grid's worst movers
at the end of ``runs/grid3`` and its two ends), keeping the protocol's friction during the ramp and
using ``--frictions`` during the hold, and reports the tip motion over the last frame interval (the
rest criterion: < 0.2 nm) and the final tip, beside the tip of the static minimum the project's
``relax`` finds (exact field, full load; ``cli.py relax``). Writes ``bench/results/hold_friction.{json,md}``.

    python bench/hold_friction.py
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def run(params: np.ndarray, friction_hold: float) -> dict:
    from cgsurrogate.simulate.numba_engine import BOLTZ_KJMOL_K, NumbaEngine
    from cgsurrogate.simulate.protocol import Protocol

    proto = Protocol.short()
    eng = NumbaEngine(params, proto, seed=1)
    tips = []
    t0 = time.perf_counter()
    for _ in range(proto.num_frames):
        if eng.step >= proto.ramp_steps:  # the hold: another friction (and its matching noise)
            a = math.exp(-friction_hold * proto.timestep_ps)
            eng._fric_a = a
            eng._noise = math.sqrt(max(0.0, 1 - a * a) * BOLTZ_KJMOL_K * proto.temperature) * np.sqrt(eng._invm)
        eng.advance(proto.save_every)
        tips.append(eng.positions[:, eng.load_nodes].mean(1).copy())
    tips = np.array(tips)
    return {"friction_hold_per_ps": friction_hold, "tip_motion_last_interval_nm": np.linalg.norm(tips[-1] - tips[-2], axis=-1).tolist(),
            "final_tip_y_nm": tips[-1][:, 1].tolist(), "wall_s": time.perf_counter() - t0}


def relaxed_tip(params, out: Path) -> dict:
    """Tip y (nm, mean of the loaded nodes) and energy (kJ/mol) of ``cli.py relax`` on the exact field."""
    from ase.io import read

    from cgsurrogate import cli

    folder = out / ("relax_" + "_".join(f"{v:g}" for v in params))
    assert cli.main(["relax", "--params", ",".join(f"{v:g}" for v in params), "--out", str(folder), "--no-progress",
                     "--max-evals", "6000"]) == 0
    rec = json.loads((folder / "relax.json").read_text())
    pos = read(folder / "relaxed.xyz").get_positions() / 10.0  # Angstrom -> nm
    return {"tip_y_nm": float(pos[-26:, 1].mean()), "energy_kjmol": rec["energy_kjmol"], "converged": rec["converged"],
            "openmm_minimum": rec.get("openmm_minimum")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frictions", type=float, nargs="+", default=[1.5e-6, 1e-5, 3e-5, 1e-4, 3e-4])
    ap.add_argument("--out", default=str(HERE / "results" / "hold_friction.json"))
    args = ap.parse_args()
    params = np.array([[30, 30, 57, 3, 3], [30, 57, 57, 3, 3], [3, 30, 3, 30, 3], [30, 30, 30, 30, 30],
                       [3, 3, 3, 3, 3]], dtype=float)
    rows = []
    for g in args.frictions:
        r = run(params, g)
        rows.append(r)
        print(f"hold friction {g:.1e}/ps: tip motion {np.round(r['tip_motion_last_interval_nm'], 3)} nm, "
              f"final tip y {np.round(r['final_tip_y_nm'], 2)} nm ({r['wall_s']:.0f} s)", flush=True)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        relaxed = [relaxed_tip(p, Path(tmp)) for p in params]
    for p, r in zip(params, relaxed):
        print(f"relax {p}: tip y {r['tip_y_nm']:.2f} nm, energy {r['energy_kjmol']:.4f} kJ/mol", flush=True)
    res = {"params": params.tolist(), "relaxed": relaxed, "protocol": "short (ramp friction 1.5e-6/ps; the hold's friction varied)",
           "criterion_nm": 0.2, "rows": rows, "load_average": os.getloadavg()}
    Path(args.out).write_text(json.dumps(res, indent=1))
    lines = ["| hold friction (1/ps) | " + " | ".join(",".join(f"{v:g}" for v in p) for p in params) + " |",
             "|---|" + "---|" * len(params)]
    for r in rows:
        cells = [f"{m:.3g} nm / {y:.1f}" for m, y in zip(r["tip_motion_last_interval_nm"], r["final_tip_y_nm"])]
        lines.append(f"| {r['friction_hold_per_ps']:.1e} | " + " | ".join(cells) + " |")
    lines.append("| static minimum (`relax`), tip y / energy | " + " | ".join(
        f"{r['tip_y_nm']:.1f} / {r['energy_kjmol']:.2f} kJ/mol" for r in relaxed) + " |")
    Path(args.out).with_suffix(".md").write_text(
        "Tip motion over the last frame interval / final tip y (nm), short protocol, numba engine, 0.01 K; "
        f"load average {os.getloadavg()[0]:.1f}\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
