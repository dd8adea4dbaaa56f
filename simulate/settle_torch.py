"""The settle stage on a torch device: FIRE and the exact field's net force stay on the GPU.

The OpenMM engine's settle (:func:`cgsurrogate.simulate.settle.settle_replicas`) asks the Context
for forces at every FIRE iteration: on a GPU each iteration then copies every replica's positions
to the device and its forces back (for the paper grid, 16,807 replicas x 624 particles, about
250 MB each way). Here the FIRE loop and the net force (internal + load, the exact field
:class:`cgsurrogate.simulate.energy.TrueEnergy` differentiated by autograd) both run on one torch
device, so the positions cross once in each direction.

Same rules and constants as :func:`cgsurrogate.simulate.settle.fire_settle`, which stays the
reference: on the same force callable both return the same evaluation counts and positions
(tested to 1e-8 nm in float64; the sums run in another order). Units: nm, kJ/mol/nm; FIRE's time in ``sqrt(nm^2 / (kJ/mol))``
(unit masses).
"""
from __future__ import annotations

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.settle import (_ALPHA0, _F_ALPHA, _F_DEC, _F_INC, _N_MIN, SETTLE_DT, SETTLE_DT_MAX,
                                         SETTLE_MAX_STEP)


def fire_settle_torch(x0: torch.Tensor, net_forces, free, load: float, tol: float, max_iter: int,
                      dt: float = SETTLE_DT, dt_max: float = SETTLE_DT_MAX,
                      max_step: float = SETTLE_MAX_STEP) -> dict:
    """Relax replicas by FIRE on ``x0``'s device until each meets ``residual <= tol``.

    Parameters
    ----------
    x0 : Tensor [R, N, 3] nm (float64 recommended)
        Start (the last dynamic state); its device and dtype are used throughout.
    net_forces : callable ``(x [R, N, 3], active bool [R]) -> Tensor [R, N, 3]``
        Net force (internal + full load), kJ/mol/nm, on the same device; rows of inactive
        replicas are ignored.
    free, load, tol, max_iter, dt, dt_max, max_step :
        As in :func:`cgsurrogate.simulate.settle.fire_settle` (``free`` may be a LongTensor).

    Returns
    -------
    dict of tensors on the device: ``positions`` [R, N, 3] nm, ``residual`` [R], ``iterations``
    int64 [R], ``converged`` bool [R] (as :func:`cgsurrogate.simulate.settle.fire_settle`).
    """
    if not (np.isfinite(tol) and tol > 0) or int(max_iter) < 1 or not load:
        raise CGSurrogateError(f"settle: tolerance ({tol!r}) and max_iter ({max_iter!r}) must be positive, load nonzero")
    x = x0.detach().clone()
    dev, dt_ = x.device, x.dtype
    R = x.shape[0]
    free = torch.as_tensor(np.asarray(free, dtype=np.int64), device=dev)
    v = torch.zeros(R, len(free), 3, dtype=dt_, device=dev)
    step = torch.full((R,), float(dt), dtype=dt_, device=dev)
    alpha = torch.full((R,), _ALPHA0, dtype=dt_, device=dev)
    npos = torch.zeros(R, dtype=torch.int64, device=dev)
    active = torch.ones(R, dtype=torch.bool, device=dev)
    resid = torch.full((R,), float("inf"), dtype=dt_, device=dev)
    iters = torch.full((R,), int(max_iter), dtype=torch.int64, device=dev)
    inv_load = 1.0 / abs(float(load))
    for it in range(int(max_iter)):
        f = net_forces(x, active)[:, free]
        r_now = torch.linalg.vector_norm(f, dim=-1).amax(-1) * inv_load
        resid = torch.where(active, r_now, resid)
        done = active & (r_now <= tol)
        iters = torch.where(done, torch.full_like(iters, it + 1), iters)
        active = active & ~done
        a = active.nonzero().squeeze(1)
        if a.numel() == 0:
            break
        fa, va = f[a], v[a]
        power = (fa * va).sum((1, 2))
        up = power > 0
        vnorm = torch.linalg.vector_norm(va, dim=(1, 2))
        fnorm = torch.linalg.vector_norm(fa, dim=(1, 2))
        al, st, nps = alpha[a], step[a], npos[a]
        mix = (al * vnorm / fnorm.clamp_min(1e-300))[:, None, None]
        va = torch.where(up[:, None, None], (1.0 - al)[:, None, None] * va + mix * fa, torch.zeros_like(va))
        grow = up & (nps > _N_MIN)
        step[a] = torch.where(up, torch.where(grow, (st * _F_INC).clamp_max(dt_max), st), st * _F_DEC)
        alpha[a] = torch.where(up, torch.where(grow, al * _F_ALPHA, al), torch.full_like(al, _ALPHA0))
        npos[a] = torch.where(up, nps + 1, torch.zeros_like(nps))
        h = step[a][:, None, None]
        va = va + h * fa
        dr = h * va
        big = torch.linalg.vector_norm(dr, dim=-1).amax(-1)
        dr = dr * (max_step / big.clamp_min(1e-300)).clamp_max(1.0)[:, None, None]
        v[a] = va
        x[a[:, None], free[None, :]] += dr
    else:
        f = net_forces(x, active)[:, free]
        resid = torch.where(active, torch.linalg.vector_norm(f, dim=-1).amax(-1) * inv_load, resid)
    return {"positions": x, "residual": resid, "iterations": iters, "converged": resid <= tol}


def exact_net_forces(params, load_nodes, load: float, topology=None, device="cpu", dtype=torch.float64):
    """The exact field's net force (internal + full load) as a callable for :func:`fire_settle_torch`.

    Parameters
    ----------
    params : array [R, 5]
        Strengths per replica (zJ/nm^2, zJ/rad^2).
    load_nodes : int array
        Loaded particles (within one replica).
    load : float
        Full load per loaded particle, kJ/mol/nm, along -y (the OpenMM System's load force).
    topology : Topology, optional (default the paper's microtubule)
    device, dtype : where and in what precision the field is evaluated.

    Returns
    -------
    callable ``(x [R, N, 3], active bool [R]) -> [R, N, 3]`` kJ/mol/nm: ``-dE/dx`` of
    :class:`cgsurrogate.simulate.energy.TrueEnergy` for the active replicas plus ``(0, -load, 0)`` on
    each loaded particle (zero rows for inactive replicas).
    """
    from cgsurrogate.simulate.energy import TrueEnergy

    field = TrueEnergy(topology).to(device)
    p = torch.as_tensor(np.asarray(params, dtype=np.float64), device=device, dtype=dtype)
    ext = torch.zeros(field.num_nodes, 3, dtype=dtype, device=device)
    ext[torch.as_tensor(np.asarray(load_nodes, dtype=np.int64), device=device), 1] = -float(load)

    def net(x, active):
        idx = active.nonzero().squeeze(1)
        out = torch.zeros_like(x)
        if idx.numel():
            xa = x[idx].detach().requires_grad_(True)
            with torch.enable_grad():
                e, _ = field(xa, p[idx])
                (g,) = torch.autograd.grad(e.sum(), xa)
            out[idx] = ext - g
        return out

    return net
