"""Checkpoints of trained surrogates (the GCN family and the EGHN energy head).

Written and read through the project's one checkpoint format,
:mod:`cgsurrogate.core.checkpoint_io` (format tag, kind, version, ``weights_only=True``, atomic
write, one-line errors). The kind is ``"gcn-surrogate"``, or ``"eghn-energy"`` for the EGHN energy
head (model name ``"eghn-energy"``). Payload keys:

``model_name``, ``model_config`` (plain dict; ``build_model(hierarchy=h, **model_config)``
rebuilds the architecture), ``state_dict`` (weights, including an A-GPCN's trained P),
``normalizer`` (per-node mean/std tensors, see ``cgsurrogate.data.microtubule.Normalizer``),
``hierarchy`` (``Hierarchy.state_dict()`` or ``None`` for the default one of the registry),
``system_spec`` (:meth:`cgsurrogate.core.system_spec.SystemSpec.to_dict`: particle count,
parameter names and units, clamp and load nodes, masses), ``units`` (of inputs and outputs),
``dataset`` (``path``, ``hash``, ``parameter_ranges``, run ids), ``metrics`` (e.g. best validation
NMSE, epochs, FLOPs), ``optimizer`` (optional Adam state, for resuming) and ``extra`` (optional
plain dict, e.g. the training state; ``active_levels`` when a coarse-to-fine model was saved
before all its levels were switched on, applied by :func:`rebuild_model`).

Files of the earlier format (a bare dict with ``format == "cgsurrogate-gcn-checkpoint"``) are
refused with a message saying so; retrain, or re-save with this version.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cgsurrogate.core.checkpoint_io import read_checkpoint, write_checkpoint
from cgsurrogate.core.errors import CGSurrogateError, InputFileError
from cgsurrogate.core.system_spec import SystemSpec

#: Checkpoint kind of each model name (any other name is a GCN-family model).
MODEL_KINDS = {"eghn-energy": "eghn-energy", "gcn": "gcn-surrogate"}
SURROGATE_KINDS = ("gcn-surrogate", "eghn-energy")
#: Format tag of the files (``core.checkpoint_io.FORMAT_TAG``).
FORMAT_NAME = "cgsurrogate"
FORMAT_VERSION = 1
#: Tag of the earlier, no longer read, format.
OLD_FORMAT_NAME = "cgsurrogate-gcn-checkpoint"
#: Units of what a surrogate consumes and produces (before normalisation).
UNITS = {
    "positions": "nm",
    "velocities": "nm/ps",
    "params": "the units of system_spec['param_units']",
    "energy": "kJ/mol (per node)",
    "model_io": "per-node, per-feature standardised with the stored normalizer",
}
REQUIRED_KEYS = ("model_name", "model_config", "state_dict", "normalizer", "hierarchy", "system_spec",
                 "units", "dataset", "metrics")
#: Position and velocity columns in front of the parameters in a feature array [M, N, 6 + P].
_POS_VEL = 6


def dataset_fingerprint(root, run_ids=None) -> dict:
    """Identify a dataset folder.

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


def parameter_ranges(X, names=None) -> dict:
    """Min/max of each strength parameter over samples ``X [M, N, 6 + P]`` (feature columns
    ``6 .. 6 + P``: positions, velocities, then the parameters), as ``{name: [min, max]}``.

    Parameters
    ----------
    X : Tensor [M, N, 6 + P]
    names : sequence of P str, or a SystemSpec (its ``param_names``), optional
        Default: the microtubule's five names (the dataset the trainers read today; pass the
        spec's names for any other system).
    """
    if isinstance(names, SystemSpec):
        names = names.param_names
    if names is None:
        from cgsurrogate.simulate.microtubule import microtubule_spec

        names = microtubule_spec().param_names
    P = len(names)
    if X.shape[-1] != _POS_VEL + P:
        raise CGSurrogateError(f"parameter_ranges: features have {X.shape[-1]} columns, expected 6 + {P}")
    p = X[..., _POS_VEL:_POS_VEL + P].reshape(-1, P)
    return {n: [float(p[:, i].min()), float(p[:, i].max())] for i, n in enumerate(names)}


def _state_of(obj):
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj
    return obj.state_dict()


