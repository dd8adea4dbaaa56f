"""Training of the EGHN family on dynamics tasks (M-complex, motion capture, protein MD) as a task
of the project's one training loop (:func:`cgsurrogate.surrogate.train.loop.fit`).

The loss is the mean squared position error plus, for EGHN, ``lambda`` times the connectivity
loss of eq. 16 (:class:`DynamicsTask`; ``target="energy"`` compares the energy head's per-node
output instead). The model kept is the one at the best validation epoch (the paper's protocol);
its test MSE is reported. An epoch is one pass over the training graphs in a seeded order
(``TrainConfig.steps_per_epoch=0``) unless a step count is given. The checkpoint (kind
``"eghn-dynamics"`` of :mod:`cgsurrogate.core.checkpoint_io`) holds the best weights, the run's
description and the loop's resume state; a run given the same checkpoint path resumes from it and
refuses changed settings.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import torch

from cgsurrogate.core.checkpoint_io import read_checkpoint, write_checkpoint
from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.equivariant.message_passing import GraphBatch, collate_graphs
from cgsurrogate.surrogate.equivariant.registry import MODEL_NAMES, build_dynamics_model, rebuild_from_config
from cgsurrogate.surrogate.train.loop import Task, TrainConfig, fit

CHECKPOINT_KIND = "eghn-dynamics"
#: The loop settings :func:`train_dynamics` uses when given none (the EGHN authors' optimiser settings,
#: with gradient clipping at 1).
DYNAMICS_DEFAULTS = dict(steps_per_epoch=0, batch_size=50, lr=5e-4, weight_decay=1e-12, eval_every=5, clip_grad=1.0)


def _device(model) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _predict(model, g: GraphBatch, target: str):
    dev = _device(model)
    if g.pos.device != dev:
        g = g.to(dev)
    pred, aux = model(g)
    if target == "energy":
        pred = aux["node_energy"].unsqueeze(-1)
    return pred, aux


@torch.no_grad()
def evaluate_mse(model: torch.nn.Module, graphs, batch_size: int = 100, task: str = "dynamics") -> float:
    """Mean squared error of the task's target over all nodes (and the three coordinates).

    ``task="dynamics"``: predicted vs target positions; ``task="energy"``: the energy head's per-node
    output vs the (normalised) per-node energies stored as ``target`` [N, 1].
    """
    model.eval()
    tot, n = 0.0, 0
    for s in range(0, len(graphs), batch_size):
        g = collate_graphs(graphs[s:s + batch_size])
        pred, _ = _predict(model, g, task)
        tot += float(((pred - g.target.to(pred.device)) ** 2).sum())
        n += pred.numel()
    return tot / max(n, 1)


class DynamicsTask(Task):
    """The EGHN family on graph dicts with a ``target``: MSE (+ ``lambda_conn`` x connectivity loss).

    Parameters
    ----------
    train, valid, test : lists of graph dicts (``test`` may be None; its MSE is measured at each
        new best validation)
    lambda_conn : float
        Weight of EGHN's connectivity loss (0 for other models).
    target : {"dynamics", "energy"}
        What is compared with ``target`` (see :func:`evaluate_mse`).
    dataset_info : dict, optional
        Plain description of the data (stored; a resume must match it).
    eval_batch_size : int
        Graphs per evaluation forward pass.
    """

    name = "dynamics"

    def __init__(self, train, valid, test=None, *, lambda_conn: float = 0.0, target: str = "dynamics",
                 dataset_info: dict | None = None, eval_batch_size: int = 100):
        if target not in ("dynamics", "energy"):
            raise CGSurrogateError(f"target must be 'dynamics' or 'energy', got {target!r}")
        self.train, self.valid, self.test = train, valid, test
        self.num_train = len(train)
        self.lambda_conn, self.target = float(lambda_conn or 0.0), target
        self.dataset_info = dict(dataset_info or {})
        self.eval_batch_size = int(eval_batch_size)
        self.test_mse = None
        self.model_config: dict = {}
        self.train_config: dict = {}

    def settings(self) -> dict:
        return {"model": self.model_config, "lambda_conn": self.lambda_conn, "target": self.target,
                "dataset": self.dataset_info}

    def loss(self, model, idx):
        g = collate_graphs([self.train[i] for i in idx.tolist()])
        pred, aux = _predict(model, g, self.target)
        mse = ((pred - g.target.to(pred.device)) ** 2).mean()
        total = mse + self.lambda_conn * aux["conn_loss"] if "conn_loss" in aux and self.lambda_conn else mse
        return total, float(mse.detach())

    def evaluate(self, model) -> dict:
        return {"val": evaluate_mse(model, self.valid, self.eval_batch_size, self.target)}

    def on_evaluation(self, model, history, improved, out_dir):
        row = history[-1]
        row.update(train_mse=row["train_loss"], val_mse=row["val"])
        if improved and self.test is not None:
            self.test_mse = evaluate_mse(model, self.test, self.eval_batch_size, self.target)

    def checkpoint_payload(self, state: dict, best_state: dict) -> dict:
        """The ``"eghn-dynamics"`` checkpoint payload: best weights, the run's description and
        (under ``train_state``) the loop's resume ``state``."""
        return {"model_config": dict(self.model_config), "state_dict": best_state, "epoch": int(state["epoch"]) - 1,
                "best_epoch": state["best"]["epoch"], "best_val_mse": state["best"]["val"], "test_mse": self.test_mse,
                "history": state["history"], "lambda_conn": self.lambda_conn, "train_config": dict(self.train_config),
                "dataset": self.dataset_info, "target": self.target,
                "units": "positions in the dataset's length unit", "train_state": state}

    def write_state(self, path, state, model, best_state):
        write_checkpoint(path, CHECKPOINT_KIND, self.checkpoint_payload(state, best_state))

    def read_state(self, path) -> dict:
        st = load_dynamics_checkpoint(path).get("train_state")
        if not isinstance(st, dict):
            raise CGSurrogateError(f"{path}: holds no training state to resume from")
        return st

    def save_model(self, path, model, metrics):
        state = {"epoch": metrics["epoch"] + 1, "best": {"epoch": metrics["epoch"], "val": metrics["val"]},
                 "history": []}
        payload = self.checkpoint_payload(state, model.state_dict())
        payload.pop("train_state")
        write_checkpoint(path, CHECKPOINT_KIND, payload)

    def state_dict(self) -> dict:
        return {"test_mse": self.test_mse}

    def load_state_dict(self, state):
        self.test_mse = (state or {}).get("test_mse")


