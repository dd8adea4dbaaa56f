"""Nested cross-validation of CG-mapping methods, grouped by molecule.

The outer loop holds out one fold of molecules as the test set; everything that is chosen
(the epoch, the feature set, ensemble members) is chosen by a *selection function* that
receives the training folds only::

    fit(train_annotations) -> (predictor, record)

and the test fold is scored once, after ``fit`` returned. :func:`nested_cv` enforces this
by construction (``fit`` never sees the test annotations) and records the annotation files
each call saw, so a test can check that no test molecule reached selection.
:func:`dsgpm_fit` is the DSGPM selection: an inner split of the training molecules picks the
epoch (and optionally the feature set) by the validation score of
:func:`cgsurrogate.surrogate.cgmap.metrics.selection_score`; ensemble members are trained on
different inner splits, each with its own epoch chosen on its own inner validation molecules.
With ``refit``, the chosen settings are then applied once more to *all* training-fold
molecules (:func:`dsgpm_refit`: fresh initialisation, the selected number of epochs on the
same learning-rate schedule, no validation), and those networks are the predictor.
With ``pretrain``, every network starts from a masked-atom pretrained encoder
(:mod:`cgsurrogate.surrogate.cgmap.pretraining`) trained once per feature set on the molecules
of ``train`` only (the training folds; no test-fold molecule, even unlabelled).

Intervals: each metric's mean over the outer folds with a t-interval over folds
(:func:`fold_interval`).
"""
from __future__ import annotations

import time

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError

__all__ = ["nested_cv", "fold_interval", "dsgpm_fit", "dsgpm_refit", "inner_split", "truncated_lr_final"]


