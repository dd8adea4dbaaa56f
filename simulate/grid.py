"""Strength-parameter sets of a microtubule sweep: the paper's grid, sub-grids, validation.

Units: the strengths are the paper's zJ/nm^2 (LatAssoc, LongAssoc) and zJ/rad^2 (LatAngle,
LongAngle, QuadAngles); every value of a grid sweep is one of :data:`GRID_VALUES`.
"""
from __future__ import annotations

import itertools

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.microtubule import GRID_VALUES, PARAM_NAMES

#: The embedded default sweep of ``cli.py simulate``: the all-30 reference, the
#: softest and stiffest uniform settings, and each parameter lowered to 9 alone.
DEFAULT_PARAM_SETS = np.array(
    [
        [30, 30, 30, 30, 30],
        [9, 9, 9, 9, 9],
        [57, 57, 57, 57, 57],
        [9, 30, 30, 30, 30],
        [30, 9, 30, 30, 30],
        [30, 30, 9, 30, 30],
        [30, 30, 30, 9, 30],
        [30, 30, 30, 30, 9],
    ],
    dtype=np.float64,
)


def grid_values(spec) -> list[float]:
    """Values per parameter for a grid spec.

    Parameters
    ----------
    spec : int or str or sequence
        ``n`` (1-7): ``n`` values spread evenly over ``GRID_VALUES`` (3 -> 3, 30, 57;
        7 -> the full grid); or a list / comma string of values from ``GRID_VALUES``.

    Raises ``ValueError`` for a count outside 1..7 or a value outside the grid.
    """
    if isinstance(spec, str):
        s = spec.strip()
        if "," not in s:
            try:
                spec = int(s)
            except ValueError:
                raise CGSurrogateError(f"grid {spec!r}: expected a count 1-7 or a comma-separated list of grid values") from None
        else:
            try:
                spec = [float(v) for v in s.split(",") if v.strip()]
            except ValueError:
                raise CGSurrogateError(f"grid {spec!r}: values must be numbers") from None
    if isinstance(spec, (int, np.integer)):
        n = int(spec)
        if not 1 <= n <= len(GRID_VALUES):
            raise CGSurrogateError(f"grid size {n} is outside 1..{len(GRID_VALUES)}")
        if n == 1:
            return [GRID_VALUES[3]]
        idx = np.round(np.linspace(0, len(GRID_VALUES) - 1, n)).astype(int)
        return [GRID_VALUES[i] for i in idx]
    vals = [float(v) for v in spec]
    if not vals:
        raise CGSurrogateError("grid: no values given")
    bad = [v for v in vals if v not in GRID_VALUES]
    if bad:
        raise CGSurrogateError(f"grid value {bad[0]:g} is outside the grid {list(GRID_VALUES)}")
    return sorted(set(vals))


def grid_param_sets(spec=7) -> np.ndarray:
    """All combinations of :func:`grid_values` for the five parameters, ``[n^5, 5]`` zJ.

    Row order is ``itertools.product`` order (the last parameter varies fastest).
    """
    vals = grid_values(spec)
    return np.array(list(itertools.product(vals, repeat=len(PARAM_NAMES))), dtype=np.float64)


def check_param_sets(param_sets, on_grid: bool = True) -> np.ndarray:
    """Validate ``[M, 5]`` parameter sets (positive, finite; on the grid when ``on_grid``)."""
    p = np.asarray(param_sets, dtype=np.float64)
    if p.ndim == 1 and p.size == len(PARAM_NAMES):
        p = p[None]
    if p.ndim != 2 or p.shape[1] != len(PARAM_NAMES) or len(p) == 0:
        raise CGSurrogateError(f"parameter sets have shape {p.shape}, expected [M, {len(PARAM_NAMES)}]")
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise CGSurrogateError("parameter sets must be positive and finite")
    if on_grid:
        bad = p[~np.isin(p, GRID_VALUES)]
        if bad.size:
            raise CGSurrogateError(f"strength parameter value {bad[0]:g} is outside the grid {list(GRID_VALUES)}")
    return p
