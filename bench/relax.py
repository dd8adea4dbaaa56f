"""Coarse-to-fine relaxation against fine-only, ASE FIRE and OpenMM's minimiser (issue 6).

For each parameter set and load: fine-level energy+gradient evaluations and wall time to
reach the gradient-norm tolerance for coarse-to-fine (several variants) and fine-only
L-BFGS; the final energy; the true energy of the relaxed structure against OpenMM's
minimised energy; RMSD to the OpenMM minimum. With ``--model`` the same for a surrogate
checkpoint (its own energy is what is minimised; the true energy and RMSD then measure
the surrogate's error). Prints a table and writes JSON (atomically).

    python bench/relax.py [--out bench/results/relax.json] [--model CKPT ...] [--quick] [--ase]

Timings depend on the machine and its load: report them with that caveat.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch


from cgsurrogate.optimize.references import ase_fire, openmm_minimize, rmsd, true_objective  # noqa: E402
from cgsurrogate.optimize import default_boundary, relax  # noqa: E402
from cgsurrogate.optimize.microtubule_case import load_model_for_relax  # noqa: E402
from cgsurrogate.optimize.report import format_table  # noqa: E402
from cgsurrogate.simulate.energy import TrueEnergy  # noqa: E402
from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM  # noqa: E402
from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy  # noqa: E402

PARAM_SETS = {
    "all30": (30, 30, 30, 30, 30),
    "all57": (57, 57, 57, 57, 57),
    "mixed": (9, 30, 57, 3, 18),
    "all9": (9, 9, 9, 9, 9),
    "all3": (3, 3, 3, 3, 3),
}
#: name -> relax() keyword arguments
METHODS = {
    "fine-only": dict(schedule="fine"),
    "c2f default (spectral, translate, Galerkin) 2,0": dict(schedule="2:600,0"),
    "c2f spectral 1,0 (Galerkin, 936 vars)": dict(schedule="1:3000,0"),
    "c2f lgdd rigid 2,0 (Galerkin)": dict(schedule="2:1000,0", prolongation_kind="lgdd", coarse_space="rigid"),
    "c2f lgdd translate 2,0 (Galerkin)": dict(schedule="2:1000,0", prolongation_kind="lgdd"),
    "c2f spectral 2,0 no Galerkin (plain nested stages)": dict(schedule="2:600,0", galerkin=False),
    "fine-only FIRE": dict(schedule="fine", optimizer="fire"),
}


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/relax.json")
    ap.add_argument("--params", nargs="*", default=["all30", "all57", "mixed", "all3"], choices=list(PARAM_SETS))
    ap.add_argument("--loads", nargs="*", type=float, default=[1.0], help="multiples of the protocol's full load")
    ap.add_argument("--methods", nargs="*", default=None, help="subset of the method names (default all)")
    ap.add_argument("--model", nargs="*", default=[], help="surrogate checkpoints to relax as well")
    ap.add_argument("--tol", type=float, default=1e-4, help="gradient-norm tolerance, kJ/mol/nm")
    ap.add_argument("--max-evals", type=int, default=6000)
    ap.add_argument("--quick", action="store_true", help="fine-only and the default coarse-to-fine only")
    ap.add_argument("--ase", action="store_true", help="also ASE FIRE (slow) on the first case")
    ap.add_argument("--ase-steps", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = dict(METHODS)
    if args.quick:
        methods = {k: v for k, v in METHODS.items() if k.startswith(("fine-only", "c2f default"))}
    if args.methods:
        methods = {k: v for k, v in METHODS.items() if k in args.methods}
    h = microtubule_hierarchy()
    true_fn = TrueEnergy()
    topo = true_fn.topology
    clamp, load_nodes = default_boundary(topo)
    energies = [("true", true_fn)] + [(Path(m).as_posix(), load_model_for_relax(m)) for m in args.model]
    rows, cases = [], []
    for pname in args.params:
        p = np.asarray(PARAM_SETS[pname], dtype=np.float64)
        for load in args.loads:
            force = load * LOAD_FORCE_KJMOL_NM
            t0 = time.perf_counter()
            ref = openmm_minimize(p, load_force=force, tolerance=1e-6)
            ref_time = time.perf_counter() - t0
            case = {"params": pname, "params_zj": p.tolist(), "load": load, "load_force_kjmol_nm": force,
                    "openmm": {"energy": ref["energy"], "fmax": ref["fmax"], "time_s": ref_time,
                               "platform": ref["platform"]}, "runs": []}
            for ename, fn in energies:
                fine_evals = None
                for mname, kw in methods.items():
                    t1 = time.perf_counter()
                    try:
                        r = relax(fn, p, topo.positions, hierarchy=h, clamp_nodes=clamp, load_nodes=load_nodes,
                                  load_force=force, reference=topo.positions, tol=args.tol,
                                  max_evals=args.max_evals, progress=False, **kw)
                    except FloatingPointError as exc:
                        case["runs"].append({"energy_fn": ename, "method": mname, "error": str(exc)})
                        continue
                    wall = time.perf_counter() - t1
                    tp = true_objective(p, r.positions, load_force=force) if ename != "true" else None
                    true_e = r.energy if tp is None else tp["energy"]
                    if mname == "fine-only":
                        fine_evals = r.evals if r.converged else None
                    run = {
                        "energy_fn": ename, "method": mname, "evals": r.evals, "wall_s": wall,
                        "converged": r.converged, "energy": r.energy, "fmax": r.fmax, "true_energy": true_e,
                        "openmm_energy": ref["energy"], "rmsd_to_openmm_nm": rmsd(r.positions, ref["positions"]),
                        "speedup_evals": (fine_evals / r.evals) if (fine_evals and r.converged) else None,
                        "stages": [(s.level, s.evals, s.reason) for s in r.stages],
                    }
                    case["runs"].append(run)
                    rows.append({
                        "params": pname, "load": f"{load:g}", "energy": ename if ename == "true" else Path(ename).name,
                        "method": mname, "evals": r.evals, "wall_s": round(wall, 2), "conv": "yes" if r.converged else "no",
                        "E_final": r.energy, "E_true": true_e, "E_openmm": ref["energy"],
                        "rmsd_nm": run["rmsd_to_openmm_nm"],
                        "x_fewer": "" if run["speedup_evals"] is None else f"{run['speedup_evals']:.2f}",
                    })
                    print(format_table(rows[-1:]), flush=True)
            if args.ase and not cases:
                t1 = time.perf_counter()
                a = ase_fire(true_fn, p, load_force=force, tol=args.tol, max_steps=args.ase_steps)
                case["ase_fire"] = {k: a[k] for k in ("evals", "steps", "converged", "energy", "fmax", "time_s")}
                case["ase_fire"]["rmsd_to_openmm_nm"] = rmsd(a["positions"], ref["positions"])
                rows.append({"params": pname, "load": f"{load:g}", "energy": "true", "method": "ASE FIRE",
                             "evals": a["evals"], "wall_s": round(time.perf_counter() - t1, 2),
                             "conv": "yes" if a["converged"] else "no", "E_final": a["energy"],
                             "E_true": a["energy"], "E_openmm": ref["energy"],
                             "rmsd_nm": case["ase_fire"]["rmsd_to_openmm_nm"], "x_fewer": ""})
                print(format_table(rows[-1:]), flush=True)
            cases.append(case)
            _write_json(Path(args.out), {"cases": cases, "partial": True})
    print()
    print(format_table(rows))
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "torch_threads": args.threads,
            "tol_kjmol_nm": args.tol, "max_evals": args.max_evals, "torch": torch.__version__,
            "note": "wall times on a shared, loaded machine"}
    _write_json(Path(args.out), {"meta": meta, "cases": cases, "table": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
