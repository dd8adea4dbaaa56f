"""The settle stage: bring every replica to rest at the end of the protocol.

After the ramp and the hold, each replica is relaxed to the nearest static equilibrium under the
full load with the clamps held, by FIRE (Bitzek et al. 2006, the variant ASE implements) on
the net force (internal + load) with unit masses, all replicas at once, each stopping when its
own residual meets the tolerance. The run's last frame is the settled state (velocities zero).

Why FIRE and one shared implementation: FIRE is damped dynamics that follows the force downhill
from the last dynamic state, so it stays in that state's basin (soft-angle tubes have several
minima; two different minimisers, OpenMM's L-BFGS and the project's, ended 16 nm apart from the
same start). Both engines call :func:`fire_settle` with their own force evaluation (the forces
agree to 1e-10), so the settled states of the two engines differ only by where their dynamic
runs ended.

Residual (the rest criterion, :data:`cgsurrogate.simulate.protocol.REST_CRITERION`): the largest
norm of the net force on a free particle, in units of the load on one loaded particle
(dimensionless). Units otherwise: nm, kJ/mol/nm; FIRE's time in ``sqrt(nm^2 / (kJ/mol))``
(unit masses).
"""
from __future__ import annotations

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError

#: FIRE's first and largest time step (unit masses, nm and kJ/mol): the stiffest mode of the
#: grid (bonds and angles of strength 57) has curvature ~500 kJ/mol/nm^2, stable below
#: ``dt ~ 2 / sqrt(500) = 0.09``.
SETTLE_DT = 0.02
SETTLE_DT_MAX = 0.08
#: Largest displacement of one particle in one FIRE step (nm).
SETTLE_MAX_STEP = 0.2
_N_MIN, _F_INC, _F_DEC, _ALPHA0, _F_ALPHA = 5, 1.1, 0.5, 0.1, 0.99


def residual(net, free, load: float) -> np.ndarray:
    """Largest net-force norm on a free particle per replica, in units of ``load``.

    Parameters
    ----------
    net : array [R, N, 3] kJ/mol/nm (internal + load)
    free : int array of free node indices
    load : float, kJ/mol/nm per loaded particle (nonzero)

    Returns
    -------
    array [R] (dimensionless)
    """
    return np.sqrt((np.asarray(net)[:, free] ** 2).sum(-1)).max(-1) / abs(float(load))


def fire_settle(x0, net_forces, free, load: float, tol: float, max_iter: int, dt: float = SETTLE_DT,
                dt_max: float = SETTLE_DT_MAX, max_step: float = SETTLE_MAX_STEP) -> dict:
    """Relax replicas by FIRE until each meets ``residual <= tol`` (or ``max_iter`` force evaluations).

    Parameters
    ----------
    x0 : array [R, N, 3] nm
        Start (the last dynamic state).
    net_forces : callable ``(x [R, N, 3], active bool [R]) -> [R, N, 3]``
        Net force (internal + full load), kJ/mol/nm, for the ``active`` replicas (the other rows
        are ignored).
    free : int array
        Particles that move (the clamped ones never do).
    load : float
        Load on one loaded particle, kJ/mol/nm (the residual's unit).
    tol : float
        Residual tolerance (multiples of ``load``), positive.
    max_iter : int
        Largest number of force evaluations.

    Returns
    -------
    dict: ``positions`` [R, N, 3] nm (settled), ``residual`` [R] (at the returned positions),
    ``iterations`` int [R] (force evaluations until the replica met the tolerance, or ``max_iter``),
    ``converged`` bool [R].
    """
    if not (np.isfinite(tol) and tol > 0) or int(max_iter) < 1 or not load:
        raise CGSurrogateError(f"settle: tolerance ({tol!r}) and max_iter ({max_iter!r}) must be positive, load nonzero")
    x = np.array(x0, dtype=np.float64, copy=True)
    R = x.shape[0]
    free = np.asarray(free, dtype=np.int64)
    v = np.zeros((R, len(free), 3))
    step = np.full(R, float(dt))
    alpha = np.full(R, _ALPHA0)
    npos = np.zeros(R, dtype=np.int64)
    active = np.ones(R, dtype=bool)
    resid = np.full(R, np.inf)
    iters = np.full(R, int(max_iter), dtype=np.int64)
    for it in range(int(max_iter)):
        f = np.asarray(net_forces(x, active))[:, free]
        fn = np.sqrt((f ** 2).sum(-1))
        r_now = fn.max(-1) / abs(float(load))
        resid[active] = r_now[active]
        done = active & (r_now <= tol)
        iters[done] = it + 1
        active &= ~done
        if not active.any():
            break
        a = np.flatnonzero(active)
        fa, va = f[a], v[a]
        power = (fa * va).sum((1, 2))
        up = power > 0
        vnorm = np.sqrt((va ** 2).sum((1, 2)))
        fnorm = np.sqrt((fa ** 2).sum((1, 2)))
        mix = (alpha[a] * vnorm / np.maximum(fnorm, 1e-300))[:, None, None]
        va = np.where(up[:, None, None], (1.0 - alpha[a])[:, None, None] * va + mix * fa, 0.0)
        grow = up & (npos[a] > _N_MIN)
        step[a] = np.where(up, np.where(grow, np.minimum(step[a] * _F_INC, dt_max), step[a]), step[a] * _F_DEC)
        alpha[a] = np.where(up, np.where(grow, alpha[a] * _F_ALPHA, alpha[a]), _ALPHA0)
        npos[a] = np.where(up, npos[a] + 1, 0)
        h = step[a][:, None, None]
        va = va + h * fa
        dr = h * va
        big = np.sqrt((dr ** 2).sum(-1)).max(-1)
        dr *= np.minimum(1.0, max_step / np.maximum(big, 1e-300))[:, None, None]
        v[a] = va
        xa = x[a]
        xa[:, free] += dr
        x[a] = xa
    else:
        f = np.asarray(net_forces(x, active))[:, free]
        resid[active] = (np.sqrt((f ** 2).sum(-1)).max(-1) / abs(float(load)))[active]
    return {"positions": x, "residual": resid, "iterations": iters, "converged": resid <= tol}


