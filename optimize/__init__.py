"""Structure relaxation: coarse-to-fine descent through the prolongation hierarchy and references.

The entry point is ``cgsurrogate.optimize.relax.relax`` (module ``cgsurrogate.optimize.relax``); references in
``cgsurrogate.optimize.references``, outputs in ``cgsurrogate.optimize.report``.
"""
from cgsurrogate.optimize.relax import (
    DEFAULT_SCHEDULE,
    LoadedEnergy,
    RelaxResult,
    Stage,
    StageResult,
    coarse_basis,
    default_boundary,
    parse_schedule,
    prolongations_from_hierarchy,
)

__all__ = [
    "parse_schedule",
    "Stage",
    "StageResult",
    "RelaxResult",
    "LoadedEnergy",
    "coarse_basis",
    "default_boundary",
    "prolongations_from_hierarchy",
    "DEFAULT_SCHEDULE",
]
