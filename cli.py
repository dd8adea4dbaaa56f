"""Command-line interface: parses arguments and calls library functions.

Run ``python cli.py --help`` (or the ``cgsurrogate`` console script) for the commands.
Each command lives in its own block below: ``add_<name>(subparsers)`` builds the parser
and sets ``func`` to a small handler that imports the library lazily (so ``--help``
is fast) and calls it. :data:`COMMANDS` (above :func:`build_parser`) lists the ``add_``
functions in the order ``--help`` shows them; a new command adds its function there.

Errors: :class:`cgsurrogate.core.errors.CGSurrogateError` (input a user can fix) is printed
as one ``error: ...`` line on stderr with exit status 2; any other exception is a bug and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from cgsurrogate.core.errors import CGSurrogateError, InputFileError

#: Kept for the command sections: the CLI's user error is the project's one error class.
CLIError = CGSurrogateError


# ---- shared argument checks (used by the command sections) ----
def finite_float(text: str) -> float:
    """argparse ``type``: a finite float (refuses nan and inf, which float() accepts)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def strength_params(text: str):
    """The five strength parameters from ``L1,L2,A1,A2,Q`` (zJ) as ndarray [5]; one-line error otherwise."""
    from cgsurrogate.simulate.microtubule import parse_params

    try:
        return parse_params(text)
    except CGSurrogateError:
        raise
    except ValueError as exc:  # parse_params reports malformed user text as ValueError
        raise CGSurrogateError(str(exc)) from None


