"""Structure relaxation: coarse-to-fine descent through the prolongation hierarchy, and references.

``from cgsurrogate.optimize import relax`` is the relaxation function. The modules, one concern each:

* :mod:`~cgsurrogate.optimize.schedule`: stages ``level[:max_evals[:tol]]`` and their parsing;
* :mod:`~cgsurrogate.optimize.objective`: the energy under clamps and a constant load, counted;
* :mod:`~cgsurrogate.optimize.prolongations`: prolongations from a hierarchy, coarse displacement
  fields, the map from stage variables to fine positions;
* :mod:`~cgsurrogate.optimize.optimizers`: L-BFGS and FIRE on stage variables;
* :mod:`~cgsurrogate.optimize.preconditioners`: Galerkin coarse Hessians and the two-level preconditioner;
* :mod:`~cgsurrogate.optimize.results`: :class:`StageResult`, :class:`RelaxResult`;
* :mod:`~cgsurrogate.optimize.driver`: :func:`relax`, the coarse-to-fine driver;
* :mod:`~cgsurrogate.optimize.references`: fine-only, ASE FIRE and OpenMM minimiser references;
* :mod:`~cgsurrogate.optimize.report`: stage table, relax.json, extended XYZ and PNG outputs;
* :mod:`~cgsurrogate.optimize.microtubule_case`: the microtubule bending case behind ``cli.py relax``.
"""
from cgsurrogate.optimize.driver import relax
from cgsurrogate.optimize.objective import LoadedEnergy, default_boundary
from cgsurrogate.optimize.prolongations import StageMap, coarse_basis, prolongations_from_hierarchy
from cgsurrogate.optimize.results import RelaxResult, StageResult
from cgsurrogate.optimize.schedule import DEFAULT_SCHEDULE, Stage, parse_schedule

__all__ = [
    "relax",
    "parse_schedule",
    "Stage",
    "StageResult",
    "RelaxResult",
    "LoadedEnergy",
    "StageMap",
    "coarse_basis",
    "default_boundary",
    "prolongations_from_hierarchy",
    "DEFAULT_SCHEDULE",
]
