"""Command-line parser and handler of the ``active-learn`` command: grow a potential's training data
where it disagrees with the exact field (:mod:`cgsurrogate.surrogate.train.active_learning`)."""
from __future__ import annotations

from cgsurrogate.commands.arguments import CLIError


def add_active_learn(sub):
    p = sub.add_parser("active-learn", help="active learning of the invariant potential: label the configurations "
                       "its own MD and relaxations reach where it disagrees most with the exact field, retrain")
    p.add_argument("--data", required=True, help="dataset folder of the initial training frames")
    p.add_argument("--runs", default=None, help="comma list of run ids of --data to start from (default all)")
    p.add_argument("--test", required=True, help="dataset folder measured after every round (all its frames)")
    p.add_argument("--out", required=True, help="folder of the rounds (round_<r>/model.pt, record.json, data/); "
                   "a rerun resumes, with more --rounds it continues")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--per-round", type=int, default=8, help="configurations labelled per round")
    p.add_argument("--candidates", type=int, default=48, help="candidates proposed per round")
    p.add_argument("--strategy", default="disagreement", choices=("disagreement", "random"))
    p.add_argument("--epochs", type=int, default=100, help="training epochs of every round (10 steps each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_active_learn)


def _run_active_learn(args):
    from pathlib import Path

    from cgsurrogate.data.microtubule import read_metadata
    from cgsurrogate.surrogate.train.active_learning import ActiveLearningConfig, read_frames, run_active_learning

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CLIError(f"--out {args.out}: exists and is not a folder")
    runs = None
    if args.runs:
        try:
            runs = [int(v) for v in args.runs.split(",") if v.strip()]
        except ValueError:
            raise CLIError(f"--runs {args.runs!r}: expected comma-separated run ids") from None
    meta = read_metadata(args.data)
    initial = read_frames(args.data, runs)
    cfg = ActiveLearningConfig(rounds=args.rounds, per_round=args.per_round, candidates=args.candidates,
                               strategy=args.strategy, epochs=args.epochs, seed=args.seed)
    recs = run_active_learning(initial, read_frames(args.test), meta, args.out, cfg, progress=not args.no_progress)
    for r in recs:
        t = r["test"]
        print(f"round {r['round']}: {r['train_size']} training configurations; test force RMSE/RMS median "
              f"{t['force_rel_rmse_median']:.4g} (pooled {t['force_rmse_over_rms_pooled']:.4g}), force cosine median "
              f"{t['force_cosine_median']:.5f}, energy error median {t['energy_rel_error_median']:.4g}")
    last = recs[-1]["round"]
    print(f"last model: {Path(args.out) / f'round_{last:02d}' / 'model.pt'} (loads with load_surrogate)")
    return 0
