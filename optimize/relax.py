"""Coarse-to-fine relaxation of a coarse-grained structure through a prolongation hierarchy.

Scott & Mjolsness 2021, sec. 5.1: the energy of a (GPCN or any differentiable) model
is differentiable in the positions, so low-energy configurations can be found by
gradient descent, and "this optimisation over molecule positions could start at the
coarse scale and be gradually refined". Here a *stage* at level ``k > 0`` moves only
the coarse modes of the hierarchy,

    X = X_s + M (P_{1,k} Y_k),        Y_k in R^{n_k x 3},

where ``X_s`` is the structure at the start of the stage, ``P_{1,k}`` the composed
prolongation ``[N, n_k]`` and ``M`` zeroes the rows of clamped nodes (a coarse mode
moves every fine node, so clamping must be applied to the displacement, not to
``Y``). A stage at level 0 moves every free fine coordinate. Each stage runs a proper
optimiser (L-BFGS with a backtracking Armijo line search, or FIRE) with a gradient-norm
stopping rule; the gradient of a coarse stage is ``dE/dY = (M P_{1,k})^T dE/dX``.

The objective is the model's internal energy plus the potential of a constant
external force on chosen nodes (the bending load of the simulation protocol),

    E(X) = E_internal(X; params) - sum_{i in loaded} F . (x_i - x_i^rest),

in kJ/mol with positions in nm and forces in kJ/mol/nm. Every evaluation of this
function (energy and gradient of the full fine structure) is counted: it is the cost
measure of the benchmark (``bench/relax.py``), since a coarse stage still evaluates the
fine model.

Examples
--------
>>> from cgsurrogate.simulate.energy import TrueEnergy
>>> f = TrueEnergy()
>>> res = relax(f, [30.0] * 5, schedule="0", progress=False)   # already at rest
>>> res.evals, abs(res.energy) < 1e-9
(1, True)
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

#: Default stopping tolerance: largest per-node gradient norm on free nodes (kJ/mol/nm).
#: The full bending load of the protocol is 0.0542 kJ/mol/nm per loaded monomer.
DEFAULT_TOL = 1e-4
#: Default schedule (level:max_evals[:tol]), chosen by measurement (see bench/relax.py
#: and the README): coarsest modes first, then the middle level, then all fine coordinates.
DEFAULT_SCHEDULE = "2:600,0"
#: Default coarse space (see :func:`coarse_basis`), chosen by measurement.
DEFAULT_COARSE_SPACE = "translate"
#: Default prolongations taken from the hierarchy, chosen by measurement.
DEFAULT_PROLONGATION = "spectral"
#: Default: measure coarse Galerkin Hessians and precondition with them (L-BFGS only).
DEFAULT_GALERKIN = True
#: Default cap on the total number of fine-level energy+gradient evaluations.
DEFAULT_MAX_EVALS = 20000


# ----------------------------------------------------------------------------------
# schedule
# ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One stage of a relaxation schedule.

    Attributes
    ----------
    level : int
        0 moves all free fine coordinates; ``k > 0`` moves only the ``n_k`` coarse
        modes of hierarchy level ``k`` (``X = X_s + M P_{1,k} Y``).
    max_evals : int or None
        Budget of fine-level energy+gradient evaluations for this stage (None: the
        rest of the overall budget).
    tol : float or None
        Stop the stage when the largest per-node norm of its own gradient (``dE/dY``
        row norms for a coarse stage, per-node forces for level 0) falls below this
        (kJ/mol/nm). None: the overall tolerance.
    """

    level: int
    max_evals: int | None = None
    tol: float | None = None

    def label(self) -> str:
        s = f"{self.level}"
        if self.max_evals is not None:
            s += f":{self.max_evals}"
        if self.tol is not None:
            s += f":{self.tol:g}"
        return s


def parse_schedule(spec) -> list[Stage]:
    """Parse a schedule such as ``"2:400,1:400,0"`` into a list of :class:`Stage`.

    Parameters
    ----------
    spec : str or sequence of Stage / int / tuple
        Comma-separated stages ``level[:max_evals[:tol]]``; ``"default"`` gives
        :data:`DEFAULT_SCHEDULE`; ``"fine"`` gives ``"0"`` (fine-only).

    Returns
    -------
    list of Stage

    Raises
    ------
    ValueError
        With a one-line message for a malformed stage.
    """
    if isinstance(spec, str):
        text = spec.strip()
        if text in ("", "default"):
            text = DEFAULT_SCHEDULE
        elif text == "fine":
            text = "0"
        stages = []
        for part in text.split(","):
            bits = part.strip().split(":")
            try:
                if not 1 <= len(bits) <= 3 or bits[0] == "":
                    raise ValueError
                level = int(bits[0])
                max_evals = int(bits[1]) if len(bits) > 1 and bits[1] != "" else None
                tol = float(bits[2]) if len(bits) > 2 and bits[2] != "" else None
            except ValueError:
                raise ValueError(
                    f"schedule {spec!r}: stage {part.strip()!r} is not level[:max_evals[:tol]]"
                ) from None
            stages.append(Stage(level, max_evals, tol))
    else:
        stages = []
        for s in spec:
            if isinstance(s, Stage):
                stages.append(s)
            elif isinstance(s, (int, np.integer)):
                stages.append(Stage(int(s)))
            else:
                stages.append(Stage(*s))
    if not stages:
        raise ValueError(f"schedule {spec!r} has no stages")
    for s in stages:
        if s.level < 0:
            raise ValueError(f"schedule {spec!r}: level {s.level} is negative")
        if s.max_evals is not None and s.max_evals < 1:
            raise ValueError(f"schedule {spec!r}: stage {s.label()} has a budget below 1")
        if s.tol is not None and not (s.tol > 0 and math.isfinite(s.tol)):
            raise ValueError(f"schedule {spec!r}: stage {s.label()} has a non-positive tolerance")
    return stages