def train_dynamics(model: torch.nn.Module, train, valid, test=None, cfg: TrainConfig | None = None,
                   lambda_conn: float = 0.0, checkpoint: str | Path | None = None, progress: bool = True,
                   dataset_info: dict | None = None, task: str = "dynamics",
                   batches_per_epoch: int | None = None, eval_batch_size: int = 100) -> dict:
    """Train with the one loop (:func:`cgsurrogate.surrogate.train.loop.fit`) and :class:`DynamicsTask`;
    keep the best-validation model.

    Parameters
    ----------
    model : nn.Module mapping GraphBatch -> (positions [N, 3], aux)
    train, valid, test : list of graph dicts (with ``target``)
    cfg : cgsurrogate.surrogate.train.loop.TrainConfig, optional
        Default :data:`DYNAMICS_DEFAULTS`; ``steps_per_epoch=0`` is one pass per epoch.
    lambda_conn : float
        Weight of the connectivity loss (EGHN only).
    checkpoint : path, optional
        Written at each validation; resumed from when it exists (same settings required).
    task : {"dynamics", "energy"}
        What is compared with ``target`` (see :func:`evaluate_mse`).
    batches_per_epoch : int, optional
        Optimiser steps per epoch (overrides ``cfg.steps_per_epoch``).

    Returns
    -------
    dict
        ``best_epoch``, ``best_val_mse``, ``test_mse`` (at the best epoch, if ``test``), ``history``
        (list of dicts), ``epochs_run``, ``stopped_early``; the model is left holding the best weights.
    """
    cfg = cfg or TrainConfig(**DYNAMICS_DEFAULTS)
    if batches_per_epoch:
        cfg = replace(cfg, steps_per_epoch=int(batches_per_epoch))
    cfg = replace(cfg, progress=bool(progress))
    torch.manual_seed(cfg.seed)
    if hasattr(model, "fit"):  # closed-form baselines (Linear): no gradient training
        model.fit(train)
        val = evaluate_mse(model, valid)
        return {"best_epoch": 0, "best_val_mse": val, "test_mse": evaluate_mse(model, test) if test is not None else None,
                "history": [{"epoch": 0, "train_mse": evaluate_mse(model, train), "val_mse": val}], "epochs_run": 0,
                "stopped_early": False}
    t = DynamicsTask(train, valid, test, lambda_conn=lambda_conn, target=task, dataset_info=dataset_info,
                     eval_batch_size=eval_batch_size)
    t.model_config, t.train_config = dict(model.config), asdict(cfg)
    r = fit(model, t, cfg, state_file=checkpoint, desc=f"train {model.config.get('name', '?')}")
    return {"best_epoch": r["best_epoch"], "best_val_mse": r["best_val"], "test_mse": t.test_mse,
            "history": r["history"], "epochs_run": r["epochs_run"], "stopped_early": r["stopped_early"]}


