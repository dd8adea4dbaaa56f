"""Nested 5-fold cross-validation of CG-mapping methods on HAM, grouped by molecule.

Outer folds: ``ham_folds(annotations, 5, seed=0)``. For each outer fold the DSGPM selection
(:func:`cgsurrogate.surrogate.cgmap.nested_cv.dsgpm_fit`) sees only the four training folds:
inner splits of those molecules choose the epoch (and, with several ``--features``, the
feature set) and supply ensemble members; the test fold is scored once afterwards. Rows:
DSGPM (selected), the same network untrained, spectral clustering of the plain adjacency,
METIS, and human agreement (pairs of annotations of the same molecule with the same bead
count, within the test fold). Both protocols (paper and strict,
:mod:`cgsurrogate.surrogate.cgmap.metrics`); every method gets the same exact-count
connectivity post-processing. Means over folds with 95 % t-intervals.

CPU is scarce: each outer fold is its own run (``--fold K``) writing
``<out>.folds/fold<K>.json`` atomically; ``--summarise`` collects the finished folds into
``<out>`` and prints the table.

    nice python bench/dsgpm_cv.py --ham /work/shared/data/ham --fold 0 --out bench/results/dsgpm_nested_cv_50ep.json
    nice python bench/dsgpm_cv.py --inner-only --fold 0 --epochs 100 --augment automorphisms --out lever.json
    python bench/dsgpm_cv.py --summarise
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: threaded BLAS only loses on a shared machine
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from cgsurrogate.core.atomic import write_json_atomic  # noqa: E402
from cgsurrogate.data.ham import ham_folds, load_ham  # noqa: E402
from cgsurrogate.surrogate.cgmap.inference import predict_mapping  # noqa: E402
from cgsurrogate.surrogate.cgmap.metrics import METRICS, evaluate_paper, evaluate_strict, human_agreement  # noqa: E402
from cgsurrogate.surrogate.cgmap.nested_cv import dsgpm_fit, fold_interval, nested_cv  # noqa: E402
from cgsurrogate.surrogate.cgmap.partition import enforce_connectivity, metis_partition  # noqa: E402

ROWS = ("DSGPM", "DSGPM untrained", "spectral clustering", "METIS", "human")
PAPER = {"DSGPM": (0.79, 0.80), "spectral clustering": (0.73, 0.75), "METIS": (0.56, 0.58), "human": (0.81, 0.81)}


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def score_methods(embedder, test, untrained):
    """Both protocols for every method on the test fold (called once, after selection)."""
    methods = {
        "DSGPM": lambda g, k: predict_mapping(embedder, g, k),
        "DSGPM untrained": lambda g, k: predict_mapping(untrained, g, k),
        "spectral clustering": lambda g, k: predict_mapping(None, g, k),
        "METIS": lambda g, k: enforce_connectivity(metis_partition(g, k), g.edges, k),
    }
    out = {}
    for name, pred in methods.items():
        cache: dict = {}

        def cached(g, k, pred=pred, cache=cache):
            key = (g.name, k)
            if key not in cache:
                cache[key] = pred(g, k)
            return cache[key]
        out[name] = {"paper": evaluate_paper(test, cached), "strict": evaluate_strict(test, cached)}
    out["human"] = {"paper": human_agreement(test, use_automorphisms=True), "strict": human_agreement(test)}
    return out


def run_fold(args, anns, folds):
    from cgsurrogate.surrogate.cgmap.network import DSGPM
    from cgsurrogate.surrogate.cgmap.training import torch_embedder
    import torch

    torch.set_num_threads(1)
    fold_dir = Path(args.out + ".folds")
    load_before = _load()

    def fit(train):
        return dsgpm_fit(train, members=args.members, epochs=args.epochs, eval_every=args.eval_every,
                         feature_sets=tuple(args.features.split(",")), seed=args.seed, lr_final=args.lr_final,
                         augment=args.augment, progress=True)

    def score(embedder, test):
        torch.manual_seed(args.seed)
        untrained = torch_embedder(DSGPM(feature_set=embedder.feature_set))
        return score_methods(embedder, test, untrained)

    def on_fold(k, res):
        res.update(fold=args.fold, load_before=load_before, load_after=_load(), settings=vars(args))
        res.pop("train_paths")
        write_json_atomic(fold_dir / f"fold{args.fold}.json", res)

    one = [folds[args.fold]]
    t0 = time.perf_counter()
    nested_cv(anns, one, fit, score, on_fold=on_fold)
    print(f"fold {args.fold} done in {time.perf_counter() - t0:.0f} s ({_load()})")


def inner_only(args, anns, folds):
    """Lever measurement: train on the inner split of outer fold ``--fold`` only (the test fold is
    never loaded into training or scoring) and record the inner validation score per evaluation."""
    import torch

    from cgsurrogate.surrogate.cgmap.nested_cv import inner_split
    from cgsurrogate.surrogate.cgmap.training import train_dsgpm

    torch.set_num_threads(1)
    test = set(int(i) for i in folds[args.fold])
    train = [a for i, a in enumerate(anns) if i not in test]
    tr, va = inner_split(train, 5, 0, args.seed)
    load_before, t0 = _load(), time.perf_counter()
    _, hist = train_dsgpm(tr, va, epochs=args.epochs, eval_every=args.eval_every, seed=args.seed,
                          lr_final=args.lr_final, augment=args.augment,
                          model_config=dict(feature_set=args.features), progress=True)
    res = dict(outer_fold=args.fold, inner_train=len(tr), inner_val=len(va), history=hist,
               seconds=time.perf_counter() - t0, load_before=load_before, load_after=_load(), settings=vars(args))
    write_json_atomic(args.out, res)
    print(" ".join(f"{h['epoch']}:{h['val_score']:.4f}" for h in hist))
    print(f"inner split of fold {args.fold}: {res['seconds']:.0f} s ({res['load_after']})")


def summarise(args):
    fold_dir = Path(args.out + ".folds")
    res = [json.loads(p.read_text()) for p in sorted(fold_dir.glob("fold*.json"))]
    if not res:
        raise SystemExit(f"no finished folds in {fold_dir}")
    table = {}
    for row in ROWS:
        table[row] = {pr: {m: fold_interval([r["test"][row][pr][m] for r in res]) for m in METRICS}
                      for pr in ("paper", "strict")}
    gains = {pr: {m: fold_interval([r["test"]["DSGPM"][pr][m] - r["test"]["spectral clustering"][pr][m] for r in res])
                  for m in METRICS} for pr in ("paper", "strict")}
    summary = dict(folds=[r["fold"] for r in res], table=table, dsgpm_minus_spectral=gains,
                   selection=[r["selection"] for r in res], fit_seconds=[r["fit_seconds"] for r in res],
                   loads=[(r["load_before"], r["load_after"]) for r in res], settings=res[0]["settings"],
                   machine=platform.processor() or platform.machine(), cpus=os.cpu_count())
    write_json_atomic(args.out, summary)
    print(f"nested CV over folds {summary['folds']} (mean [95% t-interval over folds])")
    print(f"{'method':20s} | {'paper AMI':>22s} {'paper cut F1':>22s} | {'strict AMI':>22s} {'strict cut F1':>22s} | paper")
    for row in ROWS:
        cells = [table[row][pr][m] for pr in ("paper", "strict") for m in ("ami", "cut_f1")]
        txt = " ".join(f"{c['mean']:.3f} [{c['low']:.3f},{c['high']:.3f}]".rjust(22) for c in cells)
        ref = "%.2f/%.2f" % PAPER[row] if row in PAPER else "-"
        print(f"{row:20s} | {txt[:45]} | {txt[46:]} | {ref}")
    g = gains
    print("DSGPM - spectral (paired over folds): " + ", ".join(
        f"{pr} {m} {g[pr][m]['mean']:+.3f} [{g[pr][m]['low']:+.3f},{g[pr][m]['high']:+.3f}]"
        for pr in ("paper", "strict") for m in ("ami", "cut_f1")))
    for r in res:
        s = r["selection"]
        print(f"fold {r['fold']}: features {s['feature_set']} {s['feature_set_scores']}, epochs "
              f"{[m['selected_epoch'] for m in s['members']]}, fit {r['fit_seconds']:.0f} s; load {r['load_before']}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ham", default=None, help="HAM folder (default $CGS_SHARED_DATA/ham)")
    p.add_argument("--out", default="bench/results/dsgpm_nested_cv_50ep.json")
    p.add_argument("--fold", type=int, help="outer fold to run (0..4)")
    p.add_argument("--summarise", action="store_true")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--members", type=int, default=1)
    p.add_argument("--features", default="rich", help="comma-separated candidate feature sets (paper,rich)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr-final", type=float, default=1e-5, help="0: constant lr 1e-3; else exponential decay to this")
    p.add_argument("--augment", default="none", choices=("none", "automorphisms"))
    p.add_argument("--inner-only", action="store_true",
                   help="lever measurement: inner split of --fold only, writes the validation history to --out")
    args = p.parse_args(argv)
    if args.summarise:
        return summarise(args)
    anns = load_ham(args.ham)
    folds = ham_folds(anns, n_folds=5, seed=0)
    if args.inner_only:
        return inner_only(args, anns, folds)
    run_fold(args, anns, folds)


if __name__ == "__main__":
    main()