# ----------------------------------------------------------------------------------
# objective
# ----------------------------------------------------------------------------------
class LoadedEnergy:
    """Energy of a structure under clamps and a constant external load, with an evaluation counter.

    Parameters
    ----------
    energy_fn : callable
        ``energy_fn(positions [1, N, 3] nm, params [1, 5] zJ) -> (total [1], per_node [1, N])``
        in kJ/mol: :class:`cgsurrogate.simulate.energy.TrueEnergy` or
        ``cgsurrogate.surrogate.interfaces.energy_function.SurrogateEnergy``.
    params : array-like [5]
        Strength parameters (zJ/nm^2, zJ/rad^2).
    reference : Tensor [N, 3]
        Resting positions (nm); the load's potential is measured from them.
    clamp_nodes : array-like of int
        Nodes held fixed (their gradient is zeroed and they are never moved).
    load_nodes : array-like of int
        Nodes carrying the constant force.
    load_force : float
        Magnitude of the force on each loaded node (kJ/mol/nm).
    load_direction : sequence of 3 floats
        Direction of the force (normalised here); the protocol bends in ``-y``.
    """

    def __init__(
        self,
        energy_fn: Callable,
        params,
        reference: torch.Tensor,
        clamp_nodes=(),
        load_nodes=(),
        load_force: float = 0.0,
        load_direction=(0.0, -1.0, 0.0),
    ):
        self.energy_fn = energy_fn
        self.reference = torch.as_tensor(reference, dtype=torch.float64)
        n = self.reference.shape[0]
        self.num_nodes = n
        self.params = torch.as_tensor(np.asarray(params, dtype=np.float64)).reshape(1, -1)
        self.clamp_nodes = _node_index(clamp_nodes, n, "clamp")
        self.load_nodes = _node_index(load_nodes, n, "load")
        self.free = torch.ones(n, dtype=torch.bool)
        self.free[self.clamp_nodes] = False
        d = torch.as_tensor(np.asarray(load_direction, dtype=np.float64))
        if d.shape != (3,) or not torch.isfinite(d).all() or float(d.norm()) == 0:
            raise ValueError(f"load direction {tuple(load_direction)} is not a nonzero 3-vector")
        if not math.isfinite(load_force):
            raise ValueError(f"load force {load_force} is not finite")
        self.load_force = float(load_force)
        self.load_direction = d / d.norm()
        self.force = torch.zeros(n, 3, dtype=torch.float64)
        self.force[self.load_nodes] = self.load_force * self.load_direction
        self.evals = 0

    def __call__(self, x: torch.Tensor):
        """Energy and gradient at ``x``.

        Parameters
        ----------
        x : Tensor [N, 3] float64, nm

        Returns
        -------
        energy : float, kJ/mol (internal + load potential)
        grad : Tensor [N, 3] float64, kJ/mol/nm, zero on clamped nodes
        """
        self.evals += 1
        xr = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            total, _ = self.energy_fn(xr[None], self.params.to(xr.dtype))
            e_int = total.reshape(-1)[0]
            (g,) = torch.autograd.grad(e_int, xr)
        g = g.to(torch.float64)
        e = float(e_int.detach()) - float((self.force * (x - self.reference)).sum())
        g = g - self.force
        g[~self.free] = 0.0
        if not math.isfinite(e) or not torch.isfinite(g).all():
            raise FloatingPointError("energy or gradient is not finite")
        return e, g

    def parts(self, x: torch.Tensor):
        """Energy terms at ``x`` without counting an evaluation.

        Returns
        -------
        dict with ``energy`` (kJ/mol, internal + load), ``internal`` (kJ/mol),
        ``load`` (kJ/mol, ``-sum F . (x - x_rest)``), ``per_node`` (ndarray [N] kJ/mol,
        internal energy split per node) and ``fmax`` (kJ/mol/nm, largest per-node
        gradient norm on free nodes).
        """
        xr = x.detach().clone().to(torch.float64).requires_grad_(True)
        with torch.enable_grad():
            total, per_node = self.energy_fn(xr[None], self.params)
            (g,) = torch.autograd.grad(total.reshape(-1)[0], xr)
        g = g.to(torch.float64) - self.force
        g[~self.free] = 0.0
        e_load = -float((self.force * (x - self.reference)).sum())
        e_int = float(total.detach().reshape(-1)[0])
        return {
            "energy": e_int + e_load,
            "internal": e_int,
            "load": e_load,
            "per_node": per_node.detach().reshape(-1).to(torch.float64).numpy(),
            "fmax": float(g.norm(dim=1).max()),
        }