def save_checkpoint(path, model, normalizer, hierarchy, *, dataset_info: dict, metrics: dict,
                    extra: dict | None = None, optimizer=None, system_spec=None) -> Path:
    """Write a surrogate checkpoint atomically (:func:`cgsurrogate.core.checkpoint_io.write_checkpoint`).

    Parameters
    ----------
    path : path of the ``.pt`` file
    model : module built by ``cgsurrogate.surrogate.gcn.registry.build_model`` (has ``config``),
        or an energy model with ``config`` (the EGHN energy head)
    normalizer : Normalizer or its state dict
    hierarchy : Hierarchy, its state dict, or None (default hierarchy of the registry)
    dataset_info : dict (``path``, ``hash``, ``parameter_ranges``, ...; plain values)
    metrics : dict of plain values
    extra : dict of plain values/tensors, optional
    optimizer : torch optimizer, optional (its state is stored for resuming)
    system_spec : SystemSpec or dict, optional
        The system the model describes. Default: ``model.system_spec`` when it has one, else the
        microtubule's (``cgsurrogate.simulate.microtubule.microtubule_spec()``, what the trainers
        train on today; pass the spec for any other system).

    Returns
    -------
    Path of the checkpoint written.

    Raises
    ------
    CGSurrogateError
        The model has no build config, the spec does not fit the normaliser, a value cannot be
        stored, or the path cannot be written.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "name" not in config:
        raise CGSurrogateError("model has no build_model config; build it with cgsurrogate.surrogate.gcn.registry.build_model")
    spec = system_spec if system_spec is not None else getattr(model, "system_spec", None)
    if spec is None:
        from cgsurrogate.simulate.microtubule import microtubule_spec

        spec = microtubule_spec()
    spec = SystemSpec.from_dict(spec, where=f"{path}: system_spec")
    norm = _state_of(normalizer)
    _check_spec_fits(spec, norm, f"{path}")
    payload = {
        "model_name": config["name"],
        "model_config": dict(config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "normalizer": norm,
        "hierarchy": _state_of(hierarchy),
        "system_spec": spec.to_dict(),
        "units": dict(UNITS),
        "dataset": dict(dataset_info),
        "metrics": dict(metrics),
        "extra": extra,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
    }
    kind = MODEL_KINDS.get(config["name"], MODEL_KINDS["gcn"])
    return write_checkpoint(path, kind, payload, version=FORMAT_VERSION)


def load_checkpoint(path, kinds=SURROGATE_KINDS) -> dict:
    """Load and validate a surrogate checkpoint (``torch.load(weights_only=True)``).

    Returns
    -------
    dict
        The payload (see the module docstring) plus ``kind`` and ``format_version``;
        ``system_spec`` is checked (:meth:`SystemSpec.from_dict`) and stays a plain dict.

    Raises
    ------
    InputFileError
        One line naming the file: missing, corrupt or not a cgsurrogate file, another kind,
        the earlier format, a newer version, a missing key or a bad system specification.
    """
    path = Path(path)
    try:
        kind, version, ckpt = read_checkpoint(path, kinds, max_version=FORMAT_VERSION)
    except InputFileError as exc:
        if "format tag" in str(exc) and _is_old_format(path):
            raise InputFileError(f"{path}: a checkpoint of an earlier cgsurrogate format ('{OLD_FORMAT_NAME}'), "
                                 "which this version no longer reads; retrain the model (or re-save it with "
                                 "this version)") from None
        raise
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise InputFileError(f"{path}: corrupt checkpoint (lacks {', '.join(missing)})")
    try:
        spec = SystemSpec.from_dict(ckpt["system_spec"], where=f"{path}: system_spec")
        _check_spec_fits(spec, ckpt["normalizer"], str(path))
    except CGSurrogateError as exc:
        raise InputFileError(str(exc)) from None
    ckpt = dict(ckpt)
    ckpt.setdefault("optimizer", None)
    ckpt.setdefault("extra", None)
    ckpt["kind"], ckpt["format_version"] = kind, version
    return ckpt


def checkpoint_spec(ckpt: dict) -> SystemSpec:
    """The :class:`SystemSpec` of a checkpoint loaded with :func:`load_checkpoint`."""
    return SystemSpec.from_dict(ckpt["system_spec"])


def rebuild_model(ckpt: dict):
    """Model (eval mode), normaliser and hierarchy from a loaded checkpoint.

    Returns
    -------
    (model, normalizer, hierarchy) ; hierarchy is None when the checkpoint stored none
    (the model was then built on the registry's default hierarchy).

    Raises
    ------
    CGSurrogateError
        The weights do not fit the stored architecture.
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
        raise CGSurrogateError(f"checkpoint weights do not fit model {name!r}: {str(exc).splitlines()[0]}") from None
    model.eval()
    active = (ckpt.get("extra") or {}).get("active_levels")
    if active is not None and hasattr(model, "active_levels"):
        model.active_levels = tuple(int(i) for i in active)
    normalizer = Normalizer.from_state_dict(ckpt["normalizer"]) if ckpt.get("normalizer") is not None else None
    return model, normalizer, hierarchy


def describe(ckpt: dict) -> str:
    """One-paragraph human-readable summary of a loaded checkpoint (str)."""
    return json.dumps({k: ckpt[k] for k in ("model_name", "model_config", "metrics", "units")}, indent=1, default=str)


def _check_spec_fits(spec: SystemSpec, normalizer_state, where: str) -> None:
    """The spec's particle and parameter counts must match the normaliser's ``x_mean [N, 6 + P]``."""
    if not isinstance(normalizer_state, dict):
        return
    xm = normalizer_state.get("x_mean")
    shape = tuple(getattr(xm, "shape", ()))
    if len(shape) == 2 and shape != (spec.num_particles, _POS_VEL + spec.num_params):
        raise CGSurrogateError(f"{where}: system spec {spec.name!r} ({spec.num_particles} particles, "
                               f"{spec.num_params} parameters) does not fit the normaliser {list(shape)}")


def _is_old_format(path: Path) -> bool:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # only asked to refine an error message
        return False
    return isinstance(obj, dict) and obj.get("format") == OLD_FORMAT_NAME


__all__ = ["save_checkpoint", "load_checkpoint", "rebuild_model", "checkpoint_spec", "dataset_fingerprint",
           "parameter_ranges", "FORMAT_NAME", "FORMAT_VERSION", "UNITS", "MODEL_KINDS", "SURROGATE_KINDS"]
