"""EGNN and EGHN on AdK with the EGHN authors' protein MD settings (issue 13), on the MDAnalysisTests DCDs.

The official code (hanjq17/EGHN, commit 2152b97) trains its protein MD model with ``config.json``
(``exp_name "md"``; ``main_mdanalysis.py --config_by_file config.json``), on data made by
``mdanalysis/preprocess.py``. The settings this preset copies, with where they are read:

=====================  =====================  ==============================================
setting                official value         source
=====================  =====================  ==============================================
atoms                  backbone               config.json ``backbone: true``; preprocess.py l.25, 48-49
A_global cutoff        8 A                    preprocess.py l.26 ``cut_off = 8``
velocity               x[t+1] - x[t]          preprocess.py l.67-69 (forward difference)
span                   15 frames              config.json ``delta_frame: 15``
split                  0.6 / 0.2 / 0.2        mdanalysis/dataset.py l.39-48 (along the timeline)
hidden                 128                    config.json ``nf: 128``
clusters               20                     config.json ``n_cluster: 20``
EGNN layers per block  4                      config.json ``interaction_layer: 4``
E-Pool layers          4                      config.json ``pooling_layer: 4``
decoder layers         2 (EGMN)               config.json ``decoder_layer: 2``; model/eghn.py l.131-141
connectivity weight    2                      config.json ``lambda_link: 2``; main_mdanalysis.py l.263-264
Adam lr, weight decay  5e-5, 1e-4             config.json; main_mdanalysis.py l.159
batch                  8 frame pairs          config.json ``batch_size: 8``
gradient clipping      none                   main_mdanalysis.py l.260-267
evaluation             every 5 epochs         main_mdanalysis.py l.29 (``test_interval`` 5; not in config.json)
early stopping         50 evaluations         main_mdanalysis.py l.162 ``EarlyStopping(patience=50)``
epochs                 15000 (max)            config.json
=====================  =====================  ==============================================

(``start_md.sh`` itself calls ``main_mdanalysis.py`` without ``--config_by_file``, which would
train with the argparse defaults: hidden 64, lr 5e-4, batch 100, 3/3/1 layers, lambda 1, no
backbone flag; ``config.json`` is the only MD configuration in the repository and the one used here.)

Differences that remain, stated in the results: our EGHN decoder is one E-UnPool (the authors'
``OffsetUnPool`` design, ``pool_design="input"``) rather than their two-layer EGMN; node features
are the speed and the one-hot atom name (official: speed and the partial charge over its maximum);
A_global edges carry a bond indicator (official: the distance; both models append the squared
distance); positions are in nm inside the toolkit (official: A), MSEs are converted to A^2.
The official repository has no flat-EGNN protein script; EGNN here is our EGNN (4 layers,
hidden 128) trained with the same optimiser settings.

The data: the three AdK DCDs of MDAnalysisTests (98 + 102 + 100 frames, 855 backbone atoms,
252 frame pairs at span 15) against the paper's 1.004 us equilibrium run (4187 frames,
2481/827/878 pairs). The split runs along the timeline, so the test pairs all come from the third
DCD (a fast targeted-MD run with its own topology), the training pairs from the two ``adk_dims`` runs.

Usage::

    python bench/eghn_adk.py --out bench/results/eghn/adk_official.json --epochs 3 --eval-every 1 \\
        --ckpt-dir /tmp/adk_ckpt                                  # CPU, a few epochs (~10 min each)
    python bench/eghn_adk.py --out runs/adk_official_gpu.json --device cuda --epochs 15000 \\
        --ckpt-dir runs/adk_ckpt                                  # GPU preset: the official protocol

Re-running resumes: finished (model, seed) rows are skipped; with ``--ckpt-dir`` an interrupted or
extended run (larger ``--epochs``) continues from its checkpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

#: The authors' protein MD settings (see the module docstring for the file and line of each).
OFFICIAL = {"selection": "backbone", "cutoff_nm": 0.8, "velocity": "forward", "span": 15, "hidden": 128,
            "n_clusters": 20, "layers_per_block": 4, "pool_layers": 4, "decoder_layers": 2, "lambda_conn": 2.0,
            "lr": 5e-5, "weight_decay": 1e-4, "batch_size": 8, "clip_grad": 0.0, "eval_every": 5,
            "patience": 50, "epochs": 15000}
#: EGHN paper, sec. 4.3 / table 3 (1 us AdK equilibrium run, MSE in A^2).
PAPER = {"mpnn": 2.322, "eghn": 1.843}


def data_limits(traj, sp) -> dict:
    """Plain description of the data and two model-free references (test MSE in A^2)."""
    import numpy as np

    te = sp["test"]
    still = float(np.mean([((g["pos"] - g["target"]) ** 2).mean().item() for g in te])) * 100
    edges = [g["edge_index"].shape[1] for g in sp["train"] + sp["valid"] + te]
    return {"frames_per_segment": [int(x.shape[0]) for x in traj.positions], "n_atoms": int(len(traj.names)),
            "n_pairs": {k: len(v) for k, v in sp.items()}, "sources": [list(map(str, s)) for s in traj.sources],
            "mean_directed_edges": float(np.mean(edges)), "n_bonds": int(len(traj.bonds)),
            "test_mse_A2_no_motion": still,
            "paper_data": "AdK equilibrium 1.004 us, 4187 frames (240 ps apart), pairs 2481/827/878"}


def write_table(results: dict, path: Path) -> None:
    """Markdown table of the runs."""
    from cgsurrogate.core.atomic import write_text_atomic

    lim = results["data"]
    lines = ["# AdK, the EGHN authors' settings, MDAnalysisTests DCDs (test MSE in A^2)", "",
             f"Data: {lim['n_atoms']} backbone atoms, frames per DCD {lim['frames_per_segment']}, pairs "
             f"train/valid/test {lim['n_pairs']['train']}/{lim['n_pairs']['valid']}/{lim['n_pairs']['test']} "
             f"(paper: 4187 frames, 2481/827/878 pairs); no-motion test MSE {lim['test_mse_A2_no_motion']:.3f} A^2.", "",
             "| model | seed | test MSE (A^2) | best val MSE (A^2) | best epoch | epochs run | stopped early | "
             "train s | load 1 min (start/end) | paper (1 us run) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        lines.append(f"| {r['model']} | {r['seed']} | {r['test_mse_A2']:.4f} | {r['best_val_mse_A2']:.4f} | "
                     f"{r['best_epoch']} | {r['epochs_run']} | {r['stopped_early']} | {r['train_s']} | "
                     f"{r['load_avg_1min_start']:.2f}/{r['load_avg_1min']:.2f} | {PAPER.get(r['model'], '')} |")
    s = results["settings"]
    lines += ["", f"Settings: {json.dumps(s)}"]
    write_text_atomic(path, "\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/eghn/adk_official.json")
    ap.add_argument("--models", default="linear,egnn,eghn")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=OFFICIAL["epochs"])
    ap.add_argument("--eval-every", type=int, default=OFFICIAL["eval_every"])
    ap.add_argument("--patience", type=int, default=OFFICIAL["patience"], help="evaluations without improvement")
    ap.add_argument("--velocity", default=OFFICIAL["velocity"], choices=("forward", "backward"))
    ap.add_argument("--cutoff-nm", type=float, default=OFFICIAL["cutoff_nm"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ckpt-dir", default=None, help="folder for per-run checkpoints (resumable runs)")
    ap.add_argument("--max-pairs", type=int, default=None, help="first N pairs of the timeline only (smoke tests)")
    args = ap.parse_args(argv)

    import torch

    from cgsurrogate.core.atomic import write_json_atomic
    from cgsurrogate.data.protein import load_protein_trajectory, protein_splits
    from cgsurrogate.surrogate.equivariant.registry import build_dynamics_model
    from cgsurrogate.surrogate.train.dynamics_trainer import TrainConfig, load_dynamics_checkpoint, train_dynamics

    torch.set_num_threads(args.threads)
    o = dict(OFFICIAL, cutoff_nm=args.cutoff_nm, velocity=args.velocity)
    traj = load_protein_trajectory(selection=o["selection"])
    sp = protein_splits(traj, span=o["span"], cutoff_nm=o["cutoff_nm"], velocity=o["velocity"],
                       max_pairs=args.max_pairs)
    tr, va, te = sp["train"], sp["valid"], sp["test"]
    in_node = int(tr[0]["h"].shape[1])
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {"runs": []}
    results["data"] = data_limits(traj, sp)
    results["settings"] = {**o, "epochs": args.epochs, "eval_every": args.eval_every, "patience": args.patience,
                           "threads": args.threads, "device": args.device, "paper_A2": PAPER,
                           "eghn": {"pool_design": "input", "pool_degree": False, "unpool_init": "standard",
                                    "conn_norm": "frobenius", "decoder": "one OffsetUnPool (official: EGMN, 2 layers)"}}
    done = {(r["model"], r["seed"]) for r in results["runs"]}
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in args.models.split(","):
            if (name, seed) in done:
                continue
            torch.manual_seed(seed)
            kw = (dict(layers_per_block=o["layers_per_block"], pool_layers=o["pool_layers"], pool_design="input",
                       pool_degree=False, unpool_init="standard", conn_norm="frobenius", lambda_conn=o["lambda_conn"])
                  if name == "eghn" else {})
            model = build_dynamics_model(name, in_node, 1, 1, [o["n_clusters"]], hidden=o["hidden"], n_layers=4, **kw)
            if name != "linear":
                model = model.to(args.device)
            cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=0, batch_size=o["batch_size"], lr=o["lr"],
                              weight_decay=o["weight_decay"], clip_grad=o["clip_grad"], eval_every=args.eval_every,
                              patience=args.patience, seed=seed, device=args.device)
            ck, start_epoch = None, 0
            if args.ckpt_dir and name != "linear":
                Path(args.ckpt_dir).mkdir(parents=True, exist_ok=True)
                ck = Path(args.ckpt_dir) / f"adk_official_{name}_seed{seed}.pt"
                if ck.is_file():
                    start_epoch = int(load_dynamics_checkpoint(ck)["train_state"]["epoch"])
            t0, load0 = time.time(), os.getloadavg()[0]
            r = train_dynamics(model, tr, va, te, cfg, lambda_conn=o["lambda_conn"] if name == "eghn" else 0.0,
                               checkpoint=ck, progress=bool(ck), eval_batch_size=o["batch_size"],
                               dataset_info={"task": "adk-official", "velocity": o["velocity"], "cutoff_nm": o["cutoff_nm"]})
            row = {"model": name, "seed": seed, "test_mse_A2": 100 * r["test_mse"], "best_val_mse_A2": 100 * r["best_val_mse"],
                   "best_epoch": r["best_epoch"], "epochs_run": r["epochs_run"], "stopped_early": bool(r["stopped_early"]),
                   "train_s": round(time.time() - t0, 1), "load_avg_1min_start": load0, "load_avg_1min": os.getloadavg()[0],
                   "resumed_from_epoch": start_epoch, "params": int(sum(p.numel() for p in model.parameters())),
                   "history_A2": [{"epoch": h["epoch"], "train_mse": 100 * h["train_mse"], "val_mse": 100 * h["val_mse"],
                                   "wall_s": round(h.get("wall_s", 0.0), 1)}
                                  for h in r["history"]]}
            results["runs"].append(row)
            print({k: v for k, v in row.items() if k != "history_A2"}, flush=True)
            write_json_atomic(out, results)
            write_table(results, out.with_suffix(".md"))
    write_json_atomic(out, results)
    write_table(results, out.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
