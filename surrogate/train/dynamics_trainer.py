"""Training of the EGHN family on dynamics tasks (M-complex, motion capture, protein MD).

The loss is the mean squared position error plus, for EGHN, ``lambda`` times the connectivity
loss of eq. 16. The model kept is the one at the best validation epoch (the paper's protocol);
its test MSE is reported. Checkpoints hold only tensors and plain python values, load with
``torch.load(weights_only=True)``, are written atomically, and a run given the same checkpoint
path resumes from it.
"""
from __future__ import annotations

import copy
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.equivariant.egnn import EGNN
from cgsurrogate.surrogate.equivariant.eghn import EGHN
from cgsurrogate.surrogate.equivariant.message_passing import GraphBatch, collate_graphs
from cgsurrogate.surrogate.equivariant.mpnn import MPNN, LinearDynamics

MODEL_NAMES = ("linear", "mpnn", "egnn", "eghn")
CHECKPOINT_FORMAT = "cgsurrogate-eghn-dynamics-1"


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes
    ----------
    epochs : int
    batch_size : int
    lr : float
        Adam learning rate.
    weight_decay : float
    eval_every : int
        Validate every this many epochs.
    patience : int
        Stop after this many validations without improvement (0 = never).
    seed : int
    clip_grad : float
        Gradient-norm clip (0 = off).
    device : str
        Torch device for the model and batches ("cpu", "cuda", ...).
    """

    epochs: int = 100
    batch_size: int = 50
    lr: float = 5e-4
    weight_decay: float = 1e-12
    eval_every: int = 5
    patience: int = 0
    seed: int = 0
    clip_grad: float = 1.0
    device: str = "cpu"


def build_dynamics_model(name: str, in_node: int, edge_dim: int, local_edge_dim: int | None = None,
                         n_clusters=(3,), hidden: int = 64, n_layers: int = 4, **kw) -> torch.nn.Module:
    """Construct a dynamics model by name.

    Parameters
    ----------
    name : {"linear", "mpnn", "egnn", "eghn"}
    in_node, edge_dim, local_edge_dim : int
        Feature widths of the graphs (see :class:`cgsurrogate.surrogate.equivariant.message_passing.GraphBatch`).
    n_clusters : list of int
        EGHN clusters per E-Pool.
    hidden : int
    n_layers : int
        Message-passing layers (MPNN/EGNN); EGHN uses ``layers_per_block``/``pool_layers`` from ``kw``.
    """
    if name == "linear":
        return LinearDynamics()
    if name == "mpnn":
        return MPNN(in_node, edge_dim, hidden, n_layers)
    if name == "egnn":
        return EGNN(in_node, edge_dim, hidden, n_layers, tanh=kw.get("tanh", False))
    if name == "eghn":
        return EGHN(in_node, edge_dim, local_edge_dim if local_edge_dim is not None else edge_dim, hidden,
                    list(n_clusters), layers_per_block=kw.get("layers_per_block", 2),
                    pool_layers=kw.get("pool_layers", 2), head=kw.get("head", "dynamics"),
                    lambda_conn=kw.get("lambda_conn", 1.0), tanh=kw.get("tanh", False),
                    unpool_init=kw.get("unpool_init", "standard"), conn_norm=kw.get("conn_norm", "frobenius"))
    raise ValueError(f"unknown model {name!r}; choose from {MODEL_NAMES}")


def rebuild_from_config(config: dict) -> torch.nn.Module:
    """Inverse of ``model.config``."""
    c = dict(config)
    name = c.pop("name")
    if name == "linear":
        return LinearDynamics()
    if name == "mpnn":
        return MPNN(**c)
    if name == "egnn":
        return EGNN(**c)
    if name == "eghn":
        return EGHN(**c)
    raise ValueError(f"unknown model {name!r} in checkpoint")


def _batches(graphs, batch_size, shuffle, rng):
    idx = np.arange(len(graphs))
    if shuffle:
        rng.shuffle(idx)
    for s in range(0, len(idx), batch_size):
        yield collate_graphs([graphs[i] for i in idx[s:s + batch_size]])


def _device(model) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _predict(model, g: GraphBatch, task: str):
    dev = _device(model)
    if g.pos.device != dev:
        g = g.to(dev)
    pred, aux = model(g)
    if task == "energy":
        pred = aux["node_energy"].unsqueeze(-1)
    return pred, aux


def _loss(model, g: GraphBatch, lambda_conn: float, task: str = "dynamics"):
    pred, aux = _predict(model, g, task)
    mse = ((pred - g.target.to(pred.device)) ** 2).mean()
    total = mse + lambda_conn * aux["conn_loss"] if "conn_loss" in aux and lambda_conn else mse
    return total, mse, pred.shape[0]


@torch.no_grad()
def evaluate_mse(model: torch.nn.Module, graphs, batch_size: int = 100, task: str = "dynamics") -> float:
    """Mean squared error of the task's target over all nodes (and the three coordinates).

    ``task="dynamics"``: predicted vs target positions; ``task="energy"``: the energy head's per-node
    output vs the (normalised) per-node energies stored as ``target`` [N, 1].
    """
    model.eval()
    tot, n = 0.0, 0
    for g in _batches(graphs, batch_size, False, None):
        pred, _ = _predict(model, g, task)
        tot += float(((pred - g.target.to(pred.device)) ** 2).sum())
        n += pred.numel()
    return tot / max(n, 1)


def _save_atomic(obj, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_dynamics(model: torch.nn.Module, train, valid, test=None, cfg: TrainConfig | None = None,
                   lambda_conn: float = 0.0, checkpoint: str | Path | None = None, progress: bool = True,
                   dataset_info: dict | None = None, task: str = "dynamics",
                   batches_per_epoch: int | None = None, eval_batch_size: int = 100) -> dict:
    """Train with Adam; keep the best-validation model.

    Parameters
    ----------
    model : nn.Module mapping GraphBatch -> (positions [N, 3], aux)
    train, valid, test : list of graph dicts (with ``target``)
    cfg : TrainConfig
    lambda_conn : float
        Weight of the connectivity loss (EGHN only).
    checkpoint : path, optional
        Saved after each validation; resumed from when it exists.
    task : {"dynamics", "energy"}
        What is compared with ``target`` (see :func:`evaluate_mse`).
    batches_per_epoch : int, optional
        Cap on the optimiser steps per epoch (an "epoch" is then that many random batches).

    Returns
    -------
    dict
        ``best_epoch``, ``best_val_mse``, ``test_mse`` (at the best epoch, if ``test``), ``history``
        (list of dicts), ``epochs_run``; the model is left holding the best weights.
    """
    cfg = cfg or TrainConfig()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if hasattr(model, "fit"):  # closed-form baselines (Linear): no gradient training
        model.fit(train)
        val = evaluate_mse(model, valid)
        return {"best_epoch": 0, "best_val_mse": val, "test_mse": evaluate_mse(model, test) if test is not None else None,
                "history": [{"epoch": 0, "train_mse": evaluate_mse(model, train), "val_mse": val}], "epochs_run": 0}
    model.to(cfg.device)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if params else None
    start, history = 0, []
    best = {"val": float("inf"), "epoch": -1, "state": copy.deepcopy(model.state_dict()), "test": None}
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.is_file():
        st = load_dynamics_checkpoint(ckpt)
        changed = _resume_differences(st, model, cfg, lambda_conn, dataset_info)
        if changed:
            raise CGSurrogateError(f"{ckpt}: was trained with other settings ({'; '.join(changed[:4])}); "
                                   f"use a new checkpoint path or the same settings")
        model.load_state_dict(st["last_state"])
        if opt is not None and st.get("optimizer"):
            opt.load_state_dict(st["optimizer"])
        start, history = st["epoch"] + 1, st["history"]
        best = {"val": st["best_val_mse"], "epoch": st["best_epoch"], "state": st["state_dict"],
                "test": st.get("test_mse")}
        rng = np.random.default_rng(cfg.seed + start)
    it = range(start, cfg.epochs)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc=f"train {model.config.get('name', '?')}", initial=start, total=cfg.epochs, leave=False)
    bad = 0
    for epoch in it:
        if opt is not None:
            model.train()
            tl, tn = 0.0, 0
            for b, g in enumerate(_batches(train, cfg.batch_size, True, rng)):
                if batches_per_epoch and b >= batches_per_epoch:
                    break
                opt.zero_grad()
                loss, mse, n = _loss(model, g, lambda_conn, task)
                loss.backward()
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
                opt.step()
                tl += float(mse.detach()) * n
                tn += n
            train_mse = tl / max(tn, 1)
        else:
            train_mse = evaluate_mse(model, train, eval_batch_size, task)
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs - 1:
            val = evaluate_mse(model, valid, eval_batch_size, task)
            rec = {"epoch": epoch, "train_mse": train_mse, "val_mse": val}
            if val < best["val"]:
                best = {"val": val, "epoch": epoch, "state": copy.deepcopy(model.state_dict()),
                        "test": evaluate_mse(model, test, eval_batch_size, task) if test is not None else None}
                bad = 0
            else:
                bad += 1
            history.append(rec)
            if progress:
                it.set_postfix(val=f"{val:.4g}", best=f"{best['val']:.4g}")
            if ckpt is not None:
                _save_atomic(_checkpoint_dict(model, best, history, epoch, opt, lambda_conn, cfg, dataset_info), ckpt)
            if cfg.patience and bad >= cfg.patience:
                break
    model.load_state_dict(best["state"])
    return {"best_epoch": best["epoch"], "best_val_mse": best["val"], "test_mse": best["test"],
            "history": history, "epochs_run": len(history) and history[-1]["epoch"] + 1}


def _resume_differences(st: dict, model, cfg, lambda_conn, dataset_info) -> list[str]:
    """Settings of a saved run that differ from this call (``epochs``, ``patience``, ``device``
    may change: they extend or stop the run, not what it computes)."""
    out = []
    old_model, new_model = dict(st.get("model_config") or {}), dict(model.config)
    out += [f"model {k} {old_model.get(k)!r} -> {new_model.get(k)!r}" for k in sorted(set(old_model) | set(new_model))
            if old_model.get(k) != new_model.get(k)]
    old_cfg, new_cfg = dict(st.get("train_config") or {}), asdict(cfg)
    out += [f"{k} {old_cfg.get(k)!r} -> {new_cfg.get(k)!r}" for k in sorted(new_cfg)
            if k not in ("epochs", "patience", "device") and old_cfg.get(k) != new_cfg.get(k)]
    if float(st.get("lambda_conn", lambda_conn) or 0) != float(lambda_conn or 0):
        out.append(f"lambda_conn {st.get('lambda_conn')!r} -> {lambda_conn!r}")
    if (st.get("dataset") or {}) != (dataset_info or {}):
        out.append("dataset differs")
    return out


def _checkpoint_dict(model, best, history, epoch, opt, lambda_conn, cfg, dataset_info):
    return {"format": CHECKPOINT_FORMAT, "model_config": dict(model.config), "state_dict": best["state"],
            "last_state": model.state_dict(), "optimizer": opt.state_dict() if opt is not None else {},
            "epoch": epoch, "best_epoch": best["epoch"], "best_val_mse": best["val"], "test_mse": best["test"],
            "history": history, "lambda_conn": lambda_conn, "train_config": asdict(cfg),
            "dataset": dataset_info or {}, "units": "positions in the dataset's length unit"}


def load_dynamics_checkpoint(path) -> dict:
    """Load a training checkpoint (``weights_only=True``); ValueError naming the file if unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(st, dict) or st.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an EGHN-family dynamics checkpoint (format {CHECKPOINT_FORMAT})")
    return st


