"""Training DSGPM on annotated mappings, with the epoch selected on validation molecules, as a task
of the project's one training loop (:func:`cgsurrogate.surrogate.train.loop.fit`).

:class:`DSGPMTask` supplies the cut-triplet + non-cut-pair loss (eq. 8) over batches of molecules
(one disjoint graph, :class:`cgsurrogate.surrogate.cgmap.features.MolBatch`) and, as the validation
metric, minus the selection score (AMI and cut F1 of spectral partitions of the learned affinity
against the expert mappings of the validation molecules), so the loop's "lower is better" keeps
the epoch with the best agreement. Epochs are passes over the training molecules.

Every choice made here (the epoch) uses only the ``train`` and ``val`` annotations it is
given; nested cross-validation (:mod:`cgsurrogate.surrogate.cgmap.nested_cv`) passes it
only training-fold molecules.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.cgmap.features import TRIPLET_MODES, collate, prepare_graph, sample_cut_edge_triplets
from cgsurrogate.surrogate.train.loop import Task, TrainConfig, fit

__all__ = ["torch_embedder", "train_dsgpm"]


def torch_embedder(model):
    """A numpy :class:`Embedder` with the current weights of a torch DSGPM (or a list: an ensemble)."""
    from cgsurrogate.surrogate.cgmap.inference import Embedder

    models = model if isinstance(model, (list, tuple)) else [model]
    return Embedder(models[0].config, [{k: v.detach().cpu().double().numpy() for k, v in m.state_dict().items()}
                                      for m in models])


class DSGPMTask(Task):
    """DSGPM on annotated molecules for :func:`cgsurrogate.surrogate.train.loop.fit`.

    Parameters
    ----------
    prepared : list (one entry per training sample) of lists (annotations) of lists of prepared graphs
        (``prepare_graph(graph, labels, feature_set=...)``): each annotation and, with augmentation,
        its automorphic relabellings. A sample is one annotation (``sampling="annotation"``) or
        all annotations of one molecule (``sampling="molecule"``); each epoch draws, per sample,
        one annotation and one of its relabellings (seeded by ``seed`` and the epoch)
    val : list of HAMAnnotation or None
        Validation annotations; without them every evaluation "improves" (the metric is minus the
        epoch), so the last epoch is kept.
    scorer : callable ``scorer(embedder, val) -> float`` (higher is better)
    margin, pair_weight : alpha and lambda of the loss (eq. 8)
    distance : {"l2", "squared"}  the loss form (:func:`cgsurrogate.surrogate.cgmap.network.dsgpm_loss`)
    triplets : {"all", "per-cut-edge"}
        ``"all"``: every (anchor, positive, negative) of the annotation (the paper's text);
        ``"per-cut-edge"``: each batch draws one triplet per cut bond
        (:func:`cgsurrogate.surrogate.cgmap.features.sample_cut_edge_triplets`, the authors' code),
        from a generator seeded by ``seed`` and the epoch.
    sampling : {"annotation", "molecule"}  what one entry of ``prepared`` is (recorded in the settings)
    """

    name = "dsgpm"

    def __init__(self, prepared, val, scorer, margin: float = 1.0, pair_weight: float = 0.1, seed: int = 0,
                 distance: str = "l2", triplets: str = "all", sampling: str = "annotation"):
        self.sampling = str(sampling)
        self.prepared, self.val, self.scorer, self.distance = prepared, val, scorer, str(distance)
        self.triplets, self._rng = str(triplets), np.random.default_rng(0)
        self.num_train = len(prepared)
        self.margin, self.pair_weight, self.seed = float(margin), float(pair_weight), int(seed)
        self._sums, self._n, self._t0, self._epoch = np.zeros(3), 0, 0.0, 0
        self._pick = [(0, 0)] * len(prepared)

    def begin_epoch(self, model, epoch):
        self._sums, self._n, self._t0, self._epoch = np.zeros(3), 0, time.perf_counter(), epoch
        rng = np.random.default_rng([self.seed, int(epoch), 7])
        picks = []
        for sample in self.prepared:
            a = int(rng.integers(len(sample))) if len(sample) > 1 else 0
            picks.append((a, int(rng.integers(len(sample[a])))))
        self._pick = picks
        self._rng = np.random.default_rng([self.seed, int(epoch), 11])
        return None

    def loss(self, model, idx):
        from cgsurrogate.surrogate.cgmap.network import dsgpm_loss

        graphs = [self.prepared[i][self._pick[i][0]][self._pick[i][1]] for i in idx.tolist()]
        if self.triplets == "per-cut-edge":
            graphs = [replace(g, triplets=sample_cut_edge_triplets(g, self._rng)) for g in graphs]
        batch = collate(graphs).torch()
        loss, lt, lp = dsgpm_loss(model(batch), batch, self.margin, self.pair_weight, self.distance)
        self._sums += (loss.item(), lt.item(), lp.item())
        self._n += 1
        return loss, loss.item()

    def evaluate(self, model) -> dict:
        out = {"seconds": time.perf_counter() - self._t0, "loss": self._sums[0] / max(self._n, 1),
               "triplet": self._sums[1] / max(self._n, 1), "pair": self._sums[2] / max(self._n, 1)}
        if not self.val:
            return {"val": -float(self._epoch), **out}
        score = float(self.scorer(torch_embedder(model), self.val))
        return {"val": -score, "val_score": score, **out}

    def settings(self) -> dict:
        return {"margin": self.margin, "pair_weight": self.pair_weight, "loss_form": self.distance,
                "triplets": self.triplets, "sampling": self.sampling}

    def save_model(self, path, model, metrics):
        from cgsurrogate.surrogate.cgmap.checkpoint import save_dsgpm

        save_dsgpm(path, model, {"metrics": {k: v for k, v in metrics.items() if k != "val"}})


SAMPLING_MODES = ("annotation", "molecule")


def group_samples(train, prepared, sampling: str = "annotation") -> list:
    """Training samples from per-annotation variant lists.

    Parameters
    ----------
    train : list of HAMAnnotation (length A)
    prepared : list (length A) of lists of prepared graphs (an annotation and its relabellings)
    sampling : {"annotation", "molecule"}

    Returns
    -------
    list of samples, each a list of annotations' variant lists: one sample per annotation, or one
    per molecule (grouped by SMILES, in order of first appearance) holding all its annotations.
    """
    if sampling == "annotation":
        return [[v] for v in prepared]
    groups: dict[str, list] = {}
    for a, v in zip(train, prepared):
        groups.setdefault(a.smiles, []).append(v)
    return list(groups.values())


def check_loss_weights(margin: float, pair_weight: float) -> None:
    """Raise CGSurrogateError unless the triplet margin alpha is positive and the pair weight lambda is >= 0."""
    if not (np.isfinite(margin) and margin > 0):
        raise CGSurrogateError(f"DSGPM triplet margin must be a positive number, got {margin}")
    if not (np.isfinite(pair_weight) and pair_weight >= 0):
        raise CGSurrogateError(f"DSGPM pair_weight (lambda) must be a number >= 0, got {pair_weight}")


def train_dsgpm(train, val=None, *, epochs: int = 30, batch_size: int = 16, lr: float = 1e-3,
                lr_final: float = 0.0, margin: float = 1.0, pair_weight: float = 0.1, seed: int = 0,
                eval_every: int = 1, model_config: dict | None = None, scorer=None, augment: str = "none",
                progress: bool = False, init=None, distance: str = "l2", triplets: str = "all",
                sampling: str = "annotation"):
    """Train DSGPM (Adam, the one loop) on annotations; keep the epoch with the best validation score.

    Parameters
    ----------
    train : list of HAMAnnotation
    val : list of HAMAnnotation, optional
        Validation annotations (other molecules than ``train``; never a test fold).
    epochs, batch_size, lr : Adam settings (batch = molecules per step; an epoch is one pass)
    lr_final : float  0: constant ``lr``; else the rate decays exponentially to this by the last epoch
    margin, pair_weight : alpha (> 0) and lambda (>= 0) of the loss (eq. 8); other values raise CGSurrogateError
    distance : {"l2", "squared"}
        Loss form: ``"l2"`` plain L2 distances (the paper's eq. 6-7), ``"squared"`` squared
        distances in the triplet and the mean squared component difference for the pairs (the
        authors' code); another value raises CGSurrogateError.
    triplets : {"all", "per-cut-edge"}
        Triplets of the loss: every (anchor, positive, negative) of an annotation (the paper's
        text), or one random triplet per cut bond redrawn every batch (the authors' code,
        :func:`cgsurrogate.surrogate.cgmap.features.sample_cut_edge_triplets`); another value
        raises CGSurrogateError.
    sampling : {"annotation", "molecule"}
        ``"annotation"``: every annotation is a sample (an epoch is a pass over the annotations);
        ``"molecule"``: every molecule is a sample and each epoch uses one random annotation of it
        (an epoch is a pass over the molecules, so molecules with several annotations no longer
        weigh more: the authors' code); another value raises CGSurrogateError.
    seed : int  initialisation and the order of the molecules
    eval_every : int  validate at epoch 0, every this many epochs and at the last
    model_config : dict, optional  :class:`DSGPM` keyword arguments
    scorer : callable, optional
        ``scorer(embedder, val) -> float`` (higher is better); default: paper-protocol mean of
        AMI and cut F1 (:func:`cgsurrogate.surrogate.cgmap.metrics.selection_score`).
    augment : {"none", "automorphisms"}
        ``"automorphisms"``: each epoch, every annotation is replaced by a random one of its
        relabellings under the automorphisms of the featurised graph
        (:mod:`cgsurrogate.surrogate.cgmap.augment`), an equally valid target for the
        permutation-equivariant network.
    progress : bool  a progress bar over epochs
    init : DSGPM, optional
        Start from a copy of these weights (e.g. :func:`cgsurrogate.surrogate.cgmap.pretraining.pretrain_dsgpm`)
        and its config; ``model_config`` is then ignored and ``seed`` only orders the molecules.

    Returns
    -------
    model : DSGPM (eval mode; the best validation state if ``val`` is given, else the last)
    history : list of dict per evaluated epoch (0-based ``epoch``): loss, triplet, pair (mean
        training losses of that epoch), seconds (its training time), val_score (when ``val``),
        selected (the epoch kept).
    """
    import torch

    from cgsurrogate.surrogate.cgmap.network import DSGPM, check_loss_form

    check_loss_weights(margin, pair_weight)
    check_loss_form(distance)
    if triplets not in TRIPLET_MODES:
        raise CGSurrogateError(f"unknown DSGPM triplet sampling {triplets!r}; choose 'all' or 'per-cut-edge'")
    if sampling not in SAMPLING_MODES:
        raise CGSurrogateError(f"unknown DSGPM sampling {sampling!r}; choose 'annotation' or 'molecule'")
    torch.manual_seed(seed)
    if init is None:
        model = DSGPM(**(model_config or {}))
    else:
        model = DSGPM(**init.config)
        model.load_state_dict(init.state_dict())
    fs = model.config["feature_set"]
    if augment == "automorphisms":
        from cgsurrogate.surrogate.cgmap.augment import prepared_variants

        prepared = [prepared_variants(a.graph, a.labels, fs) for a in train]
    elif augment == "none":
        prepared = [[prepare_graph(a.graph, a.labels, feature_set=fs)] for a in train]
    else:
        raise ValueError(f"unknown augmentation {augment!r}; choose 'none' or 'automorphisms'")
    prepared = group_samples(train, prepared, sampling)
    if scorer is None and val:
        from cgsurrogate.surrogate.cgmap.metrics import selection_score as scorer
    task = DSGPMTask(prepared, val, scorer, margin, pair_weight, seed=seed, distance=distance, triplets=triplets,
                      sampling=sampling)
    cfg = TrainConfig(epochs=epochs, steps_per_epoch=0, batch_size=batch_size, lr=lr, lr_final=lr_final,
                      eval_every=eval_every, seed=seed, progress=progress)
    res = fit(model, task, cfg, desc="dsgpm")
    history = [{k: v for k, v in h.items() if k not in ("val", "train_loss", "wall_s")} for h in res["history"]]
    for rec in history:
        rec["selected"] = rec["epoch"] == res["best_epoch"]
    return model.eval(), history
