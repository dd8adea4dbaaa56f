"""Exact search over alpha of the linear graph diffusion distance (Scott & Mjolsness 2021, fig. 5).

Alpha search (exact). Write ``t = alpha^2``, ``A = sum_j a_j^2`` (the same for every ``pi``
because every row is matched), ``B_pi = sum_j b_pi(j)^2``, ``C_pi = sum_j a_j b_pi(j)``. Then

    f_pi(t) = A / t - 2 C_pi + B_pi t ,     min_t f_pi = 2 (sqrt(A B_pi) - C_pi) at t = sqrt(A / B_pi).

The lower envelope (paper fig. 5) is ``F(t) = A/t + g(t)`` with ``g(t) = min_pi (B_pi t - 2 C_pi)``
a *concave piecewise-linear* function of ``t``: each RLAP solved at some ``t`` returns one of
its linear pieces (a supporting line). :func:`alpha_search` enumerates the pieces by
intersecting supporting lines (each RLAP solution is reused as an exact upper bound for every
alpha, and as the end line of two neighbouring intervals), and prunes an interval ``[tl, tr]``
as soon as the lower bound ``min_t A/t + chord(t)`` (concavity puts ``g`` above the chord) is no
better than the best feasible value found. The result is the global minimum of ``D^2`` over
subpermutations and alpha up to an absolute tolerance ``rtol * 2 sqrt(A max_pi B_pi)`` and the
exactness of the RLAP solver; the minimiser lies in ``t in [sqrt(A/B_max), sqrt(A/B_min)]``.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.graphs.spectrum import assignment, assignment_cost, check_sizes

__all__ = ["AlphaSearchResult", "alpha_search"]


@dataclass
class AlphaSearchResult:
    """Outcome of :func:`alpha_search`.

    Attributes
    ----------
    distance : float   D = sqrt(min over subpermutations and alpha of the squared objective)
    alpha : float      the minimising alpha (``inf`` / ``0`` in the degenerate cases noted in :func:`alpha_search`)
    assignment : ndarray [n1] int   the minimising injection
    num_rlap : int     number of RLAPs solved
    tolerance : float  absolute tolerance on ``distance**2``
    pieces : list of (B, C) for the supporting lines found (the envelope pieces visited)
    """

    distance: float
    alpha: float
    assignment: np.ndarray
    num_rlap: int
    tolerance: float
    pieces: list = field(default_factory=list, repr=False)


def _line(a, b, pi):
    bp = b[pi]
    return float(np.dot(bp, bp)), float(np.dot(a, bp))


def alpha_search(lam1: np.ndarray, lam2: np.ndarray, rtol: float = 1e-12, max_rlap: int = 20000,
                 extra_alphas=(1.0,)) -> AlphaSearchResult:
    """Global minimum over alpha > 0 and subpermutations of ``sum_j (a_j/alpha - alpha b_pi(j))^2``.

    Exact branch and bound over the concave piecewise-linear envelope (module docstring).

    Parameters
    ----------
    lam1 : ndarray [n1]; lam2 : ndarray [n2]  Laplacian eigenvalues (paper sign), n1 <= n2.
    rtol : float  relative tolerance; the result's ``distance**2`` is within
        ``rtol * 2 sqrt(A B_max)`` of the global minimum (for exact RLAP solutions).
    max_rlap : int  safety cap on RLAP solves (a CGSurrogateError is raised if it is hit).
    extra_alphas : iterable of float  alphas evaluated first as seeds (default: 1).

    Returns
    -------
    AlphaSearchResult
        Degenerate cases: if ``G1`` has no edges (``A = 0``) the infimum 0 is approached as
        alpha -> 0 (``alpha = 0.0``); if ``G2`` has at least ``n1`` zero eigenvalues the infimum
        0 is approached as alpha -> inf (``alpha = inf``).
    """
    a = np.asarray(lam1, dtype=np.float64)
    b = np.asarray(lam2, dtype=np.float64)
    check_sizes(a, b)
    n1 = len(a)
    A = float(np.dot(a, a))
    b2 = np.sort(b * b)
    Bmin, Bmax = float(b2[:n1].sum()), float(b2[-n1:].sum()) if n1 else 0.0
    if A == 0.0:
        return AlphaSearchResult(0.0, 0.0, np.argsort(b * b, kind="stable")[:n1], 0, 0.0)
    if Bmin == 0.0:
        pi = np.argsort(b * b, kind="stable")[:n1]
        return AlphaSearchResult(0.0, math.inf, pi, 0, 0.0)
    tlo, thi = math.sqrt(A / Bmax), math.sqrt(A / Bmin)
    tol = rtol * 2.0 * math.sqrt(A * Bmax)
    if thi <= tlo * (1.0 + 1e-14):  # n1 == n2 (or equal extremes): B is the same for every injection
        pi = assignment(a, b, A ** 0.25 / Bmin ** 0.25)
        alpha = (A / Bmin) ** 0.25
        d2 = assignment_cost(a, b, pi, alpha)
        return AlphaSearchResult(math.sqrt(max(d2, 0.0)), alpha, pi, 1, tol, [_line(a, b, pi)])
    num = 0
    cache: dict[tuple, np.ndarray] = {}
    best = [math.inf, None, None]  # value (squared D), line, pi

    def oracle(t):
        nonlocal num
        num += 1
        if num > max_rlap:
            raise CGSurrogateError(f"alpha_search: more than {max_rlap} RLAPs without convergence")
        pi = assignment(a, b, math.sqrt(t))
        ln = _line(a, b, pi)
        cache.setdefault(ln, pi)
        val = 2.0 * (math.sqrt(A * ln[0]) - ln[1])
        if val < best[0]:
            best[:] = [val, ln, pi]
        return ln

    for al in extra_alphas:
        t = float(al) ** 2
        if tlo < t < thi:
            oracle(t)
    Ll, Lr = oracle(tlo), oracle(thi)

    ltol_b, ltol_c = 1e-12 * Bmax, 1e-12 * math.sqrt(A * Bmax)

    def same(L0, L1_):
        return abs(L0[0] - L1_[0]) <= ltol_b and abs(L0[1] - L1_[1]) <= ltol_c

    def gval(ln, t):
        return ln[0] * t - 2.0 * ln[1]

    def lower_bound(tl, Ll, tr, Lr):
        gl, gr = gval(Ll, tl), gval(Lr, tr)
        s = (gr - gl) / (tr - tl)
        c0 = gl - s * tl
        t0 = min(max(math.sqrt(A / s), tl), tr) if s > 0 else tr
        return A / t0 + s * t0 + c0

    heap = [(lower_bound(tlo, Ll, thi, Lr), tlo, Ll, thi, Lr)]
    while heap:
        lb, tl, Ll, tr, Lr = heapq.heappop(heap)
        if lb >= best[0] - tol:
            break  # every remaining interval has a lower bound at least as large
        if same(Ll, Lr) or (tr - tl) <= 1e-15 * tr:
            continue
        dB = Ll[0] - Lr[0]
        tm = 2.0 * (Ll[1] - Lr[1]) / dB if dB > 0 else math.sqrt(tl * tr)
        if not (tl < tm < tr):
            tm = math.sqrt(tl * tr)
        Lm = oracle(tm)
        gm = gval(Lm, tm)
        if gm >= min(gval(Ll, tm), gval(Lr, tm)) - tol:
            continue  # tm is the only breakpoint between the two lines: the envelope is known here
        for (x0, L0, x1, L1_) in ((tl, Ll, tm, Lm), (tm, Lm, tr, Lr)):
            if not same(L0, L1_):
                lbi = lower_bound(x0, L0, x1, L1_)
                if lbi < best[0] - tol:
                    heapq.heappush(heap, (lbi, x0, L0, x1, L1_))

    _, (B, C), pi = best
    alpha = (A / B) ** 0.25
    d2 = assignment_cost(a, b, pi, alpha)  # direct sum of squares: no cancellation near 0
    return AlphaSearchResult(math.sqrt(max(d2, 0.0)), alpha, pi, num, tol, list(cache))

