"""Active learning of the invariant potential: label where the surrogate and the exact field disagree.

One round (:func:`active_round`), for the current model:

1. propose candidate configurations that the model itself visits: surrogate MD, surrogate
   relaxations and perturbed starts, each at a new off-grid strength set
   (:func:`cgsurrogate.surrogate.train.active_learning_candidates.propose_candidates`);
2. score each against the exact field (:class:`cgsurrogate.simulate.energy.TrueEnergy`, float64;
   cheap): the relative force error ``RMSE(F' - F) / RMS(F)`` over the free particles
   (:func:`cgsurrogate.surrogate.train.potential_metrics.per_config_errors`);
3. select ``per_round`` of them: the largest scores (``strategy="disagreement"``) or a uniform
   random draw from the same candidates (``strategy="random"``, the baseline);
4. label them (the exact per-particle energies and forces, already computed when scoring), write
   them as a dataset folder in the format ``cli.py sample`` writes (one frame per run, since every
   configuration has its own strengths), and retrain **from scratch** on the initial data plus every
   folder so far, through the project's one loop (:func:`cgsurrogate.surrogate.train.loop.fit` with
   :class:`cgsurrogate.surrogate.train.potential_task.PotentialTask`).

:func:`run_active_learning` repeats rounds and measures every round's model on a fixed test set.
It is resumable: round ``r`` lives in ``out/round_<r>/`` (``model.pt``, ``record.json``, ``data/``);
a rerun skips finished rounds (with a larger ``rounds`` it continues), and a rerun with other
settings or data into the same folder is refused.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError

STRATEGIES = ("disagreement", "random")


@dataclass
class ActiveLearningConfig:
    """Settings of :func:`run_active_learning` (see the module docstring).

    Attributes
    ----------
    rounds : labelling rounds after round 0 (the initial model)
    per_round : configurations labelled and added per round
    candidates : candidates proposed per round
    strategy : ``"disagreement"`` (largest force error) or ``"random"`` (baseline)
    md_steps, relax_iterations : candidate trajectory lengths
    epochs, steps_per_epoch, batch_size, lr, lr_final : the training of every round (loop.TrainConfig)
    seed : seeds candidates, selection and training
    """

    rounds: int = 6
    per_round: int = 8
    candidates: int = 48
    strategy: str = "disagreement"
    md_steps: int = 20
    relax_iterations: int = 20
    epochs: int = 100
    steps_per_epoch: int = 10
    batch_size: int = 32
    lr: float = 1e-2
    lr_final: float = 1e-3
    seed: int = 0

    def check(self) -> "ActiveLearningConfig":
        """Raise :class:`CGSurrogateError` for an unusable setting; return self."""
        if self.strategy not in STRATEGIES:
            raise CGSurrogateError(f"strategy {self.strategy!r}: choose from {', '.join(STRATEGIES)}")
        if self.rounds < 0 or self.per_round < 1 or self.candidates < self.per_round:
            raise CGSurrogateError("need rounds >= 0, per_round >= 1 and candidates >= per_round")
        return self


def free_mask(meta: dict, num_nodes: int) -> np.ndarray:
    """``[N]`` bool, False on the clamped particles of dataset metadata ``meta``."""
    free = np.ones(num_nodes, bool)
    free[np.asarray(meta["clamp_nodes"], int)] = False
    return free


def score_configurations(model, positions, params, free, exact=None) -> dict:
    """Disagreement of ``model`` with the exact field on each configuration.

    Parameters
    ----------
    model : energy model; positions [M, N, 3] nm; params [M, 5] zJ; free [N] bool

    Returns
    -------
    dict of numpy arrays: ``force_rel_rmse``, ``force_cosine``, ``energy_rel_error`` [M] and the
    exact labels ``energies`` [M, N] kJ/mol (per particle), ``forces`` [M, N, 3] kJ/mol/nm.
    """
    from cgsurrogate.data.sampling import exact_labels
    from cgsurrogate.surrogate.train.potential_metrics import per_config_errors, predict_energy_forces

    e, f = exact_labels(positions, params, exact)
    Ep, Fp = predict_energy_forces(model, positions, params)
    out = per_config_errors(Ep, Fp, e.sum(1), f, free)
    out.update(energies=e, forces=f)
    return out


def select(scores, k: int, strategy: str, rng) -> np.ndarray:
    """Indices of the ``k`` configurations to label: the ``k`` largest ``scores`` (descending) for
    ``"disagreement"``, ``k`` distinct uniform draws for ``"random"``."""
    scores = np.asarray(scores, np.float64)
    k = min(int(k), len(scores))
    if strategy == "disagreement":
        return np.argsort(-scores, kind="stable")[:k]
    if strategy == "random":
        return np.sort(rng.choice(len(scores), size=k, replace=False))
    raise CGSurrogateError(f"strategy {strategy!r}: choose from {', '.join(STRATEGIES)}")


def write_labelled(folder, positions, params, energies, forces, meta: dict, note: dict) -> Path:
    """Write labelled configurations as a dataset folder in the ``sample`` format (one frame per
    run: ``run_<i>.npz`` holds configuration ``i`` with its own strengths). Returns the folder."""
    from cgsurrogate.core.atomic import atomic_path, write_json_atomic
    from cgsurrogate.simulate.sweep import run_path

    folder = Path(folder)
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    for i in range(len(positions)):
        run = {"params": np.asarray(params[i], np.float64), "positions": np.asarray(positions[i:i + 1], np.float64),
               "velocities": np.zeros_like(positions[i:i + 1], dtype=np.float64),
               "forces": np.asarray(forces[i:i + 1], np.float64), "energies": np.asarray(energies[i:i + 1], np.float64),
               "steps": np.zeros(1, np.int64)}
        with atomic_path(run_path(folder, i), ".npz") as tmp:
            np.savez(tmp, **run)
    new_meta = {k: v for k, v in meta.items() if k not in ("grid_values", "sample_plan")}
    new_meta.update({"num_runs": int(len(positions)), "frames_per_run": 1, "param_sets": None,
                     "sampling": {"active_learning": note,
                                  "labels": "cgsurrogate.simulate.energy.TrueEnergy (float64)"}})
    write_json_atomic(folder / "metadata.json", new_meta)
    return folder


def read_frames(folder, runs=None) -> dict:
    """Every frame of the runs ``runs`` (default all) of a dataset folder: ``positions [M, N, 3]``,
    ``params [M, 5]``, ``energies [M]`` (total), ``forces [M, N, 3]`` (float64 tensors), no split.

    Raises
    ------
    CGSurrogateError
        A run of ``runs`` is not in the folder, or the folder has no completed runs.
    """
    from cgsurrogate.data.microtubule import list_runs, load_run
    from cgsurrogate.simulate.sweep import run_path

    if not Path(folder).is_dir():
        raise CGSurrogateError(f"{folder}: dataset folder not found")
    ids = list_runs(folder)
    if runs is not None:
        missing = sorted(set(int(r) for r in runs) - set(ids))
        if missing:
            raise CGSurrogateError(f"runs {missing} are not in {folder}")
        ids = [int(r) for r in runs]
    rows = []
    for rid in ids:
        r = load_run(run_path(folder, rid))
        n = r["positions"].shape[0]
        rows.append((r["positions"], np.broadcast_to(r["params"], (n, 5)), r["energies"].sum(1), r["forces"]))
    if not rows:
        raise CGSurrogateError(f"{folder}: dataset has no completed runs")
    return {k: torch.as_tensor(np.concatenate([row[i] for row in rows]), dtype=torch.float64)
            for i, k in enumerate(("positions", "params", "energies", "forces"))}


def concat_frames(parts) -> dict:
    """Concatenate frame dicts (see :func:`read_frames`)."""
    return {k: torch.cat([p[k] for p in parts]) for k in ("positions", "params", "energies", "forces")}


def train_model(frames: dict, cfg: ActiveLearningConfig, seed: int, progress: bool = False):
    """A new harmonic :class:`~cgsurrogate.surrogate.gcn.potential.InvariantPotential` trained on
    ``frames`` (no augmentation, no validation split) through ``loop.fit`` + ``PotentialTask``."""
    from cgsurrogate.surrogate.gcn.potential import InvariantPotential
    from cgsurrogate.surrogate.train.loop import TrainConfig, fit
    from cgsurrogate.surrogate.train.potential_task import PotentialLoss, PotentialTask

    torch.manual_seed(int(seed))
    model = InvariantPotential(anharmonic=False).double()
    task = PotentialTask(frames, None, PotentialLoss(), seed=int(seed), linear_pool=0)
    tc = TrainConfig(epochs=cfg.epochs, steps_per_epoch=cfg.steps_per_epoch, batch_size=cfg.batch_size, lr=cfg.lr,
                     lr_final=cfg.lr_final, eval_every=cfg.epochs, seed=int(seed), progress=progress)
    fit(model, task, tc, None, desc="retrain")
    return model.eval()


def heldout_metrics(model, test: dict, free) -> dict:
    """Errors of ``model`` on a labelled test set (frames dict): the medians / p90 of
    :func:`cgsurrogate.surrogate.train.potential_metrics.summarize` plus the pooled force RMSE / RMS."""
    from cgsurrogate.surrogate.train.potential_metrics import predict_energy_forces, summarize

    E, F = predict_energy_forces(model, test["positions"], test["params"])
    Et, Ft = test["energies"].numpy(), test["forces"].numpy()
    out = summarize(E, F, Et, Ft, free)
    d = (F - Ft)[:, free]
    out["force_rmse_over_rms_pooled"] = float(np.sqrt((d ** 2).mean() / (Ft[:, free] ** 2).mean()))
    return out


def active_round(model, train: dict, meta: dict, cfg: ActiveLearningConfig, rng, progress: bool = False) -> dict:
    """Propose, score and select one round's configurations (steps 1-3 of the module docstring).

    Returns
    -------
    dict with ``positions``, ``params``, ``energies`` [k, N], ``forces`` (the selected, labelled),
    ``scores`` (their force errors), ``pool_scores`` (all candidates'), ``kinds``, ``dropped``.
    """
    from cgsurrogate.surrogate.train.active_learning_candidates import propose_candidates

    cand = propose_candidates(model, train["positions"], meta, cfg.candidates, rng, md_steps=cfg.md_steps,
                              relax_iterations=cfg.relax_iterations, progress=progress)
    if len(cand["positions"]) == 0:
        raise CGSurrogateError("active learning: every candidate trajectory diverged")
    free = free_mask(meta, cand["positions"].shape[1])
    sc = score_configurations(model, cand["positions"], cand["params"], free)
    pick = select(sc["force_rel_rmse"], cfg.per_round, cfg.strategy, rng)
    return {"positions": cand["positions"][pick], "params": cand["params"][pick], "energies": sc["energies"][pick],
            "forces": sc["forces"][pick], "scores": sc["force_rel_rmse"][pick], "pool_scores": sc["force_rel_rmse"],
            "kinds": [cand["kinds"][i] for i in pick], "dropped": cand["dropped"]}


def _fingerprint(frames: dict) -> str:
    h = hashlib.sha256()
    for k in ("positions", "params", "energies"):
        h.update(np.ascontiguousarray(frames[k].numpy()).tobytes())
    return h.hexdigest()[:16]


def run_active_learning(initial: dict, test: dict, meta: dict, out_dir, cfg: ActiveLearningConfig | None = None,
                        progress: bool = True) -> list[dict]:
    """Round 0 (the model trained on ``initial``) then ``cfg.rounds`` active rounds; resumable.

    Parameters
    ----------
    initial, test : frames dicts (:func:`read_frames`): the starting training data and a fixed,
        labelled test set (e.g. off-grid strengths, perturbed and MD configurations)
    meta : dataset metadata (clamp and load nodes, protocol load, mass) of the initial data
    out_dir : folder of the rounds (``round_<r>/model.pt``, ``record.json``, ``data/``)
    cfg : ActiveLearningConfig

    Returns
    -------
    list of per-round records: ``round``, ``train_size``, ``test`` (:func:`heldout_metrics`),
    ``selected_scores`` (force errors of the labelled configurations under the previous model),
    ``pool_score_median``, ``kinds``, ``dropped``, ``wall_s``.
    """
    import time

    from cgsurrogate.core.atomic import write_json_atomic
    from cgsurrogate.surrogate.gcn.potential import load_potential, save_potential

    cfg = (cfg or ActiveLearningConfig()).check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # every setting but the number of rounds identifies the run (a rerun with more rounds extends it)
    settings = {"config": {k: v for k, v in asdict(cfg).items() if k != "rounds"},
                "initial": _fingerprint(initial), "test": _fingerprint(test)}
    spath = out / "settings.json"
    if spath.is_file() and json.loads(spath.read_text()) != settings:
        raise CGSurrogateError(f"{out}: holds an active-learning run with other settings or data; use a new folder")
    write_json_atomic(spath, settings)
    free = free_mask(meta, initial["positions"].shape[1])
    records, parts, model = [], [initial], None
    rounds = range(cfg.rounds + 1)
    if progress:
        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc=f"active learning ({cfg.strategy})", unit="round")
    for r in rounds:
        rdir = out / f"round_{r:02d}"
        if (rdir / "record.json").is_file() and (rdir / "model.pt").is_file():
            rec = json.loads((rdir / "record.json").read_text())
            if r > 0:
                parts.append(read_frames(rdir / "data"))
            model = load_potential(rdir / "model.pt")
            records.append(rec)
            continue
        t0 = time.perf_counter()
        rdir.mkdir(exist_ok=True)
        rec = {"round": r}
        if r > 0:
            rng = np.random.default_rng([int(cfg.seed), r])
            sel = active_round(model, concat_frames(parts), meta, cfg, rng, progress)
            write_labelled(rdir / "data", sel["positions"], sel["params"], sel["energies"], sel["forces"], meta,
                           {"round": r, "strategy": cfg.strategy, "kinds": sel["kinds"]})
            parts.append(read_frames(rdir / "data"))
            rec.update(selected_scores=[float(v) for v in sel["scores"]], kinds=sel["kinds"], dropped=sel["dropped"],
                       pool_score_median=float(np.median(sel["pool_scores"])),
                       pool_score_max=float(np.max(sel["pool_scores"])))
        train = concat_frames(parts)
        model = train_model(train, cfg, cfg.seed, progress=False)
        rec.update(train_size=int(train["positions"].shape[0]), test=heldout_metrics(model, test, free),
                   wall_s=time.perf_counter() - t0)
        save_potential(rdir / "model.pt", model, {"active_learning": {"round": r, "strategy": cfg.strategy}})
        write_json_atomic(rdir / "record.json", rec)
        records.append(rec)
    return records


__all__ = ["STRATEGIES", "ActiveLearningConfig", "free_mask", "score_configurations", "select", "write_labelled",
           "read_frames", "concat_frames", "train_model", "heldout_metrics", "active_round", "run_active_learning"]
