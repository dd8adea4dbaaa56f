"""EGHN paper comparisons on our data: table 1 (M-complex), table 2 run column (motion capture),
the AdK protein MD benchmark, and EGHN vs the GPCN family on microtubule energies.

Usage::

    python bench/eghn_tables.py --preset reduced --out runs/eghn_tables                 # ~1 h on 2 CPU cores
    python bench/eghn_tables.py --preset full --device cuda --out runs/eghn_full        # paper-sized runs
    python bench/eghn_tables.py --sections mcomplex --out runs/eghn_tables               # one section only
    python bench/eghn_tables.py --tables-only --out runs/eghn_tables                     # re-print tables

Sections (``--sections``, comma separated): ``mcomplex`` (the reference file
``$CGS_SHARED_DATA/mcomplex/mcomplex_3x3.npz`` plus our generator's (3,3) and (5,5) single-system and
(3,3) multi-system (J = 5) datasets; Linear, MPNN, EGNN, EGHN), ``mocap`` (CMU subject 9 run; MPNN,
EGNN, EGHN), ``adk`` (AdK trajectories, by default the MDAnalysisTests DCDs; ``--adk-top/--adk-traj``
take your own, e.g. the paper's 1 us run or one made with ``cgsurrogate.simulate.protein``; the EGHN
authors' protein settings, backbone, 8 A, forward velocities, width 128, 20 clusters, are ``bench/eghn_adk.py``), ``microtubule``
(EGHN energy head on ``--mt-data``, same split and normaliser as the GPCN trainer; the GPCN rows are
read from ``--gpcn-results``, a ``bench/paper_table.py`` results.json, when given).

Every model is kept at its best validation epoch; the tables give its test MSE (x 1e-2 like the
paper for M-complex and motion capture; A^2 for AdK; NMSE of normalised per-node energies for the
microtubule). Each section writes ``<out>/results_<section>.json`` after every model (re-running
resumes: finished models are skipped and training checkpoints under ``<out>/ckpt`` resume), then
``<out>/tables.md`` and ``<out>/tables.json`` collect all sections. Cluster pictures:
``<out>/clusters_mcomplex.png`` and ``<out>/clusters_adk.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


PRESETS = {
    "reduced": {
        "mcomplex": {"epochs": 60, "gen_epochs": 40, "batch_size": 50, "eval_every": 2, "hidden": 64,
                     "gen": {"n_train": 300, "n_valid": 100, "n_test": 100, "n_steps": 2600}},
        "mocap": {"epochs": 16, "batch_size": 20, "eval_every": 2, "hidden": 64},
        "adk": {"epochs": 12, "batch_size": 8, "eval_every": 1, "hidden": 32, "n_clusters": 10,
                "selection": "name CA"},
        "microtubule": {"epochs": 20, "batches_per_epoch": 20, "batch_size": 8, "max_val": 48, "hidden": 32,
                        "n_clusters": 24},
    },
    "full": {
        "mcomplex": {"epochs": 1000, "gen_epochs": 1000, "batch_size": 100, "eval_every": 5, "hidden": 64,
                     "patience": 50, "gen": {"n_train": 2000, "n_valid": 1000, "n_test": 1000, "n_steps": 5001}},
        "mocap": {"epochs": 1000, "batch_size": 12, "eval_every": 5, "hidden": 64, "patience": 50},
        "adk": {"epochs": 500, "batch_size": 8, "eval_every": 5, "hidden": 64, "n_clusters": 20, "patience": 30,
                "selection": "backbone"},
        "microtubule": {"epochs": 1000, "batches_per_epoch": 20, "batch_size": 8, "max_val": None, "hidden": 64,
                        "n_clusters": 24},
    },
}
#: Paper figures (EGHN paper tables 1-3): MSE x 1e-2 (M-complex, mocap); AdK MSE as printed.
PAPER = {
    "mcomplex (3,3) single": {"linear": 35.15, "mpnn": 16.00, "egnn": 12.69, "eghn": 11.58},
    "mcomplex (5,5) single": {"linear": 35.22, "mpnn": 17.55, "egnn": 15.37, "eghn": 14.42},
    "mcomplex (3,3) multi": {"linear": 35.91, "mpnn": 16.76, "egnn": 13.33, "eghn": 12.80},
    "mocap run": {"mpnn": 66.4, "egnn": 50.9, "eghn": 25.9},
    "adk": {"mpnn": 2.322, "eghn": 1.843},
}
SECTIONS = ("mcomplex", "mocap", "adk", "microtubule")


def _atomic_write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Results:
    """Per-section results file, rewritten after each model."""

    def __init__(self, out: Path, section: str):
        self.path = out / f"results_{section}.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def has(self, key):
        return key in self.data

    def put(self, key, value):
        self.data[key] = value
        _atomic_write(self.path, json.dumps(self.data, indent=1))


def _train(name, tr, va, te, in_node, edge_dim, local_dim, n_clusters, p, ckpt, task="dynamics",
           lambda_conn=1.0, batches_per_epoch=None, eval_batch_size=100):
    import torch

    from cgsurrogate.surrogate.train.dynamics_trainer import TrainConfig, build_dynamics_model, train_dynamics
    torch.manual_seed(0)
    model = build_dynamics_model(name, in_node, edge_dim, local_dim, n_clusters, hidden=p["hidden"], n_layers=4,
                                 layers_per_block=p.get("layers_per_block", 2), pool_layers=p.get("pool_layers", 2),
                                 head="energy" if task == "energy" else "dynamics", lambda_conn=lambda_conn)
    cfg = TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p.get("lr", 5e-4),
                      eval_every=p.get("eval_every", 1), patience=p.get("patience", 0), device=p.get("device", "cpu"))
    t0 = time.perf_counter()
    r = train_dynamics(model, tr, va, te, cfg, lambda_conn=lambda_conn if name == "eghn" else 0.0,
                       checkpoint=ckpt, progress=True, task=task, batches_per_epoch=batches_per_epoch,
                       eval_batch_size=eval_batch_size)
    r["wall_s"] = time.perf_counter() - t0
    r["params"] = int(sum(x.numel() for x in model.parameters()))
    r.pop("history", None)
    return model, r


def _cluster_agreement(model, graphs, key="complex"):
    """Adjusted Rand index between EGHN's hard clusters and the true complexes, averaged over graphs."""
    import torch
    from sklearn.metrics import adjusted_rand_score

    from cgsurrogate.surrogate.equivariant.message_passing import collate_graphs
    scores = []
    with torch.no_grad():
        for s in range(0, len(graphs), 100):
            chunk = graphs[s:s + 100]
            _, aux = model(collate_graphs(chunk))
            lab = aux["scores"][0].argmax(1).numpy()
            off = 0
            for g in chunk:
                n = g["pos"].shape[0]
                scores.append(adjusted_rand_score(g[key].numpy(), lab[off:off + n]))
                off += n
    return float(np.mean(scores))