def _writable_ancestor(path: Path, flag: str) -> None:
    existing = next((a for a in path.parents if a.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise CGSurrogateError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CGSurrogateError(f"{flag} {path}: folder {existing} is not writable")


def input_file(path, flag: str) -> Path:
    """An existing input file named by ``flag``; :class:`InputFileError` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{flag} {p}: no such file" + (" (it is a folder)" if p.is_dir() else ""))
    return p


def output_file(path, flag: str, *, inputs=()) -> Path:
    """Check, before any computing, that ``path`` can be written as a file.

    Refuses a folder, a path under a file (``FILE/sub/x``), an unwritable folder and a path
    that is one of ``inputs`` (would overwrite the user's data).
    """
    p = Path(path)
    if p.is_dir():
        raise CGSurrogateError(f"{flag} {p}: is a folder, expected a file name")
    for other in inputs:
        if other is not None and Path(other).exists() and p.exists() and p.resolve() == Path(other).resolve():
            raise CGSurrogateError(f"{flag} {p}: is the input file; refusing to overwrite it")
    _writable_ancestor(p, flag)
    return p


def output_dir(path, flag: str) -> Path:
    """Check, before any computing, that ``path`` is or can become a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CGSurrogateError(f"{flag} {p}: is a file, expected a folder")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise CGSurrogateError(f"{flag} {p}: folder is not writable")
        return p
    _writable_ancestor(p, flag)
    return p


# ---- BEGIN simulate ----
def add_simulate(sub):
    p = sub.add_parser(
        "simulate",
        help="run a microtubule bending sweep in OpenMM into a dataset folder",
        description="Run the microtubule bending protocol for a set of strength parameters "
        "(default: the embedded 8-run sweep with the short protocol) into a resumable dataset "
        "folder, then write an extended-XYZ trajectory and a PNG of the first run. Without "
        "--scheduler no Dask is needed: --workers 1 runs in this process, more in local processes.",
    )
    p.add_argument("--out", required=True, help="dataset folder (created; a rerun resumes)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--grid", help="values per parameter: a count 1-7 (3 -> 3,30,57; 7 -> full 16,807-run grid) "
                   "or a comma list of grid values")
    g.add_argument("--params", action="append", metavar="L1,L2,A1,A2,Q",
                   help="one parameter set (zJ), repeatable; e.g. --params 30,30,30,30,30")
    p.add_argument("--protocol", choices=["short", "paper"], default="short",
                   help="short: 28,800 steps of 0.36 ns; paper: 576,000 steps of 0.018 ns (default short)")
    p.add_argument("--batch-size", type=int, default=4, help="replicas per task / OpenMM System (default 4)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes, at least 1 (default 2)")
    p.add_argument("--threads", type=int, default=1, help="OpenMM CPU threads per worker (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of an existing Dask scheduler (tcp://host:8786; needs the [sweep] extra)")
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
    from cgsurrogate.simulate.replicas import SimulationError
    from cgsurrogate.simulate.sweep import run_sweep, write_run_extras

    for name in ("batch_size", "workers", "threads"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    params = None
    if args.params:
        params = np.stack([parse_params(t, on_grid=not args.off_grid) for t in args.params])
    proto = Protocol.paper() if args.protocol == "paper" else Protocol.short()
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
    rest = res["rest"]
    if rest["num_measured"]:
        c = rest["criterion"]
        print(f"at rest (tip moves < {c['tip_motion_nm']} nm between the last two frames): "
              f"{rest['num_at_rest']}/{rest['num_measured']} runs")
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
    p.add_argument("--alpha", type=finite_float, default=1.0, help="alpha of the prolongation problem (default 1)")
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
    if args.load and args.graphs:
        raise CLIError("give either GRAPH arguments or --load, not both")
    if args.out:
        output_file(args.out, "--out", inputs=[args.load])
    graphs = [parse_graph(g) for g in args.graphs] if args.graphs else list(MICROTUBULE_GRAPHS)
    t0 = time.perf_counter()
    if args.load:
        h = Hierarchy.load(input_file(args.load, "--load"))
        how = f"loaded {args.load}"
    else:
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
    p = sub.add_parser("train", help="train a surrogate on microtubule dataset folders (resumable): the invariant "
                       "potential (default) or a GCN/GPCN-family model")
    p.add_argument("--data", required=True, action="append",
                   help="dataset folder (metadata.json + runs/); repeat to train the invariant potential on several "
                   "(e.g. a simulate folder and its sample folder)")
    p.add_argument("--model", default="invariant",
                   help="invariant (the invariant energy+force potential, default) or a GCN-family model: gcn, "
                   "ensemble-2, ensemble-3, gpcn-2, gpcn-3, a-gpcn-2, a-gpcn-3, ngcn-3, ngcn-5, diffpool-3")
    p.add_argument("--schedule", default="all",
                   help="all, gamma0, gamma1, gamma2, gamma3, coarse-to-fine (multilevel models only)")
    p.add_argument("--epochs", type=int, default=100, help="total epochs (paper: 1000); rerun with more to extend")
    p.add_argument("--batches-per-epoch", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3; invariant 1e-2)")
    p.add_argument("--lr-final", type=float, default=None,
                   help="invariant: decay the learning rate exponentially to this (default 1e-4)")
    p.add_argument("--w-energy", type=float, default=1.0, help="invariant: weight of the relative energy loss")
    p.add_argument("--w-force", type=float, default=1.0, help="invariant: weight of the relative force loss")
    p.add_argument("--clip-grad", type=float, default=0.0, help="invariant: gradient-norm clip (0 = off)")
    p.add_argument("--eval-every", type=int, default=1, help="invariant: evaluate every this many epochs")
    p.add_argument("--patience", type=int, default=0,
                   help="invariant: stop after this many evaluations without improvement (0 = never)")
    p.add_argument("--pool", type=int, default=2000,
                   help="invariant: augmented configurations (exact-field labels) added to the training frames")
    p.add_argument("--polish", type=int, default=200, help="invariant: L-BFGS iterations after the Adam epochs (0 = none)")
    p.add_argument("--anharmonic", action="store_true",
                   help="invariant: learn the bounded anharmonic factor too (generic autograd loss, slower)")
    p.add_argument("--seed", type=int, default=0, help="seeds the model, the split by run and the batches")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--max-val-samples", type=int, default=None, help="evaluate on an evenly spaced subset")
    p.add_argument("--out", required=True, help="output folder: log.csv, last.pt (resume), best.pt")
    p.set_defaults(func=_run_train)


def _run_train(args):
    from pathlib import Path

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: exists and is not a folder (train writes best.pt, last.pt, log.csv into it)")
    if args.epochs < 1 or args.batch_size < 1 or args.batches_per_epoch < 1:
        raise CLIError("--epochs, --batch-size and --batches-per-epoch must be positive")
    if args.model == "invariant":
        return _train_invariant(args)
    from cgsurrogate.surrogate.gcn.registry import MODEL_NAMES
    from cgsurrogate.surrogate.train.gcn_trainer import SCHEDULES, train_from_dataset

    if args.model not in MODEL_NAMES:
        raise CLIError(f"unknown model {args.model!r}; choose invariant or one of {', '.join(MODEL_NAMES)}")
    if args.schedule not in SCHEDULES:
        raise CLIError(f"unknown schedule {args.schedule!r}; choose from {', '.join(SCHEDULES)}")
    if len(args.data) != 1:
        raise CLIError("GCN-family models train on one --data folder")
    res = train_from_dataset(args.data[0], args.model, args.out, schedule=args.schedule, epochs=args.epochs,
                             seed=args.seed, val_fraction=args.val_fraction, lr=args.lr or 1e-3,
                             batch_size=args.batch_size, batches_per_epoch=args.batches_per_epoch,
                             max_val_samples=args.max_val_samples)
    print(f"{args.model} ({args.schedule}): best validation NMSE {res['best_val_nmse']:.4g} at epoch "
          f"{res['best_epoch']}, {res['flops']:.3g} training FLOPs; wrote {args.out}/best.pt, last.pt, log.csv")
    return 0


def _train_invariant(args):
    from cgsurrogate.surrogate.train.loop import TrainConfig
    from cgsurrogate.surrogate.train.potential_task import PotentialLoss, train_potential

    cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=args.batches_per_epoch, batch_size=args.batch_size,
                      lr=args.lr or 1e-2, lr_final=1e-4 if args.lr_final is None else args.lr_final,
                      clip_grad=args.clip_grad, eval_every=args.eval_every, patience=args.patience, seed=args.seed)
    loss = PotentialLoss(w_energy=args.w_energy, w_force=args.w_force)
    _, res = train_potential(args.data, args.out, config=cfg, loss=loss, val_fraction=args.val_fraction,
                             seed=args.seed, anharmonic=args.anharmonic, pool=args.pool,
                             polish_iterations=args.polish)
    m = res["best_metrics"] or {}
    print(f"invariant potential: best at epoch {res['best_epoch']}: force cosine median "
          f"{m.get('force_cosine_median', float('nan')):.5f}, force RMSE/RMS {m.get('force_rel_rmse_median', float('nan')):.4f}, "
          f"total-energy error {m.get('energy_rel_error_median', float('nan')):.4f} (validation runs); "
          f"wrote {args.out}/best.pt, last.pt")
    return 0
# ---- END train ----

# ---- BEGIN evaluate ----
def add_evaluate(sub):
    p = sub.add_parser("evaluate", help="errors of a trained checkpoint on a microtubule dataset")
    p.add_argument("--checkpoint", required=True, help="best.pt / last.pt written by train, or a shipped model name "
                   "(microtubule-invariant)")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="val", choices=("val", "train", "all"),
                   help="runs to use: the checkpoint's validation/training runs, or all runs in --data "
                   "(invariant potentials: all)")
    p.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args):
    from pathlib import Path

    from cgsurrogate.core.atomic import write_json_atomic

    if args.json and Path(args.json).is_dir():
        raise CLIError(f"--json {args.json}: is a folder")
    from cgsurrogate.surrogate.train.potential_eval import evaluate_potential, is_potential_checkpoint

    if is_potential_checkpoint(args.checkpoint):
        m = evaluate_potential(args.checkpoint, args.data)
        print(f"invariant potential on {m['runs']} runs ({m['configurations']} frames): force cosine median "
              f"{m['force_cosine_median']:.5f}, force RMSE/RMS median {m['force_rel_rmse_median']:.4g}, total-energy "
              f"error median {m['energy_rel_error_median']:.4g}")
    else:
        from cgsurrogate.surrogate.train.gcn_trainer import evaluate_checkpoint

        m = evaluate_checkpoint(args.checkpoint, args.data, split=args.split)
        print(f"{m['model']} on {m['runs']} runs ({m['samples']} frames, split {m['split']}): NMSE {m['nmse']:.4g}, "
              f"per-node RMSE {m['rmse_node_kjmol']:.4g} kJ/mol, total-energy MAE {m['mae_total_kjmol']:.4g} kJ/mol")
    if args.json:
        write_json_atomic(args.json, m)
    return 0
# ---- END evaluate ----

# ---- BEGIN sample ----
def add_sample(sub):
    p = sub.add_parser("sample", help="label configurations beyond the protocol frames with the exact field "
                       "(thermal, perturbed, partly relaxed, other loads, other strengths) into a dataset folder")
    p.add_argument("--data", required=True, help="source dataset folder written by simulate")
    p.add_argument("--out", required=True, help="new dataset folder, same format (a rerun resumes)")
    p.add_argument("--kinds", default="thermal,perturb,relaxed,load,restrength",
                   help="comma list of thermal, perturb, relaxed, load, restrength (default all)")
    p.add_argument("--runs-per-kind", type=int, default=None, help="source runs per kind (default all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_sample)


def _run_sample(args):
    from cgsurrogate.data.sampling import sample_dataset

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    res = sample_dataset(args.data, args.out, kinds, args.runs_per_kind, args.seed, progress=not args.no_progress)
    print(f"{res['out']}: {res['num_runs']} sampled runs ({res['already_done']} already on disk, "
          f"{len(res['computed'])} computed now)")
    return 0
# ---- END sample ----

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

    from cgsurrogate.surrogate.interfaces.prediction import predict

    params = strength_params(args.params) if args.params else None
    if args.batch_size < 1:
        raise CLIError(f"--batch-size {args.batch_size}: must be at least 1")
    input_file(args.input, "--input")
    if args.topology is not None:
        input_file(args.topology, "--topology")
    if args.model != "reference":
        from cgsurrogate.surrogate.pretrained import resolve_pretrained

        args.model = str(resolve_pretrained(args.model))  # shipped names, e.g. microtubule-invariant
        input_file(args.model, "--model")
    output = args.output or f"{Path(args.input).stem}.pred.npz"
    output_file(output, "--output", inputs=[args.input, args.topology, None if args.model == "reference" else args.model])
    if Path(output).suffix.lower() not in (".npz", ".xyz", ".extxyz"):
        raise CLIError(f"--output {output}: must end in .npz, .xyz or .extxyz")
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
    p.add_argument("--load", type=finite_float, default=1.0,
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
    p.add_argument("--tol", type=finite_float, default=None,
                   help="stop at this largest per-node gradient norm, kJ/mol/nm (default 1e-4)")
    p.add_argument("--max-evals", type=int, default=None, help="budget of fine energy+gradient evaluations")
    p.add_argument("--perturb", type=finite_float, default=0.0, help="Gaussian perturbation of the start, nm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-openmm", action="store_true", help="skip the OpenMM reference minimisation")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_relax)


def _run_relax(args):
    params = strength_params(args.params)
    if args.model is not None:
        from cgsurrogate.surrogate.pretrained import resolve_pretrained

        args.model = str(resolve_pretrained(args.model))  # shipped names, e.g. microtubule-invariant
        input_file(args.model, "--model")
    output_dir(args.out, "--out")
    if args.tol is not None and not args.tol > 0:
        raise CLIError(f"--tol {args.tol}: must be positive")
    if args.max_evals is not None and args.max_evals < 1:
        raise CLIError(f"--max-evals {args.max_evals}: must be at least 1")
    if args.perturb < 0:
        raise CLIError(f"--perturb {args.perturb}: must be non-negative")
    from cgsurrogate.optimize.microtubule_case import run_relax
    from cgsurrogate.optimize.report import stage_table
    from cgsurrogate.optimize.schedule import parse_schedule

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
                       description="Predict a coarse-grained mapping with the shipped DSGPM model (or a baseline) and "
                                   "write it as JSON in HAM's format, with a picture for small molecules; for "
                                   "structures also a PDB with the bead index in the B-factor column "
                                   "(OUT.beads.pdb), a CG PDB with one atom per bead (OUT.cg.pdb) and a "
                                   "residue-to-bead table (OUT.residues.tsv).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--smiles", help="molecule as SMILES (RDKit builds the heavy-atom graph)")
    src.add_argument("--structure", help="structure file read by MDAnalysis (PDB, GRO, PSF with --coords, ...)")
    p.add_argument("--coords", help="coordinate/trajectory file for a topology-only --structure (PSF + DCD/CRD)")
    p.add_argument("--selection", default=None,
                   help="MDAnalysis selection of the atoms to map (structure input; hydrogens are always dropped)")
    p.add_argument("--beads", type=int, help="number of CG beads")
    p.add_argument("--by-residue", action="store_true",
                   help="protein mode: beads follow residues (one or more per residue, none across a peptide bond)")
    p.add_argument("--beads-per-residue", type=int, help="protein mode: beads per residue instead of --beads")
    p.add_argument("--allow-cross-residue", action="store_true",
                   help="protein mode: allow fewer beads than residues (consecutive residues share a bead)")
    p.add_argument("--method", choices=["dsgpm", "spectral", "metis"], default="dsgpm")
    p.add_argument("--checkpoint", help="DSGPM checkpoint (default: the model shipped with the package)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="cgmap.json", help="output JSON (HAM format); other files share its stem")
    p.add_argument("--png", help="picture (default: the --out path with .png; drawn only when it can be read)")
    p.add_argument("--no-picture", action="store_true", help="do not draw")
    p.set_defaults(func=_run_cgmap)


def _run_cgmap(args):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices; before numpy loads
    from cgsurrogate.surrogate.cgmap.mapping import map_molecule, write_outputs

    if args.beads is None and args.beads_per_residue is None:
        raise CGSurrogateError("give --beads N (or --beads-per-residue K with --by-residue)")
    if args.beads_per_residue is not None and not args.by_residue:
        raise CGSurrogateError("--beads-per-residue needs --by-residue")
    if args.beads is not None and args.beads_per_residue is not None:
        raise CGSurrogateError("give either --beads or --beads-per-residue, not both")
    structure = None
    if args.structure:
        structure = (args.structure, args.coords) if args.coords else args.structure
    res = map_molecule(smiles=args.smiles, structure=structure, selection=args.selection, n_beads=args.beads,
                       method=args.method, checkpoint=args.checkpoint, seed=args.seed, by_residue=args.by_residue,
                       beads_per_residue=args.beads_per_residue, allow_cross_residue=args.allow_cross_residue)
    files = write_outputs(res, args.out, png=args.png, draw=not args.no_picture)
    labels = res.labels
    import numpy as np

    sizes = sorted(np.bincount(labels).tolist(), reverse=True)
    shown = str(sizes) if len(sizes) <= 12 else f"{sizes[-1]}..{sizes[0]} atoms"
    print(f"{res.graph.num_atoms} heavy atoms -> {len(sizes)} beads (sizes {shown}); wrote "
          + ", ".join(str(p) for p in files.values()))
    if "png" not in files and not args.no_picture:
        print("no picture: too many atoms to read in 2D; open the PDB files in a viewer (colour by B-factor)")
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
    output_file(args.out, "--out")
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
    p.add_argument("--cutoff-nm", type=finite_float, default=1.0, help="protein: A_global cutoff in nm (paper 10 A)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=None, help="default 50 (microtubule: 8 frames)")
    p.add_argument("--batches-per-epoch", type=int, default=None,
                   help="microtubule: optimiser steps per epoch (default 20)")
    p.add_argument("--max-val-samples", type=int, default=48, help="microtubule: validation frames (evenly spaced)")
    p.add_argument("--lr", type=finite_float, default=None, help="default 5e-4 (microtubule: 1e-3)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--clusters", type=int, default=None, help="EGHN clusters (default: M / 5 / 20; microtubule 24)")
    p.add_argument("--lambda-conn", type=finite_float, default=None,
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
    if args.lr <= 0 or args.hidden < 1 or args.lambda_conn < 0 or args.cutoff_nm <= 0 or args.span < 1:
        raise CLIError("--lr, --hidden, --cutoff-nm and --span must be positive and --lambda-conn non-negative")
    if args.clusters is not None and args.clusters < 1:
        raise CLIError(f"--clusters {args.clusters}: must be at least 1")
    if args.data is not None and not Path(args.data).exists():
        raise InputFileError(f"--data {args.data}: no such file or folder")
    for t in ([args.top] if args.top else []) + list(args.traj or []):
        input_file(t, "--top/--traj")
    (output_dir if mt else output_file)(args.out, "--out")
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
    p.add_argument("--ns", type=finite_float, default=10.0, help="production length in ns")
    p.add_argument("--frame-ps", type=finite_float, default=10.0, help="frame interval in ps")
    p.add_argument("--platform", default=None, help="CUDA, OpenCL, CPU or Reference (default: fastest)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_protein_md)


def _run_protein_md(args):
    from cgsurrogate.simulate.protein import ProteinProtocol, run_protein_md

    if args.ns <= 0 or args.frame_ps <= 0:
        raise CLIError("--ns and --frame-ps must be positive")
    input_file(args.pdb, "--pdb")
    output_dir(args.out, "--out")
    meta = run_protein_md(args.pdb, args.out, ProteinProtocol(total_ns=args.ns, report_every_ps=args.frame_ps,
                                                               platform=args.platform, seed=args.seed))
    rate = f", {meta['ns_per_day']:.3g} ns/day" if "ns_per_day" in meta else ""
    print(f"{meta['frames_written']} frames ({meta['ns_simulated']:.3g} ns) on {meta['platform']}{rate}; wrote {args.out}")
    return 0
# ---- END eghn ----


#: The commands, in the order ``--help`` lists them: each entry adds one subcommand.
COMMANDS = (
    add_simulate,
    add_hierarchy,
    add_train,
    add_evaluate,
    add_sample,
    add_predict,
    add_relax,
    add_cgmap,
    add_mcomplex,
    add_eghn_train,
    add_protein_md,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="cgsurrogate",
        description="Coarse-grained MD surrogates: simulate, train, evaluate, relax, predict.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (2 for a user error, printed as one line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except CGSurrogateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
