"""The one training loop of the project: Adam, optional gradient clipping and learning-rate decay,
an evaluation interval, early stopping, best-weights keeping and a resume that refuses changed
settings.

A *task* (:class:`Task`) supplies what differs between models: the loss of one batch, the
evaluation, the settings that identify a run (data, split, loss weights, model configuration),
the model file and, where needed, hooks (which parameters an epoch trains, what a step costs,
what an evaluation logs, how the resume state is stored). :func:`fit` does the rest. The tasks
(:data:`TASKS`, :func:`task_class`):

``"gcn"``        :class:`cgsurrogate.surrogate.train.gcn_trainer.GCNTask` -- the GCN/GPCN family
                 on normalised per-node energies, multigrid schedules, FLOP log, ``log.csv``;
``"dynamics"``   :class:`cgsurrogate.surrogate.train.dynamics_trainer.DynamicsTask` -- the EGHN
                 family on future positions (M-complex, motion capture, proteins);
``"eghn-energy"`` :class:`cgsurrogate.surrogate.train.energy_head_training.EnergyHeadTask` -- the
                 EGHN energy head on per-node microtubule energies;
``"potential"``  :class:`cgsurrogate.surrogate.train.potential_task.PotentialTask` -- the invariant
                 potential on energies and forces;
``"dsgpm"``      :class:`cgsurrogate.surrogate.cgmap.training.DSGPMTask` -- learned CG mappings: a
                 metric-learning loss over molecule graphs, selected by clustering agreement.

Epochs: ``steps_per_epoch`` batches of ``batch_size`` sample indices drawn from permutations seeded
by ``(seed, epoch)`` (:func:`epoch_batches`), or with ``steps_per_epoch=0`` one pass over the
training set in a seeded order (:func:`epoch_pass`, last batch smaller). Either way the batches of
an epoch depend only on ``(seed, epoch)``, so a resumed run repeats a straight one. Evaluation runs
at epoch 0, every ``eval_every`` epochs after it, and at the last epoch.

Resume: with a state file (``out_dir/last.pt`` or ``state_file``) written at every evaluation,
holding weights, optimiser state, the loop's counters, the task's own state and the run's settings
(:class:`TrainConfig` fields that shape the result plus the task's ``settings()``), a later call
continues from it, and refuses, naming the changed settings, when any differs (``epochs``,
``patience``, ``device`` and ``progress`` may change). ``best.pt`` in ``out_dir`` is the task's
model file at the best evaluation so far.
"""
from __future__ import annotations

import abc
import copy
import importlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError

#: TrainConfig fields that may change between a run and its resume.
RESUMABLE_CHANGES = ("epochs", "patience", "device", "progress")
STATE_KIND = "train-state"
#: Registry of training tasks: name -> "module:Class".
TASKS = {
    "gcn": "cgsurrogate.surrogate.train.gcn_trainer:GCNTask",
    "dynamics": "cgsurrogate.surrogate.train.dynamics_trainer:DynamicsTask",
    "eghn-energy": "cgsurrogate.surrogate.train.energy_head_training:EnergyHeadTask",
    "potential": "cgsurrogate.surrogate.train.potential_task:PotentialTask",
    "dsgpm": "cgsurrogate.surrogate.cgmap.training:DSGPMTask",
}


