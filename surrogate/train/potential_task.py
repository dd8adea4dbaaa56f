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
    linear_pool : int, optional
        For models whose energy is linear in per-kind stiffnesses (``InvariantPotential`` with
        ``anharmonic=False``): train on a fixed pool of the training frames plus this many augmented
        configurations through the loss's sufficient statistics
        (:mod:`cgsurrogate.surrogate.train.stiffness_stats`); ``None`` = the generic autograd loss
        with fresh augmentation every step.
    """

    name = "potential"

    def __init__(self, train: dict, val: dict | None, loss: PotentialLoss | None = None,
                 settings: dict | None = None, seed: int = 0, linear_pool: int | None = None):
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
        self.stats = None
        if linear_pool is not None:
            self._build_pool(int(linear_pool))

    def _build_pool(self, extra: int, chunk: int = 16) -> None:
        from cgsurrogate.surrogate.gcn.local_geometry import InteractionGeometry
        from cgsurrogate.surrogate.train.stiffness_stats import kind_statistics

        d = self.train
        P, E, S = [d["params"]], [d["energies"]], [kind_statistics(InteractionGeometry(self.exact.topology),
                                                                   d["positions"], d["forces"], self.free)]
        for s in range(0, extra, chunk):
            n = min(chunk, extra - s)
            idx = torch.randint(self.num_train, (n,), generator=self._gen)
            x, p, e, f = self._augment(d["positions"][idx], d["params"][idx], d["energies"][idx], d["forces"][idx],
                                       force=True)
            P.append(p), E.append(e)
            S.append(kind_statistics(InteractionGeometry(self.exact.topology), x, f, self.free))
        self.pool = {"params": torch.cat(P), "energies": torch.cat(E),
                     "stats": {k: torch.cat([st[k] for st in S]) for k in S[0]}}
        self.num_train = int(self.pool["params"].shape[0])
        self.stats = self.pool["stats"]

    def settings(self) -> dict:
        return {"loss": asdict(self.cfg), **self._extra}

    def _augment(self, x, p, E, F, force: bool = False):
        c, B = self.cfg, x.shape[0]
        u = torch.rand(B, 2, generator=self._gen, dtype=torch.float64)
        noisy = u[:, 0] < c.noise_prob
        restr = u[:, 1] < c.restrength_prob
        if force:  # every pool configuration is new: noise, and new strengths with restrength_prob
            noisy = torch.ones_like(noisy)
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
        if self.stats is not None:
            from cgsurrogate.surrogate.train.stiffness_stats import quadratic_loss

            k, _ = model.kind_coefficients(self.pool["params"][idx])
            st = {key: v[idx] for key, v in self.stats.items()}
            return quadratic_loss(k, st, self.pool["energies"][idx], int(self.free.sum()), self.cfg)
        d, c = self.train, self.cfg
        x, p, E, F = self._augment(d["positions"][idx], d["params"][idx], d["energies"][idx], d["forces"][idx])
        x = x.clone().requires_grad_(True)
        total, _ = model(x, p)
        (g,) = torch.autograd.grad(total.sum(), x, create_graph=True)
        w = self.free[None, :, None]
        Fp, F = -g * w, F * w
        N = int(self.free.sum())
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


def polish(model, task: PotentialTask, configurations: int = 32, iterations: int = 100, seed: int = 0) -> dict:
    """Second-order finish: L-BFGS (strong Wolfe) on the loss of a fixed set of training
    configurations (``configurations`` frames drawn with the task's augmentation, labels fixed).

    Adam leaves the stiffness ratios a few tenths of a percent off; near-equilibrium frames, where
    the internal forces nearly cancel, magnify that tenfold. L-BFGS on this small, smooth problem
    (the model has ~1,600 weights) takes the remaining steps in seconds.

    Returns
    -------
    dict with ``loss_before``, ``loss_after``, ``iterations``.
    """
    if task.stats is not None:  # linear models: the whole pool, through its sufficient statistics
        sub, all_idx = task, torch.arange(task.num_train)
    else:
        g = torch.Generator().manual_seed(int(seed))
        idx = torch.randperm(task.num_train, generator=g)[:configurations]
        d = task.train
        x, p, E, F = task._augment(d["positions"][idx], d["params"][idx], d["energies"][idx], d["forces"][idx])
        fixed = {"positions": x, "params": p, "energies": E, "forces": F}
        sub = PotentialTask(fixed, None, task.cfg)
        sub.cfg = PotentialLoss(**{**asdict(task.cfg), "noise_prob": 0.0, "restrength_prob": 0.0})
        all_idx = torch.arange(len(idx))
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iterations, history_size=50, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = sub.loss(model, all_idx)
        loss.backward()
        return loss

    before = float(sub.loss(model, all_idx).detach())
    model.train()
    opt.step(closure)
    after = float(sub.loss(model, all_idx).detach())
    return {"loss_before": before, "loss_after": after, "iterations": int(iterations),
            "configurations": int(len(all_idx))}


def train_potential(data, out_dir=None, *, config=None, loss: PotentialLoss | None = None, val_fraction: float = 0.2,
                    hidden: int = 32, anharmonic: bool = False, seed: int = 0, polish_iterations: int = 0,
                    polish_configurations: int = 32, pool: int = 2000) -> tuple:
    """Train an :class:`~cgsurrogate.surrogate.gcn.potential.InvariantPotential` on dataset folders.

    Parameters
    ----------
    data : path or list of paths of dataset folders (``simulate`` and ``sample`` outputs)
    out_dir : path, optional (``best.pt`` loads with ``load_surrogate``; ``last.pt`` resumes)
    config : cgsurrogate.surrogate.train.loop.TrainConfig
    loss : PotentialLoss
    val_fraction, seed : split by run in every folder; seed also seeds the model and batches
    hidden, anharmonic : the model (:class:`~cgsurrogate.surrogate.gcn.potential.InvariantPotential`);
        without the anharmonic factor training runs on a pool of the training frames plus ``pool``
        augmented configurations through sufficient statistics (``PotentialTask(linear_pool=...)``)
    polish_iterations, polish_configurations : L-BFGS finish after the loop (:func:`polish`; 0 = none);
        kept (and ``best.pt`` rewritten) only when it lowers the validation measure

    Returns
    -------
    (model, result of :func:`cgsurrogate.surrogate.train.loop.fit`)
    """
    from cgsurrogate.surrogate.gcn.potential import InvariantPotential
    from cgsurrogate.surrogate.train.loop import TrainConfig, fit

    config = config or TrainConfig(seed=seed, steps_per_epoch=20)
    frames = load_frames(data, val_fraction, seed)
    torch.manual_seed(seed)
    model = InvariantPotential(hidden=hidden, anharmonic=anharmonic).double()
    task = PotentialTask(frames["train"], frames["val"], loss,
                         settings={"data": frames["info"], "val_fraction": float(val_fraction),
                                   "model": model.config, "pool": None if anharmonic else int(pool)},
                         seed=seed, linear_pool=None if anharmonic else int(pool))
    res = fit(model, task, config, out_dir, desc="invariant potential")
    if polish_iterations > 0:
        import copy

        before = copy.deepcopy(model.state_dict())
        res["polish"] = polish(model, task, polish_configurations, polish_iterations, seed)
        model.eval()
        metrics = task.evaluate(model)
        res["polish"]["val_after"] = metrics["val"]
        if metrics["val"] < res["best_val"]:
            res["best_val"], res["best_metrics"] = metrics["val"], metrics
            if out_dir is not None:
                task.save_model(Path(out_dir) / "best.pt", model, {**metrics, "polished": res["polish"]})
        else:
            model.load_state_dict(before)
    return model, res


__all__ = ["PotentialLoss", "PotentialTask", "load_frames", "polish", "train_potential"]
