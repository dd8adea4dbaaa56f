"""Training of the GCN-family surrogates (paper sec. 4.1 and 4.3) as a task of the project's one
training loop (:func:`cgsurrogate.surrogate.train.loop.fit`).

Protocol (sec. 4.1): Adam with default hyper-parameters (lr 1e-3, betas 0.9/0.999), batch
size 8, epochs of 20 batches (the paper runs 1000 epochs), loss = mean squared error of the
normalised per-node energy. Splits and batches depend only on the seed, so every model sees
the same training/validation runs and the same batches: epoch ``e`` draws its 20 x 8 sample
indices from a permutation seeded by ``(seed, e)`` (``loop.epoch_batches``). After each epoch the
validation NMSE (mean squared error on normalised targets over the validation set) and its
minimum so far are logged to ``log.csv`` together with the FLOPs charged so far (see
:mod:`cgsurrogate.surrogate.gcn.flops`). ``last.pt`` (every epoch) is a surrogate checkpoint of the
current weights that also holds everything needed to resume; ``best.pt`` holds the weights with the
lowest validation NMSE. Both are :mod:`cgsurrogate.surrogate.checkpoint` files.

Schedules (sec. 4.3): see :mod:`cgsurrogate.surrogate.train.schedules`; evaluation of a saved
checkpoint: :mod:`cgsurrogate.surrogate.train.evaluation`.
"""
from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path

import torch

from cgsurrogate.core.errors import CGSurrogateError, InputFileError
from cgsurrogate.surrogate.gcn.flops import forward_flops_by_level, training_step_flops
from cgsurrogate.surrogate.train.loop import Task, TrainConfig, epoch_batches, fit
from cgsurrogate.surrogate.train.schedules import SCHEDULES, Schedule, multigrid_cycle

LOG_COLUMNS = ("epoch", "forward_levels", "trained_levels", "train_loss", "val_nmse", "best_val_nmse",
               "flops", "wall_s")