@dataclass
class TrainConfig:
    """Settings of the loop (every task).

    Attributes
    ----------
    epochs : int              epochs in total (a resume may raise it)
    steps_per_epoch : int     optimiser steps per epoch; 0 = one pass over the training set
    batch_size : int          samples per step
    lr : float                Adam learning rate
    lr_final : float          0: constant lr; else decays exponentially to this by the last epoch
    weight_decay : float      Adam weight decay
    clip_grad : float         gradient-norm clip (0 = off)
    eval_every : int          evaluate (and write the state file) at epoch 0 and every this many epochs
    patience : int            stop after this many evaluations without improvement (0 = never)
    seed : int                seeds the batches (and, by the caller, the model)
    device : str              torch device
    progress : bool           tqdm bar
    """

    epochs: int = 100
    steps_per_epoch: int = 0
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
        for name in ("epochs", "batch_size", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise CGSurrogateError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if int(self.steps_per_epoch) < 0:
            raise CGSurrogateError(f"steps_per_epoch must be 0 (one pass) or positive, got {self.steps_per_epoch}")
        if not self.lr > 0 or not np.isfinite(self.lr):
            raise CGSurrogateError(f"lr must be a positive number, got {self.lr}")
        if self.lr_final < 0 or not np.isfinite(self.lr_final):
            raise CGSurrogateError(f"lr_final must be 0 (no decay) or positive, got {self.lr_final}")
        if self.patience < 0 or self.clip_grad < 0 or self.weight_decay < 0:
            raise CGSurrogateError("patience, clip_grad and weight_decay must not be negative")
        return self


def epoch_batches(num: int, epoch: int, seed: int, batches: int, batch_size: int) -> torch.Tensor:
    """Sample indices of one epoch, ``[batches, batch_size]`` int64, a function of ``(seed, epoch)``
    only: consecutive permutations of ``range(num)`` (every sample once before any repeats)."""
    if num < 1:
        raise CGSurrogateError("no training samples")
    rng = np.random.default_rng([int(seed), int(epoch)])
    need = batches * batch_size
    idx = np.concatenate([rng.permutation(num) for _ in range(-(-need // num))])[:need]
    return torch.as_tensor(idx.reshape(batches, batch_size), dtype=torch.long)


def epoch_pass(num: int, epoch: int, seed: int, batch_size: int) -> list[torch.Tensor]:
    """One pass over ``range(num)`` in an order seeded by ``(seed, epoch)``: int64 index tensors of
    ``batch_size`` (the last one may be smaller)."""
    if num < 1:
        raise CGSurrogateError("no training samples")
    idx = torch.as_tensor(np.random.default_rng([int(seed), int(epoch)]).permutation(num), dtype=torch.long)
    return list(idx.split(batch_size))


#: Former name of :func:`epoch_batches`.
batch_indices = epoch_batches


class Task(abc.ABC):
    """What one kind of training supplies to :func:`fit` (subclass it; register it in :data:`TASKS`).

    Attributes
    ----------
    name : str        registry name (stored with the run; a resume under another task is refused)
    num_train : int   number of training samples (batches draw indices below it)
    """

    name = "task"
    num_train = 0

    @abc.abstractmethod
    def loss(self, model, idx: torch.Tensor):
        """Loss of the training samples ``idx`` [batch]: a differentiable scalar, or ``(scalar,
        logged)`` where the float ``logged`` is what the history reports as ``train_loss``."""

    @abc.abstractmethod
    def evaluate(self, model) -> dict:
        """Validation metrics (plain floats); key ``"val"`` (lower is better) drives best/early stopping."""

    @abc.abstractmethod
    def save_model(self, path: Path, model, metrics: dict) -> None:
        """Write the task's model file (``best.pt``)."""

    def settings(self) -> dict:
        """Plain dict identifying the run (data, split, loss weights, model config)."""
        return {}

    def batches(self, epoch: int, config: TrainConfig) -> list[torch.Tensor]:
        """Index batches of ``epoch`` (default: :func:`epoch_batches`, or :func:`epoch_pass` when
        ``config.steps_per_epoch == 0``)."""
        if config.steps_per_epoch == 0:
            return epoch_pass(self.num_train, epoch, config.seed, config.batch_size)
        return list(epoch_batches(self.num_train, epoch, config.seed, config.steps_per_epoch, config.batch_size))

    def begin_epoch(self, model, epoch: int):
        """Called before an epoch's steps; return the parameters the epoch trains (``None``: all)."""
        return None

    def after_step(self, idx: torch.Tensor) -> None:
        """Called after each optimiser step (e.g. to count FLOPs)."""

    def on_evaluation(self, model, history: list[dict], improved: bool, out_dir: Path | None) -> None:
        """Called after each evaluation, before files are written; ``history[-1]`` is this
        evaluation's row (the task may add fields to it)."""

    def finish(self, model) -> None:
        """Called at the end, after the best weights are loaded back into ``model``."""

    def state_dict(self) -> dict:
        """The task's own resumable state (plain values)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""

    def write_state(self, path: Path, state: dict, model, best_state: dict) -> None:
        """Write the loop's resume ``state`` (default: a ``"train-state"`` checkpoint)."""
        from cgsurrogate.core.checkpoint_io import write_checkpoint

        write_checkpoint(path, STATE_KIND, state)

    def read_state(self, path: Path) -> dict:
        """Read what :meth:`write_state` wrote; return the loop's state dict."""
        from cgsurrogate.core.checkpoint_io import read_checkpoint

        return read_checkpoint(path, STATE_KIND)[2]


def task_class(name: str) -> type[Task]:
    """The :class:`Task` subclass registered as ``name`` in :data:`TASKS`."""
    if name not in TASKS:
        raise CGSurrogateError(f"unknown training task {name!r}; choose from {', '.join(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


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


def _resume(path: Path, task: Task, settings: dict, model, opt) -> dict:
    st = task.read_state(path)
    diff = _differences(st["settings"], settings)
    if diff:
        raise CGSurrogateError(f"{path}: was trained with other settings ({'; '.join(diff[:4])}); "
                               f"use a new output folder or the same settings")
    try:
        model.load_state_dict(st["model"])
    except RuntimeError as exc:
        raise CGSurrogateError(f"{path}: weights do not fit this model ({str(exc).splitlines()[0]})") from None
    if opt is not None and st.get("optimizer"):
        opt.load_state_dict(st["optimizer"])
    task.load_state_dict(st.get("task_state") or {})
    return st


def fit(model, task: Task, config: TrainConfig, out_dir=None, desc: str | None = None,
        state_file=None) -> dict:
    """Train ``model`` on ``task``; resumable (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
    task : Task
    config : TrainConfig
    out_dir : path, optional
        Folder for ``best.pt`` (the task's model file) and, unless ``state_file`` is given, ``last.pt``.
    desc : str, optional
        Progress-bar label.
    state_file : path, optional
        Where the resume state lives (default ``out_dir/last.pt``; none without either).

    Returns
    -------
    dict with ``history`` (per-evaluation dicts: epoch, train_loss, the metrics, wall_s, and what
    the task adds), ``best_val``, ``best_epoch``, ``best_metrics``, ``epochs_run``,
    ``stopped_early``; the model is left holding the best weights.
    """
    from tqdm.auto import tqdm

    config.check()
    device = torch.device(config.device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay) if params else None
    settings = _run_settings(config, task)
    start, history, best = 0, [], {"val": float("inf"), "epoch": -1, "metrics": None, "since": 0}
    best_state = copy.deepcopy(model.state_dict())
    out = training_out_dir(out_dir)
    state_path = Path(state_file) if state_file is not None else (out / "last.pt" if out is not None else None)
    if state_path is not None and state_path.is_file():
        st = _resume(state_path, task, settings, model, opt)
        start, history, best, best_state = int(st["epoch"]), list(st["history"]), dict(st["best"]), st["best_state"]
    t0 = time.perf_counter() - (history[-1]["wall_s"] if history else 0.0)
    stopped = bool(config.patience and best["since"] >= config.patience)
    bar = tqdm(range(start, config.epochs), desc=desc or task.name, unit="epoch",
               disable=not config.progress or stopped, initial=start, total=config.epochs)
    for epoch in ([] if stopped else bar):
        if config.lr_final > 0 and opt is not None:
            for group in opt.param_groups:
                group["lr"] = config.lr * (config.lr_final / config.lr) ** (epoch / max(config.epochs - 1, 1))
        model.train()
        trained = task.begin_epoch(model, epoch)
        trained = params if trained is None else list(trained)
        tot, count = 0.0, 0
        for idx in task.batches(epoch, config):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
            out_loss = task.loss(model, idx)
            loss, logged = out_loss if isinstance(out_loss, tuple) else (out_loss, None)
            if not torch.isfinite(loss):
                raise RuntimeError(f"{task.name}: non-finite training loss at epoch {epoch}")
            if opt is not None:
                loss.backward(inputs=trained)
                if config.clip_grad > 0:
                    torch.nn.utils.clip_grad_norm_(trained, config.clip_grad)
                opt.step()
            task.after_step(idx)
            tot += float(loss.detach() if logged is None else logged) * len(idx)
            count += len(idx)
        if epoch % config.eval_every and epoch + 1 != config.epochs:
            continue
        model.eval()
        metrics = task.evaluate(model)
        val = float(metrics["val"])
        row = {"epoch": epoch, "train_loss": tot / max(count, 1), **metrics, "wall_s": time.perf_counter() - t0}
        improved = val < best["val"]
        if improved:
            best = {"val": val, "epoch": epoch, "metrics": metrics, "since": 0}
            best_state = copy.deepcopy(model.state_dict())
        else:
            best["since"] += 1
        history.append(row)
        task.on_evaluation(model, history, improved, out)
        if improved and out is not None:
            task.save_model(out / "best.pt", model, {**metrics, "epoch": epoch})
        bar.set_postfix(loss=f"{row['train_loss']:.3g}", val=f"{val:.3g}", best=f"{best['val']:.3g}")
        if state_path is not None:
            task.write_state(state_path, {
                "settings": settings, "model": model.state_dict(),
                "optimizer": opt.state_dict() if opt is not None else {}, "epoch": epoch + 1,
                "history": history, "best": best, "best_state": best_state, "task_state": task.state_dict()},
                model, best_state)
        if config.patience and best["since"] >= config.patience:
            stopped = True
            break
    bar.close()
    model.load_state_dict(best_state)
    task.finish(model)
    return {"history": history, "best_val": best["val"], "best_epoch": best["epoch"], "best_metrics": best["metrics"],
            "epochs_run": (history[-1]["epoch"] + 1) if history else start, "stopped_early": stopped}


__all__ = ["TrainConfig", "Task", "fit", "epoch_batches", "epoch_pass", "batch_indices", "TASKS", "task_class",
           "training_out_dir", "RESUMABLE_CHANGES"]
