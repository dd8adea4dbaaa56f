"""Errors of a saved GCN-family checkpoint on a microtubule dataset."""
from __future__ import annotations

import torch

from cgsurrogate.core.errors import CGSurrogateError


@torch.no_grad()
def evaluate_checkpoint(checkpoint, data_dir, split: str = "val", batch_size: int = 32) -> dict:
    """Errors of a trained checkpoint on a microtubule dataset.

    Parameters
    ----------
    checkpoint : path of a ``.pt`` written by :func:`train`
    data_dir : dataset folder
    split : {"val", "train", "all"}
        "val"/"train" use the run ids stored in the checkpoint (the dataset must hold them);
        "all" uses every run in ``data_dir``.
    batch_size : int

    Returns
    -------
    dict with ``nmse`` (mean squared error of normalised per-node energies, unitless),
    ``rmse_node_kjmol`` (per-node energy RMSE, kJ/mol), ``mae_total_kjmol`` (mean absolute
    error of the total energy per frame, kJ/mol), ``samples``, ``runs``, ``split``.
    """
    from cgsurrogate.data.microtubule import MicrotubuleDataset

    from cgsurrogate.surrogate.checkpoint import load_checkpoint, rebuild_model

    ck = load_checkpoint(checkpoint)
    model, normalizer, _ = rebuild_model(ck)
    if normalizer is None:
        raise CGSurrogateError(f"{checkpoint}: checkpoint holds no normaliser")
    if split == "all":
        ids = None
    elif split in ("val", "train"):
        ids = ck["dataset"].get(f"{split}_ids")
        if not ids:
            raise CGSurrogateError(f"{checkpoint}: checkpoint records no {split} run ids; use split='all'")
    else:
        raise CGSurrogateError(f"unknown split {split!r}; choose val, train or all")
    ds = MicrotubuleDataset(data_dir, ids)
    se_n = se_k = ae_t = 0.0
    count = frames = 0
    for _, x, y in ds.iter_runs():
        X, Y = torch.from_numpy(x), torch.from_numpy(y)
        for s in range(0, X.shape[0], batch_size):
            xn = normalizer.normalize_x(X[s:s + batch_size]).float()
            pn = model(xn)
            yn = normalizer.normalize_y(Y[s:s + batch_size]).float()
            p = normalizer.denormalize_y(pn.double())
            yt = Y[s:s + batch_size].double()
            se_n += float(((pn - yn) ** 2).sum())
            se_k += float(((p - yt) ** 2).sum())
            ae_t += float((p.sum((1, 2)) - yt.sum((1, 2))).abs().sum())
            count += yn.numel()
            frames += yn.shape[0]
    return {"nmse": se_n / count, "rmse_node_kjmol": (se_k / count) ** 0.5, "mae_total_kjmol": ae_t / frames,
            "samples": frames, "runs": len(ds.run_ids), "split": split, "model": ck["model_name"]}