def fold_interval(values, level: float = 0.95) -> dict:
    """Mean and Student-t confidence interval of per-fold values.

    Returns
    -------
    dict: mean, low, high, std, n.
    """
    from scipy.stats import t as student_t

    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    mean = float(v.mean())
    if n < 2:
        return dict(mean=mean, low=mean, high=mean, std=0.0, n=n)
    half = float(student_t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return dict(mean=mean, low=mean - half, high=mean + half, std=float(v.std(ddof=1)), n=n)


def inner_split(annotations, parts: int, index: int, seed: int):
    """Split annotations by molecule into (train, val): molecules of inner fold ``index`` of ``parts`` validate."""
    from cgsurrogate.data.ham import ham_folds

    folds = ham_folds(annotations, n_folds=parts, seed=seed)
    val = [annotations[i] for i in folds[index]]
    train = [annotations[i] for f, idx in enumerate(folds) if f != index for i in idx]
    return train, val


def nested_cv(annotations, folds, fit, score, on_fold=None) -> list[dict]:
    """Run the outer loop: ``fit`` on the training folds, then ``score`` the returned predictor on the test fold.

    Parameters
    ----------
    annotations : list of HAMAnnotation
    folds : list of int arrays  (outer folds, grouped by molecule: :func:`cgsurrogate.data.ham.ham_folds`)
    fit : callable ``fit(train_annotations) -> (predictor, record)``
        Receives only the training folds (every choice is made here).
    score : callable ``score(predictor, test_annotations) -> dict``
    on_fold : callable ``on_fold(k, result)``, optional  (e.g. write a resumable per-fold file)

    Returns
    -------
    list of dict per fold: ``fold``, ``selection`` (fit's record), ``test`` (score's dict),
    ``train_paths`` (files fit received), ``fit_seconds``.
    """
    out = []
    for k, test_idx in enumerate(folds):
        test_set = set(int(i) for i in test_idx)
        train = [a for i, a in enumerate(annotations) if i not in test_set]
        t0 = time.perf_counter()
        predictor, record = fit(train)
        fit_s = time.perf_counter() - t0
        test = [annotations[i] for i in test_idx]
        res = dict(fold=k, selection=record, test=score(predictor, test), fit_seconds=fit_s,
                   train_paths=sorted(a.path for a in train))
        if on_fold is not None:
            on_fold(k, res)
        out.append(res)
    return out


def truncated_lr_final(lr: float, lr_final: float, epochs: int, n: int) -> float:
    """The ``lr_final`` of an ``n``-epoch run whose exponential decay follows the first ``n`` epochs
    of an ``epochs``-long decay from ``lr`` to ``lr_final`` (0: constant rate, returned as 0).

    The loop sets the rate of epoch e to ``lr (lr_final/lr)^(e/(epochs-1))``; with
    ``lr (lr_final/lr)^((n-1)/(epochs-1))`` as the final rate of an n-epoch run, epochs
    0..n-1 get the same rates.
    """
    if lr_final <= 0:
        return 0.0
    if not 1 <= n <= epochs:
        raise CGSurrogateError(f"refit length {n} must be within 1..{epochs} epochs")
    return float(lr * (lr_final / lr) ** ((n - 1) / max(epochs - 1, 1)))


def dsgpm_refit(train, record: dict, index: int = 0, *, epochs: int = 30, lr: float = 1e-3, lr_final: float = 0.0,
                seed: int = 0, model_config: dict | None = None, augment: str = "none", length: str = "selected",
                init=None, progress: bool = False, distance: str = "l2", triplets: str = "all",
                sampling: str = "annotation"):
    """Refit network ``index`` on all training-fold molecules with the choices of a selection ``record``.

    Uses the feature set of ``record`` and the epoch selected by member ``index % len(members)``;
    trains ``selected_epoch + 1`` epochs from a fresh initialisation (seed ``seed + index``) on
    the first epochs of the same ``epochs``-long schedule (:func:`truncated_lr_final`), without
    validation (the last epoch is kept).

    Parameters
    ----------
    train : list of HAMAnnotation  (all training-fold annotations; never a test fold)
    record : dict  from :func:`dsgpm_fit` (``feature_set``, ``members[*].selected_epoch``)
    index : int  which refit network (seed offset)
    epochs, lr, lr_final : the schedule the selection used
    length : {"selected", "full"}
        ``"selected"``: the member's selected number of epochs; ``"full"``: all ``epochs`` of the
        schedule (the selection then only fixes the feature set).
    init : DSGPM, optional  start from these weights (a pretrained encoder) instead of seed ``seed + index``
    distance, triplets, sampling : loss form, triplet sampling and sample unit
        (:func:`cgsurrogate.surrogate.cgmap.training.train_dsgpm`)

    Returns
    -------
    (DSGPM in eval mode, dict: index, seed, epochs, lr_final, n_annotations, seconds)
    """
    from cgsurrogate.surrogate.cgmap import training

    member = record["members"][index % len(record["members"])]
    if length not in ("selected", "full"):
        raise CGSurrogateError(f"unknown refit length {length!r}; choose 'selected' or 'full'")
    n = int(member["selected_epoch"]) + 1 if length == "selected" else int(epochs)
    lr_n = truncated_lr_final(lr, lr_final, epochs, n)
    t0 = time.perf_counter()
    model, _ = training.train_dsgpm(train, None, epochs=n, lr=lr, lr_final=lr_n, seed=seed + index,
                                    eval_every=n, augment=augment, progress=progress, init=init, distance=distance,
                                    triplets=triplets, sampling=sampling,
                                    model_config=dict(model_config or {}, feature_set=record["feature_set"]))
    info = dict(index=index, seed=seed + index, epochs=n, lr_final=lr_n, n_annotations=len(train),
                seconds=time.perf_counter() - t0)
    return model, info


def dsgpm_fit(train, *, members: int = 1, epochs: int = 30, eval_every: int = 5, inner_parts: int = 5,
              feature_sets=("rich",), model_config: dict | None = None, seed: int = 0, scorer=None,
              lr_final: float = 0.0, augment: str = "none", refit: int = 0, refit_length: str = "selected",
              pretrain: dict | None = None, progress: bool = False, distance: str = "l2", triplets: str = "all",
              sampling: str = "annotation"):
    """DSGPM selection inside the training folds; returns ``(Embedder, record)``.

    Member ``m`` trains on inner folds other than ``m`` (of ``inner_parts``, grouped by
    molecule) and keeps the epoch with the best score on inner fold ``m``. With several
    ``feature_sets``, member 0 is trained once per set and the set with the best inner
    validation score is used for every member.

    Parameters
    ----------
    train : list of HAMAnnotation  (training folds only)
    members : int  ensemble size (<= inner_parts)
    epochs, eval_every : training length and validation interval
    feature_sets : candidate feature sets
    model_config : dict, optional  other :class:`DSGPM` arguments
    scorer : callable ``scorer(embedder, val) -> float``, optional (default selection_score)
    lr_final, augment : learning-rate decay and augmentation (:func:`train_dsgpm`)
    refit : int
        0: the predictor is the selected inner-trained members. ``R > 0``: the predictor is ``R``
        networks refitted on all of ``train`` after selection (:func:`dsgpm_refit`, seeds
        ``seed .. seed+R-1``; an ensemble when ``R > 1``); recorded under ``record["refit"]``.
    refit_length : {"selected", "full"}  epochs of the refit (:func:`dsgpm_refit` ``length``)
    distance : {"l2", "squared"}
        Loss form of every network (:func:`cgsurrogate.surrogate.cgmap.training.train_dsgpm`),
        recorded as ``record["loss_form"]``.
    triplets : {"all", "per-cut-edge"}
        Triplet sampling of every network (:func:`cgsurrogate.surrogate.cgmap.training.train_dsgpm`),
        recorded as ``record["triplets"]``.
    sampling : {"annotation", "molecule"}
        Sample unit of every network (:func:`cgsurrogate.surrogate.cgmap.training.train_dsgpm`),
        recorded as ``record["sampling"]``.
    pretrain : dict, optional
        ``{"epochs": N, "mask_fraction": f}`` (f default 0.15): masked-atom pretraining
        (:func:`cgsurrogate.surrogate.cgmap.pretraining.pretrain_dsgpm`, seed ``seed``) on the
        distinct molecules of ``train``, once per feature set; every member (and refit) starts
        from it. Recorded under ``record["pretrain"][feature_set]``.

    Returns
    -------
    (Embedder with the members, dict with the choices and validation histories)
    """
    from cgsurrogate.surrogate.cgmap import training

    torch_embedder, train_dsgpm = training.torch_embedder, training.train_dsgpm

    if members > inner_parts:
        raise CGSurrogateError(f"{members} members need at least as many inner folds (got {inner_parts})")
    from cgsurrogate.surrogate.cgmap.network import check_loss_form

    record = dict(members=[], feature_set_scores={}, loss_form=check_loss_form(distance), triplets=triplets,
                  sampling=sampling)
    models = []
    cfg = dict(model_config or {})
    inits = {}

    def start(fs):
        """The pretrained encoder of feature set ``fs`` (trained on ``train``'s molecules once), or None."""
        if not pretrain:
            return None
        if fs not in inits:
            from cgsurrogate.surrogate.cgmap.pretraining import pretrain_dsgpm, training_molecules

            t0 = time.perf_counter()
            mols = training_molecules(train)
            frac = pretrain.get("mask_fraction", 0.15)
            inits[fs], hist = pretrain_dsgpm(mols, epochs=pretrain["epochs"], mask_fraction=frac, seed=seed,
                                             model_config=dict(cfg, feature_set=fs), progress=progress)
            record.setdefault("pretrain", {})[fs] = dict(
                epochs=pretrain["epochs"], mask_fraction=frac, molecules=len(mols), seconds=time.perf_counter() - t0,
                history=[{k: int(v) if k == "epoch" else float(v) for k, v in h.items()} for h in hist])
        return inits[fs]

    def train_member(tr, va, s, fs):
        init = start(fs)
        kw = dict(epochs=epochs, eval_every=eval_every, seed=s, scorer=scorer, lr_final=lr_final, augment=augment,
                  progress=progress, distance=distance, triplets=triplets, sampling=sampling)
        return train_dsgpm(tr, va, model_config=dict(cfg, feature_set=fs), init=init, **kw)

    first = {}
    for fs in feature_sets:
        tr, va = inner_split(train, inner_parts, 0, seed)
        m, hist = train_member(tr, va, seed, fs)
        best = max(h["val_score"] for h in hist if "val_score" in h)
        record["feature_set_scores"][fs] = best
        first[fs] = (m, hist)
    chosen = max(record["feature_set_scores"], key=record["feature_set_scores"].get)
    record["feature_set"] = chosen
    for j in range(members):
        if j == 0:
            m, hist = first[chosen]
        else:
            tr, va = inner_split(train, inner_parts, j, seed)
            m, hist = train_member(tr, va, seed + j, chosen)
        sel = [h for h in hist if h.get("selected")][0]
        record["members"].append(dict(inner_fold=j, selected_epoch=sel["epoch"], val_score=sel.get("val_score"),
                                      history=[{k: h[k] for k in ("epoch", "loss", "seconds", "val_score") if k in h}
                                               for h in hist]))
        models.append(m)
    if refit:
        fitted = [dsgpm_refit(train, record, r, epochs=epochs, lr_final=lr_final, seed=seed, model_config=cfg,
                              augment=augment, length=refit_length, init=start(chosen), progress=progress,
                              distance=distance, triplets=triplets, sampling=sampling)
                  for r in range(refit)]
        models = [m for m, _ in fitted]
        record["refit"] = [info for _, info in fitted]
    return torch_embedder(models), record