def _node_index(nodes, n: int, what: str) -> torch.Tensor:
    idx = torch.as_tensor(np.asarray(nodes, dtype=np.int64).reshape(-1))
    if len(idx) and (int(idx.min()) < -n or int(idx.max()) >= n):
        raise ValueError(f"{what} node index out of range for a structure of {n} nodes")
    return torch.remainder(idx, n) if len(idx) else idx


# ----------------------------------------------------------------------------------
# stage variables
# ----------------------------------------------------------------------------------
class _StageMap:
    """Affine map from a stage's variables ``y [M]`` to fine positions ``[N, 3]``.

    ``basis`` is None for the fine level (``y`` are the free nodes' coordinates) or a
    dense ``[N, 3, M]`` tensor of displacement fields (rows of clamped nodes zeroed).
    """

    def __init__(self, x_start: torch.Tensor, free: torch.Tensor, basis: torch.Tensor | None):
        self.x_start = x_start.clone()
        self.free = free
        if basis is None:  # fine level: the free rows themselves
            self.basis = None
            self.m = 3 * int(free.sum())
        else:
            b = basis.to(torch.float64).clone()
            b[~free] = 0.0
            self.n = b.shape[0]
            self.m = b.shape[2]
            self.basis = b.reshape(-1, self.m)  # [3N, M]

    def displacement(self, y: torch.Tensor) -> torch.Tensor:
        """Fine displacement ``[N, 3]`` of stage variables ``y [M]``."""
        if self.basis is None:
            d = torch.zeros_like(self.x_start)
            d[self.free] = y.view(-1, 3)
            return d
        return (self.basis @ y).view(-1, 3)

    def positions(self, y: torch.Tensor) -> torch.Tensor:
        return self.x_start + self.displacement(y)

    def restrict(self, g: torch.Tensor) -> torch.Tensor:
        """Stage gradient ``[M]`` from the fine gradient ``g [N, 3]``."""
        if self.basis is None:
            return g[self.free].reshape(-1).clone()
        return self.basis.T @ g.reshape(-1)


def coarse_basis(prolongation: torch.Tensor, positions: torch.Tensor, space: str = "rigid") -> torch.Tensor:
    """Displacement fields of a coarse stage, ``[N, 3, M]``.

    Parameters
    ----------
    prolongation : Tensor [N, n_k]
        Composed prolongation ``P_{1,k}`` (columns orthonormal).
    positions : Tensor [N, 3]
        Fine positions at the start of the stage (nm); used by the rotations.
    space : {"translate", "rigid"}
        ``"translate"``: ``X = X_s + P Y`` with ``Y [n_k, 3]`` (``M = 3 n_k``), the
        displacement of the paper's sec. 5.1. ``"rigid"``: each coarse mode ``j``
        also carries a small rotation about its centre ``c_j = sum_i P_ij^2 x_i``:
        ``d_i = sum_j P_ij (t_j + w_j x (x_i - c_j))`` (``M = 6 n_k``), the rigid-body
        modes that smoothed-aggregation multigrid adds for elasticity, so a coarse
        stage can bend a tube without stretching it. Rotation fields are scaled to unit
        norm.

    Returns
    -------
    Tensor [N, 3, M] float64
    """
    P = torch.as_tensor(prolongation, dtype=torch.float64)
    x = torch.as_tensor(positions, dtype=torch.float64)
    n, m = P.shape
    eye = torch.eye(3, dtype=torch.float64)
    trans = P[:, None, :, None] * eye[None, :, None, :]  # [N, 3, m, 3]
    trans = trans.reshape(n, 3, 3 * m)
    if space == "translate":
        return trans
    if space != "rigid":
        raise ValueError(f"coarse space {space!r}: choose 'translate' or 'rigid'")
    w = P * P
    c = (w.T @ x) / w.sum(0).clamp_min(1e-300)[:, None]  # [m, 3]
    r = x[:, None, :] - c[None, :, :]  # [N, m, 3]
    rot = torch.empty(n, 3, m, 3, dtype=torch.float64)
    for a in range(3):
        rot[:, :, :, a] = (torch.linalg.cross(eye[a].expand_as(r), r, dim=-1) * P[:, :, None]).permute(0, 2, 1)
    norms = rot.pow(2).sum((0, 1)).sqrt().clamp_min(1e-300)  # [m, 3]
    rot = (rot / norms).reshape(n, 3, 3 * m)
    return torch.cat([trans, rot], dim=2)


