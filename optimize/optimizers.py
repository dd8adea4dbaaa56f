"""Stage optimisers: SciPy's L-BFGS-B and ASE's FIRE on the flat float64 variables of a stage.

Both take ``fg(y) -> (e, g_y, x, g_x)`` (one fine evaluation per call: energy kJ/mol, stage
gradient ``[M]``, fine positions ``[N, 3]`` nm and fine gradient ``[N, 3]`` kJ/mol/nm), stop
when the largest per-node (3-vector) norm of ``g_y`` is below ``tol`` (checked at every
evaluation) or after ``max_evals`` calls, and return ``(trace, reason)`` with the best point.

Why the libraries: the relax bench (``bench/results/relax_library.json``, issue 11) measured
the hand-written L-BFGS and FIRE this package had against them on the 30 x5 case under the
full load (tol 1e-4 kJ/mol/nm): SciPy's L-BFGS-B needs as few fine evaluations (coarse-to-fine
322 against 342, fine-only 2445 against 2298), and ASE's FIRE gets further in the same budget
(-23.82 against -2.32 kJ/mol after 3000 evaluations; minimum -29.72).

``scipy.optimize.minimize(method="L-BFGS-B")`` takes no preconditioner, so a linear
preconditioner ``H0 = C C^T`` is applied by a change of variables ``y = y0 + C z`` (gradient
``C^T g_y``; :mod:`cgsurrogate.optimize.preconditioners` gives ``C``). ASE's FIRE runs on a
stage through ASE's ``Optimizable`` interface with the per-node gradient norm as its test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cgsurrogate.core.units import KJ_PER_MOL_IN_EV, NM_IN_ANGSTROM

#: FIRE's time unit in the relaxation's units (nm, kJ/mol, unit masses) per ASE time unit
#: (eV, Angstrom): a FIRE step moves ``dt^2 F``, so ``sqrt(kJ/mol in eV / 100)`` = 0.01018.
_FIRE_TIME = math.sqrt(KJ_PER_MOL_IN_EV / NM_IN_ANGSTROM**2)
#: FIRE time steps: ASE's ``dt = 2``, ``dtmax = 8`` of the ``ase_fire`` reference, converted.
FIRE_DT = 2.0 * _FIRE_TIME
FIRE_DT_MAX = 8.0 * _FIRE_TIME


def rownorm_max(v: torch.Tensor) -> float:
    """Largest norm of the 3-vectors of a flat vector ``[3 K]`` (0 for an empty one)."""
    return float(v.view(-1, 3).norm(dim=1).max()) if v.numel() else 0.0


@dataclass
class Trace:
    """A point seen by an optimiser: stage variables, energy, fine positions and gradient."""

    y: torch.Tensor
    e: float
    g_y: torch.Tensor
    x: torch.Tensor
    g_x: torch.Tensor


class _Stop(Exception):
    pass


class _CountedStage:
    """Evaluations of a stage under a budget, the best point and the stopping test.

    ``start`` is an already evaluated (and counted) ``(e, g_y, x, g_x)`` at ``y0``; asking
    for ``y0`` again reuses it.
    """

    def __init__(self, fg, y0, tol, max_evals, on_eval=None, start=None):
        self.fg, self.y0, self.tol, self.max_evals, self.on_eval = fg, y0, tol, max_evals, on_eval
        self.calls = 0
        self.best = None
        self.last = None
        if start is not None:
            self.last = Trace(y0, start[0], start[1], start[2], start[3])
            self._record(self.last, stop=False)

    def _record(self, tr, stop=True):
        if self.best is None or tr.e <= self.best.e:
            self.best = tr
        if rownorm_max(tr.g_y) <= self.tol:
            self.best = tr
            if stop:
                raise _Stop("converged")

    def at(self, y: torch.Tensor) -> Trace:
        """The evaluation at ``y`` (one counted fine evaluation unless ``y`` is the last point)."""
        if self.last is not None and torch.equal(self.last.y, y):
            return self.last
        if self.calls >= self.max_evals:
            raise _Stop("budget")
        self.calls += 1
        e, gy, x, gx = self.fg(y)
        if self.on_eval is not None:
            self.on_eval(e, gx)
        self.last = Trace(y, e, gy, x, gx)
        self._record(self.last)
        return self.last


def lbfgs(fg, y0, tol, max_evals, *, memory=30, on_eval=None, factor=None, start=None):
    """SciPy's L-BFGS-B on a stage.

    Parameters
    ----------
    fg, y0 [M], tol (kJ/mol/nm), max_evals : see the module docstring
    memory : int  L-BFGS history (SciPy's ``maxcor``)
    on_eval : callable ``(e, g_x)`` after every evaluation, optional
    factor : ``(C, Ct)`` callables, optional: ``y = y0 + C(z)``, ``grad_z = Ct(g_y)``
        (:func:`cgsurrogate.optimize.preconditioners.galerkin_factor`, ``deflation_factor``).
    start : already evaluated (and counted) ``(e, g_y, x, g_x)`` at ``y0``, optional

    Returns
    -------
    (Trace, reason) with reason ``converged``, ``budget`` or SciPy's stop message.
    """
    from scipy.optimize import minimize

    C, Ct = factor if factor is not None else ((lambda z: z), (lambda g: g))
    stage = _CountedStage(fg, y0, tol, max_evals, on_eval, start)
    if stage.best is not None and rownorm_max(stage.best.g_y) <= tol:
        return stage.best, "converged"

    def fun(z):
        tr = stage.at(y0 + C(torch.from_numpy(z)))
        return tr.e, Ct(tr.g_y).numpy().astype(np.float64)

    try:
        res = minimize(fun, np.zeros(Ct(torch.zeros_like(y0)).numel()), jac=True, method="L-BFGS-B",
                       options={"maxcor": memory, "maxfun": max_evals + 1, "maxiter": 10 * max_evals + 10,
                                "ftol": 0.0, "gtol": 0.0, "maxls": 30})
        reason = f"stopped ({res.message})"
    except _Stop as stop:
        reason = str(stop)
    return stage.best, reason


class _StageOptimizable:
    """ASE ``Optimizable`` over a stage's variables (per-node gradient norm as the test)."""

    def __new__(cls, stage: _CountedStage):
        from ase.optimize.optimize import Optimizable

        class StageOptimizable(Optimizable):
            def __init__(self):
                self.y = stage.y0.clone()

            def ndofs(self):
                return self.y.numel()

            def get_x(self):
                return self.y.numpy().copy()

            def set_x(self, x):
                self.y = torch.from_numpy(np.array(x, dtype=np.float64))

            def get_gradient(self):
                return stage.at(self.y).g_y.numpy().copy()

            def get_value(self):
                return stage.at(self.y).e

            def iterimages(self):
                return iter(())

        return StageOptimizable()


def fire(fg, y0, tol, max_evals, *, max_step=0.1, on_eval=None, dt=FIRE_DT, dt_max=FIRE_DT_MAX):
    """ASE's FIRE (Bitzek et al. 2006, unit masses) on a stage; one fine evaluation per step.

    Parameters
    ----------
    fg, y0 [M], tol (kJ/mol/nm), max_evals : see the module docstring
    max_step : float  ASE's ``maxstep``: largest norm of one whole step in stage variables (~nm)
    dt, dt_max : float  FIRE's initial and largest time step (nm, kJ/mol units; :data:`FIRE_DT`)

    Returns
    -------
    (Trace, reason) with the lowest-energy point visited; reason ``converged`` or ``budget``.
    """
    from ase.optimize import FIRE

    stage = _CountedStage(fg, y0, tol, max_evals, on_eval)
    opt = FIRE(_StageOptimizable(stage), logfile=None, dt=dt, dtmax=dt_max, maxstep=max_step)
    try:
        opt.run(fmax=tol, steps=10 * max_evals + 10)
        reason = "converged" if rownorm_max(stage.last.g_y) <= tol else "stopped"
    except _Stop as stop:
        reason = str(stop)
    if reason == "converged":
        return stage.last, reason
    return stage.best, reason
