"""The settle stage's FIRE loop compiled with numba, for the numba engine (the ``[fast]`` extra).

:func:`cgsurrogate.simulate.settle.fire_settle` is the reference: FIRE in numpy on any force callable
(the OpenMM engine's). With the numba engine most of its time went into numpy's per-call overhead on
small arrays (measured: 5,539 evaluations for all strengths 3 took 3.5 s, of which 1.3 s were force
evaluations), so :func:`fire_kernel` runs the same update rules, with the same constants, per replica
inside one compiled loop over the engine's force kernels. It releases the GIL, so threads run replicas
in parallel. Each replica's iterate depends only on its own state, as in the reference; the two differ
only by floating-point summation order (tested: the same evaluation counts, positions within 1e-8 nm).

Units: nm, kJ/mol/nm; FIRE's time step in ``sqrt(nm^2 / (kJ/mol))`` (unit masses).
"""
from __future__ import annotations

import math

from numba import njit

from cgsurrogate.simulate.numba_kernels import _JIT, reduce_forces, terms


@njit(**_JIT)
def fire_kernel(X, top, K2B, K2A, loadf, free, load, tol, max_iter, dt0, dt_max, max_step,
                n_min, f_inc, f_dec, alpha0, f_alpha, V, F, EB, UV, T, resid, iters):
    """Relax every replica of ``X`` in place by FIRE until its residual is at most ``tol``.

    Parameters
    ----------
    X : [R, N, 3] nm, updated in place (only ``free`` particles move).
    top, K2B [R, Nb], K2A [R, Na] : the engine's topology tuple and ``2 L`` per term (see
        :func:`cgsurrogate.simulate.numba_kernels.terms`).
    loadf : [N] full load along y, kJ/mol/nm.
    free : [Nf] int, the particles that move.
    load : |load on one loaded particle|, kJ/mol/nm (the residual's unit).
    tol, max_iter : residual tolerance (multiples of ``load``) and largest number of force evaluations.
    dt0, dt_max, max_step, n_min, f_inc, f_dec, alpha0, f_alpha : FIRE's constants
        (:mod:`cgsurrogate.simulate.settle`).
    V [Nf, 3], F [N, 3], EB, UV, T : scratch.
    resid [R], iters [R] : out: the residual at the returned positions, and the number of force
        evaluations until the tolerance was met (``max_iter`` if it was not).
    """
    nf = free.shape[0]
    for r in range(X.shape[0]):
        x = X[r]
        k2b = K2B[r]
        k2a = K2A[r]
        for q in range(nf):
            V[q, 0] = 0.0
            V[q, 1] = 0.0
            V[q, 2] = 0.0
        step = dt0
        alpha = alpha0
        npos = 0
        iters[r] = max_iter
        for it in range(max_iter + 1):
            terms(x, top, k2b, k2a, EB, UV, T)
            reduce_forces(T, top[9], top[10], F)
            fmax2 = 0.0
            power = 0.0
            vv = 0.0
            ff = 0.0
            for q in range(nf):
                n = free[q]
                F[n, 1] += loadf[n]
                f2 = F[n, 0] * F[n, 0] + F[n, 1] * F[n, 1] + F[n, 2] * F[n, 2]
                fmax2 = max(fmax2, f2)
                power += F[n, 0] * V[q, 0] + F[n, 1] * V[q, 1] + F[n, 2] * V[q, 2]
                vv += V[q, 0] * V[q, 0] + V[q, 1] * V[q, 1] + V[q, 2] * V[q, 2]
                ff += f2
            resid[r] = math.sqrt(fmax2) / load
            if it == max_iter:  # this evaluation only measures the residual at the returned positions
                break
            if resid[r] <= tol:
                iters[r] = it + 1
                break
            # velocity mixing with the current alpha, then the step, alpha and count updates
            up = power > 0.0
            keep = 1.0 - alpha if up else 0.0
            mix = alpha * math.sqrt(vv) / max(math.sqrt(ff), 1e-300) if up else 0.0
            if up:
                if npos > n_min:
                    step = min(step * f_inc, dt_max)
                    alpha = alpha * f_alpha
                npos += 1
            else:
                step = step * f_dec
                alpha = alpha0
                npos = 0
            big = 0.0
            for q in range(nf):
                n = free[q]
                d2 = 0.0
                for c in range(3):
                    vc = keep * V[q, c] + mix * F[n, c]
                    vc = vc + step * F[n, c]
                    V[q, c] = vc
                    d2 += (step * vc) ** 2
                big = max(big, d2)
            scale = min(1.0, max_step / max(math.sqrt(big), 1e-300))
            for q in range(nf):
                n = free[q]
                for c in range(3):
                    x[n, c] += (step * V[q, c]) * scale


def fire_settle_compiled(engine, x0, free, load: float, tol: float, max_iter: int) -> dict:
    """:func:`cgsurrogate.simulate.settle.fire_settle` for a :class:`~cgsurrogate.simulate.numba_engine.NumbaEngine`'s
    force field, in the compiled loop; same arguments (less the force callable) and same returned dict.

    Parameters
    ----------
    engine : NumbaEngine (its topology, strengths and full load give the net force)
    x0 : array [R, N, 3] nm (R = the engine's replicas)
    free : int array; load : kJ/mol/nm; tol, max_iter : as :func:`fire_settle`.
    """
    import numpy as np

    from cgsurrogate.core.errors import CGSurrogateError
    from cgsurrogate.simulate import settle as ref

    if not (np.isfinite(tol) and tol > 0) or int(max_iter) < 1 or not load:
        raise CGSurrogateError(f"settle: tolerance ({tol!r}) and max_iter ({max_iter!r}) must be positive, load nonzero")
    x = np.array(x0, dtype=np.float64, copy=True, order="C")
    R, N = x.shape[0], x.shape[1]
    free = np.ascontiguousarray(free, dtype=np.int64)
    EB, UV, T = engine._scratch
    resid = np.empty(R)
    iters = np.empty(R, dtype=np.int64)
    fire_kernel(x, engine._top, engine._k2b, engine._k2a, engine._loadf, free, abs(float(load)), float(tol), int(max_iter),
                ref.SETTLE_DT, ref.SETTLE_DT_MAX, ref.SETTLE_MAX_STEP, ref._N_MIN, ref._F_INC, ref._F_DEC, ref._ALPHA0,
                ref._F_ALPHA, np.zeros((len(free), 3)), np.zeros((N, 3)), EB, UV, T, resid, iters)
    return {"positions": x, "residual": resid, "iterations": iters, "converged": resid <= tol}