def _rownorm_max(v: torch.Tensor) -> float:
    return float(v.view(-1, 3).norm(dim=1).max()) if v.numel() else 0.0


# ----------------------------------------------------------------------------------
# optimisers (on flat float64 vectors)
# ----------------------------------------------------------------------------------
class _Budget(Exception):
    pass


@dataclass
class _Trace:
    """Best point seen by an optimiser: stage variables, energy, fine positions and gradient."""

    y: torch.Tensor
    e: float
    g_y: torch.Tensor
    x: torch.Tensor
    g_x: torch.Tensor


def _lbfgs(fg, y0, tol, max_evals, *, memory=30, max_move=1.0, move_of=None, on_eval=None,
           precond=None, start=None):
    """L-BFGS with a backtracking Armijo line search.

    ``fg(y) -> (e, g_y, x, g_x)`` counts one fine evaluation per call. Stops when the
    largest row norm of ``g_y`` is below ``tol`` or after ``max_evals`` calls. Each trial
    step is capped so that no fine node moves more than ``max_move`` nm
    (``move_of(d)`` gives the largest fine node displacement of a step ``d``).
    ``precond(v)``, when given, is the initial inverse Hessian applied to ``v``
    (replacing the usual scalar ``s.y / y.y``). ``start`` is an already evaluated
    ``(e, g_y, x, g_x)`` at ``y0``. Returns ``(trace, reason)``.
    """
    calls = 0

    def call(y):
        nonlocal calls
        if calls >= max_evals:
            raise _Budget
        calls += 1
        out = fg(y)
        if on_eval is not None:
            on_eval(out[0], out[3])
        return out

    y = y0.clone()
    try:
        e, gy, x, gx = call(y) if start is None else start
    except _Budget:
        raise ValueError("L-BFGS needs a budget of at least one evaluation") from None
    best = _Trace(y, e, gy, x, gx)
    if _rownorm_max(gy) <= tol:
        return best, "converged"
    S, Y, RHO = [], [], []
    c1 = 1e-4
    fails = 0
    try:
        while True:
            # two-loop recursion
            q = -gy.clone()
            alphas = []
            for s, yv, rho in zip(reversed(S), reversed(Y), reversed(RHO)):
                a = rho * torch.dot(s, q)
                alphas.append(a)
                q -= a * yv
            if precond is not None:
                gamma = float(torch.dot(S[-1], Y[-1]) / torch.dot(Y[-1], Y[-1])) if S else None
                q = precond(q, gamma)
            elif S:
                gamma = torch.dot(S[-1], Y[-1]) / torch.dot(Y[-1], Y[-1])
                q *= gamma
            else:
                # first step: steepest descent, largest node move 1% of max_move
                mv = move_of(q)
                q *= (0.01 * max_move / mv) if mv > 0 else 1.0
            for (s, yv, rho), a in zip(zip(S, Y, RHO), reversed(alphas)):
                b = rho * torch.dot(yv, q)
                q += (a - b) * s
            d = q
            slope = float(torch.dot(gy, d))
            if not slope < 0:  # not a descent direction: restart
                S, Y, RHO = [], [], []
                d = -gy.clone()
                mv = move_of(d)
                d *= (0.01 * max_move / mv) if mv > 0 else 1.0
                slope = float(torch.dot(gy, d))
            step = 1.0
            mv = move_of(d)
            if mv * step > max_move:
                step = max_move / mv
            accepted = False
            for _ in range(30):
                y_new = y + step * d
                e_new, gy_new, x_new, gx_new = call(y_new)
                if e_new <= e + c1 * step * slope:
                    accepted = True
                    break
                # quadratic interpolation, safeguarded
                denom = 2.0 * (e_new - e - slope * step)
                t = -slope * step * step / denom if denom > 0 else 0.5 * step
                step = min(max(t, 0.1 * step), 0.5 * step)
            if not accepted:
                fails += 1
                if fails >= 2 or not S:
                    return best, "line search failed (precision limit)"
                S, Y, RHO = [], [], []
                continue
            fails = 0
            s_vec = y_new - y
            y_vec = gy_new - gy
            sy = float(torch.dot(s_vec, y_vec))
            if sy > 1e-12 * float(torch.dot(y_vec, y_vec)) and sy > 0:
                S.append(s_vec)
                Y.append(y_vec)
                RHO.append(1.0 / sy)
                if len(S) > memory:
                    S.pop(0), Y.pop(0), RHO.pop(0)
            de = e - e_new
            y, e, gy, x, gx = y_new, e_new, gy_new, x_new, gx_new
            best = _Trace(y, e, gy, x, gx)
            if _rownorm_max(gy) <= tol:
                return best, "converged"
            if de <= 1e-15 * max(1.0, abs(e)) and step * move_of(d) < 1e-12:
                return best, "stalled (precision limit)"
    except _Budget:
        return best, "budget"


