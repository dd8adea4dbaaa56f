"""5-fold cross-validation of CG-mapping methods on HAM (Li et al. 2020, table 1).

Rows: DSGPM (trained; epoch selected on a validation split of the training folds, never on
the test fold), the same network untrained (same seed), spectral clustering on the plain
adjacency, METIS (pymetis), and human agreement. Columns: AMI and cut precision / recall /
F1 under the paper's protocol (best over annotations and automorphic relabellings) and the
strict one (one prediction per bead count, mean over raw annotations). All methods use the
same connectivity post-processing (exactly the requested number of connected beads).

Resumable: each finished fold is written to ``<out>.folds/fold<k>.json`` (atomic) and
skipped on a re-run. Prints a table and writes ``<out>`` (JSON).

    nice python bench/dsgpm_cv.py --ham /work/shared/data/ham --epochs 30 \\
        --out bench/results/dsgpm_cv.json
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


from cgsurrogate.data.ham import ham_folds, load_ham  # noqa: E402
from cgsurrogate.surrogate.cgmap.metrics import METRICS, evaluate_paper, evaluate_strict, human_agreement  # noqa: E402
from cgsurrogate.surrogate.cgmap.dsgpm import DSGPM, collate, dsgpm_loss, enforce_connectivity, metis_partition, predict_mapping, prepare_graph, \
    save_dsgpm, train_dsgpm  # noqa: E402

METHODS = ("DSGPM", "DSGPM untrained", "spectral clustering", "METIS")
PAPER = {"DSGPM": (0.79, 0.80), "spectral clustering": (0.73, 0.75), "METIS": (0.56, 0.58), "human": (0.81, 0.81)}


def _atomic_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def split_train_val(anns, val_parts: int, seed: int):
    """Split annotations by molecule: 1/val_parts for validation, rest for training."""
    parts = ham_folds(anns, n_folds=val_parts, seed=seed)
    val = [anns[i] for i in parts[0]]
    train = [anns[i] for i in np.concatenate(parts[1:])]
    return train, val


def time_epoch(anns, threads: int, batch_size: int, config: dict, repeats: int = 1) -> float:
    """Seconds for one training epoch over all given annotations (forward, backward, Adam step)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = DSGPM(**config)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        prepared = [prepare_graph(a.graph, a.labels) for a in anns]
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            for s in range(0, len(prepared), batch_size):
                batch = collate(prepared[s:s + batch_size])
                loss, _, _ = dsgpm_loss(model(batch), batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
            best = min(best, time.perf_counter() - t0)
        return float(best)
    finally:
        torch.set_num_threads(old)


def run_fold(k, anns, folds, args, config):
    test = [anns[i] for i in folds[k]]
    rest = [anns[i] for f, idx in enumerate(folds) if f != k for i in idx]
    train, val = split_train_val(rest, args.val_parts, seed=100 + k)
    t0 = time.perf_counter()
    model, hist = train_dsgpm(train, val, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              margin=args.margin, seed=args.seed, eval_every=args.eval_every,
                              model_config=config, progress=True)
    train_s = time.perf_counter() - t0
    torch.manual_seed(args.seed)
    untrained = DSGPM(**config).eval()
    predictors = {
        "DSGPM": lambda g, n: predict_mapping(model, g, n),
        "DSGPM untrained": lambda g, n: predict_mapping(untrained, g, n),
        "spectral clustering": lambda g, n: predict_mapping(None, g, n),
        "METIS": lambda g, n: enforce_connectivity(metis_partition(g, n), g.edges, n),
    }
    res = {}
    for name, raw in predictors.items():
        cache = {}

        def pred(g, n, raw=raw, cache=cache):  # both protocols reuse one prediction per (molecule, beads)
            key = (g.name, n)
            if key not in cache:
                cache[key] = raw(g, n)
            return cache[key]

        res[name] = {"paper": evaluate_paper(test, pred), "strict": evaluate_strict(test, pred)}
        print(f"  fold {k} {name:20s} paper AMI {res[name]['paper']['ami']:.3f} F1 {res[name]['paper']['cut_f1']:.3f}"
              f" | strict AMI {res[name]['strict']['ami']:.3f} F1 {res[name]['strict']['cut_f1']:.3f}", flush=True)
    sel = [h for h in hist if h.get("selected")]
    return {"fold": k, "n_train": len(train), "n_val": len(val), "n_test": len(test),
            "selected_epoch": sel[0]["epoch"] if sel else args.epochs, "train_seconds": train_s,
            "epoch_seconds_mean": float(np.mean([h["seconds"] for h in hist])),
            "history": hist, "results": res}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ham", default=None, help="HAM folder (default $CGS_SHARED_DATA/ham)")
    p.add_argument("--out", default="bench/results/dsgpm_cv.json")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--only-folds", type=int, nargs="*", default=None)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--eval-every", type=int, default=3)
    p.add_argument("--val-parts", type=int, default=8, help="1/val_parts of the training molecules validate")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--margin", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (2 threads thrash on a shared 2-core machine)")
    p.add_argument("--time-epoch", action="store_true", help="time one training epoch over all annotations first")
    p.add_argument("--skip-cv", action="store_true", help="no cross-validation (e.g. only --save-pretrained)")
    p.add_argument("--save-pretrained", default=None,
                   help="after CV, train on all folds (validation split for the epoch) and save the checkpoint here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = dict(hidden=args.hidden, out_dim=args.hidden, steps=args.steps)
    anns = load_ham(args.ham)
    folds = ham_folds(anns, n_folds=args.folds, seed=args.seed)
    out = Path(args.out)
    fold_dir = out.with_name(out.name + ".folds")
    n_mol = len({a.smiles for a in anns})
    print(f"HAM: {len(anns)} annotations, {n_mol} molecules, {args.folds} folds; epochs {args.epochs}", flush=True)

    if args.time_epoch:
        # speed: one epoch over every annotation (956 molecules), 2 threads and 1 thread
        epoch_s = {f"{t}_threads": time_epoch(anns, t, args.batch_size, config) for t in (2, 1)}
        print(f"epoch over {len(anns)} annotations / {n_mol} molecules: " +
              ", ".join(f"{k} {v:.1f} s" for k, v in epoch_s.items()), flush=True)
        _atomic_json(out.with_name(out.stem + "_epoch_time.json"),
                     {"epoch_seconds": epoch_s, "annotations": len(anns), "molecules": n_mol,
                      "batch_size": args.batch_size, "config": config, "note": "shared, loaded 2-core machine"})
    if args.skip_cv:
        table = None
    else:
        table = run_cv(args, anns, folds, config, fold_dir, n_mol)
    if args.save_pretrained:
        save_pretrained(args, anns, config, table)


def run_cv(args, anns, folds, config, fold_dir, n_mol):
    out = Path(args.out)

    fold_res = []
    for k in (args.only_folds if args.only_folds is not None else range(args.folds)):
        f = fold_dir / f"fold{k}.json"
        if f.exists():
            fold_res.append(json.loads(f.read_text()))
            print(f"fold {k}: loaded from {f}", flush=True)
            continue
        print(f"fold {k}: training", flush=True)
        r = run_fold(k, anns, folds, args, config)
        r["config"] = {**config, "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                       "margin": args.margin, "eval_every": args.eval_every}
        _atomic_json(f, r)
        fold_res.append(r)

    human = {"paper": human_agreement(anns, use_automorphisms=True), "strict": human_agreement(anns)}
    table = {}
    for m in METHODS:
        table[m] = {}
        for proto in ("paper", "strict"):
            vals = {k: [fr["results"][m][proto][k] for fr in fold_res] for k in METRICS}
            table[m][proto] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in vals.items()}
    summary = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "threads": args.threads, "note": "shared, loaded 2-core machine"},
        "args": vars(args), "folds_done": [fr["fold"] for fr in fold_res],
        "selected_epochs": [fr["selected_epoch"] for fr in fold_res],
        "train_seconds": [fr["train_seconds"] for fr in fold_res], "table": table, "human": human,
        "paper_table1": PAPER,
    }
    print()
    print(f"{'method':22s} | {'paper protocol: AMI  prec  rec   F1':36s} | {'strict: AMI  prec  rec   F1':30s} | paper AMI/F1")
    for m in METHODS:
        row = [table[m][pr][k]["mean"] for pr in ("paper", "strict") for k in METRICS]
        ref = PAPER.get(m)
        print(f"{m:22s} | " + " ".join(f"{v:.3f}" for v in row[:4]) + "          | "
              + " ".join(f"{v:.3f}" for v in row[4:]) + (f"    | {ref[0]:.2f}/{ref[1]:.2f}" if ref else "    | -"))
    hrow = [human[pr][k] for pr in ("paper", "strict") for k in METRICS]
    print(f"{'human (pairs)':22s} | " + " ".join(f"{v:.3f}" for v in hrow[:4]) + "          | "
          + " ".join(f"{v:.3f}" for v in hrow[4:]) + f"    | 0.81/0.81   ({human['strict']['count']} pairs)")
    _atomic_json(out, summary)
    print(f"wrote {out}")
    return table


def save_pretrained(args, anns, config, table):
    """Train on every annotation (a validation split picks the epoch) and save the shipped checkpoint."""
    train, val = split_train_val(anns, args.val_parts, seed=999)
    model, hist = train_dsgpm(train, val, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              margin=args.margin, seed=args.seed, eval_every=args.eval_every,
                              model_config=config, progress=True)
    sel = [h for h in hist if h.get("selected")]
    info = {"data": "HAM subset (1603 annotations, 956 molecules)", "n_train": len(train), "n_val": len(val),
            "epochs": args.epochs, "selected_epoch": sel[0]["epoch"] if sel else args.epochs,
            "val_metrics": {k: v for k, v in (sel[0] if sel else hist[-1]).items() if k.startswith("val_")},
            "cv_table": table, "config": config}
    save_dsgpm(args.save_pretrained, model, info)
    print(f"saved {args.save_pretrained} ({Path(args.save_pretrained).stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