def _plot_clusters_mcomplex(model, graphs, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from cgsurrogate.surrogate.equivariant.message_passing import collate_graphs
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
    markers = "os^Dv*"
    with torch.no_grad():
        for ax, g in zip(axes, graphs[:4]):
            pred, aux = model(collate_graphs([g]))
            lab = aux["scores"][0].argmax(1).numpy()
            x, tgt, comp = g["pos"].numpy(), g["target"].numpy(), g["complex"].numpy()
            for c in np.unique(comp):
                idx = np.nonzero(comp == c)[0]
                for i in idx:
                    for j in idx:
                        if i < j:
                            ax.plot(x[[i, j], 0], x[[i, j], 1], color="0.7", lw=1, zorder=1)
                ax.scatter(x[idx, 0], x[idx, 1], c=[f"C{k}" for k in lab[idx]], marker=markers[c % 6], s=90,
                           edgecolors="k", zorder=2, label=f"complex {c}")
            ax.scatter(tgt[:, 0], tgt[:, 1], c="r", marker="x", s=30, label="target (frame 25)")
            ax.scatter(pred[:, 0].numpy(), pred[:, 1].numpy(), c="b", marker="+", s=40, label="EGHN prediction")
            ax.set_aspect("equal")
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        axes[0].legend(fontsize=6, loc="best")
    fig.suptitle("EGHN on M-complex (3,3): colour = learned cluster (argmax S), marker = true complex; "
                 "grey sticks = rigid bonds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_clusters_adk(model, graph, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from cgsurrogate.surrogate.equivariant.message_passing import collate_graphs
    with torch.no_grad():
        _, aux = model(collate_graphs([graph]))
    lab = aux["scores"][0].argmax(1).numpy()
    x = graph["pos"].numpy() * 10.0  # nm -> A
    # principal axes for a readable projection
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    p = xc @ vt[:2].T
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), gridspec_kw={"width_ratios": [1.4, 1]})
    axes[0].plot(p[:, 0], p[:, 1], color="0.8", lw=0.6, zorder=1)
    axes[0].scatter(p[:, 0], p[:, 1], c=[f"C{k % 10}" for k in lab], s=8, zorder=2)
    axes[0].set_aspect("equal")
    axes[0].set_xlabel("PC1 (A)")
    axes[0].set_ylabel("PC2 (A)")
    axes[0].set_title("AdK, colour = EGHN cluster (argmax S)")
    axes[1].scatter(np.arange(len(lab)), lab, c=[f"C{k % 10}" for k in lab], s=4)
    axes[1].set_xlabel("atom index along the chain")
    axes[1].set_ylabel("cluster")
    axes[1].set_title("cluster along the sequence")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_mcomplex(p, out: Path, data_root: Path | None):
    from cgsurrogate.data.mcomplex import MComplexDataset
    from cgsurrogate.simulate.mcomplex import write_mcomplex_dataset
    res = Results(out, "mcomplex")
    configs = []
    if data_root is not None and (data_root / "mcomplex" / "mcomplex_3x3.npz").is_file():
        configs.append(("reference (3,3) single [shared file]", data_root / "mcomplex" / "mcomplex_3x3.npz",
                        p["epochs"], "mcomplex (3,3) single"))
    else:
        print("mcomplex: reference file not found (set CGS_SHARED_DATA); skipping it")
    for (M, S, J) in ((3, 3, 1), (5, 5, 1), (3, 3, 5)):
        path = out / "data" / f"mcomplex_{M}x{S}_J{J}_{p['gen']['n_train']}.npz"
        if not path.is_file():
            t0 = time.perf_counter()
            write_mcomplex_dataset(path, M, S, J, seed=100 + 10 * M + J, **p["gen"])
            print(f"generated {path.name} in {time.perf_counter() - t0:.0f} s")
        mode = "single" if J == 1 else "multi"
        configs.append((f"ours ({M},{S}) {mode}" + ("" if J == 1 else f" J={J}"), path, p["gen_epochs"],
                        f"mcomplex ({M},{S}) {mode}"))
    best_eghn = None
    for label, path, epochs, paper_key in configs:
        tr, va, te = (MComplexDataset(path, s) for s in ("train", "valid", "test"))
        K = tr.n_clusters
        for name in ("linear", "mpnn", "egnn", "eghn"):
            key = f"{label}/{name}"
            if res.has(key) and not (name == "eghn" and label.startswith("reference")):
                continue
            pp = dict(p, epochs=epochs)
            model, r = _train(name, tr.graphs, va.graphs, te.graphs, 1, 2, 2, [K], pp,
                              out / "ckpt" / f"mcomplex_{path.stem}_{name}.pt")
            r.update(config=label, model=name, paper_key=paper_key, n_train=len(tr), n_test=len(te),
                     test_mse_x100=None if r["test_mse"] is None else 100 * r["test_mse"])
            if name == "eghn":
                r["cluster_ari_test"] = _cluster_agreement(model, te.graphs)
                if label.startswith("reference"):
                    best_eghn = (model, te.graphs)
            res.put(key, r)
            print(f"{key}: test MSE x1e-2 = {r['test_mse_x100']:.2f} (best epoch {r['best_epoch']})")
    if best_eghn is not None:
        _plot_clusters_mcomplex(best_eghn[0], best_eghn[1], out / "clusters_mcomplex.png")


