"""Coarse-to-fine against fine-only relaxation at 48, 96 and 480 turns (and a >= 10,000-monomer tube),
under the exact field and the shipped surrogate (issue 12, length transfer).

Each node of ``Tube(n,13,3)`` is one tubulin monomer (alpha on even turns, beta on odd:
``simulate.microtubule.tubulin_kind``), so ``Tube(480,13,3)`` has 6,240 monomers and a tube of at
least 10,000 monomers needs 770 turns or more (``--big 800``: 10,400 monomers).

Problem at every length: first two rings clamped, the last two loaded along -y with the
protocol's per-monomer load scaled by ``(48 / n)^2`` (a cantilever's deflection grows as
``F L^3``, so this keeps the deflection / length ratio of the 48-turn case and the same amount of
nonlinearity), start at rest, strengths ``--params`` (off the training grid).

Methods (the project's :func:`cgsurrogate.optimize.relax`, SciPy L-BFGS-B stages, tolerance
``--tol`` on the largest per-node gradient, every fine energy+gradient evaluation counted):
``fine-only`` (``schedule="fine"``) and ``coarse-to-fine`` (``schedule="default"``, i.e. ``2:600,0``
with Galerkin preconditioning) on spectral prolongations built for that length: the ``m`` lowest
eigenvectors of the tube's bond-graph Laplacian, ``--coarse`` modes at level 2 (72, as the 48-turn
hierarchy's level 2) and twice that at level 1 (unused by the default schedule). Reference minimum:
OpenMM's ``LocalEnergyMinimizer`` on the exact field (``optimize.references.openmm_minimize``).

Writes ``bench/results/relax_length.{json,md}``. Usage::

    python bench/relax_length.py [--turns 48,96,480] [--big 800] [--max-evals 4000]
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


def spectral_prolongations(topo, sizes):
    """``[I, P_1, P_2, ...]``: orthonormal ``[N, m_k]`` spanning the ``m_k`` lowest eigenvectors of the
    bond-graph Laplacian of ``topo`` (the project's ``spectral`` prolongation, built for any length)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh

    N = topo.num_nodes
    i, j = topo.bonds[:, 0], topo.bonds[:, 1]
    A = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(N, N))
    A = ((A + A.T) > 0).astype(np.float64)
    L = sp.diags(np.asarray(A.sum(1)).ravel()) - A
    m = max(sizes)
    if N <= 2000:
        lam, U = np.linalg.eigh(L.toarray())
    else:
        lam, U = eigsh(L.tocsc(), k=m, sigma=-1e-3, which="LM")
    U = U[:, np.argsort(lam)]
    return [torch.eye(N, dtype=torch.float64)] + [torch.as_tensor(np.ascontiguousarray(U[:, :s])) for s in sizes]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", default="48,96,480")
    ap.add_argument("--big", type=int, default=800, help="turns of the >= 10,000-monomer tube (0 = skip)")
    ap.add_argument("--params", default="12,40,22,15,44")
    ap.add_argument("--model", default="microtubule-invariant")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--max-evals", type=int, default=4000)
    ap.add_argument("--big-max-evals", type=int, default=1500, help="budget of the --big tube")
    ap.add_argument("--ref-iterations", type=int, default=20000, help="cap of OpenMM's minimiser (0 = none)")
    ap.add_argument("--coarse", type=int, default=72, help="coarse modes of level 2")
    ap.add_argument("--fields", default="exact,surrogate")
    ap.add_argument("--out", default=str(RESULTS / "relax_length"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from cgsurrogate import load_surrogate
    from cgsurrogate.optimize import relax
    from cgsurrogate.optimize.references import openmm_minimize, true_objective
    from cgsurrogate.simulate.energy import TrueEnergy
    from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM, tube_topology
    from cgsurrogate.simulate.replicas import tip_deflection
    from cgsurrogate.simulate.tube import Tube

    params = [float(v) for v in args.params.split(",")]
    shipped = load_surrogate(args.model, dtype=torch.float64)
    out = Path(args.out)
    prev = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").is_file() else {}
    rows = {(r["turns"], r["field"], r["method"]): r for r in prev.get("rows", [])}
    refs = {int(k): v for k, v in prev.get("reference", {}).items()}
    cases = [(int(n), ("fine-only", "coarse-to-fine")) for n in args.turns.split(",")]
    if args.big:
        cases.append((int(args.big), ("coarse-to-fine",)))
    for n, methods in cases:
        if n in refs and all((n, f, m) in rows for f in args.fields.split(",") for m in methods):
            continue  # all measured (resume)
        topo = tube_topology(Tube(n, 13, 3))
        load = LOAD_FORCE_KJMOL_NM * (48.0 / n) ** 2
        t0 = time.perf_counter()
        P = spectral_prolongations(topo, [2 * args.coarse, args.coarse])
        t_pro = time.perf_counter() - t0
        if n not in refs:
            t0 = time.perf_counter()
            ref = openmm_minimize(params, load_force=load, topology=topo, tolerance=1e-6, platform="Reference",
                                  max_iterations=args.ref_iterations)
            refs[n] = {"energy": float(ref["energy"]), "tip_nm": float(tip_deflection(ref["positions"], topo)),
                       "fmax": float(ref["fmax"]),
                       "seconds": time.perf_counter() - t0, "monomers": topo.num_nodes}
            print(f"{n} turns: OpenMM minimum {refs[n]['energy']:.6f} kJ/mol, tip {refs[n]['tip_nm']:.3f} nm", flush=True)
        for field in args.fields.split(","):
            fn = TrueEnergy(topo) if field == "exact" else shipped.for_topology(topo)
            for method in methods:
                if (n, field, method) in rows:
                    continue
                t0 = time.perf_counter()
                budget = args.big_max_evals if n == args.big else args.max_evals
                r = relax(fn, params, schedule="fine" if method == "fine-only" else "default", prolongations=P,
                          tol=args.tol, max_evals=budget, load_force=load, progress=False)
                wall = time.perf_counter() - t0
                tobj = true_objective(params, r.positions, load_force=load, topology=topo)
                row = {"turns": n, "monomers": topo.num_nodes, "field": field, "method": method,
                       "fine_evals": int(r.evals), "budget": budget, "converged": bool(r.converged), "fmax": float(r.fmax),
                       "wall_s": wall, "prolongation_s": t_pro, "objective": float(r.energy),
                       "true_objective": float(tobj["energy"]), "reference_energy": refs[n]["energy"],
                       "true_objective_rel_diff": abs(float(tobj["energy"]) - refs[n]["energy"]) / abs(refs[n]["energy"]),
                       "tip_nm": float(tip_deflection(r.positions, topo)), "reference_tip_nm": refs[n]["tip_nm"],
                       "load_force_per_monomer": load, "load_average": os.getloadavg(),
                       "stages": [{"level": s.level, "evals": s.evals, "reason": s.reason} for s in r.stages]}
                rows[(n, field, method)] = row
                print(f"{n} turns {field} {method}: {row['fine_evals']} evals, converged {row['converged']}, "
                      f"{wall:.0f} s, true objective {row['true_objective']:.6f} (OpenMM {refs[n]['energy']:.6f})",
                      flush=True)
                res = {"params": params, "tol": args.tol, "max_evals": args.max_evals, "coarse_modes": args.coarse,
                       "reference": refs, "rows": list(rows.values())}
                out.parent.mkdir(parents=True, exist_ok=True)
                out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    res = {"params": params, "tol": args.tol, "max_evals": args.max_evals, "coarse_modes": args.coarse,
           "reference": refs, "rows": list(rows.values())}
    best = {n: min([refs[n]["energy"]] + [r["true_objective"] for r in rows.values() if r["turns"] == n]) for n in refs}
    md = ["# Coarse-to-fine vs fine-only relaxation by tube length", "",
          f"Strengths {params} zJ; load per monomer 0.0542 x (48/n)^2 kJ/mol/nm on the last two rings; tol "
          f"{args.tol} kJ/mol/nm (largest per-node gradient); budget {args.max_evals} fine evaluations "
          f"({args.big_max_evals} for the {args.big}-turn tube); level-2 coarse space {args.coarse} spectral modes. "
          "Energies are the exact-field objective (internal + load) of each result. Reference: OpenMM "
          f"LocalEnergyMinimizer on the exact field (Reference platform, tolerance 1e-6, cap {args.ref_iterations} "
          "iterations); 'best' is the lowest objective any method reached at that length.", "",
          "| turns | monomers | OpenMM minimiser: objective / fmax (kJ/mol/nm) / tip nm / s | best objective |",
          "|---|---|---|---|"]
    for n in sorted(refs):
        f = refs[n]
        md.append(f"| {n} | {f['monomers']} | {f['energy']:.6g} / {f.get('fmax', float('nan')):.1e} / "
                  f"{f['tip_nm']:.2f} / {f['seconds']:.0f} | {best[n]:.6g} |")
    md += ["", "| turns | field | method | fine evals (budget) | converged | wall s | exact objective | rel. diff to best "
           "| tip nm | gain in fine evals (fine-only / c2f) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows.values(), key=lambda r: (r["turns"], r["field"], r["method"] != "fine-only")):
        gain = ""
        if r["method"] == "coarse-to-fine" and (r["turns"], r["field"], "fine-only") in rows:
            f = rows[(r["turns"], r["field"], "fine-only")]
            gain = (f"{f['fine_evals'] / r['fine_evals']:.2f}x" if f["converged"] else
                    f"> {f['fine_evals'] / r['fine_evals']:.2f}x (fine-only not converged)")
        rel = abs(r["true_objective"] - best[r["turns"]]) / abs(best[r["turns"]])
        md.append(f"| {r['turns']} | {r['field']} | {r['method']} | {r['fine_evals']} ({r.get('budget', '')}) | "
                  f"{r['converged']} | {r['wall_s']:.0f} | {r['true_objective']:.6g} | {rel:.1e} | {r['tip_nm']:.2f} | "
                  f"{gain} |")
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
