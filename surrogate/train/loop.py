"""The one training loop: Adam, optional gradient clipping, evaluation interval, early stopping,
best-weights keeping and a resume that refuses changed settings.

A *task* supplies what differs between models (see :class:`Task`): how to compute the loss of
one batch, how to evaluate, which settings identify a run (data, split, loss weights, model
configuration) and how to write its model file. :func:`fit` does the rest. Tasks today:
:class:`cgsurrogate.surrogate.train.potential_task.PotentialTask` (the invariant potential). The
GCN family (:func:`cgsurrogate.surrogate.train.gcn_trainer.train`, with its multigrid schedules
and FLOP accounting) and the EGHN trainers (``dynamics_trainer.train_dynamics``, also used by the
EGHN energy head) still run their own loops, with the same resume rule (settings compared,
changes refused); moving them onto :func:`fit` as tasks is open (issue 11).

Resume: with ``out_dir`` set, ``last.pt`` (every evaluation) holds weights, optimiser state, the
loop's counters and the run's settings (:class:`TrainConfig` fields that shape the result plus
the task's ``settings()``); a later call with the same ``out_dir`` continues from it, and
refuses, naming the changed settings, when any differs (``epochs`` may grow, that extends the
run). ``best.pt`` is the task's model file at the best evaluation so far.
"""
from __future__ import annotations

import abc
import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError

#: TrainConfig fields that may change between a run and its resume.
RESUMABLE_CHANGES = ("epochs", "device", "progress")
STATE_KIND = "train-state"