def run_mocap(p, out: Path, data_root: Path | None):
    from cgsurrogate.data.mocap import MocapDataset
    if data_root is None or not (data_root / "mocap" / "cmu_subject09_run.npz").is_file():
        print("mocap: data not found (set CGS_SHARED_DATA); skipping")
        return
    res = Results(out, "mocap")
    f = data_root / "mocap" / "cmu_subject09_run.npz"
    tr, va, te = (MocapDataset(f, s).graphs for s in ("train", "valid", "test"))
    for name in ("linear", "mpnn", "egnn", "eghn"):
        key = f"mocap run/{name}"
        if res.has(key):
            continue
        model, r = _train(name, tr, va, te, 2, 1, 1, [5], p, out / "ckpt" / f"mocap_{name}.pt")
        r.update(config="mocap run", model=name, paper_key="mocap run", n_train=len(tr), n_test=len(te),
                 test_mse_x100=100 * r["test_mse"])
        res.put(key, r)
        print(f"{key}: test MSE x1e-2 = {r['test_mse_x100']:.2f}")


def run_adk(p, out: Path, sources):
    from cgsurrogate.data.protein import load_protein_trajectory, protein_splits
    res = Results(out, "adk")
    sel = p.get("selection", "backbone")
    traj = load_protein_trajectory(sources, selection=sel)
    sp = protein_splits(traj, span=15, progress=True, max_pairs=p.get("max_pairs"))
    n_in = sp["train"][0]["h"].shape[1]
    label = ("adk (MDAnalysisTests DCDs)" if sources is None else "adk (user trajectory)") + f", {sel}"
    for name in ("linear", "mpnn", "egnn", "eghn"):
        key = f"{label}/{name}"
        if res.has(key):
            continue
        model, r = _train(name, sp["train"], sp["valid"], sp["test"], n_in, 1, 1, [p["n_clusters"]], p,
                          out / "ckpt" / f"adk_{name}.pt", eval_batch_size=p["batch_size"])
        r.update(config=label, model=name, paper_key="adk", n_train=len(sp["train"]), n_test=len(sp["test"]),
                 test_mse_A2=100 * r["test_mse"], best_val_mse_A2=100 * r["best_val_mse"])
        res.put(key, r)
        print(f"{key}: test MSE = {r['test_mse_A2']:.3f} A^2")
        if name == "eghn":
            _plot_clusters_adk(model, sp["test"][0], out / "clusters_adk.png")


