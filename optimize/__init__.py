"""Structure relaxation: coarse-to-fine descent through the prolongation hierarchy and references.

The entry point is ``optimize.relax.relax`` (module ``optimize.relax``); references in
``optimize.references``, outputs in ``optimize.report``.
"""
from optimize.relax import (
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
