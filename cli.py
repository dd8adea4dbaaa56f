"""Command-line interface: parses arguments and calls library functions.

Run ``python cli.py --help`` (or the ``cgsurrogate`` console script) for the commands.
Each command lives in its own block below: ``add_<name>(subparsers)`` builds the parser
and sets ``func`` to a small handler that imports the library lazily (so ``--help``
is fast) and calls it.
"""
from __future__ import annotations

import argparse
import sys


class CLIError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""


# ---- BEGIN simulate ----
def add_simulate(sub):
    p = sub.add_parser(
        "simulate",
        help="run a microtubule bending sweep in OpenMM (on Dask) into a dataset folder",
        description="Run the microtubule bending protocol for a set of strength parameters "
        "(default: the embedded 8-run sweep with the short protocol) into a resumable dataset "
        "folder, then write an extended-XYZ trajectory and a PNG of the first run.",
    )
    p.add_argument("--out", required=True, help="dataset folder (created; a rerun resumes)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--grid", help="values per parameter: a count 1-7 (3 -> 3,30,57; 7 -> full 16,807-run grid) "
                   "or a comma list of grid values")
    g.add_argument("--params", action="append", metavar="L1,L2,A1,A2,Q",
                   help="one parameter set (zJ), repeatable; e.g. --params 30,30,30,30,30")
    p.add_argument("--protocol", choices=["short", "paper"], default="short",
                   help="short: 19,200 steps of 0.36 ns; paper: 384,000 steps of 0.018 ns (default short)")
    p.add_argument("--batch-size", type=int, default=4, help="replicas per Dask task / OpenMM System (default 4)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    p.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="address of an existing Dask scheduler (tcp://host:8786)")
    p.add_argument("--platform", help="OpenMM platform: CUDA, OpenCL, CPU, Reference (default: fastest available)")
    p.add_argument("--seed", type=int, default=0, help="Langevin seed (default 0)")
    p.add_argument("--off-grid", action="store_true", help="allow --params values outside the paper's grid")
    p.add_argument("--no-extras", action="store_true", help="skip the trajectory and PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args):
    import numpy as np

    from cgsurrogate.simulate.microtubule import parse_params
    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.sweep import run_sweep, write_run_extras

    params = None
    if args.params:
        params = np.stack([parse_params(t, on_grid=not args.off_grid) for t in args.params])
    proto = Protocol.paper() if args.protocol == "paper" else Protocol.short()
    from cgsurrogate.simulate.replicas import SimulationError

    try:
        res = run_sweep(
            args.out, param_sets=params, grid=args.grid, protocol=proto, batch_size=args.batch_size,
            scheduler=args.scheduler, n_workers=args.workers, threads_per_worker=args.threads,
            platform=args.platform, seed=args.seed, progress=not args.no_progress, on_grid=not args.off_grid,
        )
    except SimulationError as exc:
        raise CLIError(str(exc)) from None
    print(f"{res['out_dir']}: {res['num_runs'] - len(res['pending'])}/{res['num_runs']} runs complete "
          f"({res['already_done']} already on disk, {len(res['computed'])} computed now, {res['seconds']:.1f} s)")
    if res["results"]:
        d = [x for r in res["results"] for x in r["tip_deflection"]]
        print(f"tip deflection at the last frame of the runs computed now: {min(d):.1f} to {max(d):.1f} nm")
    if not args.no_extras and 0 not in res["pending"]:
        ex = write_run_extras(args.out, 0)
        print(f"run 0: tip {ex['tip_deflection']:.1f} nm below the axis; wrote {ex['trajectory']} and {ex['png']}")
    return 1 if res["pending"] else 0
# ---- END simulate ----

# ---- BEGIN hierarchy ----
def add_hierarchy(sub):
    p = sub.add_parser(
        "hierarchy",
        help="compute (or load) a graph hierarchy with LGDD prolongations, print sizes and distances, save it",
        description="Compute (or load) a graph hierarchy, finest graph first, with prolongation matrices from "
        "the linear graph diffusion distance (alpha = 1, cached on disk); print sizes and distances; save it. "
        "Graphs: Tube(n,k,p), Tube(n,k,p,w2) (seam weight 2), Grid(n,k), Path(n), Cycle(n). "
        "Default: the microtubule hierarchy Tube(48,13,3) Tube(24,13,1) Tube(24,3,0).",
    )
    p.add_argument("graphs", nargs="*", metavar="GRAPH", help="graphs, finest first (default: microtubule)")
    p.add_argument("--load", metavar="PATH", help="load a saved hierarchy instead of computing one")
    p.add_argument("--out", metavar="PATH", help="save the hierarchy here (torch file, weights_only loadable)")
    p.add_argument("--alpha", type=float, default=1.0, help="alpha of the prolongation problem (default 1)")
    p.add_argument("--refine", action="store_true", help="polish each P on the Stiefel manifold (pymanopt)")
    p.add_argument("--cache-dir", metavar="DIR", help="cache folder (default $CGS_CACHE_DIR or ~/.cache/cgsurrogate)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--no-optimal-alpha", action="store_true", help="skip the alpha-optimised distances")
    p.set_defaults(func=_run_hierarchy)


def _run_hierarchy(args):
    import time

    from cgsurrogate.surrogate.graphs.weighted_graph import parse_graph
    from cgsurrogate.surrogate.graphs.hierarchy import MICROTUBULE_GRAPHS, Hierarchy, build_hierarchy, hierarchy_report

    if not args.alpha > 0:
        raise CLIError(f"--alpha must be positive, got {args.alpha}")
    t0 = time.perf_counter()
    if args.load:
        if args.graphs:
            raise CLIError("give either GRAPH arguments or --load, not both")
        h = Hierarchy.load(args.load)
        how = f"loaded {args.load}"
    else:
        graphs = [parse_graph(g) for g in args.graphs] if args.graphs else list(MICROTUBULE_GRAPHS)
        h = build_hierarchy(graphs, alpha=args.alpha, refine=args.refine, cache_dir=args.cache_dir,
                            use_cache=not args.no_cache, progress=True)
        how = "computed or read from cache"
    elapsed = time.perf_counter() - t0
    rows = hierarchy_report(h, optimal_alpha=not args.no_optimal_alpha)
    print(f"{'level':>5}  {'graph':<18}{'nodes':>7}{'edges':>7}  {'D(alpha=' + format(h.alpha, 'g') + ')':>12}"
          + ("" if args.no_optimal_alpha else f"{'D(opt)':>10}{'alpha*':>9}"))
    for r in rows:
        line = f"{r['level']:>5}  {r['graph']:<18}{r['nodes']:>7}{r['edges']:>7}"
        if r["level"] > 0:
            line += f"  {r['distance']:>12.5f}"
            if "distance_opt" in r:
                line += f"{r['distance_opt']:>10.5f}{r['alpha_opt']:>9.4f}"
        print(line)
    print(f"hierarchy {h.names} {how} in {elapsed:.2f} s; distances are to the next finer level")
    if args.out:
        print(f"saved {h.save(args.out)}")
    return 0
# ---- END hierarchy ----

# ---- BEGIN train ----
def add_train(sub):
    p = sub.add_parser("train", help="train a GCN/GPCN-family surrogate on a microtubule dataset (resumable)")
    p.add_argument("--data", required=True, help="dataset folder (metadata.json + runs/)")
    p.add_argument("--model", default="a-gpcn-3",
                   help="gcn, ensemble-2, ensemble-3, gpcn-2, gpcn-3, a-gpcn-2, a-gpcn-3, ngcn-3, ngcn-5, diffpool-3")
    p.add_argument("--schedule", default="all",
                   help="all, gamma0, gamma1, gamma2, gamma3, coarse-to-fine (multilevel models only)")
    p.add_argument("--epochs", type=int, default=100, help="total epochs (paper: 1000); rerun with more to extend")
    p.add_argument("--batches-per-epoch", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="seeds the model, the split by run and the batches")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--max-val-samples", type=int, default=None, help="evaluate on an evenly spaced subset")
    p.add_argument("--out", required=True, help="output folder: log.csv, last.pt (resume), best.pt")
    p.set_defaults(func=_run_train)


def _run_train(args):
    from cgsurrogate.surrogate.gcn.registry import MODEL_NAMES
    from cgsurrogate.surrogate.train.gcn_trainer import SCHEDULES, train_from_dataset

    if args.model not in MODEL_NAMES:
        raise CLIError(f"unknown model {args.model!r}; choose from {', '.join(MODEL_NAMES)}")
    if args.schedule not in SCHEDULES:
        raise CLIError(f"unknown schedule {args.schedule!r}; choose from {', '.join(SCHEDULES)}")
    if args.epochs < 1 or args.batch_size < 1 or args.batches_per_epoch < 1:
        raise CLIError("--epochs, --batch-size and --batches-per-epoch must be positive")
    res = train_from_dataset(args.data, args.model, args.out, schedule=args.schedule, epochs=args.epochs,
                             seed=args.seed, val_fraction=args.val_fraction, lr=args.lr,
                             batch_size=args.batch_size, batches_per_epoch=args.batches_per_epoch,
                             max_val_samples=args.max_val_samples)
    print(f"{args.model} ({args.schedule}): best validation NMSE {res['best_val_nmse']:.4g} at epoch "
          f"{res['best_epoch']}, {res['flops']:.3g} training FLOPs; wrote {args.out}/best.pt, last.pt, log.csv")
    return 0
# ---- END train ----

# ---- BEGIN evaluate ----
def add_evaluate(sub):
    p = sub.add_parser("evaluate", help="errors of a trained GCN/GPCN checkpoint on a microtubule dataset")
    p.add_argument("--checkpoint", required=True, help="best.pt / last.pt written by train")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="val", choices=("val", "train", "all"),
                   help="runs to use: the checkpoint's validation/training runs, or all runs in --data")
    p.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args):
    import json
    import os

    from cgsurrogate.surrogate.train.gcn_trainer import evaluate_checkpoint

    m = evaluate_checkpoint(args.checkpoint, args.data, split=args.split)
    print(f"{m['model']} on {m['runs']} runs ({m['samples']} frames, split {m['split']}): NMSE {m['nmse']:.4g}, "
          f"per-node RMSE {m['rmse_node_kjmol']:.4g} kJ/mol, total-energy MAE {m['mae_total_kjmol']:.4g} kJ/mol")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(m, fh, indent=1)
        os.replace(tmp, args.json)
    return 0
# ---- END evaluate ----

# ---- BEGIN predict ----
def add_predict(sub):
    p = sub.add_parser(
        "predict",
        help="per-particle energies (and forces) of configurations with a trained surrogate",
        description="Read configurations (extended XYZ, or any trajectory MDAnalysis reads) and write "
        "per-particle energies in kJ/mol (and forces in kJ/mol/nm with --forces) to .npz, or to "
        "extended XYZ in eV and Angstrom.",
    )
    p.add_argument("--model", required=True,
                   help="checkpoint file, or 'reference' for the true microtubule force field")
    p.add_argument("--input", required=True, help="extended XYZ or MDAnalysis-readable file")
    p.add_argument("--topology", default=None, help="topology file for coordinate-only trajectories (DCD, XTC)")
    p.add_argument("--output", default=None,
                   help="output .npz, .xyz or .extxyz (default: <input stem>.pred.npz in the current folder)")
    p.add_argument("--params", default=None,
                   help="strength parameters LatAssoc,LongAssoc,LatAngle,LongAngle,QuadAngles in zJ "
                   "(default: each XYZ frame's params)")
    p.add_argument("--forces", action="store_true", help="also write forces (kJ/mol/nm)")
    p.add_argument("--batch-size", type=int, default=16, help="frames per model call (default 16)")
    p.add_argument("--no-velocities", action="store_true", help="ignore velocities stored in the input")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default cpu)")
    p.add_argument("--double", action="store_true", help="run the model in float64")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run_predict)


