"""Training of the GCN-family surrogates (paper sec. 4.1 and 4.3).

Protocol (sec. 4.1): Adam with default hyper-parameters (lr 1e-3, betas 0.9/0.999), batch
size 8, epochs of 20 batches (the paper runs 1000 epochs), loss = mean squared error of the
normalised per-node energy. Splits and batches depend only on the seed, so every model sees
the same training/validation runs and the same batches: epoch ``e`` draws its 20 x 8 sample
indices from a permutation seeded by ``(seed, e)``. After each epoch the validation NMSE
(mean squared error on normalised targets over the validation set) and its minimum so far
are logged to ``log.csv`` together with the FLOPs charged so far (see :mod:`cgsurrogate.surrogate.gcn.flops`).
``last.pt`` (every epoch) holds everything needed to resume; ``best.pt`` holds the weights
with the lowest validation NMSE. Both are :mod:`cgsurrogate.surrogate.checkpoint` files.

Schedules (sec. 4.3): see :mod:`cgsurrogate.surrogate.train.schedules`; evaluation of a saved
checkpoint: :mod:`cgsurrogate.surrogate.train.evaluation`.
"""
from __future__ import annotations

import csv
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError, InputFileError
from cgsurrogate.surrogate.gcn.flops import forward_flops_by_level, training_step_flops
from cgsurrogate.surrogate.train.loop import training_out_dir
from cgsurrogate.surrogate.train.schedules import SCHEDULES, Schedule, multigrid_cycle

LOG_COLUMNS = ("epoch", "forward_levels", "trained_levels", "train_loss", "val_nmse", "best_val_nmse",
               "flops", "wall_s")


@dataclass
class TrainConfig:
    """Training hyper-parameters (defaults: the paper's protocol except the epoch count).

    Attributes
    ----------
    epochs : int            total epochs (paper: 1000)
    batches_per_epoch : int (paper: 20)
    batch_size : int        (paper: 8)
    lr : float              Adam learning rate (Adam default 1e-3)
    seed : int              seeds model init (by the caller), splits and batches
    schedule : str          one of :data:`SCHEDULES`
    patience : int          coarse-to-fine phase patience in epochs (paper: 10)
    val_batch_size : int    samples per validation forward pass
    """

    epochs: int = 100
    batches_per_epoch: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    schedule: str = "all"
    patience: int = 10
    val_batch_size: int = 32


def epoch_batches(num_samples: int, epoch: int, seed: int, batches: int, batch_size: int) -> torch.Tensor:
    """Sample indices of one epoch, ``[batches, batch_size]`` int64, a function of
    ``(seed, epoch)`` only (identical across models and across resumes)."""
    if num_samples < 1:
        raise CGSurrogateError("no training samples")
    rng = np.random.default_rng([int(seed), int(epoch)])
    need = batches * batch_size
    reps = -(-need // num_samples)
    idx = np.concatenate([rng.permutation(num_samples) for _ in range(reps)])[:need]
    return torch.as_tensor(idx.reshape(batches, batch_size), dtype=torch.long)


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


def _level_params(model, levels) -> list:
    if hasattr(model, "level_parameters"):
        out = []
        for lv in levels:
            out += model.level_parameters(lv)
        return out
    return [p for p in model.parameters() if p.requires_grad]


def _set_active(model, levels) -> None:
    if hasattr(model, "active_levels"):
        model.active_levels = tuple(sorted(levels))


def _read_log(path: Path, upto_epoch: int) -> list[dict]:
    rows = []
    if path.is_file():
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if int(row["epoch"]) < upto_epoch:
                    rows.append(row)
    return rows


def _write_log(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in LOG_COLUMNS})
    os.replace(tmp, path)


#: Dataset-description keys that must match for a resume (the data and its split).
_DATASET_KEYS = ("path", "hash", "val_fraction", "split_seed", "train_ids", "val_ids", "max_val_samples")


def _changed_settings(old_cfg: dict, new_cfg: dict, old_data: dict, new_data: dict) -> list[str]:
    """Settings that differ between a saved run and a resume (``epochs`` may grow)."""
    out = [f"{k} {old_cfg.get(k)!r} -> {new_cfg.get(k)!r}" for k in sorted(new_cfg)
           if k != "epochs" and old_cfg.get(k) != new_cfg.get(k)]
    out += [f"dataset {k} differs" for k in _DATASET_KEYS if old_data.get(k) != new_data.get(k)]
    return out


