"""Preconditioners of the coarse-to-fine L-BFGS: the Galerkin Hessian of a coarse stage, and
factors ``C`` (``C C^T = H0``, the initial inverse Hessian) of its inverse and of the two-level
(deflation) preconditioner of the fine stage that follows. SciPy's L-BFGS-B takes them as a
change of variables ``y = y0 + C z`` (:func:`cgsurrogate.optimize.optimizers.lbfgs`)."""
from __future__ import annotations

import torch


def galerkin_hessian(fg, m, start, h, on_eval=None):
    """Coarse Hessian ``B^T (d^2E/dX^2) B`` ``[m, m]`` by forward differences of the stage gradient.

    Costs ``m`` fine evaluations (counted by ``fg``). Returns ``(w, V)``, the eigen-
    decomposition with eigenvalues made positive (absolute values, floored at
    ``1e-8`` of the largest) so that it can serve as a preconditioner.
    """
    g0 = start[1]
    H = torch.empty(m, m, dtype=torch.float64)
    for j in range(m):
        y = torch.zeros(m, dtype=torch.float64)
        y[j] = h
        out = fg(y)
        if on_eval is not None:
            on_eval(out[0], out[3])
        H[:, j] = (out[1] - g0) / h
    H = 0.5 * (H + H.T)
    w, V = torch.linalg.eigh(H)
    w = w.abs()
    w = w.clamp_min(1e-8 * float(w.max()) if float(w.max()) > 0 else 1.0)
    return w, V


def galerkin_factor(w: torch.Tensor, V: torch.Tensor):
    """``C = V diag(w)^{-1/2}`` with ``C C^T = Hc^{-1}`` for a coarse Hessian ``Hc = V diag(w) V^T`` [m, m]."""
    s = w.rsqrt()
    return (lambda z: V @ (z * s)), (lambda g: (V.T @ g) * s)


def deflation_factor(basis_free: torch.Tensor, w: torch.Tensor, V: torch.Tensor):
    """Factor ``C`` [n, m + n] of ``B Hc^-1 B^T + gamma0 (I - Q Q^T)`` on the free fine coordinates.

    ``B`` [n, m] is the coarse basis on the free coordinates, ``Q`` an orthonormal basis of its
    range, ``Hc = V diag(w) V^T`` the coarse Hessian and ``gamma0 = 1 / max(w)``. ``z = (z1 [m], z2 [n])``:
    ``C z = B V w^{-1/2} z1 + sqrt(gamma0) (z2 - Q Q^T z2)``.
    """
    B = basis_free
    Q, R = torch.linalg.qr(B)
    keep = R.diagonal().abs() > 1e-10 * R.diagonal().abs().max()
    Q = Q[:, keep]
    K = B @ (V * w.rsqrt())  # [n, m]
    m = K.shape[1]
    sg = float(w.max()) ** -0.5

    def C(z):
        z1, z2 = z[:m], z[m:]
        return K @ z1 + sg * (z2 - Q @ (Q.T @ z2))

    def Ct(g):
        return torch.cat([K.T @ g, sg * (g - Q @ (Q.T @ g))])

    return C, Ct