def load_dynamics_model(path) -> torch.nn.Module:
    """Rebuild the best-validation model of a checkpoint, in eval mode."""
    st = load_dynamics_checkpoint(path)
    model = rebuild_from_config(st["model_config"])
    model.load_state_dict(st["state_dict"])
    return model.eval()


BENCHMARKS = ("mcomplex", "mocap", "protein")


def load_benchmark(task: str, data=None, sources=None, span: int = 15, cutoff_nm: float = 1.0):
    """Train/valid/test graphs and feature widths of a dynamics benchmark.

    Parameters
    ----------
    task : {"mcomplex", "mocap", "protein"}
    data : path, optional
        M-complex ``.npz`` or motion-capture ``.npz`` (defaults under ``$CGS_SHARED_DATA``).
    sources : list of (topology, trajectory), optional
        Protein trajectories (defaults to the MDAnalysisTests AdK DCDs).
    span, cutoff_nm : protein prediction span (frames) and A_global cutoff (nm).

    Returns
    -------
    train, valid, test : lists of graph dicts
    dims : dict with ``in_node``, ``edge_dim``, ``local_edge_dim``, ``n_clusters`` (paper default)
    """
    if task == "mcomplex":
        from cgsurrogate.data.mcomplex import MComplexDataset
        tr, va, te = (MComplexDataset(data, s) for s in ("train", "valid", "test"))
        return tr.graphs, va.graphs, te.graphs, dict(in_node=1, edge_dim=2, local_edge_dim=2, n_clusters=tr.n_clusters)
    if task == "mocap":
        from cgsurrogate.data.mocap import MocapDataset
        tr, va, te = (MocapDataset(data, s).graphs for s in ("train", "valid", "test"))
        return tr, va, te, dict(in_node=2, edge_dim=1, local_edge_dim=1, n_clusters=5)
    if task == "protein":
        from cgsurrogate.data.protein import load_protein_trajectory, protein_splits
        sp = protein_splits(load_protein_trajectory(sources), span=span, cutoff_nm=cutoff_nm, progress=True)
        return sp["train"], sp["valid"], sp["test"], dict(in_node=int(sp["train"][0]["h"].shape[1]), edge_dim=1,
                                                          local_edge_dim=1, n_clusters=20)
    raise ValueError(f"unknown benchmark {task!r}; choose from {BENCHMARKS}")


