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

The exact search over alpha is :mod:`cgsurrogate.surrogate.graphs.alpha_search`; the
eigendecomposition and assignment primitives are :mod:`cgsurrogate.surrogate.graphs.spectrum`.

Refinement over the Stiefel manifold (:func:`refine_stiefel`, pymanopt) starts from the
eigenvector construction; that start is always a critical point (its Riemannian gradient
vanishes), so the refinement is the paper's polishing step and an independent check.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.graphs.alpha_search import AlphaSearchResult, alpha_search
from cgsurrogate.surrogate.graphs.spectrum import (
    ZERO_TOL,  # noqa: F401  (kept importable from here)
    assignment,
    assignment_cost,
    laplacian_spectrum,
    prolongation_from_assignment,
)
from cgsurrogate.surrogate.graphs.weighted_graph import laplacian_csr

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


def _as_laplacian(graph_or_L):
    """A Laplacian given as a matrix (ndarray / scipy sparse) as CSR, or the Laplacian of a graph object."""
    import scipy.sparse as sp

    if sp.issparse(graph_or_L) or isinstance(graph_or_L, np.ndarray):
        return sp.csr_matrix(graph_or_L, dtype=np.float64)
    return laplacian_csr(graph_or_L)


def objective(P: np.ndarray, L1, L2, alpha: float = 1.0) -> float:
    """``|| (1/alpha) P L1 - alpha L2 P ||_F`` (not squared).

    Parameters
    ----------
    P : ndarray [n2, n1]
    L1 : Laplacian [n1, n1] (ndarray or scipy sparse) or a graph object
    L2 : Laplacian [n2, n2] (ndarray or scipy sparse) or a graph object
    alpha : float > 0
    """
    L1 = _as_laplacian(L1)
    L2 = _as_laplacian(L2)
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

    L1 = _as_laplacian(L1)
    L2 = _as_laplacian(L2)
    P0 = np.asarray(P0, dtype=np.float64)
    n2, n1 = P0.shape
    if L1.shape != (n1, n1) or L2.shape != (n2, n2):
        raise CGSurrogateError(f"refine_stiefel: P0 {P0.shape} does not fit L1 {L1.shape} and L2 {L2.shape}")
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
        raise CGSurrogateError(f"LGDD needs |G1| <= |G2|; got {len(lam1)} and {len(lam2)} nodes (swap the graphs)")
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
            raise CGSurrogateError(f"cannot refine at alpha = {al}")
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
