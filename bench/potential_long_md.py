"""Stability of the shipped surrogate over 10^6 MD steps of the bending protocol (issue 12).

The torch model costs ~10 ms per energy + forces on one thread, so 10^6 Python steps would take
hours. For fixed strengths the invariant potential is a sum of harmonic bond and angle terms
with learned stiffnesses, so it exports *exactly* to native OpenMM forces
(:func:`cgsurrogate.surrogate.interfaces.surrogate_openmm_native.export_openmm_system`); this
bench checks that on the run's own configurations (Reference platform, float64) and then runs
the protocol's integrator (OpenMM ``LangevinMiddleIntegrator``, the dataset's time step,
temperature and friction, the load ramped linearly over ``ramp_steps`` steps then held) for
``--steps`` steps on the CPU platform, for the surrogate and, with the same seed, for the exact
field. Every ``--every`` steps it records the tip deflection, the largest bond length / rest
length, and the energies (internal, load, kinetic).

Energy drift: the protocol's Langevin friction (1.5e-6/ps, a damping time of ~1,850 steps of
360 ps) removes energy on purpose, so drift is measured separately: ``--nve-steps`` steps of
velocity Verlet (no friction, full load held) started from the state at the end of the ramp,
where the tube still oscillates; the relative change of the total energy (internal + load +
kinetic) against the kinetic energy scale is reported.

Writes ``bench/results/potential_long_md.{json,md,png}``. Usage::

    python bench/potential_long_md.py --data runs/heldout --steps 1000000
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _context(system, integ, platform, threads=1):
    import openmm

    plat = openmm.Platform.getPlatformByName(platform)
    props = {"Threads": str(threads)} if platform == "CPU" else {}
    return openmm.Context(system, integ, plat, props)


def _state(ctx, topo, groups_internal=frozenset({0, 1})):
    from openmm import unit

    from cgsurrogate.simulate.replicas import tip_deflection

    st = ctx.getState(getPositions=True, getEnergy=True)
    x = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    kin = st.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
    e_int = ctx.getState(getEnergy=True, groups=set(groups_internal)).getPotentialEnergy().value_in_unit(
        unit.kilojoule_per_mole)
    e_load = ctx.getState(getEnergy=True, groups={2}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    r = np.linalg.norm(x[topo.bonds[:, 1]] - x[topo.bonds[:, 0]], axis=1) / topo.bond_r0
    return {"tip_nm": float(tip_deflection(x, topo)), "max_bond_ratio": float(r.max()), "min_bond_ratio": float(r.min()),
            "internal_kjmol": e_int, "load_kjmol": e_load, "kinetic_kjmol": kin, "finite": bool(np.isfinite(x).all())}, x


def run_protocol(system, info, proto, steps, every, seed, platform="CPU", nve_steps=0):
    """The protocol (ramp, then hold up to ``steps``) on ``system``; returns the trace, the
    positions at the end of the ramp and at the end, the NVE drift record and the wall time."""
    import openmm
    from openmm import unit

    from cgsurrogate.simulate.integrator import advance, protocol_integrator

    topo = info.topology
    integ = protocol_integrator(proto, info.load_scale_param, seed, "host")
    ctx = _context(system, integ, platform)
    ctx.setPositions(topo.positions * unit.nanometer)
    ctx.setVelocities(np.zeros_like(topo.positions) * unit.nanometer / unit.picosecond)
    ctx.setParameter(info.load_scale_param, proto.load_scale(0))
    trace, at_ramp, t0 = [], None, time.perf_counter()
    marks = sorted(set(list(range(every, steps + 1, every)) + [min(proto.ramp_steps, steps)]))
    s = 0
    for m in marks:
        advance(ctx, integ, proto, info.load_scale_param, s, m)
        s = m
        rec, x = _state(ctx, topo)
        trace.append({"step": m, **rec})
        if m == proto.ramp_steps:
            at_ramp = ctx.getState(getPositions=True, getVelocities=True)
        if not rec["finite"]:
            break
    wall = time.perf_counter() - t0
    nve = None
    if nve_steps and at_ramp is not None:
        v = openmm.VerletIntegrator(proto.timestep_ps * unit.picosecond)
        c2 = _context(system, v, platform)
        c2.setState(at_ramp)
        c2.setParameter(info.load_scale_param, 1.0)
        rows = []
        chunk = max(nve_steps // 100, 1)
        for _ in range(0, nve_steps, chunk):
            r, _ = _state(c2, topo)
            rows.append(r["internal_kjmol"] + r["load_kjmol"] + r["kinetic_kjmol"])
            v.step(chunk)
        r, _ = _state(c2, topo)
        rows.append(r["internal_kjmol"] + r["load_kjmol"] + r["kinetic_kjmol"])
        kin = [t["kinetic_kjmol"] for t in trace if t["step"] == proto.ramp_steps][0]
        rows = np.asarray(rows)
        nve = {"steps": int(nve_steps), "total_start": float(rows[0]), "total_end": float(rows[-1]),
               "max_abs_change": float(np.abs(rows - rows[0]).max()), "kinetic_at_start": float(kin),
               "max_abs_change_over_kinetic": float(np.abs(rows - rows[0]).max() / max(kin, 1e-300))}
    return trace, x, nve, wall


def check_export(model, system, s, xs):
    """Largest relative energy and force difference, exported System (Reference, float64) vs torch, over
    the configurations ``xs`` (strained ones: at rest both are 0)."""
    import openmm
    from openmm import unit

    ctx = _context(system, openmm.VerletIntegrator(1.0), "Reference")
    de, df = 0.0, 0.0
    for x in xs:
        ctx.setPositions(x * unit.nanometer)
        st = ctx.getState(getEnergy=True, getForces=True, groups={0, 1})
        e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        f = np.asarray(st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
        xt = torch.as_tensor(x)[None].clone().requires_grad_(True)
        tot, _ = model(xt, torch.as_tensor(s)[None])
        (g,) = torch.autograd.grad(tot.sum(), xt)
        e_t = float(tot.detach())
        de = max(de, abs(e - e_t) / abs(e_t))
        df = max(df, float(np.abs(f + g[0].numpy()).max() / np.abs(g.numpy()).max()))
    return de, df


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="runs/heldout")
    ap.add_argument("--model", default="microtubule-invariant")
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=10_000)
    ap.add_argument("--nve-steps", type=int, default=100_000)
    ap.add_argument("--runs", default="all", help="comma list of run ids of --data (strength sets), or all")
    ap.add_argument("--platform", default="CPU")
    ap.add_argument("--out", default=str(RESULTS / "potential_long_md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from cgsurrogate import load_surrogate
    from cgsurrogate.data.microtubule import list_runs, load_run, read_metadata
    from cgsurrogate.simulate.openmm_system import build_microtubule_system
    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.sweep import run_path
    from cgsurrogate.surrogate.interfaces.surrogate_openmm_native import export_openmm_system

    model = load_surrogate(args.model, dtype=torch.float64)
    meta = read_metadata(args.data)
    pd = dict(meta["protocol"])
    pd["hold_steps"] = args.steps - pd["ramp_steps"]
    pd["save_every"] = args.steps
    pd["ramp"] = "linear"  # the protocol simulate runs now (older metadata has no key and reads as staircase)
    proto = Protocol.from_dict(pd)
    ids = list_runs(args.data) if args.runs == "all" else [int(v) for v in args.runs.split(",")]
    rows = []
    for rid in ids:
        s = np.asarray(load_run(run_path(args.data, rid))["params"], np.float64)
        out = {"run": rid, "strengths": s.tolist()}
        for name in ("surrogate", "exact"):
            if name == "surrogate":
                system, info = export_openmm_system(model, s, load_force=proto.load)
            else:
                system, info = build_microtubule_system(s, model.topology, load_force=proto.load)
            info.topology = model.topology
            trace, x, nve, wall = run_protocol(system, info, proto, args.steps, args.every, seed=1 + rid,
                                               platform=args.platform, nve_steps=args.nve_steps)
            out[name] = {"trace": trace, "nve": nve, "wall_s": wall, "steps_run": trace[-1]["step"],
                         "max_bond_ratio": max(t["max_bond_ratio"] for t in trace),
                         "final_tip_nm": trace[-1]["tip_nm"], "load_average": os.getloadavg()}
            if name == "surrogate":
                noisy = model.topology.positions + 0.1 * np.random.default_rng(rid).standard_normal(x.shape)
                out[name]["export_check_rel"] = check_export(model, system, s, [noisy, x])
            print(f"run {rid} {name}: {trace[-1]['step']} steps in {wall:.1f} s, tip {trace[-1]['tip_nm']:.3f} nm, "
                  f"max bond {out[name]['max_bond_ratio']:.4f}x rest", flush=True)
        st, ex = out["surrogate"]["trace"], out["exact"]["trace"]
        n = min(len(st), len(ex))
        out["tip_rel_diff_max_after_ramp"] = float(max(
            abs(a["tip_nm"] - b["tip_nm"]) / abs(b["tip_nm"]) for a, b in zip(st[:n], ex[:n])
            if b["step"] >= proto.ramp_steps))
        rows.append(out)
    res = {"model": args.model, "data": str(Path(args.data).resolve()), "protocol": proto.to_dict(),
           "platform": args.platform, "threads": 1, "steps": args.steps, "runs": rows}
    path = Path(args.out)
    path.with_suffix(".json").write_text(json.dumps(res, indent=1))
    md = ["# Surrogate MD stability, 10^6 protocol steps (exported to native OpenMM forces)", "",
          f"Protocol integrator of `{args.data}` (LangevinMiddle, dt {proto.timestep_ps} ps, T {proto.temperature} K, "
          f"friction {proto.friction}/ps, linear ramp {proto.ramp_steps} steps then hold), OpenMM {args.platform}, 1 thread.",
          "", "| run | strengths (zJ) | steps | max bond / rest (surrogate) | (exact) | final tip surrogate / exact (nm) "
          "| max tip diff after ramp | NVE |dE|/KE, 1e5 steps (surr.) | export check dE, dF (rel.) | wall s surr. / exact | load |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        su, ex = r["surrogate"], r["exact"]
        nve = su["nve"]["max_abs_change_over_kinetic"] if su["nve"] else float("nan")
        md.append(f"| {r['run']} | {', '.join(f'{v:g}' for v in r['strengths'])} | {su['steps_run']} | "
                  f"{su['max_bond_ratio']:.4f} | {ex['max_bond_ratio']:.4f} | {su['final_tip_nm']:.3f} / "
                  f"{ex['final_tip_nm']:.3f} | {r['tip_rel_diff_max_after_ramp']:.2e} | {nve:.2e} | "
                  f"{su['export_check_rel'][0]:.1e}, {su['export_check_rel'][1]:.1e} | {su['wall_s']:.0f} / "
                  f"{ex['wall_s']:.0f} | {su['load_average'][0]:.1f} |")
    path.with_suffix(".md").write_text("\n".join(md) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for i, r in enumerate(rows):
        for name, ls in (("surrogate", "-"), ("exact", ":")):
            tr = r[name]["trace"]
            steps = [t["step"] for t in tr]
            axes[0].plot(steps, [t["tip_nm"] for t in tr], ls, color=f"C{i}", label=f"run {r['run']} {name}")
            axes[1].plot(steps, [t["max_bond_ratio"] for t in tr], ls, color=f"C{i}")
    axes[0].set_xlabel("step"), axes[0].set_ylabel("tip deflection (nm)"), axes[0].legend(fontsize=6, ncol=2)
    axes[1].set_xlabel("step"), axes[1].set_ylabel("largest bond / rest length")
    for ax in axes:
        ax.set_xscale("log")
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    print("\n".join(md))


if __name__ == "__main__":
    main()