def train_benchmark(task: str, model_name: str, checkpoint, data=None, sources=None, epochs: int = 100,
                    batch_size: int = 50, lr: float = 5e-4, hidden: int = 64, clusters: int | None = None,
                    lambda_conn: float = 1.0, seed: int = 0, span: int = 15, cutoff_nm: float = 1.0,
                    clip_grad: float = 1.0, eval_every: int = 5, patience: int = 0, weight_decay: float = 1e-12,
                    n_layers: int = 4, layers_per_block: int = 2, pool_layers: int = 2,
                    unpool_init: str = "standard", conn_norm: str = "frobenius") -> dict:
    """Train one model on a benchmark, keep the best-validation weights in ``checkpoint``, report test MSE.

    Re-running with the same checkpoint resumes (and extends to a larger ``epochs``).
    ``clip_grad`` (0 = off), ``eval_every``, ``patience`` (validations without improvement before
    stopping, 0 = never) and ``weight_decay`` go to :class:`TrainConfig`; ``n_layers`` is the depth
    of MPNN/EGNN; ``layers_per_block``, ``pool_layers``, ``unpool_init`` and ``conn_norm`` shape
    EGHN (see :class:`cgsurrogate.surrogate.equivariant.eghn.EGHN`). The EGHN authors' settings:
    no clipping, validation every 5 epochs, patience 50.

    Returns
    -------
    dict from :func:`train_dynamics` plus ``n_train``, ``n_valid``, ``n_test``.
    """
    if model_name not in MODEL_NAMES:
        raise ValueError(f"unknown model {model_name!r}; choose from {MODEL_NAMES}")
    tr, va, te, dims = load_benchmark(task, data, sources, span, cutoff_nm)
    torch.manual_seed(seed)
    model = build_dynamics_model(model_name, dims["in_node"], dims["edge_dim"], dims["local_edge_dim"],
                                 [clusters or dims["n_clusters"]], hidden=hidden, n_layers=n_layers,
                                 lambda_conn=lambda_conn, layers_per_block=layers_per_block, pool_layers=pool_layers,
                                 unpool_init=unpool_init, conn_norm=conn_norm)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, clip_grad=clip_grad,
                      eval_every=eval_every, patience=patience, weight_decay=weight_decay)
    r = train_dynamics(model, tr, va, te, cfg, lambda_conn=lambda_conn if model_name == "eghn" else 0.0,
                       checkpoint=checkpoint, dataset_info={"task": task, "data": str(data), "span": span,
                                                           "cutoff_nm": cutoff_nm})
    if model_name == "linear" and checkpoint:  # closed-form fit: still leave a checkpoint behind
        _save_atomic(_checkpoint_dict(model, {"state": model.state_dict(), "epoch": 0, "val": r["best_val_mse"],
                                              "test": r["test_mse"]}, r["history"], 0, None, 0.0, cfg,
                                      {"task": task, "data": str(data)}), Path(checkpoint))
    r.update(n_train=len(tr), n_valid=len(va), n_test=len(te))
    return r
