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

from surrogate.egnn import EGNN
from surrogate.eghn import EGHN
from surrogate.message_passing import GraphBatch, collate_graphs
from surrogate.mpnn import MPNN, LinearDynamics

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
    """

    epochs: int = 100
    batch_size: int = 50
    lr: float = 5e-4
    weight_decay: float = 1e-12
    eval_every: int = 5
    patience: int = 0
    seed: int = 0
    clip_grad: float = 1.0


def build_dynamics_model(name: str, in_node: int, edge_dim: int, local_edge_dim: int | None = None,
                         n_clusters=(3,), hidden: int = 64, n_layers: int = 4, **kw) -> torch.nn.Module:
    """Construct a dynamics model by name.

    Parameters
    ----------
    name : {"linear", "mpnn", "egnn", "eghn"}
    in_node, edge_dim, local_edge_dim : int
        Feature widths of the graphs (see :class:`surrogate.message_passing.GraphBatch`).
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
                    lambda_conn=kw.get("lambda_conn", 1.0), tanh=kw.get("tanh", False))
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


def _loss(model, g: GraphBatch, lambda_conn: float):
    pred, aux = model(g)
    mse = ((pred - g.target) ** 2).mean()
    total = mse + lambda_conn * aux["conn_loss"] if "conn_loss" in aux and lambda_conn else mse
    return total, mse, pred.shape[0]


@torch.no_grad()
def evaluate_mse(model: torch.nn.Module, graphs, batch_size: int = 100) -> float:
    """Mean squared position error over all nodes and the three coordinates."""
    model.eval()
    tot, n = 0.0, 0
    for g in _batches(graphs, batch_size, False, None):
        pred, _ = model(g)
        tot += float(((pred - g.target) ** 2).sum())
        n += pred.numel()
    return tot / max(n, 1)


def _save_atomic(obj, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_dynamics(model: torch.nn.Module, train, valid, test=None, cfg: TrainConfig | None = None,
                   lambda_conn: float = 0.0, checkpoint: str | Path | None = None, progress: bool = True,
                   dataset_info: dict | None = None) -> dict:
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
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if params else None
    start, history = 0, []
    best = {"val": float("inf"), "epoch": -1, "state": copy.deepcopy(model.state_dict()), "test": None}
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.is_file():
        st = load_dynamics_checkpoint(ckpt)
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
            for g in _batches(train, cfg.batch_size, True, rng):
                opt.zero_grad()
                loss, mse, n = _loss(model, g, lambda_conn)
                loss.backward()
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
                opt.step()
                tl += float(mse.detach()) * n
                tn += n
            train_mse = tl / max(tn, 1)
        else:
            train_mse = evaluate_mse(model, train)
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs - 1:
            val = evaluate_mse(model, valid)
            rec = {"epoch": epoch, "train_mse": train_mse, "val_mse": val}
            if val < best["val"]:
                best = {"val": val, "epoch": epoch, "state": copy.deepcopy(model.state_dict()),
                        "test": evaluate_mse(model, test) if test is not None else None}
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
