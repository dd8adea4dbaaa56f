"""Errors of an energy model against the exact field, per configuration (issue 12's measures).

For configurations ``x [M, N, 3]`` nm with strengths ``s [M, 5]`` and exact labels (total energy
``E [M]`` kJ/mol, forces ``F [M, N, 3]`` kJ/mol/nm) and a model's prediction ``E', F'``:

* ``force_cosine``: ``sum_i F_i . F'_i / (|F| |F'|)`` over the whole configuration (3N vector);
* ``force_rel_rmse``: ``RMSE(F' - F) / RMS(F)`` over the configuration's free particles;
* ``energy_rel_error``: ``|E' - E| / |E|`` of the total energy;
* medians, 90th percentiles and the Pearson correlation of ``E'`` with ``E`` over configurations.

Clamped particles are excluded from the force measures when ``free`` is given (their forces are
balanced by the clamp and play no role in dynamics).
"""
from __future__ import annotations

import numpy as np
import torch


def predict_energy_forces(model, positions, params, batch_size: int = 8):
    """``(E [M], F [M, N, 3])`` float64 numpy from any energy model (autograd forces)."""
    E, F = [], []
    pos = torch.as_tensor(np.asarray(positions, np.float64))
    par = torch.as_tensor(np.asarray(params, np.float64))
    for s in range(0, pos.shape[0], batch_size):
        x = pos[s:s + batch_size].clone().requires_grad_(True)
        with torch.enable_grad():
            total, _ = model(x, par[s:s + batch_size])
            (g,) = torch.autograd.grad(total.sum(), x)
        E.append(total.detach().double().numpy())
        F.append(-g.double().numpy())
    return np.concatenate(E), np.concatenate(F)


def per_config_errors(E_pred, F_pred, E_true, F_true, free=None) -> dict:
    """Per-configuration arrays ``force_cosine``, ``force_rel_rmse``, ``energy_rel_error`` [M]."""
    Fp, Ft = np.asarray(F_pred), np.asarray(F_true)
    if free is not None:
        Fp, Ft = Fp[:, free], Ft[:, free]
    Fp, Ft = Fp.reshape(len(Fp), -1), Ft.reshape(len(Ft), -1)
    dot = (Fp * Ft).sum(1)
    cos = dot / np.maximum(np.linalg.norm(Fp, axis=1) * np.linalg.norm(Ft, axis=1), 1e-300)
    rel = np.sqrt(((Fp - Ft) ** 2).mean(1)) / np.maximum(np.sqrt((Ft ** 2).mean(1)), 1e-300)
    erel = np.abs(np.asarray(E_pred) - np.asarray(E_true)) / np.maximum(np.abs(np.asarray(E_true)), 1e-300)
    return {"force_cosine": cos, "force_rel_rmse": rel, "energy_rel_error": erel}


def summarize(E_pred, F_pred, E_true, F_true, free=None) -> dict:
    """Medians / 90th percentiles of :func:`per_config_errors` and the energy Pearson (plain floats)."""
    e = per_config_errors(E_pred, F_pred, E_true, F_true, free)
    out = {"configurations": int(len(E_true)),
           "force_cosine_median": float(np.median(e["force_cosine"])),
           "force_cosine_p10": float(np.percentile(e["force_cosine"], 10)),
           "force_rel_rmse_median": float(np.median(e["force_rel_rmse"])),
           "force_rel_rmse_p90": float(np.percentile(e["force_rel_rmse"], 90)),
           "energy_rel_error_median": float(np.median(e["energy_rel_error"])),
           "energy_rel_error_p90": float(np.percentile(e["energy_rel_error"], 90))}
    if len(E_true) > 2 and np.std(E_true) > 0 and np.std(E_pred) > 0:
        out["energy_pearson"] = float(np.corrcoef(E_pred, E_true)[0, 1])
    return out


__all__ = ["predict_energy_forces", "per_config_errors", "summarize"]