def _run_predict(args):
    from pathlib import Path

    import torch

    from cgsurrogate.simulate.microtubule import parse_params
    from cgsurrogate.surrogate.interfaces.prediction import predict

    params = parse_params(args.params) if args.params else None
    output = args.output or f"{Path(args.input).stem}.pred.npz"
    result = predict(
        args.model, args.input, output, params=params, topology=args.topology, forces=args.forces,
        batch_size=args.batch_size, use_velocities=not args.no_velocities, device=args.device,
        dtype=torch.float64 if args.double else torch.float32, progress=not args.no_progress,
    )
    n = len(result["total"])
    print(f"wrote {output}: {n} frame(s), {result['energies'].shape[1]} particles, "
          f"mean total energy {result['total'].mean():.6g} kJ/mol")
    return 0
# ---- END predict ----

# ---- BEGIN relax ----
def add_relax(sub):
    p = sub.add_parser(
        "relax",
        help="relax the microtubule coarse-to-fine under a surrogate (or the true energy) with clamps and load",
        description="Relax the microtubule to a low-energy structure: coarse modes of the prolongation "
        "hierarchy first, then all fine coordinates (L-BFGS or FIRE, gradient-norm stopping), with the "
        "first two turns clamped and a constant load on the last two. Writes relaxed.xyz (extended XYZ with "
        "per-particle energies), stages.txt, relax.json and relaxed.png (beside the OpenMM minimum).",
    )
    p.add_argument("--model", default=None,
                   help="surrogate checkpoint; omit to relax the true energy function")
    p.add_argument("--params", default="30,30,30,30,30",
                   help="five strengths LatAssoc,LongAssoc,LatAngle,LongAngle,QuadAngles (zJ) [%(default)s]")
    p.add_argument("--load", type=float, default=1.0,
                   help="load as a multiple of the protocol's full load, 9e-14 N = 0.0542 kJ/mol/nm per "
                   "monomer of the last two turns along -y; 0 for none [%(default)s]")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--schedule", default="default",
                   help="stages level[:max_evals[:tol]],... ; 'fine' for fine-only; default '2:600,0'")
    p.add_argument("--optimizer", choices=("lbfgs", "fire"), default="lbfgs")
    p.add_argument("--coarse-space", choices=("translate", "rigid"), default=None,
                   help="displacement fields of a coarse stage (default translate)")
    p.add_argument("--prolongation", choices=("spectral", "lgdd"), default=None,
                   help="prolongations from the hierarchy (default spectral)")
    p.add_argument("--tol", type=float, default=None,
                   help="stop at this largest per-node gradient norm, kJ/mol/nm (default 1e-4)")
    p.add_argument("--max-evals", type=int, default=None, help="budget of fine energy+gradient evaluations")
    p.add_argument("--perturb", type=float, default=0.0, help="Gaussian perturbation of the start, nm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-openmm", action="store_true", help="skip the OpenMM reference minimisation")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_relax)


