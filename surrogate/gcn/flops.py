"""FLOP accounting with the paper's estimates (Scott & Mjolsness 2021, sec. 4.1).

* graph convolution layer, ``n x n`` structure matrix with ``|Z|`` nonzeros, ``n x F`` input,
  ``F x C`` filter: ``n F (|Z| + C)`` (the paper's formula, kept as written; a true sparse
  product would cost ``|Z| C + n F C``);
* node-wise dense layer: ``n F C``;
* product of an ``n x k`` and a ``k x m`` matrix (restriction/prolongation by P): ``n m k``.

Training cost. One optimisation step on a batch of ``B`` samples is charged
``B * (forward(levels in the forward pass) + 2 * forward(levels being trained))``: the
forward pass over every level that contributes to the output, and a backward pass (about
twice a forward) through the levels whose parameters are updated. Validation passes are not
charged (the paper plots error against the work spent training).
"""
from __future__ import annotations

from typing import Iterable, Sequence


def gcn_layer_flops(n: int, in_features: int, nnz: int, out_features: int) -> float:
    """Paper's estimate ``n F (|Z| + C)`` for one graph convolution layer, one sample."""
    return float(n) * float(in_features) * (float(nnz) + float(out_features))


def dense_flops(n: int, in_features: int, out_features: int) -> float:
    """Paper's estimate ``n F C`` for a node-wise dense layer, one sample."""
    return float(n) * float(in_features) * float(out_features)


def matmul_flops(n: int, k: int, m: int) -> float:
    """Paper's estimate ``n m k`` for an ``[n, k] @ [k, m]`` product."""
    return float(n) * float(k) * float(m)


def forward_flops_by_level(model) -> list[float]:
    """Forward FLOPs of one sample per level (GPCN, DiffPool) or member (ensembles, N-GCN);
    a one-element list for a single GCN."""
    if hasattr(model, "flops_by_level"):
        return [float(f) for f in model.flops_by_level()]
    return [float(model.flops())]


def training_step_flops(per_level: Sequence[float], batch_size: int,
                        forward_levels: Iterable[int], trained_levels: Iterable[int]) -> float:
    """FLOPs charged for one optimisation step.

    Parameters
    ----------
    per_level : sequence of float
        Forward FLOPs of one sample per level (:func:`forward_flops_by_level`).
    batch_size : int
    forward_levels : iterable of int
        Levels evaluated in the forward pass.
    trained_levels : iterable of int
        Levels whose parameters the step updates (backward pass charged twice their forward).

    Returns
    -------
    float
        ``B * (sum_{forward} f_l + 2 sum_{trained} f_l)``.
    """
    fwd = sum(per_level[i] for i in set(forward_levels))
    bwd = 2.0 * sum(per_level[i] for i in set(trained_levels))
    return float(batch_size) * (fwd + bwd)


__all__ = ["gcn_layer_flops", "dense_flops", "matmul_flops", "forward_flops_by_level", "training_step_flops"]
