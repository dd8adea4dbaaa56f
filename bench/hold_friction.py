"""Which hold friction, and how far is the end of the hold from rest? (issue 15, runs at rest)

Runs the short protocol with the numba engine for a few strength sets (the grid's worst movers
at the end of ``runs/grid3`` and its two ends), keeping the protocol's friction during the ramp and
using ``--frictions`` during the hold, and reports the tip motion over the last frame interval and
the last dynamic tip; then the protocol's settle stage (FIRE at the full load, clamps held, to a
residual force of ``settle_tol`` loads) from that state: the settled tip, how far the settle moved
the tip, and its force evaluations; beside the tip of the static minimum the project's ``relax``
finds from the resting geometry (exact field, full load; ``cli.py relax``; ``--no-relax`` skips it).
Writes ``bench/results/hold_friction.{json,md}``.

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
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    st = eng.settle()
    settled = eng.positions[:, eng.load_nodes].mean(1)[:, 1]
    # ringing of the hold: the largest tip excursion over the hold frames from the settled tip
    hold = [i for i, s in enumerate(proto.save_steps) if s > proto.ramp_steps]
    return {"friction_hold_per_ps": friction_hold,
            "tip_motion_last_interval_nm": np.linalg.norm(tips[-1] - tips[-2], axis=-1).tolist(),
            "final_tip_y_nm": tips[-1][:, 1].tolist(), "wall_s": wall, "settled_tip_y_nm": settled.tolist(),
            "settle_tip_shift_nm": st["settle_tip_shift_nm"].tolist(),
            "settle_iterations": st["settle_iterations"].tolist(), "settle_residual": st["settle_residual"].tolist(),
            "settle_s": time.perf_counter() - t1,
            "hold_frames_max_tip_offset_nm": np.abs(tips[hold][:, :, 1] - settled[None]).max(0).tolist()}


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
    ap.add_argument("--no-relax", action="store_true", help="skip the static minima from the resting geometry")
    args = ap.parse_args()
    params = np.array([[30, 30, 57, 3, 3], [30, 57, 57, 3, 3], [3, 30, 3, 30, 3], [30, 30, 30, 30, 30],
                       [3, 3, 3, 3, 3]], dtype=float)
    rows = []
    for g in args.frictions:
        r = run(params, g)
        rows.append(r)
        print(f"hold friction {g:.1e}/ps: tip motion {np.round(r['tip_motion_last_interval_nm'], 3)} nm, "
              f"final tip y {np.round(r['final_tip_y_nm'], 2)} nm ({r['wall_s']:.0f} s); settled tip y "
              f"{np.round(r['settled_tip_y_nm'], 2)} nm, settle shift {np.round(r['settle_tip_shift_nm'], 2)} nm, "
              f"{r['settle_iterations']} evaluations ({r['settle_s']:.0f} s)", flush=True)
    import tempfile

    relaxed = []
    if not args.no_relax:
        with tempfile.TemporaryDirectory() as tmp:
            relaxed = [relaxed_tip(p, Path(tmp)) for p in params]
    for p, r in zip(params, relaxed):
        print(f"relax {p}: tip y {r['tip_y_nm']:.2f} nm, energy {r['energy_kjmol']:.4f} kJ/mol", flush=True)
    from cgsurrogate.simulate.protocol import Protocol

    res = {"params": params.tolist(), "relaxed": relaxed,
           "protocol": "short (ramp friction 1.5e-6/ps; the hold's friction varied), then the settle stage",
           "settle_tol": Protocol.short().settle_tol, "rows": rows, "load_average": os.getloadavg()}
    Path(args.out).write_text(json.dumps(res, indent=1))
    lines = ["| hold friction (1/ps) | " + " | ".join(",".join(f"{v:g}" for v in p) for p in params) + " |",
             "|---|" + "---|" * len(params)]
    for r in rows:
        cells = [f"{m:.3g} / {y:.1f} / {s:.1f} / {n} / {h:.1f}" for m, y, s, n, h in
                 zip(r["tip_motion_last_interval_nm"], r["final_tip_y_nm"], r["settled_tip_y_nm"],
                     r["settle_iterations"], r["hold_frames_max_tip_offset_nm"])]
        lines.append(f"| {r['friction_hold_per_ps']:.1e} | " + " | ".join(cells) + " |")
    if relaxed:
        lines.append("| static minimum from the resting geometry (`relax`), tip y / energy | " + " | ".join(
            f"{r['tip_y_nm']:.1f} / {r['energy_kjmol']:.2f} kJ/mol" for r in relaxed) + " |")
    Path(args.out).with_suffix(".md").write_text(
        "Per cell: tip motion over the last frame interval (nm) / last dynamic tip y (nm) / settled tip y (nm) / "
        "settle force evaluations / largest |tip - settled tip| over the hold frames (nm). Short protocol, numba "
        f"engine, 0.01 K, settle to a residual of {Protocol.short().settle_tol:g} loads; load average "
        f"{os.getloadavg()[0]:.1f}\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