def settle_replicas(x_dynamic, net_forces, clamp_nodes, load_nodes, protocol, fire=None) -> dict:
    """The settle stage of a protocol for ``R`` replicas (both engines call this).

    Parameters
    ----------
    x_dynamic : array [R, N, 3] nm
        The last dynamic state, each replica in its own frame.
    net_forces : callable, see :func:`fire_settle` (internal + the full load)
    clamp_nodes, load_nodes : int arrays
    protocol : Protocol (``load``, ``settle_tol``, ``settle_max_iter``)
    fire : callable ``(x0, free, load, tol, max_iter) -> dict``, optional
        The FIRE loop; default :func:`fire_settle` on ``net_forces``. The numba engine passes its
        compiled copy of the same loop (:func:`cgsurrogate.simulate.numba_settle.fire_settle_compiled`).

    Returns
    -------
    dict: ``positions`` [R, N, 3] nm (settled), ``settle_residual`` [R] (load units),
    ``settle_iterations`` int [R], ``settle_converged`` bool [R], ``settle_tip_shift_nm`` [R] (|change of
    the tip, the mean y of the loaded particles|, from the last dynamic state to the settled one),
    ``settle_max_shift_nm`` [R] (largest displacement of a particle by the settle) and ``settle_seconds``.
    """
    import time

    t0 = time.perf_counter()
    x_dynamic = np.asarray(x_dynamic, dtype=np.float64)
    N = x_dynamic.shape[1]
    free = np.setdiff1d(np.arange(N), np.asarray(clamp_nodes, dtype=np.int64))
    if fire is None:
        def fire(x0, free_, load, tol, max_iter):
            return fire_settle(x0, net_forces, free_, load, tol, max_iter)
    res = fire(x_dynamic, free, protocol.load, protocol.settle_tol, protocol.settle_max_iter)
    x = res["positions"]
    load_nodes = np.asarray(load_nodes, dtype=np.int64)
    tip_shift = np.abs(x[:, load_nodes, 1].mean(1) - x_dynamic[:, load_nodes, 1].mean(1))
    return {"positions": x, "settle_residual": res["residual"], "settle_iterations": res["iterations"],
            "settle_converged": res["converged"], "settle_tip_shift_nm": tip_shift,
            "settle_max_shift_nm": np.sqrt(((x - x_dynamic) ** 2).sum(-1)).max(-1),
            "settle_seconds": time.perf_counter() - t0}
