"""Active learning of the invariant potential against a random baseline (issue 12).

Start: a surrogate trained on a small, weak dataset (the protocol frames of a few grid runs: three
strength sets, so the map from strengths to stiffness is barely constrained and the model has real
errors off the grid). Then rounds of :func:`cgsurrogate.surrogate.train.active_learning.active_round`:
candidates from surrogate MD, surrogate relaxations and perturbed starts at new off-grid strengths,
scored against the exact field; the ``per_round`` worst are labelled, added (dataset folders in the
``sample`` format) and the model is retrained from scratch through ``loop.fit`` + ``PotentialTask``.
Baseline: the same number of configurations drawn uniformly from the same kind of candidate pool
(``strategy="random"``), everything else equal.

Fixed test set (off-distribution, never trained on), labelled by the exact field:
the protocol frames of the held-out off-grid runs (``--test``), the same frames plus 0.05 and
0.1 nm noise, exact-field Langevin states from them at 100 and 300 K (30 steps), and frames under
other off-grid strength sets (0.02 nm noise).

Writes ``bench/results/active_learning.{json,md,png}``; rounds are kept in ``--work`` (resumable).
Usage::

    python bench/active_learning.py --data runs/grid2 --runs 0,13,31 --test runs/heldout
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def build_test_set(test_root, seed: int = 0) -> tuple[dict, dict]:
    """The fixed test set (see the module docstring) as a frames dict, plus counts per part."""
    from cgsurrogate.data.microtubule import read_metadata
    from cgsurrogate.data.sampling import LoadedField, langevin_states, exact_labels
    from cgsurrogate.simulate.energy import TrueEnergy
    from cgsurrogate.surrogate.train.active_learning import free_mask, read_frames

    meta = read_metadata(test_root)
    base = read_frames(test_root)
    X0, P0 = base["positions"].numpy(), base["params"].numpy()
    M, N = X0.shape[:2]
    free = free_mask(meta, N)
    rng = np.random.default_rng(seed)
    parts = {"protocol": (X0, P0)}
    for sig in (0.05, 0.1):
        parts[f"noise_{sig}nm"] = (X0 + sig * rng.standard_normal(X0.shape) * free[:, None], P0)
    energy = TrueEnergy()
    load = float(meta["protocol"]["load"])
    Xt, Pt = [], []
    for i in rng.choice(M, 24, replace=False):
        lf = np.zeros((N, 3))
        lf[np.asarray(meta["load_nodes"], int), 1] = -load
        field = LoadedField(energy, P0[i], free, lf)
        x, _ = langevin_states(field, X0[i], [100.0, 300.0][len(Xt) % 2], float(meta["monomer_mass_amu"]), 30, rng)
        Xt.append(x), Pt.append(P0[i])
    parts["exact_md"] = (np.stack(Xt), np.stack(Pt))
    idx = rng.choice(M, 36, replace=False)
    newp = np.exp(rng.uniform(np.log(3.0), np.log(57.0), size=(36, 5)))
    parts["restrength"] = (X0[idx] + 0.02 * rng.standard_normal((36, N, 3)) * free[:, None], newp)
    X = np.concatenate([v[0] for v in parts.values()])
    P = np.concatenate([v[1] for v in parts.values()])
    e, f = exact_labels(X, P, energy)
    test = {"positions": torch.as_tensor(X), "params": torch.as_tensor(P), "energies": torch.as_tensor(e.sum(1)),
            "forces": torch.as_tensor(f)}
    return test, {k: int(len(v[0])) for k, v in parts.items()}


def initial_frames(root, run_ids):
    from cgsurrogate.data.microtubule import load_run
    from cgsurrogate.simulate.sweep import run_path

    rows = [load_run(run_path(root, r)) for r in run_ids]
    n = [r["positions"].shape[0] for r in rows]
    return {"positions": torch.as_tensor(np.concatenate([r["positions"] for r in rows])),
            "params": torch.as_tensor(np.concatenate([np.broadcast_to(r["params"], (k, 5)) for r, k in zip(rows, n)])),
            "energies": torch.as_tensor(np.concatenate([r["energies"].sum(1) for r in rows])),
            "forces": torch.as_tensor(np.concatenate([r["forces"] for r in rows]))}, [r["params"].tolist() for r in rows]


def _plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("force_rel_rmse_median", "force RMSE / RMS, median"), ("force_rmse_over_rms_pooled", "force RMSE / RMS, pooled"),
            ("energy_rel_error_median", "total-energy error, median")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colors = {"disagreement": "C3", "random": "C0"}
    for ax, (k, label) in zip(axes, keys):
        for run in results["runs"]:
            recs = run["records"]
            ax.plot([r["train_size"] for r in recs], [r["test"][k] for r in recs], "o-", color=colors[run["strategy"]],
                    alpha=0.8, label=f"{run['strategy']} (seed {run['seed']})")
        ax.set_yscale("log"), ax.set_xlabel("training configurations"), ax.set_title(label, fontsize=10)
    axes[0].legend(fontsize=7)
    fig.suptitle("active learning vs random selection: fixed off-distribution test set", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _markdown(results) -> str:
    lines = ["# Active learning vs random selection (invariant potential)", "",
             f"Start: protocol frames of {results['initial']['runs']} runs of `{results['initial']['data']}` "
             f"({results['initial']['frames']} frames, strengths {results['initial']['params']}). "
             f"Per round: {results['config']['candidates']} candidates (surrogate MD / surrogate relax / perturbed, "
             f"new off-grid strengths each), {results['config']['per_round']} labelled. Retrained from scratch each "
             f"round ({results['config']['epochs']} epochs x {results['config']['steps_per_epoch']} steps). "
             f"Test set: {results['test_parts']} configurations (total {results['test_size']}). "
             f"Machine: {results['machine']}.", "",
             ]
    strategies = sorted({r["strategy"] for r in results["runs"]})
    seeds = sorted({r["seed"] for r in results["runs"]})
    rounds = min(len(r["records"]) for r in results["runs"])
    lines += [f"Mean over seeds {seeds} (test set, per round):", "",
              "| round | train configs | " + " | ".join(f"{s}: force RMSE/RMS median / p90 / energy error median"
                                                        for s in strategies) + " |",
              "|---|---|" + "---|" * len(strategies)]
    for i in range(rounds):
        cells = []
        for s in strategies:
            recs = [r["records"][i]["test"] for r in results["runs"] if r["strategy"] == s]
            cells.append(" / ".join(f"{np.mean([t[k] for t in recs]):.3g}" for k in
                                    ("force_rel_rmse_median", "force_rel_rmse_p90", "energy_rel_error_median")))
        size = results["runs"][0]["records"][i]["train_size"]
        lines.append(f"| {i} | {size} | " + " | ".join(cells) + " |")
    lines += ["", "Every run and round:", "",
              "| strategy | seed | round | train configs | force RMSE/RMS median | p90 | pooled | force cosine median "
             "| energy error median | selected score mean (prev. model) | pool median |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        for r in run["records"]:
            t = r["test"]
            sel = f"{np.mean(r['selected_scores']):.3g}" if "selected_scores" in r else ""
            pool = f"{r['pool_score_median']:.3g}" if "pool_score_median" in r else ""
            lines.append(f"| {run['strategy']} | {run['seed']} | {r['round']} | {r['train_size']} | "
                         f"{t['force_rel_rmse_median']:.3g} | {t['force_rel_rmse_p90']:.3g} | "
                         f"{t['force_rmse_over_rms_pooled']:.3g} | {t['force_cosine_median']:.4f} | "
                         f"{t['energy_rel_error_median']:.3g} | {sel} | {pool} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="runs/grid2")
    ap.add_argument("--runs", default="0,13,31", help="run ids of --data whose protocol frames start the training")
    ap.add_argument("--test", default="runs/heldout")
    ap.add_argument("--work", default="runs/active_learning")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=8)
    ap.add_argument("--candidates", type=int, default=48)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--strategies", default="disagreement,random")
    ap.add_argument("--out", default=str(RESULTS / "active_learning"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from cgsurrogate.data.microtubule import read_metadata
    from cgsurrogate.surrogate.train.active_learning import ActiveLearningConfig, run_active_learning

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tpath = work / "test_set.pt"
    if tpath.is_file():
        blob = torch.load(tpath, weights_only=True)
        test, parts = blob["test"], blob["parts"]
    else:
        test, parts = build_test_set(args.test)
        torch.save({"test": test, "parts": parts}, tpath)
    meta = read_metadata(args.data)
    run_ids = [int(v) for v in args.runs.split(",")]
    initial, iparams = initial_frames(args.data, run_ids)
    runs, t0 = [], time.perf_counter()
    for seed in [int(s) for s in args.seeds.split(",")]:
        for strategy in args.strategies.split(","):
            cfg = ActiveLearningConfig(rounds=args.rounds, per_round=args.per_round, candidates=args.candidates,
                                       strategy=strategy, seed=seed)
            t1 = time.perf_counter()
            recs = run_active_learning(initial, test, meta, work / f"{strategy}_seed{seed}", cfg)
            runs.append({"strategy": strategy, "seed": seed, "records": recs, "wall_s_this_call": time.perf_counter() - t1})
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = {"initial": {"data": args.data, "runs": run_ids, "frames": int(initial["positions"].shape[0]),
                           "params": iparams},
               "config": {k: v for k, v in vars(cfg).items() if k not in ("strategy", "seed")},
               "test": args.test, "test_parts": parts, "test_size": int(test["positions"].shape[0]), "runs": runs,
               "wall_s": time.perf_counter() - t0,
               "machine": f"{platform.processor() or platform.machine()}, 1 torch thread; {load}"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(_markdown(results))
    _plot(results, out.with_suffix(".png"))
    print(_markdown(results))


if __name__ == "__main__":
    main()
