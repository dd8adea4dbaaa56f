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
optimiser (SciPy's L-BFGS-B or ASE's FIRE, :mod:`cgsurrogate.optimize.optimizers`) with a gradient-norm
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

import time
from typing import Callable, Sequence

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.optimize.objective import LoadedEnergy, default_boundary
from cgsurrogate.optimize.optimizers import fire, lbfgs, rownorm_max
from cgsurrogate.optimize.preconditioners import deflation_factor, galerkin_factor, galerkin_hessian
from cgsurrogate.optimize.prolongations import StageMap, coarse_basis, prolongations_from_hierarchy
from cgsurrogate.optimize.results import RelaxResult, StageResult
from cgsurrogate.optimize.schedule import parse_schedule

#: Default stopping tolerance: largest per-node gradient norm on free nodes (kJ/mol/nm).
#: The full bending load of the protocol is 0.0542 kJ/mol/nm per loaded monomer.
DEFAULT_TOL = 1e-4
#: Default coarse space (see :func:`coarse_basis`), chosen by measurement (bench/relax.py).
DEFAULT_COARSE_SPACE = "translate"
#: Default prolongations taken from the hierarchy, chosen by measurement.
DEFAULT_PROLONGATION = "spectral"
#: Default: measure coarse Galerkin Hessians and precondition with them (L-BFGS only).
DEFAULT_GALERKIN = True
#: Default cap on the total number of fine-level energy+gradient evaluations.
DEFAULT_MAX_EVALS = 20000
#: Stage optimisers: SciPy's L-BFGS-B (with the Galerkin preconditioners) and ASE's FIRE.
OPTIMIZERS = ("lbfgs", "fire")


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
    max_move: float = 0.1,
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
        SciPy's L-BFGS-B or ASE's FIRE on each stage (:mod:`cgsurrogate.optimize.optimizers`).
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
        FIRE only: largest norm of one whole step in stage variables (ASE's ``maxstep``, about nm).
        L-BFGS-B's line search has no step cap.
    memory : int
        L-BFGS history length (SciPy's ``maxcor``).
    galerkin : bool
        With L-BFGS: start each coarse stage by measuring its Galerkin Hessian
        ``B^T (d^2E/dX^2) B`` with ``M`` forward differences of the gradient (``M`` fine
        evaluations, counted) and use it as the initial inverse Hessian of the stage;
        the fine stage then uses the last coarse Hessian as a two-level preconditioner
        (coarse modes by the coarse Hessian, the rest by ``1 / max`` coarse eigenvalue), both
        as a change of variables for SciPy's L-BFGS-B. A coarse
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
    CGSurrogateError
        For shapes that do not match, an unknown optimiser, or a stage level the
        prolongations do not have.
    """
    stages = parse_schedule(schedule)
    if optimizer not in OPTIMIZERS:
        raise CGSurrogateError(f"optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    if coarse_space not in ("rigid", "translate"):
        raise CGSurrogateError(f"coarse space {coarse_space!r}: choose 'rigid' or 'translate'")
    if not (tol > 0):
        raise CGSurrogateError(f"tolerance {tol} must be positive")
    topo = getattr(energy_fn, "topology", None)
    if x0 is None:
        if topo is None:
            raise CGSurrogateError("x0 is required when the energy function has no topology")
        x0 = topo.positions
    x = torch.as_tensor(np.asarray(x0, dtype=np.float64)).clone()
    if x.dim() != 2 or x.shape[1] != 3:
        raise CGSurrogateError(f"positions have shape {tuple(x.shape)}, expected [N, 3]")
    n = x.shape[0]
    num_model = getattr(energy_fn, "num_nodes", None)
    if num_model is not None and int(num_model) != n:
        raise CGSurrogateError(f"the energy model has {num_model} nodes, the structure has {n}")
    params = np.asarray(params, dtype=np.float64).reshape(-1)
    if params.shape != (5,) or not np.all(np.isfinite(params)):
        raise CGSurrogateError(f"strength parameters {params.tolist()}: need 5 finite values")
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
                raise CGSurrogateError(
                    f"schedule stage {s.label()} needs a hierarchy (coarse level {s.level}); "
                    "pass hierarchy= or prolongations=, or use schedule='fine'"
                )
            if s.level >= len(prolongations):
                raise CGSurrogateError(
                    f"schedule stage {s.label()}: the hierarchy has levels 0..{len(prolongations) - 1}"
                )
            if tuple(prolongations[s.level].shape[:1]) != (n,):
                raise CGSurrogateError(
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
                results.append(StageResult(s.level, 0, 0, e_now, fmax_now, None, 0.0, "budget"))
                continue
            basis = None if s.level == 0 else coarse_basis(prolongations[s.level], x, coarse_space)
            smap = StageMap(x, free, basis)

            def fg(y, smap=smap):
                xx = smap.positions(y)
                e, gx = obj(xx)
                return e, smap.restrict(gx), xx, gx

            budget = remaining if s.max_evals is None else min(s.max_evals, remaining)
            stol = tol if s.tol is None else s.tol
            y0 = torch.zeros(smap.m, dtype=torch.float64)
            before = obj.evals
            if optimizer == "lbfgs":
                factor, start = None, None
                if galerkin and s.level > 0 and smap.m + 2 <= budget:
                    start = fg(y0)
                    on_eval(start[0], start[3])
                    w, V = galerkin_hessian(fg, smap.m, start, fd_step, on_eval)
                    factor = galerkin_factor(w, V)
                    coarse_model = (smap.basis.view(n, 3, -1)[free].reshape(-1, smap.m), w, V)
                    budget -= smap.m + 1
                elif galerkin and s.level == 0 and coarse_model is not None:
                    factor = deflation_factor(*coarse_model)
                tr, reason = lbfgs(fg, y0, stol, budget, memory=memory, on_eval=on_eval, factor=factor, start=start)
            else:
                tr, reason = fire(fg, y0, stol, budget, max_step=max_move, on_eval=on_eval)
            x = tr.x.detach().clone()
            fmax_now = float(tr.g_x.norm(dim=1).max())
            e_now = tr.e
            results.append(StageResult(s.level, smap.m, obj.evals - before, tr.e, fmax_now,
                                       rownorm_max(tr.g_y), time.perf_counter() - ts, reason))
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
        "max_move_nm": max_move if optimizer == "fire" else None,
        "galerkin": bool(galerkin and optimizer != "fire"),
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
