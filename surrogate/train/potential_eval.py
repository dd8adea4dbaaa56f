"""Evaluation of an invariant potential checkpoint on dataset folders (``cli.py evaluate``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def is_potential_checkpoint(path) -> bool:
    """True when ``path`` names a shipped model or is a checkpoint of kind ``invariant-potential``."""
    from cgsurrogate.surrogate.pretrained import resolve_pretrained

    p = resolve_pretrained(path)
    if not Path(p).is_file():
        return False
    try:
        import torch

        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is "not ours"; the real loader reports it
        return False
    return isinstance(obj, dict) and obj.get("kind") == "invariant-potential"


def evaluate_potential(checkpoint, data, run_ids=None) -> dict:
    """Force and energy errors of an invariant potential on every run of a dataset folder.

    Returns
    -------
    dict of :func:`cgsurrogate.surrogate.train.potential_metrics.summarize` plus ``runs``.
    """
    from cgsurrogate.data.microtubule import list_runs, load_run
    from cgsurrogate.simulate.microtubule import microtubule_spec
    from cgsurrogate.simulate.sweep import run_path
    from cgsurrogate.surrogate.gcn.potential import load_potential
    from cgsurrogate.surrogate.pretrained import resolve_pretrained
    from cgsurrogate.surrogate.train.potential_metrics import predict_energy_forces, summarize

    model = load_potential(resolve_pretrained(checkpoint))
    ids = list_runs(data) if run_ids is None else list(run_ids)
    if not ids:
        from cgsurrogate.core.errors import CGSurrogateError

        raise CGSurrogateError(f"{data}: dataset has no completed runs")
    X, P, E, F = [], [], [], []
    for rid in ids:
        r = load_run(run_path(data, rid))
        n = r["positions"].shape[0]
        X.append(r["positions"]), P.append(np.broadcast_to(r["params"], (n, 5)))
        E.append(r["energies"].sum(1)), F.append(r["forces"])
    X, P, E, F = (np.concatenate(a) for a in (X, P, E, F))
    Ep, Fp = predict_energy_forces(model, X, P)
    free = np.ones(X.shape[1], bool)
    free[list(microtubule_spec().clamp_nodes)] = False
    out = summarize(Ep, Fp, E, F, free)
    out["runs"] = len(ids)
    return out


__all__ = ["is_potential_checkpoint", "evaluate_potential"]