def _fire(fg, y0, tol, max_evals, *, max_move=1.0, move_of=None, on_eval=None,
          dt0=0.05, dt_max=0.5, n_min=5, f_inc=1.1, f_dec=0.5, alpha0=0.1, f_alpha=0.99):
    """FIRE (Bitzek et al. 2006) with unit masses; one fine evaluation per step.

    Steps are capped so that no fine node moves more than ``max_move`` nm. Returns
    ``(trace, reason)`` with the lowest-energy point visited.
    """
    y = y0.clone()
    v = torch.zeros_like(y)
    dt, alpha, n_pos = dt0, alpha0, 0
    e, gy, x, gx = fg(y)
    if on_eval is not None:
        on_eval(e, gx)
    calls = 1
    best = _Trace(y, e, gy, x, gx)
    while True:
        if _rownorm_max(gy) <= tol:
            return _Trace(y, e, gy, x, gx), "converged"
        if calls >= max_evals:
            return best, "budget"
        f = -gy
        power = float(torch.dot(f, v))
        if power > 0:
            fn = float(f.norm())
            if fn > 0:
                v = (1 - alpha) * v + alpha * float(v.norm()) * f / fn
            if n_pos > n_min:
                dt = min(dt * f_inc, dt_max)
                alpha *= f_alpha
            n_pos += 1
        else:
            v = torch.zeros_like(v)
            dt *= f_dec
            alpha = alpha0
            n_pos = 0
        v = v + dt * f
        dy = dt * v
        mv = move_of(dy)
        if mv > max_move:
            dy = dy * (max_move / mv)
        y = y + dy
        e, gy, x, gx = fg(y)
        calls += 1
        if on_eval is not None:
            on_eval(e, gx)
        if e < best.e:
            best = _Trace(y, e, gy, x, gx)



def _galerkin_hessian(fg, m, start, h, on_eval=None):
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


def _coarse_precond(w, V):
    def apply(v, gamma=None):
        return V @ ((V.T @ v) / w)

    return apply


def _deflation_precond(basis_free, w, V):
    """Two-level preconditioner ``B Hc^-1 B^T + gamma (I - B (B^T B)^-1 B^T)`` on free coordinates."""
    B = basis_free  # [n, m]
    Q, R = torch.linalg.qr(B)
    keep = R.diagonal().abs() > 1e-10 * R.diagonal().abs().max()
    Q = Q[:, keep]
    gamma0 = 1.0 / float(w.max())

    def apply(v, gamma=None):
        coarse = B @ (V @ ((V.T @ (B.T @ v)) / w))
        rest = v - Q @ (Q.T @ v)
        return coarse + (gamma if gamma is not None else gamma0) * rest

    return apply


# ----------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------
@dataclass
class StageResult:
    """What one stage did.

    Attributes
    ----------
    level : int
    num_vars : int
        Number of scalar variables moved by the stage (``3 n_k``, or ``3 x`` free nodes).
    evals : int
        Fine-level energy+gradient evaluations spent in the stage.
    energy : float
        Objective at the end of the stage (kJ/mol, internal + load).
    fmax : float
        Largest per-node fine gradient norm on free nodes at the end (kJ/mol/nm).
    stage_gnorm : float
        Largest row norm of the stage's own gradient at the end (kJ/mol/nm).
    time_s : float
        Wall time of the stage (s).
    reason : str
        Why it stopped: converged, budget, skipped, line search failed, stalled.
    """

    level: int
    num_vars: int
    evals: int
    energy: float
    fmax: float
    stage_gnorm: float
    time_s: float
    reason: str


