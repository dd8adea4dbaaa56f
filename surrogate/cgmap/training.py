"""Training DSGPM on annotated mappings, with the epoch selected on validation molecules.

Why this loop is not the project's trainer (:mod:`cgsurrogate.surrogate.train`): that
trainer regresses per-node targets (energies, positions) with an MSE-type loss over
tensor datasets and keeps the checkpoint with the lowest validation loss. DSGPM learns a
metric: its loss is the cut-triplet + non-cut-pair loss over bonds of molecules of varying
size batched as one disjoint graph (:class:`cgsurrogate.surrogate.cgmap.features.MolBatch`),
and its selection score is not a loss at all but the agreement (AMI, cut F1) of spectral
partitions of the learned affinity with expert mappings, computed with numpy per
molecule. Neither the batches nor the selection fit the regression trainer's contract.

Every choice made here (the epoch) uses only the ``train`` and ``val`` annotations it is
given; nested cross-validation (:mod:`cgsurrogate.surrogate.cgmap.nested_cv`) passes it
only training-fold molecules.
"""
from __future__ import annotations

import time

import numpy as np

from cgsurrogate.surrogate.cgmap.features import collate, prepare_graph

__all__ = ["torch_embedder", "train_dsgpm"]


def torch_embedder(model):
    """A numpy :class:`Embedder` with the current weights of a torch DSGPM (or a list: an ensemble)."""
    from cgsurrogate.surrogate.cgmap.inference import Embedder

    models = model if isinstance(model, (list, tuple)) else [model]
    return Embedder(models[0].config, [{k: v.detach().cpu().double().numpy() for k, v in m.state_dict().items()}
                                      for m in models])


def train_dsgpm(train, val=None, *, epochs: int = 30, batch_size: int = 16, lr: float = 1e-3,
                margin: float = 1.0, pair_weight: float = 0.1, seed: int = 0, eval_every: int = 1,
                model_config: dict | None = None, scorer=None, progress: bool = False):
    """Train DSGPM (Adam) on annotations; keep the epoch with the best validation score.

    Parameters
    ----------
    train : list of HAMAnnotation
    val : list of HAMAnnotation, optional
        Validation annotations (other molecules than ``train``; never a test fold).
    epochs, batch_size, lr : Adam settings (batch = molecules per step)
    margin, pair_weight : alpha and lambda of the loss (eq. 8)
    seed : int  initialisation and shuffling
    eval_every : int  validate every this many epochs (and at the last)
    model_config : dict, optional  :class:`DSGPM` keyword arguments
    scorer : callable, optional
        ``scorer(embedder, val) -> float`` (higher is better); default: paper-protocol mean of
        AMI and cut F1 (:func:`cgsurrogate.surrogate.cgmap.metrics.selection_score`).
    progress : bool  print one line per validation

    Returns
    -------
    model : DSGPM (eval mode; the best validation state if ``val`` is given, else the last)
    history : list of dict per epoch: epoch, loss, triplet, pair, seconds, val_score (when validated), selected.
    """
    import torch

    from cgsurrogate.surrogate.cgmap.network import DSGPM, dsgpm_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = DSGPM(**(model_config or {}))
    fs = model.config["feature_set"]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    prepared = [prepare_graph(a.graph, a.labels, feature_set=fs) for a in train]
    if scorer is None and val:
        from cgsurrogate.surrogate.cgmap.metrics import selection_score as scorer
    history, best_score, best_state, best_epoch = [], -np.inf, None, 0
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = rng.permutation(len(prepared))
        sums = np.zeros(3)
        nb = 0
        for s in range(0, len(order), batch_size):
            batch = collate([prepared[i] for i in order[s:s + batch_size]]).torch()
            loss, lt, lp = dsgpm_loss(model(batch), batch, margin, pair_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums += (loss.item(), lt.item(), lp.item())
            nb += 1
        rec = dict(epoch=epoch, loss=sums[0] / nb, triplet=sums[1] / nb, pair=sums[2] / nb,
                   seconds=time.perf_counter() - t0)
        if val and (epoch % eval_every == 0 or epoch == epochs):
            rec["val_score"] = float(scorer(torch_embedder(model), val))
            if rec["val_score"] > best_score:
                best_score, best_epoch = rec["val_score"], epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if progress:
                print(f"  epoch {epoch}: loss {rec['loss']:.4f} val {rec['val_score']:.4f}", flush=True)
        history.append(rec)
    if best_state is not None:
        model.load_state_dict(best_state)
    for rec in history:
        rec["selected"] = rec["epoch"] == (best_epoch if best_state is not None else epochs)
    return model.eval(), history
