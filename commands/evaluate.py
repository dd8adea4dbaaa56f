"""Command-line parser and handler of the ``evaluate`` command: errors of a trained checkpoint on a dataset."""
from __future__ import annotations

from cgsurrogate.commands.arguments import CLIError


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