@dataclass
class RelaxResult:
    """Outcome of :func:`relax`.

    Attributes
    ----------
    positions : ndarray [N, 3] float64, nm
    energy : float, kJ/mol (internal + load potential)
    internal : float, kJ/mol
    load : float, kJ/mol (``-sum F . (x - x_rest)``)
    per_node : ndarray [N], kJ/mol (internal energy split per node)
    fmax : float, kJ/mol/nm (largest per-node gradient norm on free nodes)
    evals : int (fine-level energy+gradient evaluations, all stages)
    time_s : float
    converged : bool (``fmax <= tol``)
    stages : list of StageResult
    history : list of (evals, energy, fmax) after every evaluation
    settings : dict (schedule, optimizer, tol, load, clamps: plain values)
    """

    positions: np.ndarray
    energy: float
    internal: float
    load: float
    per_node: np.ndarray
    fmax: float
    evals: int
    time_s: float
    converged: bool
    stages: list = field(default_factory=list)
    history: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Plain-python summary (no arrays) for JSON."""
        return {
            "energy_kjmol": self.energy,
            "internal_kjmol": self.internal,
            "load_kjmol": self.load,
            "fmax_kjmol_nm": self.fmax,
            "evals": self.evals,
            "time_s": self.time_s,
            "converged": self.converged,
            "stages": [asdict(s) for s in self.stages],
            "settings": self.settings,
        }


def default_boundary(topology) -> tuple[np.ndarray, np.ndarray]:
    """Clamped and loaded nodes of the bending protocol.

    Parameters
    ----------
    topology : cgsurrogate.simulate.microtubule.Topology

    Returns
    -------
    clamp_nodes : ndarray int (the first two turns; 26 nodes for the microtubule)
    load_nodes : ndarray int (the last two turns)
    """
    return topology.ring_nodes([0, 1]), topology.ring_nodes([-2, -1])


def prolongations_from_hierarchy(hierarchy, num_nodes: int, kind: str = "spectral") -> list[torch.Tensor]:
    """Prolongations ``P_{1,k}`` of every level of a hierarchy, checked against the structure.

    Parameters
    ----------
    hierarchy : cgsurrogate.surrogate.graphs.hierarchy.Hierarchy
    num_nodes : int
        Number of fine nodes of the structure being relaxed.
    kind : {"spectral", "lgdd"}
        ``"lgdd"``: the hierarchy's own composed matrices ``P_{1,k} = P_{1,2} ... P_{k-1,k}``
        (eigenvalue-matched LGDD prolongations, paper sec. 2.2/3.2). ``"spectral"``: a
        prolongation of the same shape ``[N, n_k]`` with orthonormal columns spanning the
        ``n_k`` lowest-frequency eigenvectors of the hierarchy's fine Laplacian (the LGDD
        construction ``U_fine Pi U_coarse^T`` with the eigenvalue matching replaced by rank
        order). The LGDD matching at alpha = 1 leaves out every other long-wavelength
        mode of the microtubule (a 48-turn tube against 24-turn coarse graphs), which a
        relaxation needs most; see the README for the measured effect.

    Returns
    -------
    list of Tensor, entry ``k`` of shape ``[num_nodes, n_k]`` float64 (entry 0 the identity).

    Raises
    ------
    ValueError
        If the hierarchy's finest graph does not have ``num_nodes`` nodes, or for an
        unknown ``kind``.
    """
    sizes = list(hierarchy.sizes)
    if sizes[0] != num_nodes:
        raise ValueError(
            f"the hierarchy's finest graph has {sizes[0]} nodes, the structure has {num_nodes}"
        )
    if kind not in ("spectral", "lgdd"):
        raise ValueError(f"prolongation kind {kind!r}: choose 'spectral' or 'lgdd'")
    out = [torch.eye(num_nodes, dtype=torch.float64)]
    if kind == "spectral" and hierarchy.num_levels > 1:
        L = hierarchy.laplacians[0]
        L = (L.to_dense() if L.is_sparse else torch.as_tensor(L)).to(torch.float64)
        lam, U = torch.linalg.eigh(-L)  # paper sign L = A - D: -L is positive semi-definite
        order = torch.argsort(lam, stable=True)
    for k in range(1, hierarchy.num_levels):
        if kind == "lgdd":
            p = torch.as_tensor(hierarchy.prolongation(k))
            p = (p.to_dense() if p.is_sparse else p).to(torch.float64)
        else:
            p = U[:, order[: sizes[k]]].contiguous()
        if tuple(p.shape) != (num_nodes, sizes[k]):
            raise ValueError(
                f"prolongation P_1,{k} has shape {tuple(p.shape)}, expected ({num_nodes}, {sizes[k]})"
            )
        out.append(p)
    return out


def relax(
    energy_fn: Callable,
    params,
    x0=None,
    *,
    prolongations: Sequence[torch.Tensor] | None = None,
    hierarchy=None,
    prolongation_kind: str = DEFAULT_PROLONGATION,
    schedule="default",
    optimizer: str = "lbfgs",
    coarse_space: str = DEFAULT_COARSE_SPACE,
    tol: float = DEFAULT_TOL,
    max_evals: int = DEFAULT_MAX_EVALS,
    clamp_nodes=None,
    load_nodes=None,
    load_force: float = 0.0,
    load_direction=(0.0, -1.0, 0.0),
    reference=None,
    max_move: float = 1.0,
    memory: int = 30,
    galerkin: bool = DEFAULT_GALERKIN,
    fd_step: float = 1e-4,
    progress: bool = True,
) -> RelaxResult:
    """Relax a structure to a low-energy configuration, coarse modes first.

    Parameters
    ----------
    energy_fn : callable
        ``energy_fn(positions [1, N, 3] nm, params [1, 5] zJ) -> (total [1], per_node [1, N])``
        kJ/mol, differentiable: ``cgsurrogate.simulate.energy.TrueEnergy`` or
        ``cgsurrogate.surrogate.interfaces.energy_function.SurrogateEnergy``.
    params : array-like [5]
        Strength parameters (zJ/nm^2, zJ/rad^2).
    x0 : array-like [N, 3], optional
        Starting positions (nm); default the resting geometry ``energy_fn.topology.positions``.
    prolongations : list of Tensor, optional
        ``prolongations[k]`` is ``P_{1,k}`` of shape ``[N, n_k]``. Needed for stages with
        ``level > 0``; built from ``hierarchy`` when that is given instead.
    hierarchy : cgsurrogate.surrogate.graphs.hierarchy.Hierarchy, optional
        Source of the prolongations (:func:`prolongations_from_hierarchy`).
    prolongation_kind : {"spectral", "lgdd"}
        Which prolongations to take from ``hierarchy`` (see
        :func:`prolongations_from_hierarchy`).
    schedule : str or list of Stage
        See :func:`parse_schedule`; ``"fine"`` relaxes the fine coordinates only.
    optimizer : {"lbfgs", "fire"}
    coarse_space : {"rigid", "translate"}
        Displacement fields of a coarse stage (:func:`coarse_basis`).
    tol : float
        Convergence: largest per-node gradient norm on free nodes (kJ/mol/nm).
    max_evals : int
        Budget of fine-level energy+gradient evaluations over all stages.
    clamp_nodes, load_nodes : array-like of int, optional
        Default (when the energy function has a microtubule topology): the first two
        and the last two turns. Pass ``[]`` for none.
    load_force : float
        Constant force on each loaded node (kJ/mol/nm); the protocol's full load is
        ``cgsurrogate.simulate.microtubule.LOAD_FORCE_KJMOL_NM``.
    load_direction : 3 floats
        Direction of the load (default ``-y``).
    reference : array-like [N, 3], optional
        Positions from which the load potential is measured (default: the resting
        geometry, or ``x0``).
    max_move : float
        Largest displacement of any fine node in one optimiser step (nm).
    memory : int
        L-BFGS history length.
    galerkin : bool
        With L-BFGS: start each coarse stage by measuring its Galerkin Hessian
        ``B^T (d^2E/dX^2) B`` with ``M`` forward differences of the gradient (``M`` fine
        evaluations, counted) and use it as the initial inverse Hessian of the stage;
        the fine stage then uses the last coarse Hessian as a two-level preconditioner
        (coarse modes by the coarse Hessian, the rest by the usual scalar). A coarse
        stage whose budget is below ``M + 2`` evaluations runs without it.
    fd_step : float
        Step of those finite differences in stage variables (about nm).
    progress : bool
        Show a tqdm progress bar over evaluations.

    Returns
    -------
    RelaxResult

    Raises
    ------
    ValueError
        For shapes that do not match, an unknown optimiser, or a stage level the
        prolongations do not have.
    """
    stages = parse_schedule(schedule)
    if optimizer not in ("lbfgs", "fire"):
        raise ValueError(f"optimizer {optimizer!r}: choose 'lbfgs' or 'fire'")
    if coarse_space not in ("rigid", "translate"):
        raise ValueError(f"coarse space {coarse_space!r}: choose 'rigid' or 'translate'")
    if not (tol > 0):
        raise ValueError(f"tolerance {tol} must be positive")
    topo = getattr(energy_fn, "topology", None)
    if x0 is None:
        if topo is None:
            raise ValueError("x0 is required when the energy function has no topology")
        x0 = topo.positions
    x = torch.as_tensor(np.asarray(x0, dtype=np.float64)).clone()
    if x.dim() != 2 or x.shape[1] != 3:
        raise ValueError(f"positions have shape {tuple(x.shape)}, expected [N, 3]")
    n = x.shape[0]
    num_model = getattr(energy_fn, "num_nodes", None)
    if num_model is not None and int(num_model) != n:
        raise ValueError(f"the energy model has {num_model} nodes, the structure has {n}")
    params = np.asarray(params, dtype=np.float64).reshape(-1)
    if params.shape != (5,) or not np.all(np.isfinite(params)):
        raise ValueError(f"strength parameters {params.tolist()}: need 5 finite values")
    if clamp_nodes is None or load_nodes is None:
        if topo is not None and topo.num_nodes == n:
            dc, dl = default_boundary(topo)
        else:
            dc, dl = np.zeros(0, np.int64), np.zeros(0, np.int64)
        clamp_nodes = dc if clamp_nodes is None else clamp_nodes
        load_nodes = dl if load_nodes is None else load_nodes
    if reference is None:
        reference = topo.positions if (topo is not None and topo.num_nodes == n) else x
    obj = LoadedEnergy(energy_fn, params, torch.as_tensor(np.asarray(reference, np.float64)),
                       clamp_nodes, load_nodes, load_force, load_direction)
    if prolongations is None and hierarchy is not None:
        prolongations = prolongations_from_hierarchy(hierarchy, n, prolongation_kind)
    for s in stages:
        if s.level > 0:
            if prolongations is None:
                raise ValueError(
                    f"schedule stage {s.label()} needs a hierarchy (coarse level {s.level}); "
                    "pass hierarchy= or prolongations=, or use schedule='fine'"
                )
            if s.level >= len(prolongations):
                raise ValueError(
                    f"schedule stage {s.label()}: the hierarchy has levels 0..{len(prolongations) - 1}"
                )
            if tuple(prolongations[s.level].shape[:1]) != (n,):
                raise ValueError(
                    f"prolongation P_1,{s.level} has {prolongations[s.level].shape[0]} rows, "
                    f"the structure has {n} nodes"
                )

    history: list = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_evals, desc="relax", unit="eval", leave=False)

    def on_eval(e, gx):
        fm = float(gx.norm(dim=1).max())
        history.append((obj.evals, e, fm))
        if bar is not None:
            bar.update(1)
            if obj.evals % 20 == 0:
                bar.set_postfix(E=f"{e:.6g}", fmax=f"{fm:.3g}")

    t0 = time.perf_counter()
    results: list[StageResult] = []
    fmax_now = None
    e_now = None
    free = obj.free
    coarse_model = None
    try:
        for s in stages:
            remaining = max_evals - obj.evals
            ts = time.perf_counter()
            if fmax_now is not None and fmax_now <= tol:
                results.append(StageResult(s.level, 0, 0, e_now, fmax_now, fmax_now, 0.0, "skipped"))
                continue
            if remaining <= 0:
                results.append(StageResult(s.level, 0, 0, e_now, fmax_now, float("nan"), 0.0, "budget"))
                continue
            basis = None if s.level == 0 else coarse_basis(prolongations[s.level], x, coarse_space)
            smap = _StageMap(x, free, basis)

            def fg(y, smap=smap):
                xx = smap.positions(y)
                e, gx = obj(xx)
                return e, smap.restrict(gx), xx, gx

            def move_of(d, smap=smap):
                return float(smap.displacement(d).norm(dim=1).max())

            budget = remaining if s.max_evals is None else min(s.max_evals, remaining)
            stol = tol if s.tol is None else s.tol
            y0 = torch.zeros(smap.m, dtype=torch.float64)
            before = obj.evals
            if optimizer == "lbfgs":
                precond, start = None, None
                if galerkin and s.level > 0 and smap.m + 2 <= budget:
                    start = fg(y0)
                    on_eval(start[0], start[3])
                    w, V = _galerkin_hessian(fg, smap.m, start, fd_step, on_eval)
                    precond = _coarse_precond(w, V)
                    coarse_model = (smap.basis.view(n, 3, -1)[free].reshape(-1, smap.m), w, V)
                    budget -= smap.m + 1
                elif galerkin and s.level == 0 and coarse_model is not None:
                    precond = _deflation_precond(*coarse_model)
                tr, reason = _lbfgs(fg, y0, stol, budget, memory=memory, max_move=max_move,
                                    move_of=move_of, on_eval=on_eval, precond=precond, start=start)
            else:
                tr, reason = _fire(fg, y0, stol, budget, max_move=max_move, move_of=move_of,
                                   on_eval=on_eval)
            x = tr.x.detach().clone()
            fmax_now = float(tr.g_x.norm(dim=1).max())
            e_now = tr.e
            results.append(StageResult(s.level, smap.m, obj.evals - before, tr.e, fmax_now,
                                       _rownorm_max(tr.g_y), time.perf_counter() - ts, reason))
    finally:
        if bar is not None:
            bar.close()
    parts = obj.parts(x)
    settings = {
        "schedule": ",".join(s.label() for s in stages),
        "optimizer": optimizer,
        "coarse_space": coarse_space,
        "prolongation": prolongation_kind if hierarchy is not None else "given",
        "tol_kjmol_nm": tol,
        "max_evals": max_evals,
        "params_zj": params.tolist(),
        "load_force_kjmol_nm": float(load_force),
        "load_direction": obj.load_direction.tolist(),
        "num_clamped": int(len(obj.clamp_nodes)),
        "num_loaded": int(len(obj.load_nodes)),
        "max_move_nm": max_move,
        "galerkin": bool(galerkin and optimizer == "lbfgs"),
    }
    return RelaxResult(
        positions=x.numpy().copy(),
        energy=parts["energy"],
        internal=parts["internal"],
        load=parts["load"],
        per_node=parts["per_node"],
        fmax=parts["fmax"],
        evals=obj.evals,
        time_s=time.perf_counter() - t0,
        converged=parts["fmax"] <= tol,
        stages=results,
        history=history,
        settings=settings,
    )