def _run_relax(args):
    from cgsurrogate.simulate.microtubule import parse_params

    params = parse_params(args.params)
    if args.model is not None:
        from pathlib import Path

        if not Path(args.model).is_file():
            raise FileNotFoundError(f"{args.model}: no such checkpoint file")
    if args.tol is not None and not args.tol > 0:
        raise CLIError(f"--tol {args.tol}: must be positive")
    if args.max_evals is not None and args.max_evals < 1:
        raise CLIError(f"--max-evals {args.max_evals}: must be at least 1")
    if args.perturb < 0:
        raise CLIError(f"--perturb {args.perturb}: must be non-negative")
    from cgsurrogate.optimize.relax import parse_schedule
    from cgsurrogate.optimize.report import run_relax, stage_table

    parse_schedule(args.schedule)
    out = run_relax(args.out, params, model=args.model, load=args.load, schedule=args.schedule,
                    optimizer=args.optimizer, coarse_space=args.coarse_space,
                    prolongation_kind=args.prolongation, tol=args.tol, max_evals=args.max_evals,
                    perturb=args.perturb, seed=args.seed, openmm_reference=not args.no_openmm,
                    progress=not args.no_progress)
    r = out["result"]
    print(stage_table(r))
    if out["true"] is not None:
        print(f"true energy of the relaxed structure: {out['true']['energy']:.8g} kJ/mol")
    if out["reference"] is not None:
        print(f"OpenMM minimum (true force field): {out['reference']['energy']:.8g} kJ/mol; "
              f"RMSD relaxed vs OpenMM {out['rmsd_nm']:.4g} nm")
    for k, v in out["paths"].items():
        print(f"{k}: {v}")
    return 0 if r.converged else 1
