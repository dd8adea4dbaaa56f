"""Test helpers for E(3) and permutation equivariance (in the spirit of e3nn's ``assert_equivariant``).

A :class:`Transform` holds an orthogonal matrix (rotation, possibly composed with a reflection),
a translation and a node permutation that keeps every node inside its graph.
:func:`assert_equivariant` applies it to a :class:`~cgsurrogate.surrogate.equivariant.message_passing.GraphBatch`, runs a
function on both inputs and compares each named output according to its declared kind:

===================  ==========================================================
kind                 expected behaviour of ``out[name]``
===================  ==========================================================
``position``         node-indexed [N, 3, ...]: ``R x + t`` and permuted
``vector``           node-indexed [N, 3, ...]: ``R v`` and permuted
``scalar``           node-indexed [N, ...]: unchanged values, permuted
``cluster_position`` [M, 3, ...] not node-indexed (clusters): ``R x + t``
``cluster_vector``   [M, 3, ...] not node-indexed: ``R v``
``invariant``        any shape, unchanged (graph totals, losses, cluster scalars)
===================  ==========================================================
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from cgsurrogate.surrogate.equivariant.message_passing import GraphBatch


@dataclass
class Transform:
    """An element of E(3) x S_N.

    Attributes
    ----------
    R : Tensor [3, 3]   orthogonal (det = +-1)
    t : Tensor [3]      translation
    perm : LongTensor [N] or None
        ``new_node[k] = old_node[perm[k]]``.
    """

    R: torch.Tensor
    t: torch.Tensor
    perm: torch.Tensor | None = None


def random_orthogonal(rng: np.random.Generator, reflect: bool | None = None,
                      dtype=torch.float64) -> torch.Tensor:
    """Haar-random orthogonal 3x3 matrix (QR of a Gaussian with sign fix).

    Parameters
    ----------
    rng : numpy Generator
    reflect : bool, optional
        Force det = -1 (True) or +1 (False); random when None.
    """
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    want_reflect = bool(rng.integers(2)) if reflect is None else reflect
    if (np.linalg.det(q) < 0) != want_reflect:
        q[:, 0] = -q[:, 0]
    return torch.as_tensor(q, dtype=dtype)


def random_permutation_within_graphs(batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A permutation of the nodes that maps every graph onto itself.

    Parameters
    ----------
    batch : LongTensor [N]  (nodes of a graph contiguous)

    Returns
    -------
    LongTensor [N]
    """
    perm = torch.arange(batch.shape[0])
    for b in torch.unique(batch):
        idx = torch.nonzero(batch == b).flatten()
        perm[idx] = idx[torch.as_tensor(rng.permutation(len(idx)))]
    return perm


def random_transform(g: GraphBatch, rng: np.random.Generator, reflect: bool | None = None,
                     permute: bool = True, scale: float = 3.0) -> Transform:
    """Random rotation/reflection, translation (uniform in ``[-scale, scale]^3``) and permutation."""
    dtype = g.pos.dtype
    R = random_orthogonal(rng, reflect, dtype)
    t = torch.as_tensor(rng.uniform(-scale, scale, 3), dtype=dtype)
    perm = random_permutation_within_graphs(g.batch, rng) if permute else None
    return Transform(R, t, perm)


def _rot(x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    # rotate axis 1 (the spatial axis) of [N, 3, ...]
    return torch.einsum("ij,nj...->ni...", R, x)


def _shift(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return x + t.view((1, 3) + (1,) * (x.dim() - 2))


def transform_graph(g: GraphBatch, T: Transform) -> GraphBatch:
    """Apply ``T`` to a graph batch (positions and target move, velocities rotate).

    Edge indices are relabelled so the permuted graph is the same graph.
    """
    pos = _shift(_rot(g.pos, T.R), T.t)
    vel = _rot(g.vel, T.R)
    tgt = None if g.target is None else _shift(_rot(g.target, T.R), T.t)
    out = replace(g, pos=pos, vel=vel, target=tgt)
    if T.perm is None:
        return out
    perm = T.perm
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.shape[0])
    return replace(out, pos=out.pos[perm], vel=out.vel[perm], h=out.h[perm], batch=out.batch[perm],
                   target=None if tgt is None else out.target[perm],
                   edge_index=inv[g.edge_index], local_edge_index=inv[g.local_edge_index])


def expected_output(value: torch.Tensor, kind: str, T: Transform) -> torch.Tensor:
    """What an output of the given ``kind`` must become under ``T`` (see module docstring)."""
    if kind in ("position", "cluster_position"):
        value = _shift(_rot(value, T.R), T.t)
    elif kind in ("vector", "cluster_vector"):
        value = _rot(value, T.R)
    elif kind not in ("scalar", "invariant"):
        raise ValueError(f"unknown output kind {kind!r}")
    if kind in ("position", "vector", "scalar") and T.perm is not None:
        value = value[T.perm]
    return value


def equivariance_errors(fn, g: GraphBatch, T: Transform, kinds: dict[str, str]) -> dict[str, float]:
    """Max absolute deviation from exact equivariance for each named output.

    Parameters
    ----------
    fn : callable GraphBatch -> dict[str, Tensor]
    g : GraphBatch
    T : Transform
    kinds : dict
        Output name -> kind.
    """
    out = fn(g)
    out_t = fn(transform_graph(g, T))
    errs = {}
    for name, kind in kinds.items():
        want = expected_output(out[name], kind, T)
        errs[name] = float((out_t[name] - want).detach().abs().max()) if want.numel() else 0.0
    return errs


def assert_equivariant(fn, g: GraphBatch, T: Transform, kinds: dict[str, str], atol: float = 1e-5) -> dict:
    """Raise AssertionError naming the output whose equivariance error exceeds ``atol``.

    Returns the error dictionary of :func:`equivariance_errors` when all pass.
    """
    errs = equivariance_errors(fn, g, T, kinds)
    bad = {k: e for k, e in errs.items() if not e <= atol}
    if bad:
        raise AssertionError(f"equivariance violated beyond atol={atol}: {bad}")
    return errs
