"""Result types of a relaxation: one :class:`StageResult` per stage and the :class:`RelaxResult`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

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
    stage_gnorm : float or None
        Largest row norm of the stage's own gradient at the end (kJ/mol/nm); None for a
        stage that never ran (budget spent).
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
    stage_gnorm: float | None
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