def run_microtubule(p, out: Path, mt_data: Path | None):
    import torch

    from cgsurrogate.data.microtubule import load_microtubule_splits
    from cgsurrogate.surrogate.equivariant.energy_head import MicrotubuleGraphs
    if mt_data is None or not Path(mt_data).is_dir():
        print("microtubule: no --mt-data folder; skipping")
        return
    res = Results(out, "microtubule")
    key = f"{Path(mt_data).name}/eghn-energy"
    if res.has(key):
        return
    tr, va, norm = load_microtubule_splits(mt_data)
    X, Y = tr.tensors()
    Xv, Yv = va.tensors()
    if p.get("max_val"):
        idx = np.linspace(0, Xv.shape[0] - 1, p["max_val"]).round().astype(int)
        Xv, Yv = Xv[idx], Yv[idx]
    b = MicrotubuleGraphs(tr.topology.bonds, tr.num_nodes, norm)
    G, Gv = b.graphs(X, Y), b.graphs(Xv, Yv)
    del X, Y
    pp = dict(p, layers_per_block=2, pool_layers=1, lr=1e-3, eval_every=1)
    model, r = _train("eghn", G, Gv, None, 6, 1, 1, [p["n_clusters"]], pp, out / "ckpt" / "microtubule_eghn.pt",
                      task="energy", lambda_conn=0.1, batches_per_epoch=p.get("batches_per_epoch"),
                      eval_batch_size=8)
    r.update(config=str(mt_data), model="eghn-energy", n_train=len(G), n_val=len(Gv),
             val_nmse=r["best_val_mse"], threads=torch.get_num_threads())
    res.put(key, r)
    print(f"{key}: min val NMSE = {r['val_nmse']:.4g}")


