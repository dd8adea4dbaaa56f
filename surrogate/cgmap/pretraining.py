"""Masked-atom self-supervised pretraining of the DSGPM encoder, and supervised training from it.

The idea of the DSGPM authors' pretraining (their repository masks atom types and predicts
them): a fraction of the atoms of each batch has its whole atom-feature row (element one-hot
and, for the ``"rich"`` set, the chemistry columns) set to zero; the encoder embeds the masked
graph (degree, cycle indicator and bond classes stay visible) and a linear head on the
embedding of each masked atom predicts its element (cross entropy over
:data:`cgsurrogate.data.molgraph.ELEMENTS`). The embedding concatenates the atom's own
(masked, so zero) features (eq. 3), so the element can only come from the neighbourhood.

Honesty: :func:`pretrain_dsgpm` reads only the molecule graphs it is given; nested
cross-validation (:func:`cgsurrogate.surrogate.cgmap.nested_cv.dsgpm_fit` with ``pretrain``)
passes it the molecules of the outer training folds, never a test-fold molecule, labelled or not.

:func:`cgsurrogate.surrogate.cgmap.training.train_dsgpm` with ``init=`` starts the supervised
training from the pretrained encoder instead of a fresh initialisation; both run the project's
one loop (:func:`cgsurrogate.surrogate.train.loop.fit`).
"""
from __future__ import annotations

import time

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.data.molgraph import ELEMENTS
from cgsurrogate.surrogate.cgmap.features import collate, prepare_graph
from cgsurrogate.surrogate.train.loop import Task, TrainConfig, fit

__all__ = ["training_molecules", "mask_atoms", "MaskedAtomTask", "masked_atom_loss", "pretrain_dsgpm"]


def training_molecules(annotations) -> list:
    """The distinct molecule graphs of annotations (first annotation of each SMILES, in order)."""
    seen, out = set(), []
    for a in annotations:
        if a.smiles not in seen:
            seen.add(a.smiles)
            out.append(a.graph)
    return out


def _check(epochs, mask_fraction) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise CGSurrogateError(f"pretraining epochs must be a positive integer, got {epochs!r}")
    if not (isinstance(mask_fraction, (int, float)) and 0.0 < float(mask_fraction) < 1.0):
        raise CGSurrogateError(f"mask fraction must lie strictly between 0 and 1, got {mask_fraction!r}")


def mask_atoms(batch, fraction: float, rng):
    """Mask atoms of a (numpy) :class:`MolBatch` (on a copy; the batch is not changed).

    Each atom is masked with probability ``fraction`` (at least one atom per batch).

    Returns
    -------
    masked : MolBatch  same graph, ``feats`` rows of the masked atoms set to 0
    index : int64 [M]  masked atoms
    target : int64 [M]  their element index (column of the element one-hot)
    """
    n = batch.feats.shape[0]
    chosen = rng.random(n) < fraction
    if not chosen.any():
        chosen[rng.integers(n)] = True
    index = np.flatnonzero(chosen).astype(np.int64)
    target = batch.feats[index, :len(ELEMENTS)].argmax(axis=1).astype(np.int64)
    feats = batch.feats.copy()
    feats[index] = 0.0
    masked = type(batch)(feats, batch.extra, batch.src, batch.dst, batch.edge_class, batch.sizes, batch.offsets)
    return masked, index, target