@torch.no_grad()
def validation_nmse(model, X: torch.Tensor, Y: torch.Tensor, batch_size: int = 32) -> float:
    """Mean squared error between ``model(X)`` and ``Y``, both normalised ([M, N, F], [M, N, 1])."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for s in range(0, X.shape[0], batch_size):
        pred = model(X[s:s + batch_size].to(device))
        total += float(((pred - Y[s:s + batch_size].to(device)) ** 2).sum())
        count += pred.numel()
    model.train(was)
    return total / max(count, 1)


def _set_active(model, levels) -> None:
    if hasattr(model, "active_levels"):
        model.active_levels = tuple(sorted(levels))


def _write_log(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in LOG_COLUMNS})
    os.replace(tmp, path)


#: Dataset-description keys that identify a run's data and split (a resume must match them).
_DATASET_KEYS = ("path", "hash", "val_fraction", "split_seed", "train_ids", "val_ids", "max_val_samples")


class GCNTask(Task):
    """The GCN family on normalised per-node energies: MSE loss, validation NMSE, a multigrid
    schedule (which levels run forward and which train, epoch by epoch), FLOP accounting,
    ``log.csv`` and surrogate checkpoints (``best.pt``; ``last.pt`` also holds the resume state).

    Parameters
    ----------
    model : module from :func:`cgsurrogate.surrogate.gcn.registry.build_model`, [B, N, F] -> [B, N, 1]
    X_train, Y_train : Tensor [M, N, F], [M, N, 1] float32, normalised
    X_val, Y_val : Tensor [V, N, F], [V, N, 1] float32, normalised
    schedule : str, one of :data:`SCHEDULES`
    schedule_patience : int
        Coarse-to-fine phase patience in epochs (paper: 10).
    val_batch_size : int
        Samples per validation forward pass.
    normalizer, hierarchy, dataset_info, system_spec :
        Stored in the checkpoints (see :func:`cgsurrogate.surrogate.checkpoint.save_checkpoint`).
    """

    name = "gcn"

    def __init__(self, model, X_train, Y_train, X_val, Y_val, *, schedule: str = "all", schedule_patience: int = 10,
                 val_batch_size: int = 32, normalizer=None, hierarchy=None, dataset_info=None, system_spec=None):
        self.X_train, self.Y_train, self.X_val, self.Y_val = X_train, Y_train, X_val, Y_val
        self.num_train = int(X_train.shape[0])
        self.multilevel = hasattr(model, "level_parameters")
        self.num_levels = int(getattr(model, "num_levels", 1)) if self.multilevel else 1
        self.schedule = Schedule(schedule, self.num_levels, schedule_patience)
        self.per_level = forward_flops_by_level(model)
        if len(self.per_level) != self.num_levels:  # flat ensembles: members are not schedule levels
            self.per_level = [float(sum(self.per_level))]
        self.val_batch_size = int(val_batch_size)
        self.normalizer, self.hierarchy, self.system_spec = normalizer, hierarchy, system_spec
        self.dataset_info = dict(dataset_info or {})
        self.model_config = getattr(model, "config", None)
        self.flops, self.best = 0.0, float("inf")
        self._levels = ((0,), (0,))

    def settings(self) -> dict:
        return {"model": self.model_config, "schedule": self.schedule.name,
                "schedule_patience": self.schedule.patience,
                "dataset": {k: self.dataset_info.get(k) for k in _DATASET_KEYS}}

    def begin_epoch(self, model, epoch):
        self._levels = self.schedule.levels(epoch)
        _set_active(model, self._levels[0])
        if not self.multilevel:
            return None
        out = []
        for lv in self._levels[1]:
            out += model.level_parameters(lv)
        return out

    def loss(self, model, idx):
        device = next(model.parameters()).device
        pred = model(self.X_train[idx].to(device))
        return torch.mean((pred - self.Y_train[idx].to(device)) ** 2)

    def after_step(self, idx):
        fwd, trained = self._levels if self.num_levels > 1 else ([0], [0])
        self.flops += training_step_flops(self.per_level, len(idx), fwd, trained)

    def evaluate(self, model) -> dict:
        return {"val": validation_nmse(model, self.X_val, self.Y_val, self.val_batch_size)}

    def on_evaluation(self, model, history, improved, out_dir):
        row = history[-1]
        self.schedule.update(row["val"])
        self.best = min(self.best, row["val"])
        row.update(forward_levels=" ".join(map(str, self._levels[0])),
                   trained_levels=" ".join(map(str, self._levels[1])), val_nmse=row["val"],
                   best_val_nmse=self.best, flops=self.flops)
        if out_dir is not None:
            _write_log(Path(out_dir) / "log.csv", history)

    def _save(self, path, model, metrics, extra):
        from cgsurrogate.surrogate.checkpoint import save_checkpoint

        fwd = self._levels[0]
        _set_active(model, range(self.num_levels))
        m = {"model_flops_per_sample": self.per_level, "best_val_nmse": self.best, "flops": self.flops, **metrics}
        save_checkpoint(path, model, self.normalizer, self.hierarchy, dataset_info=self.dataset_info, metrics=m,
                        extra=extra, system_spec=self.system_spec)
        _set_active(model, fwd)

    def save_model(self, path, model, metrics):
        # the levels that produced this validation error (coarse-to-fine may not use all yet)
        self._save(path, model, {"best_epoch": metrics["epoch"], "epochs": metrics["epoch"] + 1,
                                 "last_val_nmse": metrics["val"]}, {"active_levels": list(self._levels[0])})

    def write_state(self, path, state, model, best_state):
        last = state["history"][-1]
        self._save(path, model, {"best_epoch": state["best"]["epoch"], "epochs": state["epoch"],
                                 "last_val_nmse": last["val"]}, {"training_state": state})

    def read_state(self, path) -> dict:
        from cgsurrogate.surrogate.checkpoint import load_checkpoint

        st = (load_checkpoint(path).get("extra") or {}).get("training_state")
        if not isinstance(st, dict) or "settings" not in st:
            raise CGSurrogateError(f"{path}: holds no training state this version can resume from; "
                                   f"use a new --out folder")
        return st

    def state_dict(self) -> dict:
        return {"schedule": self.schedule.state_dict(), "flops": self.flops, "best": self.best}

    def load_state_dict(self, state):
        if state:
            self.schedule.load_state_dict(state["schedule"])
            self.flops, self.best = float(state["flops"]), float(state["best"])

    def finish(self, model):
        _set_active(model, range(self.num_levels))


def train(model, X_train: torch.Tensor, Y_train: torch.Tensor, X_val: torch.Tensor, Y_val: torch.Tensor,
          config: TrainConfig, out_dir=None, *, schedule: str = "all", schedule_patience: int = 10,
          val_batch_size: int = 32, normalizer=None, hierarchy=None, dataset_info=None, system_spec=None,
          progress: bool = True, desc: str | None = None, device=None) -> dict:
    """Train ``model`` on normalised tensors with :class:`GCNTask` and the one loop; resumable when
    ``out_dir`` is given.

    Parameters
    ----------
    model : module from :func:`cgsurrogate.surrogate.gcn.registry.build_model`, [B, N, F] -> [B, N, 1]
    X_train, Y_train : [M, N, F], [M, N, 1] float32, normalised
    X_val, Y_val : [V, N, F], [V, N, 1] float32, normalised
    config : cgsurrogate.surrogate.train.loop.TrainConfig
        ``steps_per_epoch`` batches (paper: 20) of ``batch_size`` (paper: 8); evaluation every epoch
        is the paper's protocol (``eval_every=1``).
    out_dir : path, optional
        Writes ``log.csv``, ``last.pt`` (every evaluation, resumable) and ``best.pt``; when
        ``last.pt`` exists training resumes from it (same settings required).
    schedule, schedule_patience, val_batch_size : see :class:`GCNTask`
    normalizer, hierarchy, dataset_info, system_spec : stored in the checkpoints
    progress : bool
        Show a tqdm bar over epochs (overrides ``config.progress``).
    device : torch device, optional
        Where the model runs (data stay on the CPU; each batch is moved there); default: the
        model's device.

    Returns
    -------
    dict with ``history`` (per-epoch dicts as in ``log.csv``), ``best_val_nmse``, ``best_epoch``,
    ``flops`` (total charged), ``epochs``, ``best_state``; the model holds the best weights, all
    levels active.
    """
    task = GCNTask(model, X_train, Y_train, X_val, Y_val, schedule=schedule, schedule_patience=schedule_patience,
                   val_batch_size=val_batch_size, normalizer=normalizer, hierarchy=hierarchy,
                   dataset_info=dataset_info, system_spec=system_spec)
    device = str(device) if device is not None else str(next(model.parameters()).device)
    cfg = replace(config, device=device, progress=bool(progress))
    res = fit(model, task, cfg, out_dir, desc=desc or getattr(model, "name", "train"))
    return {**res, "best_val_nmse": res["best_val"], "flops": task.flops, "epochs": cfg.epochs,
            "best_state": {k: v.detach().clone() for k, v in model.state_dict().items()}}


def load_normalised_dataset(root, val_fraction: float = 0.2, seed: int = 0, max_val_samples: int | None = None):
    """Load a microtubule dataset split by run, normalised with training statistics.

    Parameters
    ----------
    root : path of the dataset folder
    val_fraction, seed : the run split (``cgsurrogate.data.microtubule.split_runs``)
    max_val_samples : int, optional
        Keep an evenly spaced subset of this many validation samples (cheaper evaluation).

    Returns
    -------
    dict with ``X_train``, ``Y_train``, ``X_val``, ``Y_val`` (normalised float32 tensors
    [M, N, 6 + P] / [M, N, 1]), ``normalizer``, ``dataset_info`` (path, hash, parameter
    ranges, run ids, units), ``train_ids``, ``val_ids`` and ``system_spec`` (the dataset's tube).
    """
    from cgsurrogate.data.microtubule import load_microtubule_splits
    from cgsurrogate.simulate.microtubule import tube_system_spec
    from cgsurrogate.surrogate.checkpoint import dataset_fingerprint, parameter_ranges

    train_ds, val_ds, normalizer = load_microtubule_splits(root, val_fraction, seed)
    if val_ds is None:
        raise CGSurrogateError(f"{root}: needs at least two runs to hold one out for validation")
    Xt, Yt = train_ds.tensors()
    Xv, Yv = val_ds.tensors()
    if max_val_samples is not None and Xv.shape[0] > max_val_samples:
        keep = torch.linspace(0, Xv.shape[0] - 1, int(max_val_samples)).round().long()
        Xv, Yv = Xv[keep], Yv[keep]
    info = dataset_fingerprint(root, train_ds.run_ids + val_ds.run_ids)
    info.update({"parameter_ranges": parameter_ranges(Xt), "train_ids": list(train_ds.run_ids),
                 "val_ids": list(val_ds.run_ids), "val_fraction": float(val_fraction), "split_seed": int(seed),
                 "max_val_samples": max_val_samples,
                 "units": dict(train_ds.metadata.get("units", {}))})
    return {"X_train": normalizer.normalize_x(Xt).float(), "Y_train": normalizer.normalize_y(Yt).float(),
            "X_val": normalizer.normalize_x(Xv).float(), "Y_val": normalizer.normalize_y(Yv).float(),
            "normalizer": normalizer, "dataset_info": info, "train_ids": train_ds.run_ids, "val_ids": val_ds.run_ids,
            "system_spec": tube_system_spec(train_ds.topology)}


def build_training_model(model_name: str, hierarchy, in_features: int = 11, model_config: dict | None = None):
    """The model every trainer of the GCN family builds (``cli.py train``, ``bench/paper_table.py``):
    :func:`~cgsurrogate.surrogate.gcn.registry.build_model` with ``input_skip=True`` unless
    ``model_config`` says otherwise. The strengths are constant over the nodes and ``L = A - D``
    maps them to zero, so without the skip a GCN never sees them (issue 13);
    ``model_config={"input_skip": False}`` is the paper's design. Maps [B, N, F] -> [B, N, 1].
    """
    from cgsurrogate.surrogate.gcn.registry import build_model

    return build_model(model_name, hierarchy=hierarchy, in_features=int(in_features),
                       **{"input_skip": True, **(model_config or {})})


def train_from_dataset(data_dir, model_name: str, out_dir, *, schedule: str = "all", epochs: int = 100,
                       seed: int = 0, val_fraction: float = 0.2, lr: float = 1e-3, batch_size: int = 8,
                       batches_per_epoch: int = 20, max_val_samples: int | None = None, hierarchy=None,
                       progress: bool = True, model_config: dict | None = None) -> dict:
    """Train one model on a dataset folder and write ``log.csv``, ``last.pt``, ``best.pt``
    into ``out_dir`` (resuming when ``last.pt`` is there). The model is initialised from
    ``torch.manual_seed(seed)``; split and batches depend on ``seed`` only.

    Returns
    -------
    dict as :func:`train` plus ``out_dir``.
    """
    if not Path(data_dir).is_dir():
        raise InputFileError(f"{data_dir}: dataset folder not found")
    data = load_normalised_dataset(data_dir, val_fraction, seed, max_val_samples)
    if hierarchy is None:
        from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy

        hierarchy = microtubule_hierarchy(levels=3)
    torch.manual_seed(seed)
    model = build_training_model(model_name, hierarchy, data["X_train"].shape[-1], model_config)
    cfg = TrainConfig(epochs=epochs, steps_per_epoch=batches_per_epoch, batch_size=batch_size, lr=lr, seed=seed)
    res = train(model, data["X_train"], data["Y_train"], data["X_val"], data["Y_val"], cfg, out_dir,
                schedule=schedule, normalizer=data["normalizer"], hierarchy=hierarchy,
                dataset_info=data["dataset_info"], system_spec=data["system_spec"], progress=progress,
                desc=f"{model_name} {schedule}")
    res["out_dir"] = str(out_dir)
    return res


__all__ = ["SCHEDULES", "multigrid_cycle", "Schedule", "TrainConfig", "GCNTask", "epoch_batches", "validation_nmse",
           "train", "build_training_model", "load_normalised_dataset", "train_from_dataset"]


def evaluate_checkpoint(*args, **kwargs) -> dict:
    """See :func:`cgsurrogate.surrogate.train.evaluation.evaluate_checkpoint` (kept here for old imports)."""
    from cgsurrogate.surrogate.train.evaluation import evaluate_checkpoint as _evaluate

    return _evaluate(*args, **kwargs)


__all__.append("evaluate_checkpoint")