def load_dynamics_checkpoint(path) -> dict:
    """Read a dynamics checkpoint (``weights_only=True``); :class:`InputFileError` naming the file if unusable.

    Returns
    -------
    dict with ``model_config``, ``state_dict`` (best weights), ``epoch`` (last epoch run, 0-based),
    ``best_epoch``, ``best_val_mse``, ``test_mse``, ``history``, ``lambda_conn``, ``train_config``,
    ``dataset``, ``target`` and ``train_state`` (the loop's resume state).
    """
    return read_checkpoint(path, CHECKPOINT_KIND)[2]


def load_dynamics_model(path) -> torch.nn.Module:
    """Rebuild the best-validation model of a checkpoint, in eval mode."""
    st = load_dynamics_checkpoint(path)
    model = rebuild_from_config(st["model_config"])
    try:
        model.load_state_dict(st["state_dict"])
    except RuntimeError as exc:
        raise CGSurrogateError(f"{path}: weights do not fit model {st['model_config'].get('name')!r} "
                               f"({str(exc).splitlines()[0]})") from None
    return model.eval()


BENCHMARKS = ("mcomplex", "mocap", "protein")


def load_benchmark(task: str, data=None, sources=None, span: int = 15, cutoff_nm: float = 1.0,
                   velocity: str = "backward"):
    """Train/valid/test graphs and feature widths of a dynamics benchmark.

    Parameters
    ----------
    task : {"mcomplex", "mocap", "protein"}
    data : path, optional
        M-complex ``.npz`` or motion-capture ``.npz`` (defaults under ``$CGS_SHARED_DATA``).
    sources : list of (topology, trajectory), optional
        Protein trajectories (defaults to the MDAnalysisTests AdK DCDs).
    span, cutoff_nm : protein prediction span (frames) and A_global cutoff (nm).
    velocity : protein input velocity, "backward" ``x[t] - x[t-1]`` (the paper's text) or "forward"
        ``x[t+1] - x[t]`` (the EGHN authors' code), see :func:`cgsurrogate.data.protein.protein_splits`.

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
        sp = protein_splits(load_protein_trajectory(sources), span=span, cutoff_nm=cutoff_nm,
                            velocity=velocity, progress=True)
        return sp["train"], sp["valid"], sp["test"], dict(in_node=int(sp["train"][0]["h"].shape[1]), edge_dim=1,
                                                          local_edge_dim=1, n_clusters=20)
    raise ValueError(f"unknown benchmark {task!r}; choose from {BENCHMARKS}")


def train_benchmark(task: str, model_name: str, checkpoint, data=None, sources=None, epochs: int = 100,
                    batch_size: int = 50, lr: float = 5e-4, hidden: int = 64, clusters: int | None = None,
                    lambda_conn: float = 1.0, seed: int = 0, span: int = 15, cutoff_nm: float = 1.0,
                    clip_grad: float = 1.0, eval_every: int = 5, patience: int = 0, weight_decay: float = 1e-12,
                    n_layers: int = 4, layers_per_block: int = 2, pool_layers: int = 2,
                    unpool_init: str = "standard", conn_norm: str = "frobenius", pool_design: str = "input",
                    pool_degree: bool = True, velocity: str = "backward") -> dict:
    """Train one model on a benchmark, keep the best-validation weights in ``checkpoint``, report test MSE.

    Re-running with the same checkpoint resumes (and extends to a larger ``epochs``).
    ``clip_grad`` (0 = off), ``eval_every``, ``patience`` (validations without improvement before
    stopping, 0 = never) and ``weight_decay`` go to :class:`TrainConfig`; ``n_layers`` is the depth
    of MPNN/EGNN; ``layers_per_block``, ``pool_layers``, ``unpool_init``, ``conn_norm``,
    ``pool_design`` and ``pool_degree`` shape EGHN; ``velocity`` as in :func:`load_benchmark` (see :class:`cgsurrogate.surrogate.equivariant.eghn.EGHN`;
    defaults here: the authors' pooling design plus the A_local degree in the E-Pool scores, the best
    measured on M-complex, ``bench/results/eghn/``). The EGHN authors' settings: no clipping,
    validation every 5 epochs, patience 50.

    Returns
    -------
    dict from :func:`train_dynamics` plus ``n_train``, ``n_valid``, ``n_test``.
    """
    if model_name not in MODEL_NAMES:
        raise ValueError(f"unknown model {model_name!r}; choose from {MODEL_NAMES}")
    tr, va, te, dims = load_benchmark(task, data, sources, span, cutoff_nm, velocity)
    torch.manual_seed(seed)
    model = build_dynamics_model(model_name, dims["in_node"], dims["edge_dim"], dims["local_edge_dim"],
                                 [clusters or dims["n_clusters"]], hidden=hidden, n_layers=n_layers,
                                 lambda_conn=lambda_conn, layers_per_block=layers_per_block, pool_layers=pool_layers,
                                 unpool_init=unpool_init, conn_norm=conn_norm, pool_design=pool_design,
                                 pool_degree=pool_degree)
    cfg = TrainConfig(epochs=epochs, steps_per_epoch=0, batch_size=batch_size, lr=lr, seed=seed, clip_grad=clip_grad,
                      eval_every=eval_every, patience=patience, weight_decay=weight_decay)
    info = {"task": task, "data": str(data), "span": span, "cutoff_nm": cutoff_nm}
    if task == "protein" and velocity != "backward":  # absent = backward, so older checkpoints still resume
        info["velocity"] = velocity
    r = train_dynamics(model, tr, va, te, cfg, lambda_conn=lambda_conn if model_name == "eghn" else 0.0,
                       checkpoint=checkpoint, dataset_info=info)
    if model_name == "linear" and checkpoint:  # closed-form fit: still leave a checkpoint behind
        t = DynamicsTask(tr, va, te, dataset_info=info)
        t.model_config, t.train_config, t.test_mse = dict(model.config), asdict(cfg), r["test_mse"]
        t.save_model(Path(checkpoint), model, {"epoch": 0, "val": r["best_val_mse"]})
    r.update(n_train=len(tr), n_valid=len(va), n_test=len(te))
    return r
