"""Training of the EGHN energy head on a microtubule dataset, as a task of the one training loop
(:func:`cgsurrogate.surrogate.train.loop.fit`).

:class:`EnergyHeadTask` is the dynamics task (:class:`cgsurrogate.surrogate.train.dynamics_trainer.DynamicsTask`)
with the per-node energy as target; its model file is a surrogate checkpoint (kind
``"eghn-energy"``, :func:`cgsurrogate.surrogate.equivariant.energy_head.save_energy_checkpoint`)
that ``load_surrogate`` returns as an energy model, and its resume state is the loop's ``last.pt``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.train.dynamics_trainer import DynamicsTask
from cgsurrogate.surrogate.train.loop import Task, TrainConfig, fit


class EnergyHeadTask(DynamicsTask):
    """The EGHN energy head on normalised per-node energies (metric: validation NMSE).

    Parameters
    ----------
    train, valid : lists of graph dicts from
        :meth:`cgsurrogate.surrogate.equivariant.energy_head.MicrotubuleGraphs.graphs`
    builder : MicrotubuleGraphs
        Graph construction and normaliser (stored with the model).
    system_spec : SystemSpec
        The tube the data describe (stored with the model).
    lambda_conn, dataset_info, eval_batch_size : see :class:`DynamicsTask`
    """

    name = "eghn-energy"

    def __init__(self, train, valid, builder, system_spec, *, lambda_conn: float = 0.1,
                 dataset_info: dict | None = None, eval_batch_size: int = 8):
        super().__init__(train, valid, None, lambda_conn=lambda_conn, target="energy", dataset_info=dataset_info,
                         eval_batch_size=eval_batch_size)
        self.builder, self.system_spec = builder, system_spec
        self.extra_metrics: dict = {}

    def save_model(self, path, model, metrics):
        from cgsurrogate.surrogate.equivariant.energy_head import EGHNMicrotubuleEnergy, save_energy_checkpoint

        was = model.training
        energy = EGHNMicrotubuleEnergy(model.eval(), self.builder, system_spec=self.system_spec)
        m = {"best_val_nmse": float(metrics["val"]), "best_epoch": int(metrics["epoch"]), **self.extra_metrics}
        save_energy_checkpoint(path, energy, dataset_info=self.dataset_info, metrics=m)
        model.train(was)

    # the resume state is the loop's own last.pt
    write_state = Task.write_state
    read_state = Task.read_state


def train_microtubule_energy(data, out, *, epochs: int = 20, batches_per_epoch: int | None = 20,
                             batch_size: int = 8, hidden: int = 32, n_clusters: int = 24, layers_per_block: int = 2,
                             pool_layers: int = 1, lr: float = 1e-3, lambda_conn: float = 0.1, seed: int = 0,
                             val_fraction: float = 0.2, max_val_samples: int | None = 48, device: str = "cpu",
                             progress: bool = True) -> dict:
    """Train the EGHN energy head on a microtubule dataset and write a surrogate checkpoint.

    Same split by run and normaliser as the GPCN trainer (``cgsurrogate.data.microtubule.load_microtubule_splits``);
    the loss is the per-node NMSE plus ``lambda_conn`` times the connectivity loss; the weights kept
    are those of the best validation epoch. Defaults are the reduced preset of ``bench/eghn_tables.py``.

    Parameters
    ----------
    data : path of the dataset folder (``metadata.json``, ``runs/``)
    out : path of the output folder: ``best.pt`` (the checkpoint, load with
        ``cgsurrogate.surrogate.interfaces.energy_function.load_surrogate``) and ``last.pt`` (training
        state; a re-run with the same ``out`` resumes and extends to a larger ``epochs``)
    epochs, batches_per_epoch, batch_size, lr, seed : optimisation (batches of frames of N particles;
        ``batches_per_epoch=None`` is one pass over the training frames)
    hidden, n_clusters, layers_per_block, pool_layers, lambda_conn : EGHN architecture and loss
    val_fraction : fraction of runs held out for validation
    max_val_samples : int, optional
        Validate on this many evenly spaced validation frames (all when None).
    device : torch device for training
    progress : show a tqdm bar

    Returns
    -------
    dict
        ``checkpoint`` (Path of ``best.pt``), ``best_val_nmse``, ``best_epoch``, ``epochs_run``,
        ``n_train``, ``n_val`` (frames), ``params`` (weights count).
    """
    from cgsurrogate.data.microtubule import load_microtubule_splits
    from cgsurrogate.simulate.microtubule import tube_system_spec
    from cgsurrogate.surrogate.checkpoint import dataset_fingerprint, parameter_ranges
    from cgsurrogate.surrogate.equivariant.energy_head import MicrotubuleGraphs
    from cgsurrogate.surrogate.equivariant.registry import build_dynamics_model

    if min(epochs, batch_size, hidden, n_clusters) < 1:
        raise CGSurrogateError("epochs, batch_size, hidden and n_clusters must be positive")
    out = Path(out)
    tr, va, norm = load_microtubule_splits(data, val_fraction, seed)
    if va is None:
        raise CGSurrogateError(f"{data}: needs at least two runs to hold one out for validation")
    X, Y = tr.tensors()
    Xv, Yv = va.tensors()
    info = dataset_fingerprint(data, tr.run_ids + va.run_ids)
    info.update({"parameter_ranges": parameter_ranges(X), "train_ids": list(tr.run_ids), "val_ids": list(va.run_ids),
                 "val_fraction": float(val_fraction), "split_seed": int(seed), "max_val_samples": max_val_samples,
                 "units": dict(tr.metadata.get("units", {}))})
    if max_val_samples and Xv.shape[0] > max_val_samples:
        idx = np.linspace(0, Xv.shape[0] - 1, max_val_samples).round().astype(int)
        Xv, Yv = Xv[idx], Yv[idx]
    builder = MicrotubuleGraphs(tr.topology.bonds, tr.num_nodes, norm)
    G, Gv = builder.graphs(X, Y), builder.graphs(Xv, Yv)
    del X, Y
    torch.manual_seed(seed)
    model = build_dynamics_model("eghn", 1 + builder.num_params, 1, 1, [n_clusters], hidden=hidden,
                                 layers_per_block=layers_per_block, pool_layers=pool_layers, head="energy",
                                 lambda_conn=lambda_conn)
    task = EnergyHeadTask(G, Gv, builder, tube_system_spec(tr.topology), lambda_conn=lambda_conn, dataset_info=info,
                          eval_batch_size=batch_size)
    task.model_config = dict(model.config)
    task.extra_metrics = {"n_train": len(G), "n_val": len(Gv), "params": int(sum(x.numel() for x in model.parameters())),
                          "train_config": {"epochs": epochs, "batches_per_epoch": batches_per_epoch,
                                           "batch_size": batch_size, "lr": lr, "lambda_conn": lambda_conn, "seed": seed}}
    cfg = TrainConfig(epochs=epochs, steps_per_epoch=batches_per_epoch or 0, batch_size=batch_size, lr=lr,
                      eval_every=1, seed=seed, device=device, progress=progress)
    r = fit(model, task, cfg, out, desc="train eghn-energy")
    model.cpu()
    task.extra_metrics["epochs_run"] = int(r["epochs_run"])
    task.save_model(out / "best.pt", model, {"val": r["best_val"], "epoch": r["best_epoch"]})
    return {"checkpoint": out / "best.pt", "best_val_nmse": float(r["best_val"]), "best_epoch": int(r["best_epoch"]),
            "epochs_run": int(r["epochs_run"]), "n_train": len(G), "n_val": len(Gv),
            "params": task.extra_metrics["params"]}


__all__ = ["EnergyHeadTask", "train_microtubule_energy"]
