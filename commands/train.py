"""Command-line parser and handler of the ``train`` command: training surrogates on a microtubule dataset."""
from __future__ import annotations

from cgsurrogate.commands.arguments import CLIError


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
