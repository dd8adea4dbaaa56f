"""Sufficient statistics of the energy + force loss for models linear in per-kind stiffnesses.

Without its anharmonic factor, the invariant potential's energy is ``E(x, s) = sum_k K_k(s) Q_k(x)``
with ``Q_k = sum of q_t over the interactions of kind k`` (7 kinds), and its forces
``F = sum_k K_k(s) G_k(x)`` with ``G_k = -dQ_k/dx``. The loss of
:mod:`cgsurrogate.surrogate.train.potential_task` on one configuration is then a quadratic in the
7 stiffnesses ``K``::

    (K.Q - E)^2 / (E^2 + e0^2)  +  (K^T A K - 2 K.c + |F|^2) / (|F|^2 + N f0^2)

with ``A = G G^T`` [7, 7], ``c = G F`` [7] over the free particles. Computing ``Q, A, c, |F|^2`` once
per configuration makes each loss evaluation cost ~100 flops per configuration instead of a
double backward through the geometry (same loss, same gradients with respect to the network's
weights), so thousands of configurations fit into every step.
"""
from __future__ import annotations

import torch

from cgsurrogate.surrogate.gcn.local_geometry import NUM_KINDS, InteractionGeometry


def kind_statistics(geometry: InteractionGeometry, positions, forces, free, chunk: int = 16) -> dict:
    """Per-configuration statistics ``Q [M, 7]``, ``A [M, 7, 7]``, ``c [M, 7]``, ``f2 [M]`` (float64).

    Parameters
    ----------
    geometry : InteractionGeometry of the topology
    positions : Tensor [M, N, 3] nm
    forces : Tensor [M, N, 3] kJ/mol/nm, the exact forces
    free : Tensor [N], 1 for particles whose forces count, 0 for clamped ones
    """
    out = {"Q": [], "A": [], "c": [], "f2": []}
    kind = geometry.kind
    w = free.to(torch.float64)[None, :, None]
    for s in range(0, positions.shape[0], chunk):
        x = positions[s:s + chunk].detach().clone().double().requires_grad_(True)
        q = geometry.squared_deviations(x)
        Q = q.new_zeros(x.shape[0], NUM_KINDS).index_add(1, kind, q)
        G = torch.stack([-torch.autograd.grad(Q[:, k].sum(), x, retain_graph=k < NUM_KINDS - 1)[0]
                         for k in range(NUM_KINDS)], 1) * w[:, None]
        F = forces[s:s + chunk].double() * w
        out["Q"].append(Q.detach())
        out["A"].append(torch.einsum("bknd,blnd->bkl", G, G))
        out["c"].append(torch.einsum("bknd,bnd->bk", G, F))
        out["f2"].append((F * F).sum((1, 2)))
    return {k: torch.cat(v) for k, v in out.items()}


def quadratic_loss(k: torch.Tensor, stats: dict, energies: torch.Tensor, num_free: int, cfg) -> torch.Tensor:
    """The loss (see the module docstring) for stiffnesses ``k [B, 7]`` and the rows of ``stats``.

    ``cfg`` holds ``w_energy``, ``w_force``, ``e0``, ``f0`` (a ``PotentialLoss``).
    """
    e = (k * stats["Q"]).sum(1)
    le = ((e - energies) ** 2 / (energies ** 2 + cfg.e0 ** 2)).mean()
    fq = torch.einsum("bk,bkl,bl->b", k, stats["A"], k) - 2 * (k * stats["c"]).sum(1) + stats["f2"]
    lf = (fq / (stats["f2"] + num_free * cfg.f0 ** 2)).mean()
    return cfg.w_energy * le + cfg.w_force * lf


__all__ = ["kind_statistics", "quadratic_loss"]