def _pretrainer(model):
    """The encoder with a linear element head on its embedding (one module for the loop's optimiser)."""
    import torch.nn as nn

    class Pretrainer(nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder
            self.head = nn.Linear(encoder.embedding_dim, len(ELEMENTS))

        def forward(self, batch, index):
            return self.head(self.encoder(batch)[index])

    return Pretrainer(model)


def _masked_loss(pretrainer, prepared, fraction, rng):
    import torch
    import torch.nn.functional as F

    masked, index, target = mask_atoms(collate(prepared), fraction, rng)
    logits = pretrainer(masked.torch(), torch.from_numpy(index))
    tgt = torch.from_numpy(target)
    return F.cross_entropy(logits, tgt), (logits.argmax(1) == tgt).float().mean().item()


class MaskedAtomTask(Task):
    """Masked-atom prediction over molecule graphs for :func:`cgsurrogate.surrogate.train.loop.fit`.

    The model is the encoder with its head (:func:`_pretrainer`). Masks are drawn from a
    generator seeded by ``(seed, epoch)``. Without validation data the metric is minus the
    epoch, so the loop keeps the last epoch.
    """

    name = "dsgpm-pretrain"

    def __init__(self, prepared, mask_fraction: float, seed: int = 0):
        self.prepared, self.mask_fraction, self.seed = prepared, float(mask_fraction), int(seed)
        self.num_train = len(prepared)
        self._rng = np.random.default_rng([self.seed, 0, 11])
        self._sums, self._n, self._t0, self._epoch = np.zeros(2), 0, 0.0, 0

    def begin_epoch(self, model, epoch):
        self._rng = np.random.default_rng([self.seed, int(epoch), 11])
        self._sums, self._n, self._t0, self._epoch = np.zeros(2), 0, time.perf_counter(), epoch
        return None

    def loss(self, model, idx):
        loss, acc = _masked_loss(model, [self.prepared[i] for i in idx.tolist()], self.mask_fraction, self._rng)
        self._sums += (loss.item(), acc)
        self._n += 1
        return loss, loss.item()

    def evaluate(self, model) -> dict:
        n = max(self._n, 1)
        return {"val": -float(self._epoch), "loss": self._sums[0] / n, "accuracy": self._sums[1] / n,
                "seconds": time.perf_counter() - self._t0}

    def settings(self) -> dict:
        return {"mask_fraction": self.mask_fraction}

    def save_model(self, path, model, metrics):
        from cgsurrogate.surrogate.cgmap.checkpoint import save_dsgpm

        save_dsgpm(path, model.encoder, {"pretraining": {k: v for k, v in metrics.items() if k != "val"}})


def masked_atom_loss(model, head, graphs, mask_fraction: float = 0.15, seed: int = 0) -> float:
    """Mean masked-atom cross entropy (nats) of an encoder and head on molecule graphs, one fixed mask draw.

    Parameters
    ----------
    model : DSGPM;  head : torch Linear [embedding_dim -> len(ELEMENTS)]
    graphs : list of MolGraph
    """
    import torch

    _check(1, mask_fraction)
    pre = _pretrainer(model)
    pre.head = head
    prepared = [prepare_graph(g, feature_set=model.config["feature_set"]) for g in graphs]
    with torch.no_grad():
        loss, _ = _masked_loss(pre, prepared, mask_fraction, np.random.default_rng([int(seed), 99]))
    return float(loss)


def pretrain_dsgpm(graphs, *, epochs: int, mask_fraction: float = 0.15, batch_size: int = 16, lr: float = 1e-3,
                   seed: int = 0, model_config: dict | None = None, progress: bool = False, return_head: bool = False):
    """Masked-atom pretraining of a freshly initialised DSGPM encoder on molecule graphs.

    Parameters
    ----------
    graphs : list of MolGraph
        The only molecules read (in nested CV: the outer training folds' molecules).
    epochs : int >= 1  passes over ``graphs`` (Adam, constant ``lr``; batches of ``batch_size`` molecules)
    mask_fraction : float in (0, 1)  probability that an atom is masked
    seed : int  initialisation (``torch.manual_seed(seed)``), batch order and masks
    model_config : dict, optional  :class:`DSGPM` keyword arguments (``feature_set`` included)
    return_head : bool  also return the element head (torch Linear)

    Returns
    -------
    model : DSGPM (eval mode) with the pretrained weights
    history : list of dict per epoch: epoch, loss (mean cross entropy, nats), accuracy (masked
        atoms whose element was predicted), seconds
    (head, when ``return_head``)
    """
    import torch

    from cgsurrogate.surrogate.cgmap.network import DSGPM

    _check(epochs, mask_fraction)
    graphs = list(graphs)
    if not graphs:
        raise CGSurrogateError("pretraining needs at least one molecule")
    torch.manual_seed(seed)
    model = DSGPM(**(model_config or {}))
    prepared = [prepare_graph(g, feature_set=model.config["feature_set"]) for g in graphs]
    pre = _pretrainer(model)
    task = MaskedAtomTask(prepared, mask_fraction, seed)
    cfg = TrainConfig(epochs=int(epochs), batch_size=batch_size, lr=lr, eval_every=1, seed=seed, progress=progress)
    res = fit(pre, task, cfg, desc="dsgpm-pretrain")
    history = [{k: h[k] for k in ("epoch", "loss", "accuracy", "seconds")} for h in res["history"]]
    model.eval()
    return (model, history, pre.head) if return_head else (model, history)
