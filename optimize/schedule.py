"""Relaxation schedules: which hierarchy level each stage moves, with its budget and tolerance.

A schedule is written ``level[:max_evals[:tol]],...``, e.g. ``"2:600,0"``: first the coarse
modes of hierarchy level 2 for at most 600 fine evaluations, then every fine coordinate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError

#: and the README): coarsest modes first, then the middle level, then all fine coordinates.
DEFAULT_SCHEDULE = "2:600,0"


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
    CGSurrogateError
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
                raise CGSurrogateError(
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
        raise CGSurrogateError(f"schedule {spec!r} has no stages")
    for s in stages:
        if s.level < 0:
            raise CGSurrogateError(f"schedule {spec!r}: level {s.level} is negative")
        if s.max_evals is not None and s.max_evals < 1:
            raise CGSurrogateError(f"schedule {spec!r}: stage {s.label()} has a budget below 1")
        if s.tol is not None and not (s.tol > 0 and math.isfinite(s.tol)):
            raise CGSurrogateError(f"schedule {spec!r}: stage {s.label()} has a non-positive tolerance")
    return stages

