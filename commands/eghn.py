"""Command-line parser and handler of the EGHN commands: ``mcomplex`` data, ``eghn-train`` and ``protein-md``."""
from __future__ import annotations

import argparse
from pathlib import Path

from cgsurrogate.core.errors import InputFileError
from cgsurrogate.commands.arguments import CLIError, finite_float, input_file, output_file, output_dir


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
    p.add_argument("--velocity", choices=("backward", "forward"), default="backward",
                   help="protein: input velocity x[t]-x[t-1] (paper text) or x[t+1]-x[t] (the authors' code)")
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
    p.add_argument("--clip-grad", type=finite_float, default=0.0,
                   help="gradient-norm clip, 0 = off (default 0, as the EGHN authors' code)")
    p.add_argument("--eval-every", type=int, default=5, help="validate every N epochs (default 5)")
    p.add_argument("--patience", type=int, default=0,
                   help="stop after N validations without improvement (0 = never; the authors use 50)")
    p.add_argument("--weight-decay", type=finite_float, default=1e-12, help="Adam weight decay (default 1e-12)")
    p.add_argument("--layers", type=int, default=4, help="MPNN/EGNN layers (default 4)")
    p.add_argument("--layers-per-block", type=int, default=2, help="EGHN: EGNN layers per block (default 2)")
    p.add_argument("--pool-layers", type=int, default=2, help="EGHN: EMMP layers inside each E-Pool (default 2)")
    p.add_argument("--unpool-init", choices=["standard", "identity"], default="standard",
                   help="EGHN: E-UnPool initialisation (default standard, PyTorch's)")
    p.add_argument("--conn-norm", choices=["frobenius", "squared"], default="frobenius",
                   help="EGHN: connectivity loss as the Frobenius norm (eq. 16, default) or its square")
    p.add_argument("--pool-design", choices=["input", "hidden"], default="input",
                   help="EGHN: E-Pool pools the input x, v and the decoder refines each node's offset from its "
                        "cluster (input, the authors' code; default) or pools hidden coordinates (hidden)")
    p.add_argument("--pool-degree", action=argparse.BooleanOptionalAction, default=True,
                   help="EGHN: the node's degree on A_local in the E-Pool scores (not in the paper; default on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="checkpoint .pt (best-validation weights; resumes when present); "
                                                "microtubule: a folder for best.pt and last.pt (resume)")
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
    if min(args.eval_every, args.layers, args.layers_per_block, args.pool_layers) < 1:
        raise CLIError("--eval-every, --layers, --layers-per-block and --pool-layers must be at least 1")
    if args.patience < 0 or args.clip_grad < 0 or args.weight_decay < 0:
        raise CLIError("--patience, --clip-grad and --weight-decay must be non-negative")
    if args.clusters is not None and args.clusters < 1:
        raise CLIError(f"--clusters {args.clusters}: must be at least 1")
    if args.data is not None and not Path(args.data).exists():
        raise InputFileError(f"--data {args.data}: no such file or folder")
    for t in ([args.top] if args.top else []) + list(args.traj or []):
        input_file(t, "--top/--traj")
    (output_dir if mt else output_file)(args.out, "--out")
    if mt:
        from cgsurrogate.surrogate.train.energy_head_training import train_microtubule_energy

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
                        lambda_conn=args.lambda_conn, seed=args.seed, span=args.span, cutoff_nm=args.cutoff_nm,
                        clip_grad=args.clip_grad, eval_every=args.eval_every, patience=args.patience,
                        weight_decay=args.weight_decay, n_layers=args.layers, layers_per_block=args.layers_per_block,
                        pool_layers=args.pool_layers, unpool_init=args.unpool_init, conn_norm=args.conn_norm,
                        pool_design=args.pool_design, pool_degree=args.pool_degree, velocity=args.velocity)
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