def train(model, X_train: torch.Tensor, Y_train: torch.Tensor, X_val: torch.Tensor, Y_val: torch.Tensor,
          config: TrainConfig, out_dir=None, *, normalizer=None, hierarchy=None, dataset_info=None,
          progress: bool = True, desc: str | None = None, device=None) -> dict:
    """Train ``model`` on normalised tensors; resumable when ``out_dir`` is given.

    Parameters
    ----------
    model : module from :func:`cgsurrogate.surrogate.gcn.registry.build_model`, [B, N, F] -> [B, N, 1]
    X_train, Y_train : [M, N, F], [M, N, 1] float32, normalised
    X_val, Y_val : [V, N, F], [V, N, 1] float32, normalised
    config : TrainConfig
    out_dir : path, optional
        Writes ``log.csv``, ``last.pt`` (every epoch, resumable) and ``best.pt``; when
        ``last.pt`` exists training resumes from it (same model name/config required).
    normalizer, hierarchy, dataset_info : stored in the checkpoints (see
        :func:`cgsurrogate.surrogate.checkpoint.save_checkpoint`)
    progress : bool
        Show a tqdm bar over epochs.
    device : torch device, optional
        Where the model runs (data stay on the CPU; each batch is moved there).

    Returns
    -------
    dict with ``history`` (list of per-epoch dicts as in ``log.csv``), ``best_val_nmse``,
    ``best_epoch``, ``flops`` (total charged), ``epochs``.
    """
    from tqdm.auto import tqdm

    from cgsurrogate.surrogate.checkpoint import load_checkpoint, save_checkpoint

    num_levels = int(getattr(model, "num_levels", 1)) if hasattr(model, "level_parameters") else 1
    schedule = Schedule(config.schedule, num_levels, config.patience)
    per_level = forward_flops_by_level(model)
    if len(per_level) != num_levels:  # flat ensembles: members are not schedule levels
        per_level = [float(sum(per_level))]
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start_epoch, flops, best, best_epoch, history = 0, 0.0, float("inf"), -1, []
    best_state = None
    out = training_out_dir(out_dir)
    if out is not None:
        last = out / "last.pt"
        if last.is_file():
            ck = load_checkpoint(last)
            if ck["model_config"] != getattr(model, "config", None):
                raise CGSurrogateError(f"{last}: was written for model {ck['model_config'].get('name')!r} with another "
                                 f"configuration; use a new --out folder")
            st = (ck.get("extra") or {}).get("training_state")
            if st is None:
                raise CGSurrogateError(f"{last}: holds no training state to resume from")
            changed = _changed_settings(st["config"], asdict(config), ck.get("dataset") or {}, dataset_info or {})
            if changed:
                raise CGSurrogateError(f"{last}: was trained with other settings ({'; '.join(changed)}); "
                                       f"use a new --out folder or the same settings")
            model.load_state_dict(ck["state_dict"])
            model.to(device)
            if ck.get("optimizer") is not None:
                optimizer.load_state_dict(ck["optimizer"])
            schedule.load_state_dict(st["schedule"])
            start_epoch, flops = int(st["epoch"]), float(st["flops"])
            best, best_epoch = float(st["best_val_nmse"]), int(st["best_epoch"])
            history = _read_log(out / "log.csv", start_epoch)
    model.train()
    metrics_base = {"model_flops_per_sample": per_level}
    t0 = time.perf_counter() - (float(history[-1]["wall_s"]) if history else 0.0)
    bar = tqdm(range(start_epoch, config.epochs), desc=desc or getattr(model, "name", "train"), unit="epoch",
               disable=not progress, initial=start_epoch, total=config.epochs)
    for epoch in bar:
        fwd_levels, trained_levels = schedule.levels(epoch)
        _set_active(model, fwd_levels)
        params = _level_params(model, trained_levels)
        batches = epoch_batches(X_train.shape[0], epoch, config.seed, config.batches_per_epoch, config.batch_size)
        loss_sum = 0.0
        for idx in batches:
            optimizer.zero_grad(set_to_none=True)
            pred = model(X_train[idx].to(device))
            loss = torch.mean((pred - Y_train[idx].to(device)) ** 2)
            loss.backward(inputs=params)
            optimizer.step()
            loss_sum += float(loss.detach())
            flops += training_step_flops(per_level, len(idx), fwd_levels if num_levels > 1 else [0],
                                         trained_levels if num_levels > 1 else [0])
        val = validation_nmse(model, X_val, Y_val, config.val_batch_size)
        schedule.update(val)
        improved = val < best
        if improved:
            best, best_epoch = val, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        row = {"epoch": epoch, "forward_levels": " ".join(map(str, fwd_levels)),
               "trained_levels": " ".join(map(str, trained_levels)), "train_loss": loss_sum / len(batches),
               "val_nmse": val, "best_val_nmse": best, "flops": flops, "wall_s": time.perf_counter() - t0}
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3g}", val=f"{val:.3g}", best=f"{best:.3g}")
        if out is not None:
            _set_active(model, range(num_levels))
            metrics = {**metrics_base, "best_val_nmse": best, "best_epoch": best_epoch, "epochs": epoch + 1,
                       "flops": flops, "last_val_nmse": val}
            state = {"epoch": epoch + 1, "flops": flops, "best_val_nmse": best, "best_epoch": best_epoch,
                     "schedule": schedule.state_dict(), "config": asdict(config)}
            common = dict(dataset_info=dataset_info or {}, metrics=metrics)
            if improved:  # the levels that produced this validation error (coarse-to-fine may not use all yet)
                save_checkpoint(out / "best.pt", model, normalizer, hierarchy, **common,
                                extra={"active_levels": list(fwd_levels)})
            _write_log(out / "log.csv", history)
            save_checkpoint(out / "last.pt", model, normalizer, hierarchy, **common,
                            extra={"training_state": state}, optimizer=optimizer)
    bar.close()
    _set_active(model, range(num_levels))
    return {"history": history, "best_val_nmse": best, "best_epoch": best_epoch, "flops": flops,
            "epochs": config.epochs, "best_state": best_state}


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
    [M, 624, 11] / [M, 624, 1]), ``normalizer``, ``dataset_info`` (path, hash, parameter
    ranges, run ids, units) and ``train_ids``, ``val_ids``.
    """
    from cgsurrogate.data.microtubule import load_microtubule_splits

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
            "normalizer": normalizer, "dataset_info": info, "train_ids": train_ds.run_ids, "val_ids": val_ds.run_ids}


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
    from cgsurrogate.surrogate.gcn.registry import build_model

    if not Path(data_dir).is_dir():
        raise InputFileError(f"{data_dir}: dataset folder not found")
    data = load_normalised_dataset(data_dir, val_fraction, seed, max_val_samples)
    if hierarchy is None:
        from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy

        hierarchy = microtubule_hierarchy(levels=3)
    torch.manual_seed(seed)
    # input_skip: the strengths are constant over the nodes and L = A - D maps them to zero;
    # without the skip a GCN never sees them (issue 13). model_config={"input_skip": False} is the paper.
    model = build_model(model_name, hierarchy=hierarchy, in_features=data["X_train"].shape[-1],
                        **{"input_skip": True, **(model_config or {})})
    cfg = TrainConfig(epochs=epochs, batches_per_epoch=batches_per_epoch, batch_size=batch_size, lr=lr,
                      seed=seed, schedule=schedule)
    res = train(model, data["X_train"], data["Y_train"], data["X_val"], data["Y_val"], cfg, out_dir,
                normalizer=data["normalizer"], hierarchy=hierarchy, dataset_info=data["dataset_info"],
                progress=progress, desc=f"{model_name} {schedule}")
    res["out_dir"] = str(out_dir)
    return res


__all__ = ["SCHEDULES", "multigrid_cycle", "Schedule", "TrainConfig", "epoch_batches", "validation_nmse", "train",
           "load_normalised_dataset", "train_from_dataset"]


def evaluate_checkpoint(*args, **kwargs) -> dict:
    """See :func:`cgsurrogate.surrogate.train.evaluation.evaluate_checkpoint` (kept here for old imports)."""
    from cgsurrogate.surrogate.train.evaluation import evaluate_checkpoint as _evaluate

    return _evaluate(*args, **kwargs)


__all__.append("evaluate_checkpoint")
