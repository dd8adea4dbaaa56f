"""How does a GCN-family model's validation NMSE fall with the number of training runs? (issue 13)

The paper trains on all 7^5 = 16,807 runs x 12 frames; our datasets have 240-243 runs. This trains one
model (default A-GPCN-3) on nested subsets of the training runs (evenly spaced over the trainer's
training split), with the validation runs, the per-node normaliser (fitted on the whole training
split) and the budget held fixed, so the only change is the amount of data, and fits a power law
``NMSE = a * runs^-b`` to extrapolate to the paper's 13,446 training runs (80 % of the grid).

    python bench/gpcn_learning_curve.py --data runs/gpcn_rest3_last --sizes 24 48 97 194 --epochs 100 \
        --out bench/results/paper_table/learning_curve_rest3_last.json
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def _append_laplacian_positions(data: dict, hierarchy) -> None:
    """Append ``L0 @ x`` of the raw positions (nm; [M, N, 3], fine-graph structure matrix) to
    ``X_train`` / ``X_val``, standardised per node with training statistics. Per-node
    normalisation of positions leaves neighbour differences (the strain that sets the energy,
    ~1e-3 of a node's position spread) buried under the differences of neighbouring nodes'
    means and scales; this gives the model the geometry directly (a diagnostic of that cause)."""
    norm = data["normalizer"]
    lap = hierarchy.laplacians[0].to_dense().double()  # [N, N], L = A - D
    feats = {}
    for key in ("X_train", "X_val"):
        pos = data[key][..., :3].double() * norm.x_std[:, :3] + norm.x_mean[:, :3]  # nm
        feats[key] = torch.einsum("ij,mjc->mic", lap, pos)
    mean, std = feats["X_train"].mean(0), feats["X_train"].std(0)
    std = torch.clamp(std, min=1e-6 * float(std.max()))
    for key in ("X_train", "X_val"):
        data[key] = torch.cat([data[key], ((feats[key] - mean) / std).float()], dim=-1)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="a-gpcn-3")
    ap.add_argument("--sizes", type=int, nargs="+", required=True, help="training runs per point")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-final", type=float, default=0.0,
                    help="0: constant lr; else exponential decay to this by the last epoch")
    ap.add_argument("--model-config", default="{}",
                    help='JSON overrides of the model, e.g. \'{"filters": [[32,32,32],[64,64,64],[128,128,128]]}\'')
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-val-samples", type=int, default=None,
                    help="validate during training on this many evenly spaced validation samples (as "
                         "bench/paper_table.py); the best checkpoint is then scored on all of them")
    ap.add_argument("--laplacian-positions", action="store_true",
                    help="diagnostic, not the paper's input: append L0 @ positions (nm, from the raw positions, "
                         "then normalised per node on the training split) as 3 more input features")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model_config = json.loads(args.model_config)
    from cgsurrogate.core.atomic import write_json_atomic
    from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy
    from cgsurrogate.surrogate.train.gcn_trainer import (TrainConfig, build_training_model, load_normalised_dataset,
                                                         train)

    data = load_normalised_dataset(args.data, 0.2, args.seed)
    from cgsurrogate.data.microtubule import read_metadata

    frames = int(read_metadata(args.data)["frames_per_run"])  # samples are stored run by run, frames in order
    M = data["X_train"].shape[0]
    runs_total = M // max(frames, 1)
    hierarchy = microtubule_hierarchy(levels=3)
    if args.laplacian_positions:
        _append_laplacian_positions(data, hierarchy)
    rows = []
    for n in sorted(args.sizes):
        n = min(n, runs_total)
        pick = np.unique(np.linspace(0, runs_total - 1, n).astype(int))  # runs, evenly spaced
        idx = torch.as_tensor((pick[:, None] * frames + np.arange(frames)[None]).ravel())
        torch.manual_seed(args.seed)
        model = build_training_model(args.model, hierarchy, data["X_train"].shape[-1], model_config)
        cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=20, batch_size=8, lr=args.lr, lr_final=args.lr_final,
                          seed=args.seed)
        t0 = time.perf_counter()
        Xv, Yv = data["X_val"], data["Y_val"]
        if args.max_val_samples and Xv.shape[0] > args.max_val_samples:
            keep = torch.linspace(0, Xv.shape[0] - 1, int(args.max_val_samples)).round().long()
            Xv, Yv = Xv[keep], Yv[keep]
        res = train(model, data["X_train"][idx], data["Y_train"][idx], Xv, Yv, cfg, None,
                    progress=False, desc=f"{args.model} {n} runs")
        hist = res["history"]
        with torch.no_grad():  # the model is in its best state: where does its validation error sit?
            err = torch.cat([(model(data["X_val"][i:i + 32]) - data["Y_val"][i:i + 32]) ** 2
                             for i in range(0, data["X_val"].shape[0], 32)]).mean(dim=(0, 2)).double().numpy()  # [N]
        N = err.shape[0]
        worst = np.sort(err)[::-1][: max(1, N // 20)]
        by_class = {"clamp_rings_0_25": float(err[:26].mean()), "load_rings_last_26": float(err[N - 26:].mean()),
                    "middle": float(err[26:N - 26].mean()),
                    "share_of_error_in_worst_5pct_nodes": float(worst.sum() / err.sum())}
        rows.append({"train_runs": int(len(pick)), "train_samples": int(len(idx)),
                     "best_val_nmse": float(res["best_val_nmse"]), "best_epoch": int(res["best_epoch"]),
                     "best_checkpoint_nmse_all_val": float(err.mean()),
                     "train_loss_last10": float(np.mean([h["train_loss"] for h in hist[-10:]])),
                     "wall_s": time.perf_counter() - t0, "val_nmse_by_node_class": by_class,
                     "val_by_epoch": [[int(h["epoch"]), float(h["val"])] for h in hist if h.get("val") is not None]})
        print(json.dumps(rows[-1]), flush=True)
    n = np.array([r["train_runs"] for r in rows], float)
    v = np.array([r["best_val_nmse"] for r in rows])
    b, loga = np.polyfit(np.log(n), np.log(v), 1) if len(rows) > 1 else (np.nan, np.nan)
    out = {"data": args.data, "model": args.model, "model_config": model_config,
           "laplacian_positions": bool(args.laplacian_positions), "epochs": args.epochs,
           "lr": args.lr, "lr_final": args.lr_final, "seed": args.seed,
           "frames_per_run": frames, "val_samples": int(data["X_val"].shape[0]),
           "val_samples_during_training": int(min(args.max_val_samples or data["X_val"].shape[0], data["X_val"].shape[0])),
           "rows": rows,
           "power_law": None if len(rows) < 2 else {"exponent": float(-b), "a": float(np.exp(loga)),
                                                    "extrapolated_13446_runs": float(np.exp(loga) * 13446 ** b)},
           "machine_load": open("/proc/loadavg").read().split()[:3]}
    if args.out:
        write_json_atomic(args.out, out, indent=1)
    print(json.dumps(out["power_law"]))
    return out


if __name__ == "__main__":
    main()
