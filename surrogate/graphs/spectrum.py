"""Laplacian spectra and the eigenvalue-assignment construction of LGDD prolongations.

For Laplacians ``L_i = U_i diag(lam_i) U_i^T`` (paper sign, :func:`cgsurrogate.surrogate.graphs.weighted_graph.laplacian_csr`),
an injection ``pi`` of the ``n1`` eigenvalues of ``G1`` into the ``n2`` of ``G2`` gives the
prolongation ``P = U2 Pt U1^T`` [n2, n1] and the squared objective
``sum_j (lam1_j / alpha - alpha lam2_pi(j))^2`` (:mod:`cgsurrogate.surrogate.graphs.lgdd`).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.graphs.weighted_graph import dense_laplacian

__all__ = ["ZERO_TOL", "laplacian_spectrum", "assignment", "assignment_cost", "prolongation_from_assignment",
           "check_sizes"]

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


def check_sizes(lam1, lam2):
    if len(lam1) > len(lam2):
        raise CGSurrogateError(f"LGDD needs |G1| <= |G2|, got {len(lam1)} > {len(lam2)}")


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
    check_sizes(lam1, lam2)
    if not alpha > 0:
        raise CGSurrogateError(f"alpha must be positive, got {alpha}")
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

