"""Structure relaxation: coarse-to-fine descent through the prolongation hierarchy and references."""
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
    relax,
)

__all__ = [
    "relax",
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
