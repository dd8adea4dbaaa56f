"""Linear graph diffusion distance (LGDD) and optimal prolongation matrices.

Scott & Mjolsness 2021, eq. (1) and sec. 3.2: for graphs ``G1``, ``G2`` with
``|G1| = n1 <= n2 = |G2|`` and Laplacians ``L_i = A_i - diag(A_i 1)``,

    D(G1, G2) = inf_{P^T P = I, alpha > 0} || (1/alpha) P L1 - alpha L2 P ||_F ,   P: [n2, n1].

The paper's procedure restricts ``P = U2 Pt U1^T`` where ``L_i = U_i diag(lam_i) U_i^T`` and
``Pt`` is a subpermutation (``Pt[pi(j), j] = 1`` for an injection ``pi``). Then

    || (1/alpha) P L1 - alpha L2 P ||_F^2 = sum_j (a_j / alpha - alpha b_pi(j))^2 ,

with ``a = lam_1`` and ``b = lam_2``: the entries of ``Pt Lam1`` and ``Lam2 Pt`` sit at the
same positions, so the ``n2 - n1`` unmatched eigen-directions of ``L2`` contribute nothing.
At fixed alpha the best injection solves a rectangular linear assignment problem (RLAP) with
cost ``(a_j/alpha - alpha b_l)^2`` (:func:`scipy.optimize.linear_sum_assignment`).

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

Refinement over the Stiefel manifold (:func:`refine_stiefel`, pymanopt) starts from the
eigenvector construction; that start is always a critical point (its Riemannian gradient
vanishes), so the refinement is the paper's polishing step and an independent check.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from cgsurrogate.surrogate.graphs.weighted_graph import adjacency_of, dense_laplacian

__all__ = [
    "laplacian_spectrum",
    "assignment",
    "assignment_cost",
    "prolongation_from_assignment",
    "objective",
    "refine_stiefel",
    "alpha_search",
    "AlphaSearchResult",
    "LGDDResult",
    "lgdd",
    "prolongation",
]

#: Eigenvalues with ``|lam| <= ZERO_TOL * max|lam|`` are set to exactly 0 (graph components).
ZERO_TOL = 1e-11


def laplacian_spectrum(graph, vectors: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Eigendecomposition of the paper-sign Laplacian ``L = U diag(lam) U^T``.

    Parameters
    ----------
    graph : Tube, Grid, WeightedGraph or adjacency matrix [N, N]
    vectors : bool  also compute the eigenvectors (False is faster; ``U`` is then None)

    Returns
    -------
    lam : ndarray [N] float64, ascending (all <= 0); values within ``ZERO_TOL`` of 0 are set to 0.
    U : ndarray [N, N] float64, orthonormal eigenvectors in columns (None if ``vectors`` is False).
    """
    L = dense_laplacian(graph)
    if vectors:
        lam, U = np.linalg.eigh(L)
    else:
        lam, U = np.linalg.eigvalsh(L), None
    scale = max(float(np.abs(lam).max()), 1e-300)
    lam = np.where(np.abs(lam) <= ZERO_TOL * scale, 0.0, np.minimum(lam, 0.0))
    return lam, U


def _check_sizes(lam1, lam2):
    if len(lam1) > len(lam2):
        raise ValueError(f"LGDD needs |G1| <= |G2|, got {len(lam1)} > {len(lam2)}")