# ---- END relax ----

# ---- BEGIN cgmap ----
def add_cgmap(sub):
    p = sub.add_parser("cgmap", help="map a molecule (SMILES or structure file) to CG beads (DSGPM)",
                       description="Predict a coarse-grained mapping with the shipped DSGPM model (or a baseline), "
                                   "write it as JSON in HAM's format and draw it as a PNG.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--smiles", help="molecule as SMILES (RDKit builds the heavy-atom graph)")
    src.add_argument("--structure", help="structure file read by MDAnalysis (PDB, PSF+coordinates via --coords, ...)")
    p.add_argument("--coords", help="coordinate file to pair with a topology-only --structure (e.g. PSF + CRD)")
    p.add_argument("--selection", default="not element H and not name H*",
                   help="MDAnalysis selection of the atoms to map (structure input)")
    p.add_argument("--beads", type=int, required=True, help="number of CG beads")
    p.add_argument("--method", choices=["dsgpm", "spectral", "metis"], default="dsgpm")
    p.add_argument("--checkpoint", help="DSGPM checkpoint (default: the model shipped with the package)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="cgmap.json", help="output JSON (HAM format)")
    p.add_argument("--png", help="output drawing (default: the --out path with .png)")
    p.set_defaults(func=_run_cgmap)


def _run_cgmap(args):
    from pathlib import Path

    from cgsurrogate.surrogate.cgmap.mapping import map_molecule

    structure = None
    if args.structure:
        structure = (args.structure, args.coords) if args.coords else args.structure
    png = args.png or str(Path(args.out).with_suffix(".png"))
    graph, labels = map_molecule(smiles=args.smiles, structure=structure, selection=args.selection,
                                 n_beads=args.beads, method=args.method, checkpoint=args.checkpoint,
                                 seed=args.seed, out_json=args.out, out_png=png)
    sizes = sorted((int((labels == b).sum()) for b in range(int(labels.max()) + 1)), reverse=True)
    shown = str(sizes) if len(sizes) <= 12 else f"{sizes[-1]}..{sizes[0]} atoms"
    print(f"{graph.num_atoms} heavy atoms -> {len(sizes)} beads (sizes {shown}); wrote {args.out} and {png}")
    return 0
# ---- END cgmap ----

# ---- BEGIN eghn ----
def add_mcomplex(sub):
    p = sub.add_parser("mcomplex", help="generate an M-complex dataset (EGHN paper sec. 4.1) as one .npz")
    p.add_argument("--out", required=True, help="output .npz (same layout as shared/data/mcomplex)")
    p.add_argument("--complexes", type=int, default=3, help="M, number of rigid complexes")
    p.add_argument("--size", type=int, default=3, help="N/M, average complex size")
    p.add_argument("--systems", type=int, default=1, help="J, number of system types (1 = single-system mode)")
    p.add_argument("--train", type=int, default=500)
    p.add_argument("--valid", type=int, default=200)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--steps", type=int, default=2600, help="integration steps (frames every 100; 2600 -> 26)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_mcomplex)


