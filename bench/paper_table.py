"""Reproduce the GPCN paper's model comparison on our own microtubule data.

Scott & Mjolsness 2021: table 3 (mean +- std over seeds of the minimum validation NMSE of
every model), table 4 (time per batch, forward + backward, batch 8), fig. 11 (validation
NMSE, minimum so far, against training FLOPs, all models in one plot) and fig. 9 (training
schedules all / gamma0..3 / coarse-to-fine for the 3-level GPCN and A-GPCN).

Usage::

    python bench/paper_table.py --data /path/to/dataset --preset reduced --out runs/paper_table
    python bench/paper_table.py --data DIR --preset full --device cuda   # the paper's protocol
    python bench/paper_table.py --sparse-only                           # CSR vs index_add timing

Presets
-------
reduced : 2 seeds, 20 epochs of 20 batches, validation on 48 evenly spaced held-out frames,
          schedules for the 3-level A-GPCN only (seed 0); two worker processes of one thread each.
          Sized for about an hour on 2 idle CPU cores.
full    : the paper's protocol: 10 seeds, 1000 epochs of 20 batches, full validation set,
          schedules for GPCN-3 and A-GPCN-3.

Training runs go to ``<out>/<model>/<schedule>/seed<k>/`` (``log.csv``, ``last.pt``,
``best.pt``) and resume when the script is re-run. Results: ``<out>/results.json``,
``<out>/tables.md``, ``<out>/nmse_vs_flops.png``, ``<out>/schedules.png``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


MODELS = ("gcn", "ensemble-2", "ensemble-3", "gpcn-2", "a-gpcn-2", "gpcn-3", "a-gpcn-3", "ngcn-3", "ngcn-5",
          "diffpool-3")
SCHEDULES = ("all", "gamma0", "gamma1", "gamma2", "gamma3", "coarse-to-fine")
PRESETS = {
    "reduced": {"seeds": [0, 1], "epochs": 20, "batches_per_epoch": 20, "max_val_samples": 48,
                "schedule_models": ["a-gpcn-3"], "schedule_seeds": [0], "timing_reps": 15, "workers": 2},
    "full": {"seeds": list(range(10)), "epochs": 1000, "batches_per_epoch": 20, "max_val_samples": None,
             "schedule_models": ["gpcn-3", "a-gpcn-3"], "schedule_seeds": [42], "timing_reps": 50, "workers": 1},
}
#: The paper's table 3 (mean, std of min validation NMSE, x1e-3) and table 4 (s per batch).
PAPER_T3 = {"gcn": (1.55, 0.10), "ensemble-2": (1.44, 0.07), "ensemble-3": (1.71, 0.20), "gpcn-2": (1.43, 0.12),
            "a-gpcn-2": (0.17, 0.05), "gpcn-3": (2.09, 0.32), "a-gpcn-3": (0.131, 0.030), "ngcn-3": (1.30, 0.05),
            "ngcn-5": (1.30, 0.06), "diffpool-3": (2.041, float("nan"))}
PAPER_T4 = {"gcn": 0.042, "ensemble-2": 0.047, "ensemble-3": 0.056, "gpcn-2": 0.056, "a-gpcn-2": 0.056,
            "gpcn-3": 0.061, "a-gpcn-3": 0.059, "ngcn-3": 0.067, "ngcn-5": 0.086, "diffpool-3": 0.0934}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _job(job: dict) -> dict:
    """Train one (model, schedule, seed) run in this process; resumes from its folder."""
    import torch

    torch.set_num_threads(job["threads"])
    from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy
    from cgsurrogate.surrogate.train.gcn_trainer import (TrainConfig, build_training_model, load_normalised_dataset,
                                                         train)

    data = load_normalised_dataset(job["data"], 0.2, job["seed"], job["max_val_samples"])
    hier = microtubule_hierarchy(3)
    torch.manual_seed(job["seed"])
    # the trainer's model (input_skip on, as cli.py train): without the skip a GCN never sees the strengths (issue 13)
    model = build_training_model(job["model"], hier, data["X_train"].shape[-1],
                                 {"input_skip": job.get("input_skip", True)})
    cfg = TrainConfig(epochs=job["epochs"], steps_per_epoch=job["batches_per_epoch"], seed=job["seed"],
                      lr=job.get("lr", 1e-3), lr_final=job.get("lr_final", 0.0))
    t0 = time.perf_counter()
    res = train(model, data["X_train"], data["Y_train"], data["X_val"], data["Y_val"], cfg, job["dir"],
                schedule=job["schedule"], normalizer=data["normalizer"], hierarchy=hier,
                dataset_info=data["dataset_info"], system_spec=data["system_spec"],
                progress=job["progress"], desc=f"{job['model']} {job['schedule']} s{job['seed']}",
                device=job["device"])
    return {"model": job["model"], "schedule": job["schedule"], "seed": job["seed"],
            "best_val_nmse": res["best_val_nmse"], "flops": res["flops"], "wall_s": time.perf_counter() - t0,
            "train_samples": int(data["X_train"].shape[0]), "val_samples": int(data["X_val"].shape[0])}


def _read_curve(run_dir: Path):
    rows = list(csv.DictReader(open(run_dir / "log.csv")))
    return (np.array([float(r["flops"]) for r in rows]), np.array([float(r["best_val_nmse"]) for r in rows]),
            np.array([float(r["val_nmse"]) for r in rows]))


def time_models(models, reps: int, threads: int, device: str = "cpu") -> dict:
    """Median and minimum seconds per batch (batch 8, forward + backward, MSE loss)."""
    import torch

    from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy
    from cgsurrogate.surrogate.train.gcn_trainer import build_training_model

    torch.set_num_threads(threads)
    hier = microtubule_hierarchy(3)
    out = {}
    for name in models:
        torch.manual_seed(0)
        m = build_training_model(name, hier).to(device)  # the trained models (input skip on)
        x, y = torch.randn(8, 624, 11, device=device), torch.randn(8, 624, 1, device=device)
        ts, cpu = [], []
        for i in range(reps + 3):
            if device != "cpu":
                torch.cuda.synchronize()
            c = time.process_time()
            t = time.perf_counter()
            m.zero_grad(set_to_none=True)
            loss = ((m(x) - y) ** 2).mean()
            loss.backward()
            if device != "cpu":
                torch.cuda.synchronize()
            ts.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        ts, cpu = np.array(ts[3:]), np.array(cpu[3:])
        out[name] = {"median_s": float(np.median(ts)), "min_s": float(ts.min()), "cpu_median_s": float(np.median(cpu)),
                     "reps": reps, "threads": threads, "forward_flops_per_sample": float(m.flops())}
        print(f"  {name:12s} {np.median(ts) * 1e3:8.1f} ms (min {ts.min() * 1e3:.1f}, CPU time "
              f"{np.median(cpu) * 1e3:.1f})", flush=True)
    return out


def time_sparse(reps: int = 30, threads: int = 1) -> dict:
    """Z @ X (forward + backward) on the microtubule Laplacian: CSR sparse.mm vs gather/index_add
    vs dense, for [8, 624, C] signals."""
    import torch

    from cgsurrogate.surrogate.gcn.layers import StructureMatrix
    from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy

    torch.set_num_threads(threads)
    lap = microtubule_hierarchy(3).laplacians[0]
    out = {}
    for c in (11, 16, 32, 64):
        row = {}
        for mode in ("csr", "edges", "dense"):
            z = StructureMatrix(lap, mode=mode)
            x = torch.randn(8, 624, c, requires_grad=True)
            ts = []
            for i in range(reps + 3):
                t = time.perf_counter()
                z(x).sum().backward()
                ts.append(time.perf_counter() - t)
            row[mode] = float(np.median(ts[3:]))
        out[f"B*F={8 * c}"] = row
        print(f"  B*F={8 * c:4d}: " + ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in row.items()), flush=True)
    return out


def _plot(results: dict, out: Path, runs_root: Path, preset: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cgsurrogate.surrogate.gcn.registry import DISPLAY_NAMES

    seed = preset["seeds"][0]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name in results["models"]:
        d = runs_root / name / "all" / f"seed{seed}"
        if not (d / "log.csv").is_file():
            continue
        f, best, _ = _read_curve(d)
        ax.loglog(f, best, label=DISPLAY_NAMES[name], lw=2 if "gpcn" in name else 1.2,
                  ls="-" if "gpcn" in name else "--")
    ax.set_xlabel("training FLOPs (paper's estimates)")
    ax.set_ylabel("validation NMSE (minimum so far)")
    ax.set_title(f"Validation NMSE vs FLOPs, seed {seed} (cf. paper fig. 11)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "nmse_vs_flops.png", dpi=110)
    plt.close(fig)
    sm = preset["schedule_models"]
    fig, axes = plt.subplots(len(sm), 1, figsize=(8, 4.5 * len(sm)), squeeze=False)
    for ax, name in zip(axes[:, 0], sm):
        for sched in SCHEDULES:
            d = runs_root / name / sched / f"seed{preset['schedule_seeds'][0]}"
            if not (d / "log.csv").is_file():
                continue
            f, best, _ = _read_curve(d)
            ax.loglog(f, best, label=sched)
        ax.set_title(f"{DISPLAY_NAMES[name]}: training schedules (cf. paper fig. 9)")
        ax.set_xlabel("training FLOPs")
        ax.set_ylabel("validation NMSE (min so far)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "schedules.png", dpi=110)
    plt.close(fig)


def _tables(results: dict) -> str:
    from cgsurrogate.surrogate.gcn.registry import DISPLAY_NAMES

    lines = ["Table 3: minimum validation NMSE (x1e-3), mean +- std over seeds", "",
             "| model | ours mean +- std | ours min | seeds | paper mean +- std |", "|---|---|---|---|---|"]
    for name, r in results["table3"].items():
        pm, ps = PAPER_T3[name]
        lines.append(f"| {DISPLAY_NAMES[name]} | {r['mean'] * 1e3:.3f} +- {r['std'] * 1e3:.3f} | "
                     f"{r['min'] * 1e3:.3f} | {r['n']} | {pm} +- {ps} |")
    lines += ["", f"Table 4: time per batch (8 samples, forward + backward), {results.get('timing_note', '')}", "",
              "| model | ours median wall (ms) | ours min wall (ms) | CPU time (ms) | forward GFLOPs/sample "
              "| paper TITAN X (ms) |", "|---|---|---|---|---|---|"]
    for name, r in results.get("table4", {}).items():
        lines.append(f"| {DISPLAY_NAMES[name]} | {r['median_s'] * 1e3:.1f} | {r['min_s'] * 1e3:.1f} | "
                     f"{r.get('cpu_median_s', float('nan')) * 1e3:.1f} | "
                     f"{r['forward_flops_per_sample'] / 1e9:.3f} | {PAPER_T4[name] * 1e3:.0f} |")
    if results.get("schedules"):
        lines += ["", "Schedules (fig. 9): minimum validation NMSE (x1e-3) and training FLOPs; common level = the "
                  f"worst schedule's minimum ({results['schedules'][0]['target_nmse'] * 1e3:.1f}e-3)", "",
                  "| model | schedule | epochs | min NMSE | FLOPs to reach the common level | total FLOPs |",
                  "|---|---|---|---|---|---|"]
        for r in results["schedules"]:
            lines.append(f"| {DISPLAY_NAMES[r['model']]} | {r['schedule']} | {r['epochs_done']} | "
                         f"{r['best_val_nmse'] * 1e3:.3f} | "
                         f"{r['flops_to_target']:.3g} | {r['flops']:.3g} |")
    if results.get("sparse"):
        lines += ["", "Sparse Z @ X, forward + backward, [8, 624, C] (microseconds)", "", "| columns | csr | edges | dense |",
                  "|---|---|---|---|"]
        for k, r in results["sparse"].items():
            lines.append(f"| {k} | {r['csr'] * 1e6:.0f} | {r['edges'] * 1e6:.0f} | {r['dense'] * 1e6:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="microtubule dataset folder")
    ap.add_argument("--preset", choices=tuple(PRESETS), default="reduced")
    ap.add_argument("--out", default="runs/paper_table")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--epochs", type=int, help="override the preset's epochs")
    ap.add_argument("--seeds", type=int, nargs="*", help="override the preset's seeds")
    ap.add_argument("--workers", type=int, help="parallel training processes (one thread each)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (paper: the default 1e-3)")
    ap.add_argument("--lr-final", type=float, default=0.0,
                    help="0: constant lr (paper); else exponential decay to this by the last epoch")
    ap.add_argument("--max-val-samples", type=int, help="override the preset's validation subset")
    ap.add_argument("--threads", type=int, help="threads per training process (default: 1 with several "
                                                "workers, else 2)")
    ap.add_argument("--paper-inputs", action="store_true",
                    help="build the paper's design (no input skip: the GCNs never see the strengths, issue 13)")
    ap.add_argument("--skip-schedules", action="store_true")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--sparse-only", action="store_true", help="only time the structure-matrix products")
    ap.add_argument("--timing-threads", type=int, default=2)
    ap.add_argument("--timing-only", action="store_true",
                    help="only measure table 4 and the sparse products; merge into <out>/results.json")
    ap.add_argument("--report-only", action="store_true",
                    help="build the tables and plots from the logs on disk (finished or not), train nothing")
    args = ap.parse_args(argv)
    preset = dict(PRESETS[args.preset])
    if args.epochs:
        preset["epochs"] = args.epochs
    if args.seeds:
        preset["seeds"] = args.seeds
    if args.workers:
        preset["workers"] = args.workers
    if args.max_val_samples:
        preset["max_val_samples"] = args.max_val_samples
    preset["lr"], preset["lr_final"] = args.lr, args.lr_final  # recorded in results.json
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.sparse_only:
        res = time_sparse()
        _atomic_write(out / "sparse.json", json.dumps(res, indent=1))
        return 0
    if args.timing_only:
        prev = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
        print(f"timing (batch 8, forward + backward, {args.timing_threads} threads, {args.device}):", flush=True)
        prev["table4"] = time_models(args.models, preset["timing_reps"], args.timing_threads, args.device)
        prev["timing_note"] = (f"{args.timing_threads} thread(s) on {args.device}; load average at timing "
                               f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        prev["sparse"] = time_sparse()
        prev.setdefault("table3", {})
        _atomic_write(out / "results.json", json.dumps(prev, indent=1))
        text = _tables(prev)
        _atomic_write(out / "tables.md", text)
        print(text)
        return 0
    if not args.data:
        ap.error("--data is required unless --sparse-only or --timing-only")
    runs_root = out / "runs"
    jobs = []
    base = {"data": args.data, "epochs": preset["epochs"], "batches_per_epoch": preset["batches_per_epoch"],
            "max_val_samples": preset["max_val_samples"],
            "threads": args.threads or (1 if preset["workers"] > 1 else 2),
            "device": args.device, "progress": preset["workers"] == 1, "lr": args.lr, "lr_final": args.lr_final,
            "input_skip": not args.paper_inputs}
    for seed in preset["seeds"][:1]:
        for name in args.models:
            jobs.append({**base, "model": name, "schedule": "all", "seed": seed,
                         "dir": str(runs_root / name / "all" / f"seed{seed}")})
    later = []  # further seeds run after the schedule comparison, so a cut-short run still has fig. 9
    for seed in preset["seeds"][1:]:
        for name in args.models:
            later.append({**base, "model": name, "schedule": "all", "seed": seed,
                          "dir": str(runs_root / name / "all" / f"seed{seed}")})
    if not args.skip_schedules:
        for seed in preset["schedule_seeds"]:
            for name in preset["schedule_models"]:
                for sched in SCHEDULES:
                    d = runs_root / name / sched / f"seed{seed}"
                    if sched == "all" and seed in preset["seeds"]:
                        continue  # the comparison run already covers it
                    jobs.append({**base, "model": name, "schedule": sched, "seed": seed, "dir": str(d)})
    jobs += later
    t0 = time.perf_counter()
    if args.report_only:
        done = []
        for j in jobs:
            d = Path(j["dir"])
            if (d / "log.csv").is_file():
                f, best, _ = _read_curve(d)
                done.append({"model": j["model"], "schedule": j["schedule"], "seed": j["seed"],
                             "best_val_nmse": float(best.min()), "flops": float(f[-1]), "epochs_done": len(f)})
        missing = len(jobs) - len(done)
        if missing:
            print(f"warning: {missing} of {len(jobs)} runs have no log yet", flush=True)
        jobs = []
    print(f"{len(jobs)} training runs, {preset['epochs']} epochs each, {preset['workers']} worker(s)", flush=True)
    if not args.report_only:
        done = []
    if jobs and preset["workers"] > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(preset["workers"]) as pool:
            for r in pool.imap_unordered(_job, jobs):
                done.append(r)
                print(f"  [{time.perf_counter() - t0:7.0f} s] {r['model']:11s} {r['schedule']:14s} seed {r['seed']}: "
                      f"min val NMSE {r['best_val_nmse']:.4g} ({r['wall_s']:.0f} s)", flush=True)
    elif jobs:
        for j in jobs:
            r = _job(j)
            done.append(r)
            print(f"  {r['model']:11s} {r['schedule']:14s} seed {r['seed']}: min val NMSE {r['best_val_nmse']:.4g}",
                  flush=True)
    results = {"preset": args.preset, "config": preset, "data": str(Path(args.data).resolve()), "models": args.models,
               "runs": done, "train_wall_s": time.perf_counter() - t0}
    t3 = {}
    for name in args.models:
        vals = [r["best_val_nmse"] for r in done if r["model"] == name and r["schedule"] == "all"]
        if vals:
            t3[name] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                        "min": float(np.min(vals)), "n": len(vals)}
    results["table3"] = t3
    sched_rows = []
    if not args.skip_schedules:
        for name in preset["schedule_models"]:
            seed = preset["schedule_seeds"][0]
            curves = {}
            for sched in SCHEDULES:
                d = runs_root / name / sched / f"seed{seed}"
                if (d / "log.csv").is_file():
                    curves[sched] = _read_curve(d)
            if "all" not in curves:
                continue
            target = max(c[1].min() for c in curves.values())  # the level every schedule reached
            for sched, (f, best, _) in curves.items():
                hit = np.nonzero(best <= target)[0]
                sched_rows.append({"model": name, "schedule": sched, "best_val_nmse": float(best.min()),
                                   "target_nmse": float(target), "epochs_done": len(f),
                                   "flops": float(f[-1]), "flops_to_target": float(f[hit[0]]) if len(hit) else float("nan")})
    results["schedules"] = sched_rows
    if args.report_only and (out / "results.json").is_file():  # keep timings measured by an earlier full run
        prev = json.loads((out / "results.json").read_text())
        for key in ("table4", "timing_note", "sparse"):
            if key in prev:
                results[key] = prev[key]
    if not args.skip_timing and not args.report_only:
        print(f"timing (batch 8, forward + backward, {args.timing_threads} threads, {args.device}):", flush=True)
        results["table4"] = time_models(args.models, preset["timing_reps"], args.timing_threads, args.device)
        results["timing_note"] = (f"{args.timing_threads} threads on {args.device}; load average at timing "
                                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print("sparse products:", flush=True)
        results["sparse"] = time_sparse()
    _atomic_write(out / "results.json", json.dumps(results, indent=1))
    _plot(results, out, runs_root, preset)
    text = _tables(results)
    _atomic_write(out / "tables.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