def collect_tables(out: Path, gpcn_results: Path | None) -> str:
    rows = {}
    for s in SECTIONS:
        f = out / f"results_{s}.json"
        if f.is_file():
            rows[s] = json.loads(f.read_text())
    lines = ["# EGHN benchmark tables", "",
             "Measured on a shared, loaded 2-core CPU machine unless stated otherwise; best-validation model, "
             "test MSE.", ""]
    if "mcomplex" in rows:
        lines += ["## Table 1: M-complex (test MSE x 1e-2)", "",
                  "| dataset | model | ours | paper | best epoch | cluster ARI | train s |", "|---|---|---|---|---|---|---|"]
        for k, r in rows["mcomplex"].items():
            paper = PAPER.get(r["paper_key"], {}).get(r["model"], "")
            ari = f"{r['cluster_ari_test']:.2f}" if "cluster_ari_test" in r else ""
            lines.append(f"| {r['config']} | {r['model']} | {r['test_mse_x100']:.2f} | {paper} | {r['best_epoch']} "
                         f"| {ari} | {r['wall_s']:.0f} |")
        lines.append("")
    if "mocap" in rows:
        lines += ["## Table 2: motion capture, subject 9 run (test MSE x 1e-2)", "",
                  "| model | ours | paper | best epoch | train s |", "|---|---|---|---|---|"]
        for k, r in rows["mocap"].items():
            lines.append(f"| {r['model']} | {r['test_mse_x100']:.2f} | {PAPER['mocap run'].get(r['model'], '')} | "
                         f"{r['best_epoch']} | {r['wall_s']:.0f} |")
        lines.append("")
    if "adk" in rows:
        lines += ["## AdK, span 15 frames (test MSE, A^2)", "",
                  "| data | model | ours | paper (1 us trajectory) | best epoch | train s |", "|---|---|---|---|---|---|"]
        for k, r in rows["adk"].items():
            lines.append(f"| {r['config']} | {r['model']} | {r['test_mse_A2']:.3f} | "
                         f"{PAPER['adk'].get(r['model'], '')} | {r['best_epoch']} | {r['wall_s']:.0f} |")
        lines.append("")
    if "microtubule" in rows:
        lines += ["## Microtubule per-node energies (min validation NMSE)", "",
                  "| model | min val NMSE | source |", "|---|---|---|"]
        for k, r in rows["microtubule"].items():
            lines.append(f"| EGHN (energy head) | {r['val_nmse']:.4g} | this bench, {r['n_train']} train frames, "
                         f"{r['n_val']} val frames |")
        if gpcn_results and Path(gpcn_results).is_file():
            g = json.loads(Path(gpcn_results).read_text())
            for name, v in (g.get("table3") or {}).items():
                if isinstance(v, dict) and "mean" in v:
                    lines.append(f"| {name} | {v['mean']:.4g} (mean of {v.get('n', '?')} seeds; best "
                                 f"{v.get('min', float('nan')):.4g}) | {gpcn_results} (preset "
                                 f"{g.get('preset', '?')}) |")
        lines.append("")
    text = "\n".join(lines)
    _atomic_write(out / "tables.md", text)
    _atomic_write(out / "tables.json", json.dumps(rows, indent=1))
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=tuple(PRESETS), default="reduced")
    ap.add_argument("--out", default="runs/eghn_tables")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--data", default=os.environ.get("CGS_SHARED_DATA"), help="folder holding mcomplex/ and mocap/")
    ap.add_argument("--mt-data", default=None, help="microtubule dataset folder")
    ap.add_argument("--gpcn-results", default=None, help="bench/paper_table.py results.json to list GPCN rows")
    ap.add_argument("--adk-top", default=None)
    ap.add_argument("--adk-traj", nargs="*", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="torch device for training (cpu, cuda)")
    ap.add_argument("--tables-only", action="store_true")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.tables_only:
        p = {k: dict(v, device=args.device) for k, v in PRESETS[args.preset].items()}
        data_root = Path(args.data) if args.data else None
        for s in [x.strip() for x in args.sections.split(",") if x.strip()]:
            if s not in SECTIONS:
                raise SystemExit(f"error: unknown section {s!r}; choose from {SECTIONS}")
            t0 = time.perf_counter()
            if s == "mcomplex":
                run_mcomplex(p["mcomplex"], out, data_root)
            elif s == "mocap":
                run_mocap(p["mocap"], out, data_root)
            elif s == "adk":
                sources = [(args.adk_top, t) for t in args.adk_traj] if args.adk_top and args.adk_traj else None
                run_adk(p["adk"], out, sources)
            else:
                run_microtubule(p["microtubule"], out, Path(args.mt_data) if args.mt_data else None)
            print(f"section {s} done in {time.perf_counter() - t0:.0f} s")
    print(collect_tables(out, Path(args.gpcn_results) if args.gpcn_results else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
