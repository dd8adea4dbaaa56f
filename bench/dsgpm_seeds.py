"""Seed-averaged, fold-paired comparison of two DSGPM nested-CV procedures (issue 14).

Each procedure is given as one or more finished ``bench/dsgpm_cv.py`` runs (one per training seed,
same outer folds). Per outer fold, the DSGPM test scores of a procedure's runs are averaged over its
seeds; the two procedures are then paired over the folds and summarised with 95 % Student-t intervals
(:func:`cgsurrogate.surrogate.cgmap.nested_cv.fold_interval`). Only the test-fold records that
``dsgpm_cv.py`` wrote (``<run>.json.folds/fold<K>.json``) are read; nothing is retrained.

    python bench/dsgpm_seeds.py \\
        --a bench/results/dsgpm_nested_cv_50ep.json,bench/results/dsgpm_nested_cv_50ep_seed1.json \\
        --b bench/results/dsgpm_nested_cv_500ep_const_molecule.json,bench/results/dsgpm_nested_cv_500ep_const_seed1_molecule.json \\
        --out bench/results/dsgpm_500ep_const_two_seeds.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

METRICS = (("paper", "ami"), ("paper", "cut_f1"), ("strict", "ami"), ("strict", "cut_f1"))


def fold_scores(run: str) -> dict[int, dict]:
    """{outer fold: the DSGPM test record} of one ``dsgpm_cv.py`` run; SystemExit naming the run if it has none."""
    folder = Path(run + ".folds")
    recs = {}
    for f in sorted(folder.glob("fold*.json")):
        r = json.loads(f.read_text())
        recs[int(r["fold"])] = r
    if not recs:
        raise SystemExit(f"{run}: no finished folds in {folder}")
    return recs


def compare(a_runs: list[str], b_runs: list[str]) -> dict:
    """Seed-averaged per-fold scores of procedures A and B and the paired difference B - A per metric."""
    from cgsurrogate.surrogate.cgmap.nested_cv import fold_interval

    a = [fold_scores(r) for r in a_runs]
    b = [fold_scores(r) for r in b_runs]
    folds = sorted(set.intersection(*(set(r) for r in a + b)))
    if len(folds) < 2:
        raise SystemExit(f"fewer than 2 outer folds finished in every run ({folds})")
    out = {"a": a_runs, "b": b_runs, "folds": folds, "metrics": {}}
    for proto, met in METRICS:
        per = {side: [[r[f]["test"]["DSGPM"][proto][met] for f in folds] for r in runs]
               for side, runs in (("a", a), ("b", b))}
        ma, mb = np.mean(per["a"], axis=0), np.mean(per["b"], axis=0)
        out["metrics"][f"{proto} {met}"] = {
            "a_per_seed_mean": [float(np.mean(x)) for x in per["a"]],
            "b_per_seed_mean": [float(np.mean(x)) for x in per["b"]],
            "a": fold_interval(ma), "b": fold_interval(mb),
            "b_minus_a": dict(fold_interval(mb - ma), per_fold=[float(x) for x in mb - ma])}
    return out


def report(res: dict) -> str:
    """Plain-text table of :func:`compare`'s result."""
    lines = [f"A: {', '.join(res['a'])}", f"B: {', '.join(res['b'])}", f"outer folds: {res['folds']}"]
    for name, m in res["metrics"].items():
        iv = lambda d, s="": f"{d['mean']:{s}.4f} [{d['low']:{s}.4f}, {d['high']:{s}.4f}]"  # noqa: E731
        lines += [f"== {name}",
                  f"  A seed means {np.round(m['a_per_seed_mean'], 4).tolist()}, seed-averaged {iv(m['a'])}",
                  f"  B seed means {np.round(m['b_per_seed_mean'], 4).tolist()}, seed-averaged {iv(m['b'])}",
                  f"  B - A paired over folds {iv(m['b_minus_a'], '+')}, per fold "
                  f"{' '.join(f'{x:+.4f}' for x in m['b_minus_a']['per_fold'])}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="comma-separated dsgpm_cv.py runs of procedure A (one per seed)")
    p.add_argument("--b", required=True, help="comma-separated dsgpm_cv.py runs of procedure B (one per seed)")
    p.add_argument("--out", default=None, help="write the comparison here (.json, and the text as .txt)")
    args = p.parse_args(argv)
    res = compare(args.a.split(","), args.b.split(","))
    text = report(res)
    print(text)
    if args.out:
        from cgsurrogate.core.atomic import write_json_atomic, write_text_atomic

        write_json_atomic(Path(args.out), res)
        write_text_atomic(Path(args.out).with_suffix(".txt"), text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
