"""Checkpoints of trained GCN-family surrogates.

A checkpoint is one file written with ``torch.save`` of a dict holding only tensors and
plain python values, so it loads with ``torch.load(path, weights_only=True)`` (nothing is
unpickled). Keys:

``format`` ("cgsurrogate-gcn-checkpoint"), ``format_version`` (int, currently 1),
``model_name``, ``model_config`` (plain dict; ``build_model(hierarchy=h, **model_config)``
rebuilds the architecture), ``state_dict`` (weights, including an A-GPCN's trained P),
``normalizer`` (per-node mean/std tensors, see ``cgsurrogate.data.microtubule.Normalizer``),
``hierarchy`` (``Hierarchy.state_dict()`` or ``None`` for the default microtubule one),
``units`` (of inputs and outputs), ``dataset`` (``path``, ``hash``, ``parameter_ranges``,
run ids), ``metrics`` (e.g. best validation NMSE, epochs, FLOPs), ``optimizer``
(optional Adam state, for resuming) and ``extra`` (optional plain dict, e.g. the training
state; ``active_levels`` when a coarse-to-fine model was saved before all its levels were
switched on, applied by :func:`rebuild_model`).

Files are written to a temporary name in the same folder and moved into place with
``os.replace`` so an interrupted save never leaves a truncated checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

FORMAT_NAME = "cgsurrogate-gcn-checkpoint"
FORMAT_VERSION = 1
#: Units of what a surrogate consumes and produces (before normalisation).
UNITS = {
    "positions": "nm",
    "velocities": "nm/ps",
    "params": "zJ/nm^2 (LatAssoc, LongAssoc), zJ/rad^2 (LatAngle, LongAngle, QuadAngles)",
    "energy": "kJ/mol (per node)",
    "model_io": "per-node, per-feature standardised with the stored normalizer",
}
REQUIRED_KEYS = ("format", "format_version", "model_name", "model_config", "state_dict", "normalizer",
                 "hierarchy", "units", "dataset", "metrics")


def dataset_fingerprint(root, run_ids=None) -> dict:
    """Identify a microtubule dataset folder.

    Parameters
    ----------
    root : path
        Dataset folder (``metadata.json``, ``runs/``).
    run_ids : sequence of int, optional
        Runs used (recorded in the result).

    Returns
    -------
    dict with ``path`` (str, absolute), ``hash`` (sha256 hex of ``metadata.json`` and the
    names and sizes of the run files) and ``run_ids`` (list of int or None).
    """
    root = Path(root)
    h = hashlib.sha256()
    meta = root / "metadata.json"
    if meta.is_file():
        h.update(meta.read_bytes())
    runs = root / "runs"
    if runs.is_dir():
        for p in sorted(runs.glob("run_*.npz")):
            h.update(f"{p.name}:{p.stat().st_size};".encode())
    return {"path": str(root.resolve()), "hash": h.hexdigest(),
            "run_ids": None if run_ids is None else [int(r) for r in run_ids]}


def parameter_ranges(X: torch.Tensor, names=None) -> dict:
    """Min/max of the five strength parameters (feature columns 6-10) over samples
    ``X [M, N, 11]`` (zJ units), as ``{name: [min, max]}``."""
    if names is None:
        from cgsurrogate.simulate.microtubule import PARAM_NAMES as names
    p = X[..., 6:11].reshape(-1, 5)
    return {n: [float(p[:, i].min()), float(p[:, i].max())] for i, n in enumerate(names)}


def _state_of(obj):
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj
    return obj.state_dict()


def save_checkpoint(path, model, normalizer, hierarchy, *, dataset_info: dict, metrics: dict,
                    extra: dict | None = None, optimizer=None) -> Path:
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : path of the ``.pt`` file
    model : module built by ``cgsurrogate.surrogate.gcn.registry.build_model`` (has ``config``)
    normalizer : Normalizer or its state dict
    hierarchy : Hierarchy, its state dict, or None (default microtubule hierarchy)
    dataset_info : dict (``path``, ``hash``, ``parameter_ranges``, ...; plain values)
    metrics : dict of plain values
    extra : dict of plain values/tensors, optional
    optimizer : torch optimizer, optional (its state is stored for resuming)

    Returns
    -------
    Path of the written file.
    """
    path = Path(path)
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError("model has no build_model config; build it with cgsurrogate.surrogate.gcn.registry.build_model")
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_name": config["name"],
        "model_config": dict(config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "normalizer": _state_of(normalizer),
        "hierarchy": _state_of(hierarchy),
        "units": dict(UNITS),
        "dataset": dict(dataset_info),
        "metrics": dict(metrics),
        "extra": extra,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path) -> dict:
    """Load and validate a checkpoint (``torch.load(weights_only=True)``).

    Raises
    ------
    ValueError
        Naming the file, when it is missing, unreadable, not a cgsurrogate GCN checkpoint,
        of another format version, or lacks a required key.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt/foreign files
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a cgsurrogate GCN checkpoint")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format version {ckpt.get('format_version')!r}, this version reads {FORMAT_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {', '.join(missing)}")
    ckpt.setdefault("optimizer", None)
    ckpt.setdefault("extra", None)
    return ckpt


def rebuild_model(ckpt: dict):
    """Model (eval mode), normaliser and hierarchy from a loaded checkpoint.

    Returns
    -------
    (model, normalizer, hierarchy) ; hierarchy is None when the checkpoint stored none
    (the model was then built on the default microtubule hierarchy).
    """
    from cgsurrogate.data.microtubule import Normalizer
    from cgsurrogate.surrogate.gcn.registry import build_model

    hierarchy = None
    if ckpt.get("hierarchy") is not None:
        from cgsurrogate.surrogate.graphs.hierarchy import Hierarchy

        hierarchy = Hierarchy.from_state_dict(ckpt["hierarchy"])
    cfg = dict(ckpt["model_config"])
    name = cfg.pop("name")
    model = build_model(name, hierarchy=hierarchy, **cfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"checkpoint weights do not fit model {name!r}: {str(exc).splitlines()[0]}") from None
    model.eval()
    active = (ckpt.get("extra") or {}).get("active_levels")
    if active is not None and hasattr(model, "active_levels"):
        model.active_levels = tuple(int(i) for i in active)
    normalizer = Normalizer.from_state_dict(ckpt["normalizer"]) if ckpt.get("normalizer") is not None else None
    return model, normalizer, hierarchy


def describe(ckpt: dict) -> str:
    """One-paragraph human-readable summary of a loaded checkpoint (str)."""
    return json.dumps({k: ckpt[k] for k in ("model_name", "model_config", "metrics", "units")}, indent=1, default=str)


__all__ = ["save_checkpoint", "load_checkpoint", "rebuild_model", "dataset_fingerprint", "parameter_ranges",
           "FORMAT_NAME", "FORMAT_VERSION", "UNITS"]
