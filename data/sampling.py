"""Labelled microtubule configurations beyond the protocol frames (``cli.py sample``).

A surrogate trained only on the bending protocol's frames never sees a bond strained past
2.6 % (issue 12). :func:`sample_dataset` reads a sweep dataset folder and writes a second
folder **in the same format** (``metadata.json`` + ``runs/run_<id>.npz``, readable by
:class:`cgsurrogate.data.microtubule.MicrotubuleDataset`), whose runs hold configurations of
these kinds, each labelled by the exact field (:class:`cgsurrogate.simulate.energy.TrueEnergy`
in float64: per-particle energies, internal forces ``-dE/dx``):

``thermal``
    30 steps of Langevin dynamics (BAOAB, 100 ps steps, friction 1e-3/ps, exact forces, the protocol's load at the frame's load level,
    clamped rings fixed) started from protocol frames, at temperatures 1, 10, 100 and 300 K.
``perturb``
    Protocol frames plus isotropic Gaussian displacements of every free particle, sigma from
    0.01 to 0.3 nm.
``relaxed``
    Partly relaxed states: a strongly perturbed frame (sigma 0.3 nm) after 2 to 60 iterations of
    L-BFGS on the exact energy (plus load).
``load``
    The tube under other loads: magnitude 0.25x to 4x the protocol's, direction at a random
    angle in the x-y plane, and optionally along the axis; states along an L-BFGS relaxation
    from rest (3 to 150 iterations).
``restrength``
    Protocol frames (perturbed by 0.02 nm) labelled with other strength sets, drawn
    log-uniformly from [3, 57] zJ (off the grid).

Sampled run ``r`` uses source run ``source_ids[r // len(kinds)]`` and kind
``kinds[r % len(kinds)]``; its random stream is seeded by ``(seed, r)``. Every run holds
``frames_per_run`` frames (that of the source dataset). Runs are written atomically; a rerun
of the same command skips finished runs (resume); a rerun with other settings into the same
folder is refused. Velocities are stored (zero except for ``thermal``); ``steps`` holds the
frame's index inside its run.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from cgsurrogate.core.atomic import atomic_path, write_json_atomic
from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.sweep import FORMAT_NAME, run_path

SAMPLE_KINDS = ("thermal", "perturb", "relaxed", "load", "restrength")
KB_KJMOL_K = 0.0083144626


def exact_labels(positions, params, energy=None):
    """Exact per-particle energies and forces.

    Parameters
    ----------
    positions : array [F, N, 3] nm
    params : array [5] or [F, 5] zJ
    energy : TrueEnergy, optional

    Returns
    -------
    energies [F, N] kJ/mol, forces [F, N, 3] kJ/mol/nm (float64 numpy)
    """
    from cgsurrogate.simulate.energy import TrueEnergy

    energy = energy or TrueEnergy()
    x = torch.as_tensor(np.asarray(positions, dtype=np.float64)).requires_grad_(True)
    p = torch.as_tensor(np.asarray(params, dtype=np.float64))
    total, per = energy(x, p)
    (g,) = torch.autograd.grad(total.sum(), x)
    return per.detach().numpy(), (-g).numpy()


class LoadedField:
    """An energy function plus a constant external load, clamped particles fixed.

    Parameters
    ----------
    energy : callable ``energy(positions [1, N, 3] nm, params [1, P]) -> (total [1], per-node [1, N])`` kJ/mol
        (``TrueEnergy`` or a surrogate)
    params : [P] strengths
    free : bool [N], False for clamped particles
    load_force : [N, 3] kJ/mol/nm

    ``forces(x [N, 3])`` returns the forces on the free particles ``[N, 3]`` and the total energy (kJ/mol).
    """

    def __init__(self, energy, params, free, load_force):
        self.energy, self.params = energy, torch.as_tensor(params, dtype=torch.float64)
        self.free = torch.as_tensor(free)
        self.load = torch.as_tensor(load_force, dtype=torch.float64)  # [N, 3]

    def forces(self, x):
        x = x.detach().requires_grad_(True)
        total, _ = self.energy(x[None], self.params[None])
        e = total.sum() - (self.load * x).sum()
        (g,) = torch.autograd.grad(e, x)
        return -g * self.free[:, None], float(e.detach())


def lbfgs_states(field, x0, checkpoints):
    """Positions ``[N, 3]`` (nm) after each number of L-BFGS iterations in ``checkpoints`` (sorted) on
    ``field`` (:class:`LoadedField`), starting from ``x0`` [N, 3]."""
    x = torch.as_tensor(x0, dtype=torch.float64).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
    out, it = [], 0

    def closure():
        opt.zero_grad()
        f, e = field.forces(x)
        x.grad = -f
        return torch.tensor(e)

    for stop in checkpoints:
        while it < stop:
            opt.step(closure)
            it += 1
        out.append(x.detach().clone().numpy())
    return out


def langevin_states(field, x0, temperature, mass, steps, rng, dt=100.0, friction=1e-3):
    """Langevin dynamics on ``field`` (:class:`LoadedField`) from ``x0`` [N, 3] (nm) at ``temperature`` K,
    ``mass`` amu, ``steps`` steps of ``dt`` ps; returns positions [N, 3] nm and velocities [N, 3] nm/ps."""
    x = torch.as_tensor(x0, dtype=torch.float64).clone()
    free = field.free[:, None].to(torch.float64)
    kt = KB_KJMOL_K * temperature
    sig = (kt / mass) ** 0.5
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    v = sig * torch.randn(x.shape, generator=gen, dtype=torch.float64) * free
    c1 = np.exp(-friction * dt)
    c2 = (1 - c1 * c1) ** 0.5 * sig
    f, _ = field.forces(x)
    for _ in range(steps):
        v = v + 0.5 * dt * f / mass
        x = x + 0.5 * dt * v
        v = (c1 * v + c2 * torch.randn(x.shape, generator=gen, dtype=torch.float64)) * free
        x = x + 0.5 * dt * v
        f, _ = field.forces(x)
        v = v + 0.5 * dt * f / mass
    return x.numpy(), v.numpy()


def sample_run(kind: str, source: dict, meta: dict, frames: int, rng, energy=None) -> dict:
    """One sampled run (arrays of the run-file format) of ``kind`` from a source run.

    Parameters
    ----------
    kind : one of :data:`SAMPLE_KINDS`
    source : dict of a loaded run (``params``, ``positions`` [F, N, 3], ``steps``)
    meta : the source dataset's metadata (clamp/load nodes, load, protocol, mass)
    frames : frames of the new run
    rng : numpy Generator
    """
    from cgsurrogate.simulate.energy import TrueEnergy
    from cgsurrogate.simulate.protocol import Protocol

    energy = energy or TrueEnergy()
    pos, params = np.asarray(source["positions"], np.float64), np.asarray(source["params"], np.float64)
    F0, N = pos.shape[:2]
    free = np.ones(N, bool)
    free[np.asarray(meta["clamp_nodes"], int)] = False
    load_nodes = np.asarray(meta["load_nodes"], int)
    proto = meta["protocol"]
    full = float(proto["load"]) * np.asarray(meta.get("load_direction", [0.0, -1.0, 0.0]), np.float64)
    rest = energy.topology.positions
    out_x = np.empty((frames, N, 3))
    out_v = np.zeros((frames, N, 3))
    out_p = np.broadcast_to(params, (frames, 5)).copy()

    def load_at(frame, scale=1.0, direction=None):
        lf = np.zeros((N, 3))
        step = int(source["steps"][frame])
        s = Protocol.from_dict(proto).load_scale(step) if "ramp_steps" in proto else 1.0
        lf[load_nodes] = (full if direction is None else direction * np.linalg.norm(full)) * s * scale
        return lf

    pick = rng.integers(F0, size=frames)
    if kind == "perturb":
        sig = np.geomspace(0.01, 0.3, frames)
        for f in range(frames):
            out_x[f] = pos[pick[f]] + sig[f] * rng.standard_normal((N, 3)) * free[:, None]
    elif kind == "restrength":
        out_p = np.exp(rng.uniform(np.log(3.0), np.log(57.0), size=(1, 5))).repeat(frames, 0)
        for f in range(frames):
            out_x[f] = pos[pick[f]] + 0.02 * rng.standard_normal((N, 3)) * free[:, None]
    elif kind == "thermal":
        temps = np.array([1.0, 10.0, 100.0, 300.0])[np.arange(frames) % 4]
        mass = float(meta.get("monomer_mass_amu", 3.011e7))
        for f in range(frames):
            field = LoadedField(energy, params, free, load_at(pick[f]))
            out_x[f], out_v[f] = langevin_states(field, pos[pick[f]], temps[f], mass, 30, rng)
    elif kind == "relaxed":
        stops = np.unique(np.geomspace(2, 60, frames).astype(int))
        stops = np.concatenate([stops, np.full(frames - len(stops), stops[-1])])
        f0 = int(pick[0])
        start = pos[f0] + 0.3 * rng.standard_normal((N, 3)) * free[:, None]
        out_x[:] = lbfgs_states(LoadedField(energy, params, free, load_at(f0)), start, list(stops))
    elif kind == "load":
        ang = rng.uniform(0, 2 * np.pi)
        d = np.array([np.cos(ang), np.sin(ang), rng.uniform(-0.5, 0.5)])
        d /= np.linalg.norm(d)
        scale = float(np.exp(rng.uniform(np.log(0.25), np.log(4.0))))
        field = LoadedField(energy, params, free, load_at(F0 - 1, scale, d))
        stops = np.unique(np.geomspace(3, 150, frames).astype(int))
        stops = np.concatenate([stops, np.full(frames - len(stops), stops[-1])])
        out_x[:] = lbfgs_states(field, rest, list(stops))
    else:
        raise CGSurrogateError(f"unknown sample kind {kind!r}; choose from {', '.join(SAMPLE_KINDS)}")
    e, forces = exact_labels(out_x, out_p, energy)
    return {"params": out_p[0].astype(np.float64), "positions": out_x, "velocities": out_v, "forces": forces,
            "energies": e, "steps": np.arange(frames, dtype=np.int64)}


def _write_run(path: Path, run: dict) -> None:
    with atomic_path(path, ".npz") as tmp:
        np.savez(tmp, **run)


def sample_dataset(source, out, kinds=SAMPLE_KINDS, runs_per_kind: int | None = None, seed: int = 0,
                   progress: bool = False) -> dict:
    """Write (or resume) a sampled dataset folder ``out`` from the sweep dataset ``source``.

    Parameters
    ----------
    source : path of a dataset folder written by ``cli.py simulate``
    out : path of the new folder (created)
    kinds : sequence of :data:`SAMPLE_KINDS`
    runs_per_kind : int, optional
        Source runs used per kind (evenly spaced over the source's runs); default all.
    seed : int

    Returns
    -------
    dict with ``out``, ``num_runs``, ``computed`` (list of run ids written now), ``already_done``.

    Raises
    ------
    CGSurrogateError
        Unknown kind, empty source, or ``out`` holding a sampled dataset with other settings.
    """
    from cgsurrogate.data.microtubule import list_runs, load_run, read_metadata

    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in SAMPLE_KINDS]
    if bad or not kinds:
        raise CGSurrogateError(f"unknown sample kind(s) {bad}; choose from {', '.join(SAMPLE_KINDS)}")
    src = Path(source)
    meta = read_metadata(src)
    if "sampling" in meta:
        raise CGSurrogateError(f"{src}: is itself a sampled dataset; sample from a simulate dataset")
    ids = list_runs(src)
    if not ids:
        raise CGSurrogateError(f"{src}: dataset has no completed runs")
    if runs_per_kind is not None:
        if runs_per_kind < 1:
            raise CGSurrogateError(f"runs per kind must be positive, got {runs_per_kind}")
        ids = [ids[i] for i in np.unique(np.linspace(0, len(ids) - 1, runs_per_kind).round().astype(int))]
    frames = int(meta["frames_per_run"])
    settings = {"source": str(src.resolve()), "source_run_ids": ids, "kinds": list(kinds), "seed": int(seed),
                "labels": "cgsurrogate.simulate.energy.TrueEnergy (float64)"}
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CGSurrogateError(f"{out}: exists and is not a folder")
    meta_path = out / "metadata.json"
    if meta_path.is_file():
        try:
            old = json.loads(meta_path.read_text()).get("sampling")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CGSurrogateError(f"{meta_path}: not valid JSON") from None
        if old != settings:
            raise CGSurrogateError(f"{out}: holds a sampled dataset made with other settings "
                                   f"(source, runs, kinds or seed); use a new --out folder")
    plan = [(rid, k) for rid in ids for k in kinds]
    new_meta = {k: v for k, v in meta.items() if k not in ("grid_values",)}
    new_meta.update({"format": FORMAT_NAME, "num_runs": len(plan), "sampling": settings,
                     "param_sets": None, "sample_plan": [[int(r), k] for r, k in plan]})
    (out / "runs").mkdir(parents=True, exist_ok=True)
    write_json_atomic(meta_path, new_meta)
    from cgsurrogate.simulate.energy import TrueEnergy

    energy = TrueEnergy()
    done, computed = 0, []
    it = range(len(plan))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="sample", unit="run")
    for r in it:
        path = run_path(out, r)
        if path.is_file():
            try:
                load_run(path, energy.num_nodes, frames)
                done += 1
                continue
            except ValueError:
                pass  # corrupt: recompute
        rid, kind = plan[r]
        run = sample_run(kind, load_run(run_path(src, rid)), meta, frames, np.random.default_rng([int(seed), r]),
                         energy)
        _write_run(path, run)
        computed.append(r)
    return {"out": str(out), "num_runs": len(plan), "computed": computed, "already_done": done}


__all__ = ["SAMPLE_KINDS", "exact_labels", "sample_run", "sample_dataset", "LoadedField", "lbfgs_states",
           "langevin_states"]