def _run_mcomplex(args):
    from cgsurrogate.simulate.mcomplex import write_mcomplex_dataset

    if min(args.complexes, args.size, args.systems, args.train, args.valid, args.test) < 1:
        raise CLIError("--complexes, --size, --systems, --train, --valid and --test must be positive")
    if args.steps < 2600:
        raise CLIError("--steps must be at least 2600 (the target is frame 25)")
    path = write_mcomplex_dataset(args.out, args.complexes, args.size, args.systems, args.train, args.valid,
                                  args.test, args.steps, args.seed)
    print(f"wrote {path}")
    return 0


def add_eghn_train(sub):
    p = sub.add_parser("eghn-train", help="train Linear/MPNN/EGNN/EGHN on M-complex, motion capture or protein MD, "
                       "or the EGHN energy head on a microtubule dataset")
    p.add_argument("--task", required=True, choices=("mcomplex", "mocap", "protein", "microtubule"),
                   help="microtubule: EGHN energy head on the dataset folder --data, written as --out/best.pt, a "
                        "surrogate checkpoint that load_surrogate, the ASE/OpenMM wrappers and predict read")
    p.add_argument("--model", default="eghn", choices=("linear", "mpnn", "egnn", "eghn"))
    p.add_argument("--data", default=None, help="M-complex or motion-capture .npz (default: under $CGS_SHARED_DATA), "
                                                "or a microtubule dataset folder")
    p.add_argument("--top", default=None, help="protein topology (PSF/PDB/GRO); default: MDAnalysisTests AdK")
    p.add_argument("--traj", nargs="*", default=None, help="protein trajectories (DCD/XTC/TRR/NetCDF)")
    p.add_argument("--span", type=int, default=15, help="protein: frames between input and target")
    p.add_argument("--cutoff-nm", type=float, default=1.0, help="protein: A_global cutoff in nm (paper 10 A)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=None, help="default 50 (microtubule: 8 frames)")
    p.add_argument("--batches-per-epoch", type=int, default=None,
                   help="microtubule: optimiser steps per epoch (default 20)")
    p.add_argument("--max-val-samples", type=int, default=48, help="microtubule: validation frames (evenly spaced)")
    p.add_argument("--lr", type=float, default=None, help="default 5e-4 (microtubule: 1e-3)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--clusters", type=int, default=None, help="EGHN clusters (default: M / 5 / 20; microtubule 24)")
    p.add_argument("--lambda-conn", type=float, default=None,
                   help="weight of the connectivity loss (default 1; microtubule 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="checkpoint .pt (best-validation weights; resumes when present); "
                                                "microtubule: a folder for best.pt and train_state.pt (resume)")
    p.set_defaults(func=_run_eghn_train)


def _run_eghn_train(args):
    from cgsurrogate.surrogate.train.dynamics_trainer import train_benchmark

    mt = args.task == "microtubule"
    for name, dyn, mtv in (("batch_size", 50, 8), ("lr", 5e-4, 1e-3), ("lambda_conn", 1.0, 0.1),
                           ("batches_per_epoch", None, 20)):
        if getattr(args, name) is None:
            setattr(args, name, mtv if mt else dyn)
    if args.epochs < 1 or args.batch_size < 1 or (args.batches_per_epoch is not None and args.batches_per_epoch < 1):
        raise CLIError("--epochs, --batch-size and --batches-per-epoch must be positive")
    if mt:
        from cgsurrogate.surrogate.equivariant.energy_head import train_microtubule_energy

        if args.model != "eghn":
            raise CLIError("--task microtubule trains the EGHN energy head; use --model eghn")
        if not args.data:
            raise CLIError("--task microtubule needs --data (a microtubule dataset folder)")
        r = train_microtubule_energy(args.data, args.out, epochs=args.epochs, batches_per_epoch=args.batches_per_epoch,
                                     batch_size=args.batch_size, lr=args.lr, hidden=args.hidden,
                                     n_clusters=args.clusters or 24, lambda_conn=args.lambda_conn, seed=args.seed,
                                     max_val_samples=args.max_val_samples)
        print(f"eghn energy head on {args.data}: best validation NMSE {r['best_val_nmse']:.4g} at epoch "
              f"{r['best_epoch']} ({r['n_train']}/{r['n_val']} frames); wrote {r['checkpoint']}")
        return 0
    if bool(args.top) != bool(args.traj):
        raise CLIError("--top and --traj go together")
    sources = [(args.top, t) for t in args.traj] if args.traj else None
    r = train_benchmark(args.task, args.model, args.out, data=args.data, sources=sources, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, hidden=args.hidden, clusters=args.clusters,
                        lambda_conn=args.lambda_conn, seed=args.seed, span=args.span, cutoff_nm=args.cutoff_nm)
    print(f"{args.model} on {args.task}: best validation MSE {r['best_val_mse']:.5g} at epoch {r['best_epoch']}, "
          f"test MSE {r['test_mse']:.5g} ({r['n_train']}/{r['n_valid']}/{r['n_test']} samples); wrote {args.out}")
    return 0


def add_protein_md(sub):
    p = sub.add_parser("protein-md", help="OpenMM amber14/GBn2 protein trajectory for EGHN data (resumable)")
    p.add_argument("--pdb", required=True, help="input structure")
    p.add_argument("--out", required=True, help="output folder: topology.pdb, trajectory.dcd, metadata.json")
    p.add_argument("--ns", type=float, default=10.0, help="production length in ns")
    p.add_argument("--frame-ps", type=float, default=10.0, help="frame interval in ps")
    p.add_argument("--platform", default=None, help="CUDA, OpenCL, CPU or Reference (default: fastest)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_protein_md)


def _run_protein_md(args):
    from cgsurrogate.simulate.protein import ProteinProtocol, run_protein_md

    if args.ns <= 0 or args.frame_ps <= 0:
        raise CLIError("--ns and --frame-ps must be positive")
    meta = run_protein_md(args.pdb, args.out, ProteinProtocol(total_ns=args.ns, report_every_ps=args.frame_ps,
                                                               platform=args.platform, seed=args.seed))
    rate = f", {meta['ns_per_day']:.3g} ns/day" if "ns_per_day" in meta else ""
    print(f"{meta['frames_written']} frames ({meta['ns_simulated']:.3g} ns) on {meta['platform']}{rate}; wrote {args.out}")
    return 0
# ---- END eghn ----


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cgsurrogate",
        description="Coarse-grained MD surrogates: simulate, train, evaluate, relax, predict.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, obj in list(globals().items()):
        if name.startswith("add_") and callable(obj):
            obj(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