@dataclass
class TrainConfig:
    """Settings of the loop (every task).

    Attributes
    ----------
    epochs : int              epochs in total (a resume may raise it)
    steps_per_epoch : int     optimiser steps per epoch
    batch_size : int          samples per step
    lr : float                Adam learning rate
    lr_final : float          0: constant lr; else decays exponentially to this by the last epoch
    weight_decay : float      Adam weight decay
    clip_grad : float         gradient-norm clip (0 = off)
    eval_every : int          evaluate (and write last.pt) every this many epochs
    patience : int            stop after this many evaluations without improvement (0 = never)
    seed : int                seeds the batches (and, by the caller, the model)
    device : str              torch device
    progress : bool           tqdm bar
    """

    epochs: int = 100
    steps_per_epoch: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    lr_final: float = 0.0
    weight_decay: float = 0.0
    clip_grad: float = 0.0
    eval_every: int = 1
    patience: int = 0
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def check(self) -> "TrainConfig":
        """Raise :class:`CGSurrogateError` for an unusable setting; return self."""
        for name in ("epochs", "steps_per_epoch", "batch_size", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise CGSurrogateError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.lr > 0 or not np.isfinite(self.lr):
            raise CGSurrogateError(f"lr must be a positive number, got {self.lr}")
        if self.lr_final < 0 or not np.isfinite(self.lr_final):
            raise CGSurrogateError(f"lr_final must be 0 (no decay) or positive, got {self.lr_final}")
        if self.patience < 0 or self.clip_grad < 0 or self.weight_decay < 0:
            raise CGSurrogateError("patience, clip_grad and weight_decay must not be negative")
        return self


class Task(abc.ABC):
    """What one kind of training supplies to :func:`fit` (subclass it).

    Attributes
    ----------
    name : str    registry name
    num_train : int   number of training samples (batches draw indices below it)
    """

    name = "task"
    num_train = 0

    @abc.abstractmethod
    def loss(self, model, idx: torch.Tensor) -> torch.Tensor:
        """Scalar loss of the training samples ``idx`` [batch_size] (differentiable)."""

    @abc.abstractmethod
    def evaluate(self, model) -> dict:
        """Validation metrics; key ``"val"`` (lower is better) drives best/early stopping."""

    def settings(self) -> dict:
        """Plain dict identifying the run (data, split, loss weights, model config)."""
        return {}

    @abc.abstractmethod
    def save_model(self, path: Path, model, metrics: dict) -> None:
        """Write the task's model file (``best.pt``)."""


def batch_indices(num: int, epoch: int, seed: int, steps: int, batch_size: int) -> torch.Tensor:
    """``[steps, batch_size]`` sample indices of one epoch, a function of ``(seed, epoch)`` only."""
    if num < 1:
        raise CGSurrogateError("no training samples")
    rng = np.random.default_rng([int(seed), int(epoch)])
    need = steps * batch_size
    idx = np.concatenate([rng.permutation(num) for _ in range(-(-need // num))])[:need]
    return torch.as_tensor(idx.reshape(steps, batch_size), dtype=torch.long)


def _run_settings(config: TrainConfig, task: Task) -> dict:
    loop = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
    return {"loop": loop, "task": task.name, "task_settings": task.settings()}


def _differences(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix[:-1]} ({old!r} -> {new!r})"]



def training_out_dir(out_dir) -> Path | None:
    """The output folder of a training run, created; ``None`` for none.

    Raises
    ------
    CGSurrogateError
        ``out_dir`` exists and is not a folder.
    """
    if out_dir is None:
        return None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CGSurrogateError(f"{out}: exists and is not a folder (the output folder of a training run)")
    out.mkdir(parents=True, exist_ok=True)
    return out

def fit(model, task: Task, config: TrainConfig, out_dir=None, desc: str | None = None) -> dict:
    """Train ``model`` on ``task``; resumable (see the module docstring).

    Returns
    -------
    dict with ``history`` (per-evaluation dicts: epoch, train_loss, metrics, wall_s),
    ``best_val``, ``best_epoch``, ``best_metrics``, ``epochs_run``, ``stopped_early``; the model is
    left holding the best weights.
    """
    from tqdm.auto import tqdm

    from cgsurrogate.core.checkpoint_io import read_checkpoint, write_checkpoint

    config.check()
    device = torch.device(config.device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    settings = _run_settings(config, task)
    start, history, best = 0, [], {"val": float("inf"), "epoch": -1, "metrics": None, "since": 0}
    best_state = copy.deepcopy(model.state_dict())
    out = training_out_dir(out_dir)
    if out is not None:
        last = out / "last.pt"
        if last.is_file():
            _, _, st = read_checkpoint(last, STATE_KIND)
            diff = _differences(st["settings"], settings)
            if diff:
                raise CGSurrogateError(f"{last}: was trained with other settings ({'; '.join(diff[:4])}); "
                                       f"use a new output folder or the same settings")
            try:
                model.load_state_dict(st["model"])
            except RuntimeError as exc:
                raise CGSurrogateError(f"{last}: weights do not fit this model ({str(exc).splitlines()[0]})") from None
            opt.load_state_dict(st["optimizer"])
            start, history = int(st["epoch"]), list(st["history"])
            best = dict(st["best"])
            best_state = st["best_state"]
    t0 = time.perf_counter() - (history[-1]["wall_s"] if history else 0.0)
    stopped = False
    bar = tqdm(range(start, config.epochs), desc=desc or task.name, unit="epoch", disable=not config.progress,
               initial=start, total=config.epochs)
    for epoch in bar:
        if config.lr_final > 0:
            for group in opt.param_groups:
                group["lr"] = config.lr * (config.lr_final / config.lr) ** (epoch / max(config.epochs - 1, 1))
        model.train()
        batches = batch_indices(task.num_train, epoch, config.seed, config.steps_per_epoch, config.batch_size)
        tot = 0.0
        for idx in batches:
            opt.zero_grad(set_to_none=True)
            loss = task.loss(model, idx)
            if not torch.isfinite(loss):
                raise RuntimeError(f"{task.name}: non-finite training loss at epoch {epoch}")
            loss.backward()
            if config.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(params, config.clip_grad)
            opt.step()
            tot += float(loss.detach())
        if (epoch + 1) % config.eval_every and epoch + 1 != config.epochs:
            continue
        model.eval()
        metrics = task.evaluate(model)
        val = float(metrics["val"])
        row = {"epoch": epoch, "train_loss": tot / len(batches), **metrics, "wall_s": time.perf_counter() - t0}
        history.append(row)
        if val < best["val"]:
            best = {"val": val, "epoch": epoch, "metrics": metrics, "since": 0}
            best_state = copy.deepcopy(model.state_dict())
            if out is not None:
                task.save_model(out / "best.pt", model, {**metrics, "epoch": epoch})
        else:
            best["since"] += 1
        bar.set_postfix(loss=f"{row['train_loss']:.3g}", val=f"{val:.3g}", best=f"{best['val']:.3g}")
        if out is not None:
            write_checkpoint(out / "last.pt", STATE_KIND, {
                "settings": settings, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "epoch": epoch + 1, "history": history, "best": best, "best_state": best_state})
        if config.patience and best["since"] >= config.patience:
            stopped = True
            break
    bar.close()
    model.load_state_dict(best_state)
    return {"history": history, "best_val": best["val"], "best_epoch": best["epoch"], "best_metrics": best["metrics"],
            "epochs_run": (history[-1]["epoch"] + 1) if history else start, "stopped_early": stopped}


__all__ = ["TrainConfig", "Task", "fit", "batch_indices", "RESUMABLE_CHANGES"]
