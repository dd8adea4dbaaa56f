"""Training schedules of multilevel GCN-family models (Scott & Mjolsness 2021, sec. 4.3).

Schedules (sec. 4.3), for multilevel models (GPCN, A-GPCN; level 0 = fine graph). A *visit*
of level ``l`` is one epoch (20 batches) in which only level ``l``'s parameters are updated
(its GCN and, for an A-GPCN, the prolongation ``P_{l-1,l}`` feeding it); the forward pass
and the loss always use the whole model at the fine scale.

``all``
    Default: every epoch trains all levels at once.
``gammaG`` (G = 1, 2, 3)
    Multigrid cycles with recursion parameter ``gamma``, repeated until the epochs run out:
    ``MG(l) = [l]`` for the coarsest level, otherwise ``MG(l) = [l] + gamma * MG(l+1) + [l]``
    (pre-smoothing visit, ``gamma`` coarse corrections, post-smoothing visit). With three
    levels (0 fine, 1 intermediate, 2 coarse) one cycle visits:

    - gamma1 (V-cycle): 0, 1, 2, 1, 0
    - gamma2 (W-cycle): 0, 1, 2, 2, 1, 1, 2, 2, 1, 0
    - gamma3: 0, 1, 2, 2, 2, 1, 1, 2, 2, 2, 1, 1, 2, 2, 2, 1, 0
``gamma0``
    The recursion above with ``gamma = 0`` would never leave the fine level; the paper does
    not define it, so here ``gamma0`` is the one-way (sawtooth) sweep ``MG(l) = [l] + MG(l+1)``:
    0, 1, 2, then repeat.
``coarse-to-fine``
    Phase 1: only the coarsest level is in the model (forward and training); once 10 epochs
    pass without improving that phase's best validation NMSE, phase 2 adds the next finer
    level (forward and training both), and so on until all levels train together for the rest
    of the run. With three levels: {2}, then {1, 2}, then {0, 1, 2}.
"""
from __future__ import annotations

from cgsurrogate.core.errors import CGSurrogateError

SCHEDULES = ("all", "gamma0", "gamma1", "gamma2", "gamma3", "coarse-to-fine")


def multigrid_cycle(gamma: int, num_levels: int) -> list[int]:
    """Levels visited by one multigrid cycle (see the module docstring).

    Parameters
    ----------
    gamma : int in {0, 1, 2, 3, ...}
    num_levels : int >= 1

    Returns
    -------
    list of int (0 = finest level).
    """
    if gamma < 0 or num_levels < 1:
        raise CGSurrogateError(f"multigrid cycle needs gamma >= 0 and num_levels >= 1, got {gamma}, {num_levels}")

    def mg(level: int) -> list[int]:
        if level == num_levels - 1:
            return [level]
        if gamma == 0:
            return [level] + mg(level + 1)
        inner: list[int] = []
        for _ in range(gamma):
            inner += mg(level + 1)
        return [level] + inner + [level]

    return mg(0)


class Schedule:
    """Which levels are in the forward pass and which are trained, epoch by epoch.

    Parameters
    ----------
    name : one of :data:`SCHEDULES`
    num_levels : int
    patience : int
        Epochs without improvement that end a coarse-to-fine phase (paper: 10).

    Notes
    -----
    Call :meth:`levels` before an epoch and :meth:`update` with that epoch's validation NMSE
    after it. :meth:`state_dict` / :meth:`load_state_dict` carry the state across resumes.
    """

    def __init__(self, name: str, num_levels: int, patience: int = 10):
        if name not in SCHEDULES:
            raise CGSurrogateError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
        if name != "all" and num_levels < 2:
            raise CGSurrogateError(f"schedule {name!r} needs a multilevel model (GPCN/A-GPCN), this one has 1 level")
        self.name, self.num_levels, self.patience = name, int(num_levels), int(patience)
        self.cycle = multigrid_cycle(int(name[-1]), self.num_levels) if name.startswith("gamma") else None
        self.phase = 0
        self.phase_best = float("inf")
        self.since_improvement = 0

    def levels(self, epoch: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(forward_levels, trained_levels)`` for epoch ``epoch`` (0-based)."""
        everything = tuple(range(self.num_levels))
        if self.name == "all":
            return everything, everything
        if self.cycle is not None:
            return everything, (self.cycle[epoch % len(self.cycle)],)
        active = tuple(range(self.num_levels - 1 - self.phase, self.num_levels))
        return active, active

    def update(self, val_nmse: float) -> None:
        """Record an epoch's validation NMSE (advances coarse-to-fine phases)."""
        if self.name != "coarse-to-fine":
            return
        if val_nmse < self.phase_best:
            self.phase_best, self.since_improvement = float(val_nmse), 0
        else:
            self.since_improvement += 1
        if self.since_improvement >= self.patience and self.phase < self.num_levels - 1:
            self.phase += 1
            self.phase_best, self.since_improvement = float("inf"), 0

    def state_dict(self) -> dict:
        """Plain-python state."""
        return {"name": self.name, "num_levels": self.num_levels, "patience": self.patience, "phase": self.phase,
                "phase_best": self.phase_best, "since_improvement": self.since_improvement}

    def load_state_dict(self, d: dict) -> None:
        """Restore from :meth:`state_dict`."""
        if d["name"] != self.name or d["num_levels"] != self.num_levels:
            raise CGSurrogateError(f"training state is for schedule {d['name']!r} with {d['num_levels']} levels, "
                             f"not {self.name!r} with {self.num_levels}")
        self.phase, self.phase_best, self.since_improvement = int(d["phase"]), float(d["phase_best"]), int(d["since_improvement"])
