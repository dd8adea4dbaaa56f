"""Compiled (numba) kernels of the microtubule force field and the protocol's Langevin step.

Imported only by :mod:`cgsurrogate.simulate.numba_engine` (the ``[fast]`` extra); it needs
``numba`` at import. Everything here is float64 and works on one replica at a time; the
engine loops over replicas (all steps of one replica, then the next: the working set stays
in cache).

Layout (per replica): positions, velocities and forces ``[N, 3]`` nm, nm/ps, kJ/mol/nm.
Terms are evaluated in three passes so the arithmetic vectorises (AVX2 on a CPU):

1. gather: bond vectors ``x[j] - x[i]`` and angle arms ``u = x[a] - x[m]``, ``v = x[c] - x[m]``
   into contiguous flat arrays;
2. compute: per-term forces into a flat contributions array ``T`` (``3 (2 Nb + 3 Na)`` values:
   bond force on ``i`` and ``j``, angle force on ``a`` and ``c``, then on ``m``), one loop per kind
   with no branches (selects only) and no libm calls, so LLVM vectorises it;
3. reduce: each particle sums its contributions through a CSR list (no read-modify-write
   chains), fused with the integrator update.

Force field (LAMMPS convention, as :mod:`cgsurrogate.simulate.openmm_system`): bond
``E = L (r - r0)^2``, angle ``E = L (theta - theta0)^2``; the kernels take ``k2 = 2 L``
(kJ/mol/nm^2, kJ/mol/rad^2) per term. ``theta - theta0 = atan2(s cos t0 - c sin t0,
c cos t0 + s sin t0)`` with ``s = |u x v|``, ``c = u.v``, evaluated by a branch-free Cephes
arctangent (relative error ~1e-16). Straight rest angles (``theta0 = pi``) use
``theta - pi = -atan2(s, -c)`` and the force factor ``atan(w)/w`` (``w = s / -c``) from its
series, so an exactly straight angle has zero force instead of 0/0.

Langevin "middle" step (:mod:`cgsurrogate.simulate.integrator`; OpenMM's
``LangevinMiddleIntegrator``), for every particle with nonzero inverse mass::

    v += dt f / m;  x += dt/2 v;  v = a v + b sqrt(1/m) xi;  x += dt/2 v

with the load ``scale(s) = min(s / ramp, 1)`` in ``f`` at step ``s``. ``xi`` has zero mean and
unit variance; it is uniform on ``[-sqrt 3, sqrt 3]`` (as LAMMPS's ``fix langevin``), drawn from
one xoshiro256+ stream per replica: Gaussian draws would cost as much as the force field here.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

#: fastmath flags: FMA contraction, reciprocal and signed-zero freedom (no reassociation, so
#: sums keep their order; no finite-math assumptions, so NaN checks stay valid).
_FAST = {"contract", "arcp", "nsz"}
_JIT = dict(fastmath=_FAST, error_model="numpy", boundscheck=False, nogil=True, cache=True)

# Cephes atan: atan(z) = z + z^3 P(z^2) / Q(z^2) on |z| <= 0.66, range reduction above.
_P0, _P1, _P2, _P3, _P4 = (-8.750608600031904122785e-01, -1.615753718733365076637e01, -7.500855792314704667340e01,
                           -1.228866684490136173410e02, -6.485021904942025371773e01)
_Q0, _Q1, _Q2, _Q3, _Q4 = (2.485846490142306297962e01, 1.650270098316988542046e02, 4.328810604912902668951e02,
                           4.853903996359136964868e02, 1.945506571482613964425e02)
_MOREBITS = 6.123233995736765886130e-17
_PI, _PI2, _PI4 = math.pi, math.pi / 2, math.pi / 4
_SQRT3 = math.sqrt(3.0)


@njit(inline="always", **_JIT)
def _atan2_parts(yy, xx):
    """``atan2(|yy|, |xx|)`` branch-free: returns (angle in [0, pi/2], ``zz P/Q``, z, direct) where
    ``direct`` means no range reduction was applied (angle = z (1 + zz P/Q), z = |yy| / |xx|)."""
    ay = abs(yy)
    ax = abs(xx)
    sw = ay > ax
    num = ax if sw else ay
    den = ay if sw else ax
    mid = num > 0.66 * den
    z = ((num - den) if mid else num) / ((num + den) if mid else den)
    zz = z * z
    pq = zz * ((((_P0 * zz + _P1) * zz + _P2) * zz + _P3) * zz + _P4) / (
        ((((zz + _Q0) * zz + _Q1) * zz + _Q2) * zz + _Q3) * zz + _Q4)
    at = z + z * pq
    at = (at + (_PI4 + 0.5 * _MOREBITS)) if mid else at
    at = ((_PI2 + _MOREBITS) - at) if sw else at
    return at, pq, den, (ay <= ax) & (num <= 0.66 * den)


@njit(**_JIT)
def gather(x, bi, bj, aa, am, ac, EB, UV):
    """Bond vectors ``EB[3b:3b+3] = x[bj] - x[bi]``; angle arms ``UV[6t:6t+3] = x[a] - x[m]``, ``UV[6t+3:6t+6] = x[c] - x[m]``.

    Every kernel indexes flat arrays as ``k * t + const`` from ``range(n)``: affine and non-negative, so
    numba emits no wrap-around and LLVM vectorises the loop (interleaved groups of at most 6)."""
    for b in range(bi.shape[0]):
        i = bi[b]
        j = bj[b]
        for d in range(3):
            EB[3 * b + d] = x[j, d] - x[i, d]
    for t in range(aa.shape[0]):
        a = aa[t]
        m = am[t]
        c = ac[t]
        for d in range(3):
            UV[6 * t + d] = x[a, d] - x[m, d]
            UV[6 * t + 3 + d] = x[c, d] - x[m, d]


@njit(**_JIT)
def bond_terms(EB, r0, k2, T):
    """Bond forces into ``T[6 b : 6 b + 3]`` (on i) and ``T[6 b + 3 : 6 b + 6]`` (on j)."""
    for b in range(r0.shape[0]):
        ex = EB[3 * b]
        ey = EB[3 * b + 1]
        ez = EB[3 * b + 2]
        r = math.sqrt(ex * ex + ey * ey + ez * ez)
        g = k2[b] * (r - r0[b]) / r
        T[6 * b] = g * ex
        T[6 * b + 1] = g * ey
        T[6 * b + 2] = g * ez
        T[6 * b + 3] = -g * ex
        T[6 * b + 4] = -g * ey
        T[6 * b + 5] = -g * ez


@njit(inline="always", **_JIT)
def _angle(UV, t, ct, st, straight):
    """Arms, ``|u|^2``, ``|v|^2``, ``theta - theta0``, ``(theta - theta0) / |u x v|`` and ``u.v / (|u|^2 |v|^2)`` of angle ``t``."""
    ux = UV[6 * t]
    uy = UV[6 * t + 1]
    uz = UV[6 * t + 2]
    vx = UV[6 * t + 3]
    vy = UV[6 * t + 4]
    vz = UV[6 * t + 5]
    cx = uy * vz - uz * vy
    cy = uz * vx - ux * vz
    cz = ux * vy - uy * vx
    s = math.sqrt(cx * cx + cy * cy + cz * cz)
    co = ux * vx + uy * vy + uz * vz
    uu = ux * ux + uy * uy + uz * uz
    vv = vx * vx + vy * vy + vz * vz
    if straight:
        # theta - pi = -atan2(s, -co); its ratio to s from atan(w)/w = 1 + zz P/Q when w = s/-co is small
        at, pq, den, direct = _atan2_parts(s, -co)
        at = ((_PI + 2 * _MOREBITS) - at) if co > 0.0 else at
        ratio = -(((1.0 + pq) / den) if (direct & (co < 0.0)) else at / s)
        delta = -at
        iuv = co / (uu * vv)
    else:
        yy = s * ct - co * st
        xx = co * ct + s * st
        at, pq, den, direct = _atan2_parts(yy, xx)
        at = ((_PI + 2 * _MOREBITS) - at) if xx < 0.0 else at
        delta = at if yy >= 0.0 else -at
        inv = 1.0 / (s * uu * vv)  # one division for delta / s and u.v / (|u|^2 |v|^2)
        ratio = delta * (uu * vv) * inv
        iuv = co * s * inv
    return ux, uy, uz, vx, vy, vz, uu, vv, delta, ratio, iuv


@njit(**_JIT)
def angle_terms(UV, cth0, sth0, straight, k2, Tac, Tm):
    """Forces of the angles in ``UV`` (``len(k2)`` of them): on a and c into ``Tac[6 t : 6 t + 6]``, on m into
    ``Tm[3 t : 3 t + 3]``.

    ``F_a = h (v - (u.v / |u|^2) u)``, ``F_c = h (u - (u.v / |v|^2) v)``, ``F_m = -F_a - F_c`` with
    ``h = 2 L (theta - theta0) / |u x v|``. ``straight``: rest angle pi (else below pi); the engine
    passes each kind as its own slice.
    """
    for t in range(k2.shape[0]):
        ux, uy, uz, vx, vy, vz, uu, vv, delta, ratio, iuv = _angle(UV, t, cth0[t], sth0[t], straight)
        h = k2[t] * ratio
        cu = iuv * vv
        cv = iuv * uu
        fax = h * (vx - cu * ux)
        fay = h * (vy - cu * uy)
        faz = h * (vz - cu * uz)
        fcx = h * (ux - cv * vx)
        fcy = h * (uy - cv * vy)
        fcz = h * (uz - cv * vz)
        Tac[6 * t] = fax
        Tac[6 * t + 1] = fay
        Tac[6 * t + 2] = faz
        Tac[6 * t + 3] = fcx
        Tac[6 * t + 4] = fcy
        Tac[6 * t + 5] = fcz
        Tm[3 * t] = -(fax + fcx)
        Tm[3 * t + 1] = -(fay + fcy)
        Tm[3 * t + 2] = -(faz + fcz)


@njit(**_JIT)
def terms(x, top, k2b, k2a, EB, UV, T):
    """All term forces of one replica into ``T`` (flat: bonds 6 per term, angles 6 per term (a, c), angles 3 per term (m)).

    ``top`` is the tuple built by the engine: ``(bi, bj, r0, aa, am, ac, cth0, sth0, n_bent, ptr, idx)``;
    angles ``0 .. n_bent-1`` have rest angles below pi, the rest are straight.
    """
    bi, bj, r0, aa, am, ac, cth0, sth0, n_bent, ptr, idx = top
    gather(x, bi, bj, aa, am, ac, EB, UV)
    nb = bi.shape[0]
    na = aa.shape[0]
    bond_terms(EB, r0, k2b, T[: 6 * nb])
    ac0 = 6 * nb
    m0 = ac0 + 6 * na
    angle_terms(UV[: 6 * n_bent], cth0[:n_bent], sth0[:n_bent], False, k2a[:n_bent], T[ac0: ac0 + 6 * n_bent],
                T[m0: m0 + 3 * n_bent])
    angle_terms(UV[6 * n_bent:], cth0[n_bent:], sth0[n_bent:], True, k2a[n_bent:], T[ac0 + 6 * n_bent: m0],
                T[m0 + 3 * n_bent:])


@njit(inline="always", **_JIT)
def _particle_force(T, ptr, idx, n):
    """Internal force on particle ``n``: the sum over ``q in ptr[n] .. ptr[n+1]-1`` of ``T[idx[q] : idx[q] + 3]``."""
    sx = 0.0
    sy = 0.0
    sz = 0.0
    for q in range(ptr[n], ptr[n + 1]):
        k = idx[q]
        sx += T[k]
        sy += T[k + 1]
        sz += T[k + 2]
    return sx, sy, sz


@njit(**_JIT)
def reduce_forces(T, ptr, idx, f):
    """``f[n]`` = the internal force on every particle ``n`` (see :func:`_particle_force`)."""
    for n in range(ptr.shape[0] - 1):
        f[n, 0], f[n, 1], f[n, 2] = _particle_force(T, ptr, idx, n)


@njit(**_JIT)
def term_energies(x, top, k2b, k2a, EB, UV, eb, ea):
    """Term energies (kJ/mol) of one replica: bonds ``L (r - r0)^2`` into ``eb``, angles ``L (theta - theta0)^2`` into ``ea``."""
    bi, bj, r0, aa, am, ac, cth0, sth0, n_bent, ptr, idx = top
    gather(x, bi, bj, aa, am, ac, EB, UV)
    for b in range(bi.shape[0]):
        dr = math.sqrt(EB[3 * b] ** 2 + EB[3 * b + 1] ** 2 + EB[3 * b + 2] ** 2) - r0[b]
        eb[b] = 0.5 * k2b[b] * dr * dr
    for t in range(aa.shape[0]):
        delta = _angle(UV, t, cth0[t], sth0[t], t >= n_bent)[8]
        ea[t] = 0.5 * k2a[t] * delta * delta


@njit(inline="always", **_JIT)
def _rotl(v, k):
    return (v << np.uint64(k)) | (v >> np.uint64(64 - k))


@njit(inline="always", **_JIT)
def _uniform_unit(st):
    """xoshiro256+ on the 4-word state ``st``: a draw with zero mean and unit variance (uniform)."""
    s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
    res = s0 + s3
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    st[0], st[1], st[2], st[3] = s0, s1, s2, s3
    u = float(res >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return _SQRT3 * (2.0 * u - 1.0)


@njit(**_JIT)
def run_steps(X, Vel, top, K2B, K2A, invm, noise, loadf, EB, UV, T, rng,
              start, stop, ramp, dt, fric_a):
    """Advance every replica through protocol steps ``start .. stop-1``.

    Parameters
    ----------
    X, Vel : [R, N, 3] positions (nm) and velocities (nm/ps), updated in place.
    top : topology tuple (see :func:`terms`).
    K2B [R, Nb], K2A [R, Na] : ``2 L`` per term and replica.
    invm [N] : 1/mass (1/amu), 0 for clamped particles (never moved).
    noise [N] : ``b sqrt(1/m)`` (nm/ps), ``b = sqrt((1 - a^2) kT)``; all zero at 0 K (no draws).
    loadf [N] : full load along y (kJ/mol/nm; ``-fmax`` on loaded particles, else 0).
    EB, UV, T : scratch arrays (see :func:`terms`).
    rng [R, 4] uint64 : xoshiro256+ states, updated.
    ramp : ramp steps (0: full load). dt : ps. fric_a : ``exp(-gamma dt)``.
    """
    R, N = X.shape[0], X.shape[1]
    ptr = top[9]
    idx = top[10]
    hdt = 0.5 * dt
    thermal = False
    for n in range(N):
        if noise[n] != 0.0:
            thermal = True
    for r in range(R):
        x = X[r]
        v = Vel[r]
        st = rng[r]
        k2b = K2B[r]
        k2a = K2A[r]
        for s in range(start, stop):
            scale = 1.0 if ramp == 0 else min(s / ramp, 1.0)
            terms(x, top, k2b, k2a, EB, UV, T)
            for n in range(N):
                im = invm[n]
                if im == 0.0:
                    continue
                fx, fy, fz = _particle_force(T, ptr, idx, n)
                fy += scale * loadf[n]
                vx = v[n, 0] + dt * fx * im
                vy = v[n, 1] + dt * fy * im
                vz = v[n, 2] + dt * fz * im
                px = x[n, 0] + hdt * vx
                py = x[n, 1] + hdt * vy
                pz = x[n, 2] + hdt * vz
                vx = fric_a * vx
                vy = fric_a * vy
                vz = fric_a * vz
                if thermal:
                    b = noise[n]
                    vx += b * _uniform_unit(st)
                    vy += b * _uniform_unit(st)
                    vz += b * _uniform_unit(st)
                x[n, 0] = px + hdt * vx
                x[n, 1] = py + hdt * vy
                x[n, 2] = pz + hdt * vz
                v[n, 0] = vx
                v[n, 1] = vy
                v[n, 2] = vz


@njit(**_JIT)
def forces_energies(X, top, K2B, K2A, F, EB_, EA_, EB, UV, T):
    """Internal forces ``F[R, N, 3]`` (kJ/mol/nm) and term energies ``EB_[R, Nb]``, ``EA_[R, Na]`` (kJ/mol)."""
    for r in range(X.shape[0]):
        terms(X[r], top, K2B[r], K2A[r], EB, UV, T)
        reduce_forces(T, top[9], top[10], F[r])
        term_energies(X[r], top, K2B[r], K2A[r], EB, UV, EB_[r], EA_[r])


@njit(**_JIT)
def internal_forces(X, top, K2B, K2A, F, active, EB, UV, T):
    """Internal forces ``F[r]`` (kJ/mol/nm) of the replicas ``r`` with ``active[r]`` (the others are left as they are)."""
    for r in range(X.shape[0]):
        if active[r]:
            terms(X[r], top, K2B[r], K2A[r], EB, UV, T)
            reduce_forces(T, top[9], top[10], F[r])
