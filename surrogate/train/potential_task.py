"""Energy + force training of the invariant potential (a :class:`~cgsurrogate.surrogate.train.loop.Task`).

Loss of one batch of configurations ``b`` (forces by autograd with ``create_graph=True``, so the
force term is differentiated through the forces: double backward, as MACE / NequIP /
TorchMD-Net train)::

    L = w_E mean_b (E'_b - E_b)^2 / (E_b^2 + e0^2)
      + w_F mean_b sum_i |F'_bi - F_bi|^2 / (sum_i |F_bi|^2 + N f0^2)

Each configuration's errors are measured relative to its own energy and force scale: this is
the per-configuration weighting that lets near-rest frames (forces ~0.07 kJ/mol/nm RMS) count as
much as strained ones (tens of kJ/mol/nm); ``e0`` (default 1e-3 kJ/mol) and ``f0`` (1e-4
kJ/mol/nm) only keep exactly-at-rest configurations finite. Defaults ``w_E = 1``, ``w_F = 1``.

Augmentation (labels from the exact field, computed on the fly, float64): with probability
``noise_prob`` a configuration gets isotropic Gaussian displacements with sigma uniform in
``[0, noise_max]`` nm (clamped rings kept), and with probability ``restrength_prob`` its
strengths are redrawn log-uniformly in [3, 57] zJ.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.train.loop import Task


@dataclass
class PotentialLoss:
    """Loss weights and augmentation of :class:`PotentialTask` (see the module docstring)."""

    w_energy: float = 1.0
    w_force: float = 1.0
    e0: float = 1e-3
    f0: float = 1e-4
    noise_prob: float = 0.5
    noise_max: float = 0.1
    restrength_prob: float = 0.3


def load_frames(roots, val_fraction: float = 0.2, seed: int = 0) -> dict:
    """Frames of one or more dataset folders, split by run (per folder), in memory (float64).

    Returns
    -------
    dict with ``train`` and ``val``, each a dict of ``positions [M, N, 3]``, ``params [M, 5]``,
    ``energies [M]`` (total, kJ/mol), ``forces [M, N, 3]``; and ``info`` (folders, run ids).
    Warns when a folder's metadata announces more runs than are on disk.
    """
    from cgsurrogate.data.microtubule import list_runs, load_run, read_metadata, split_runs, warn_missing_runs
    from cgsurrogate.simulate.sweep import run_path

    if isinstance(roots, (str, Path)):
        roots = [roots]
    parts = {"train": [], "val": []}
    info = {"folders": [], "train_ids": {}, "val_ids": {}}
    for root in roots:
        meta = read_metadata(root)
        ids = list_runs(root)
        warn_missing_runs(root, meta, ids)
        if not ids:
            raise CGSurrogateError(f"{root}: dataset has no completed runs")
        tr, va = split_runs(ids, val_fraction, seed)
        key = str(Path(root).resolve())
        info["folders"].append(key)
        info["train_ids"][key], info["val_ids"][key] = tr, va
        for name, sel in (("train", tr), ("val", va)):
            for rid in sel:
                r = load_run(run_path(root, rid))
                F = r["positions"].shape[0]
                parts[name].append((r["positions"], np.broadcast_to(r["params"], (F, 5)), r["energies"].sum(1),
                                    r["forces"]))
    out = {"info": info}
    for name, rows in parts.items():
        if not rows:
            out[name] = None
            continue
        out[name] = {k: torch.as_tensor(np.concatenate([row[i] for row in rows]), dtype=torch.float64)
                     for i, k in enumerate(("positions", "params", "energies", "forces"))}
    if out["train"] is None:
        raise CGSurrogateError("no training runs (every run went to validation)")
    return out


class PotentialTask(Task):
    """Energy + force training of an energy model on in-memory frames (see the module docstring).

    Parameters
    ----------
    train, val : dicts from :func:`load_frames` (``val`` may be None: then train is evaluated)
    loss : PotentialLoss
    settings : dict, optional
        Extra plain values identifying the run (e.g. dataset folders, val fraction).
    seed : int
        Seeds the augmentation.
    """

    name = "potential"

    def __init__(self, train: dict, val: dict | None, loss: PotentialLoss | None = None,
                 settings: dict | None = None, seed: int = 0):
        from cgsurrogate.simulate.energy import TrueEnergy

        self.train, self.val = train, val if val is not None else train
        self.cfg = loss or PotentialLoss()
        self.num_train = int(train["positions"].shape[0])
        self.exact = TrueEnergy()
        self._extra = dict(settings or {})
        self._gen = torch.Generator().manual_seed(int(seed))
        free = torch.ones(self.exact.num_nodes, dtype=torch.float64)
        from cgsurrogate.simulate.microtubule import microtubule_spec

        free[list(microtubule_spec().clamp_nodes)] = 0.0
        self.free = free

    def settings(self) -> dict:
        return {"loss": asdict(self.cfg), **self._extra}

    def _augment(self, x, p, E, F):
        c, B = self.cfg, x.shape[0]
        u = torch.rand(B, 2, generator=self._gen, dtype=torch.float64)
        noisy = u[:, 0] < c.noise_prob
        restr = u[:, 1] < c.restrength_prob
        if not bool((noisy | restr).any()):
            return x, p, E, F
        x, p = x.clone(), p.clone()
        sig = torch.rand(B, generator=self._gen, dtype=torch.float64) * c.noise_max * noisy
        x = x + sig[:, None, None] * torch.randn(x.shape, generator=self._gen, dtype=torch.float64) * self.free[:, None]
        lo, hi = np.log(3.0), np.log(57.0)
        newp = torch.exp(lo + (hi - lo) * torch.rand(B, 5, generator=self._gen, dtype=torch.float64))
        p = torch.where(restr[:, None], newp, p)
        xg = x.clone().requires_grad_(True)
        total, _ = self.exact(xg, p)
        (g,) = torch.autograd.grad(total.sum(), xg)
        return x, p, total.detach(), -g

    def loss(self, model, idx):
        d, c = self.train, self.cfg
        x, p, E, F = self._augment(d["positions"][idx], d["params"][idx], d["energies"][idx], d["forces"][idx])
        x = x.clone().requires_grad_(True)
        total, _ = model(x, p)
        (g,) = torch.autograd.grad(total.sum(), x, create_graph=True)
        Fp = -g
        N = x.shape[1]
        le = ((total - E) ** 2 / (E ** 2 + c.e0 ** 2)).mean()
        lf = (((Fp - F) ** 2).sum((1, 2)) / ((F ** 2).sum((1, 2)) + N * c.f0 ** 2)).mean()
        return c.w_energy * le + c.w_force * lf

    def evaluate(self, model) -> dict:
        from cgsurrogate.surrogate.train.potential_metrics import predict_energy_forces, summarize

        d = self.val
        E, F = predict_energy_forces(model, d["positions"], d["params"])
        free = self.free.numpy() > 0
        m = summarize(E, F, d["energies"].numpy(), d["forces"].numpy(), free)
        m["val"] = m["force_rel_rmse_median"] + m["energy_rel_error_median"]
        return m

    def save_model(self, path, model, metrics):
        from cgsurrogate.surrogate.gcn.potential import save_potential

        save_potential(path, model, {"metrics": metrics, "training": self.settings()})


def train_potential(data, out_dir=None, *, config=None, loss: PotentialLoss | None = None, val_fraction: float = 0.2,
                    hidden: int = 32, anharmonic: bool = True, seed: int = 0) -> tuple:
    """Train an :class:`~cgsurrogate.surrogate.gcn.potential.InvariantPotential` on dataset folders.

    Parameters
    ----------
    data : path or list of paths of dataset folders (``simulate`` and ``sample`` outputs)
    out_dir : path, optional (``best.pt`` loads with ``load_surrogate``; ``last.pt`` resumes)
    config : cgsurrogate.surrogate.train.loop.TrainConfig
    loss : PotentialLoss
    val_fraction, seed : split by run in every folder; seed also seeds the model and batches

    Returns
    -------
    (model, result of :func:`cgsurrogate.surrogate.train.loop.fit`)
    """
    from cgsurrogate.surrogate.gcn.potential import InvariantPotential
    from cgsurrogate.surrogate.train.loop import TrainConfig, fit

    config = config or TrainConfig(seed=seed)
    frames = load_frames(data, val_fraction, seed)
    torch.manual_seed(seed)
    model = InvariantPotential(hidden=hidden, anharmonic=anharmonic).double()
    task = PotentialTask(frames["train"], frames["val"], loss,
                         settings={"data": frames["info"], "val_fraction": float(val_fraction),
                                   "model": model.config}, seed=seed)
    res = fit(model, task, config, out_dir, desc="invariant potential")
    return model, res


__all__ = ["PotentialLoss", "PotentialTask", "load_frames", "train_potential"]