def assignment(lam1: np.ndarray, lam2: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Optimal injection for the RLAP with cost ``(lam1_j/alpha - alpha lam2_l)^2``.

    Parameters
    ----------
    lam1 : ndarray [n1]; lam2 : ndarray [n2], n1 <= n2
    alpha : float > 0

    Returns
    -------
    pi : ndarray [n1] int64, ``pi[j]`` the index of the ``lam2`` eigenvalue matched to ``lam1[j]``.
    """
    lam1 = np.asarray(lam1, dtype=np.float64)
    lam2 = np.asarray(lam2, dtype=np.float64)
    _check_sizes(lam1, lam2)
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    cost = (lam1[:, None] / alpha - alpha * lam2[None, :]) ** 2
    rows, cols = linear_sum_assignment(cost)
    pi = np.empty(len(lam1), dtype=np.int64)
    pi[rows] = cols
    return pi


def assignment_cost(lam1: np.ndarray, lam2: np.ndarray, pi: np.ndarray, alpha: float = 1.0) -> float:
    """Squared objective of the eigenvector construction: ``sum_j (lam1_j/alpha - alpha lam2_pi(j))^2``.

    Equals ``objective(prolongation_from_assignment(U1, U2, pi), L1, L2, alpha) ** 2``.
    """
    lam1 = np.asarray(lam1, dtype=np.float64)
    lam2 = np.asarray(lam2, dtype=np.float64)
    return float(np.sum((lam1 / alpha - alpha * lam2[np.asarray(pi)]) ** 2))


def prolongation_from_assignment(U1: np.ndarray, U2: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """``P = U2 Pt U1^T`` with ``Pt[pi[j], j] = 1``.

    Parameters
    ----------
    U1 : ndarray [n1, n1]; U2 : ndarray [n2, n2] (orthonormal eigenvectors in columns)
    pi : ndarray [n1] int

    Returns
    -------
    P : ndarray [n2, n1] float64 with ``P^T P = I``.
    """
    return U2[:, np.asarray(pi)] @ U1.T


def _laplacian_csr(graph_or_L):
    import scipy.sparse as sp

    if sp.issparse(graph_or_L) or isinstance(graph_or_L, np.ndarray):
        return sp.csr_matrix(graph_or_L, dtype=np.float64)
    a = adjacency_of(graph_or_L)
    return (a - sp.diags(np.asarray(a.sum(1)).ravel())).tocsr()


def objective(P: np.ndarray, L1, L2, alpha: float = 1.0) -> float:
    """``|| (1/alpha) P L1 - alpha L2 P ||_F`` (not squared).

    Parameters
    ----------
    P : ndarray [n2, n1]
    L1 : Laplacian [n1, n1] (ndarray or scipy sparse) or a graph object
    L2 : Laplacian [n2, n2] (ndarray or scipy sparse) or a graph object
    alpha : float > 0
    """
    L1 = _laplacian_csr(L1)
    L2 = _laplacian_csr(L2)
    P = np.asarray(P, dtype=np.float64)
    R = (L1.T @ P.T).T / alpha - alpha * (L2 @ P)
    return float(np.sqrt(np.sum(R * R)))


def refine_stiefel(P0: np.ndarray, L1, L2, alpha: float = 1.0, max_iterations: int = 100,
                   min_gradient_norm: float = 1e-8, max_time: float = 600.0) -> tuple[np.ndarray, dict]:
    """Refine a prolongation on the Stiefel manifold ``{P : P^T P = I}`` with pymanopt.

    Minimises ``|| (1/alpha) P L1 - alpha L2 P ||_F^2`` by Riemannian conjugate gradients from
    ``P0``. The returned matrix never has a larger objective than ``P0`` (if the optimiser ends
    higher, ``P0`` is returned and ``info["kept_start"]`` is True).

    Parameters
    ----------
    P0 : ndarray [n2, n1] with orthonormal columns
    L1, L2 : Laplacians [n1, n1], [n2, n2] (ndarray / scipy sparse) or graph objects
    alpha : float > 0
    max_iterations, min_gradient_norm, max_time : pymanopt stopping criteria

    Returns
    -------
    P : ndarray [n2, n1]
    info : dict with ``start`` and ``end`` objective (not squared), ``iterations``,
        ``stopping_reason``, ``kept_start``.
    """
    import pymanopt
    from pymanopt.manifolds import Stiefel
    from pymanopt.optimizers import ConjugateGradient

    L1 = _laplacian_csr(L1)
    L2 = _laplacian_csr(L2)
    P0 = np.asarray(P0, dtype=np.float64)
    n2, n1 = P0.shape
    if L1.shape != (n1, n1) or L2.shape != (n2, n2):
        raise ValueError(f"refine_stiefel: P0 {P0.shape} does not fit L1 {L1.shape} and L2 {L2.shape}")
    L1T = L1.T.tocsr()
    manifold = Stiefel(n2, n1)

    def residual(P):
        return (L1T @ P.T).T / alpha - alpha * (L2 @ P)

    @pymanopt.function.numpy(manifold)
    def cost(P):
        R = residual(P)
        return float(np.sum(R * R))

    @pymanopt.function.numpy(manifold)
    def egrad(P):
        R = residual(P)
        return 2.0 * ((L1 @ R.T).T / alpha - alpha * (L2.T @ R))

    problem = pymanopt.Problem(manifold, cost, euclidean_gradient=egrad)
    opt = ConjugateGradient(max_iterations=max_iterations, min_gradient_norm=min_gradient_norm,
                            max_time=max_time, verbosity=0, log_verbosity=0)
    res = opt.run(problem, initial_point=P0)
    c0 = float(np.sum(residual(P0) ** 2))
    P = np.asarray(res.point)
    c1 = float(np.sum(residual(P) ** 2))
    kept = not (c1 <= c0)
    if kept:
        P, c1 = P0, c0
    return P, {"start": math.sqrt(c0), "end": math.sqrt(c1), "iterations": int(res.iterations),
               "stopping_reason": str(res.stopping_criterion), "kept_start": kept}


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
    max_rlap : int  safety cap on RLAP solves (a ValueError is raised if it is hit).
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
    _check_sizes(a, b)
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
            raise ValueError(f"alpha_search: more than {max_rlap} RLAPs without convergence")
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


@dataclass
class LGDDResult:
    """Outcome of :func:`lgdd`.

    Attributes
    ----------
    distance : float  the objective ``||(1/alpha) P L1 - alpha L2 P||_F`` at the returned P and alpha
    alpha : float
    P : ndarray [n2, n1] or None  the prolongation (when requested)
    assignment : ndarray [n1] int  the eigenvalue injection
    eigen_distance : float  the objective of the eigenvector construction before refinement
    num_rlap : int
    refine_info : dict or None  from :func:`refine_stiefel`
    """

    distance: float
    alpha: float
    P: np.ndarray | None
    assignment: np.ndarray
    eigen_distance: float
    num_rlap: int
    refine_info: dict | None = None


def lgdd(g1, g2, alpha: float | None = None, *, return_P: bool = True, refine: bool = False,
         refine_iterations: int = 100, rtol: float = 1e-12, spectra=None) -> LGDDResult:
    """Linear graph diffusion distance ``D(G1, G2)`` with ``|G1| <= |G2|`` (paper eq. 1, sec. 3.2).

    Parameters
    ----------
    g1, g2 : graph objects (Tube, Grid, WeightedGraph) or adjacency matrices [n1, n1], [n2, n2]
    alpha : float or None
        Fixed alpha (the paper uses 1 for the hierarchy matrices); None searches alpha globally
        (:func:`alpha_search`).
    return_P : bool  build ``P = U2 Pt U1^T`` [n2, n1].
    refine : bool  polish P with :func:`refine_stiefel` (needs a finite positive alpha).
    refine_iterations : int
    rtol : float  tolerance of the alpha search.
    spectra : optional ``((lam1, U1), (lam2, U2))`` to reuse eigendecompositions.

    Returns
    -------
    LGDDResult
    """
    need_vectors = return_P or refine
    if spectra is None:
        spectra = (laplacian_spectrum(g1, need_vectors), laplacian_spectrum(g2, need_vectors))
    (lam1, U1), (lam2, U2) = spectra
    if len(lam1) > len(lam2):
        raise ValueError(f"LGDD needs |G1| <= |G2|; got {len(lam1)} and {len(lam2)} nodes (swap the graphs)")
    if alpha is None:
        res = alpha_search(lam1, lam2, rtol=rtol)
        al, pi, d, num = res.alpha, res.assignment, res.distance, res.num_rlap
    else:
        al = float(alpha)
        pi = assignment(lam1, lam2, al)
        d, num = math.sqrt(assignment_cost(lam1, lam2, pi, al)), 1
    P = prolongation_from_assignment(U1, U2, pi) if (return_P or refine) else None
    info = None
    dist = d
    if refine:
        if not (0 < al < math.inf):
            raise ValueError(f"cannot refine at alpha = {al}")
        P, info = refine_stiefel(P, g1, g2, al, max_iterations=refine_iterations)
        dist = info["end"]
    return LGDDResult(dist, al, P, pi, d, num, info)


def prolongation(fine, coarse, alpha: float = 1.0, refine: bool = False, refine_iterations: int = 100) -> np.ndarray:
    """Prolongation matrix ``P`` [n_fine, n_coarse] minimising ``||P L(coarse) - L(fine) P||_F`` (alpha = 1).

    Parameters
    ----------
    fine, coarse : graph objects or adjacency matrices, ``|coarse| <= |fine|``
    alpha : float  (the paper's hierarchies use 1)
    refine : bool  polish on the Stiefel manifold with pymanopt.

    Returns
    -------
    ndarray [n_fine, n_coarse] float64 with orthonormal columns.
    """
    return lgdd(coarse, fine, alpha, return_P=True, refine=refine, refine_iterations=refine_iterations).P
