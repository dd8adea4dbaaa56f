"""The bending protocol of the microtubule sweep (Scott & Mjolsness 2021, sec. 3.1).

Clamp the first two rings, pull the last two rings along -y with a load ramped
linearly from 0 to its maximum over ``ramp_steps`` (updated every step: the force at the
positions after step ``s`` carries ``load * min(s / ramp_steps, 1)``), hold it for
``hold_steps``, and save a frame every ``save_every`` steps (12 frames), with Langevin
dynamics at a small temperature.

Runs at rest. The ramp and the hold are dynamics; after the hold a settle stage
(:mod:`cgsurrogate.simulate.settle`, FIRE at the full load with the clamps held) relaxes every run
to the static equilibrium nearest its last dynamic state, and the last frame is that settled state
(velocities zero). :data:`REST_CRITERION` states the test: the largest net force (internal + load)
on a free particle is at most ``settle_tol`` (1e-4) times the load on one loaded particle. Each run
records the value it reached (``residual_force``), how far the settle moved it
(``settle_tip_shift_nm``, ``settle_max_shift_nm``) and the settle's force evaluations, in its run
file and in the dataset metadata. Why a settle and not more hold friction (measured,
``bench/hold_friction.py``): the soft-angle runs (LongAngle and QuadAngles 3) end the hold 67-90
nm from their rest state with the protocol's friction and 136-150 nm from it with a hold friction
of 3e-5 / ps (overdamped creep that passes a tip-motion test far from rest).

Units: OpenMM's (ps, K, 1/ps, kJ/mol/nm). The paper's LAMMPS "nano" setting is
mass 50 ag, step 0.018 ns (18 ps), load 9e-14 N per loaded monomer.

Temperature and damping (the paper gives neither)
-------------------------------------------------
``temperature = 0.01 K``: thermal energy ``kT = 8.3e-5 kJ/mol``, about 1/1000 of the
elastic energy per monomer at full load, so the tip's thermal jitter is a few
hundredths of a nm against tens of nm of deflection ("small temperature, to emphasise
mechanical interactions"). ``friction`` (Langevin collision rate) was chosen by
measuring the tip's approach to rest: see :meth:`Protocol.paper` and
:meth:`Protocol.short`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError

from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM, TIMESTEP_PS


@dataclass(frozen=True)
class Protocol:
    """A ramp-and-hold loading protocol.

    Attributes
    ----------
    ramp_steps : int
        Steps over which the load rises linearly from 0 to ``load`` (updated every step).
    hold_steps : int
        Steps at full load after the ramp.
    save_every : int
        A frame is saved every ``save_every`` steps (first at step ``save_every``).
    timestep_ps : float
        Integration step (ps).
    temperature : float
        Langevin bath temperature (K).
    friction : float
        Langevin collision rate (1/ps).
    load : float
        Full load per loaded monomer (kJ/mol/nm, along -y).
    ramp_increments : int
        Legacy (the staircase ramp of format 1 datasets); ignored by the linear ramp and
        kept so older callers and metadata still load.
    ramp : str
        ``"linear"`` (every step). Metadata written before the linear ramp reads back as
        ``"staircase"``, which cannot be simulated (a rerun into such a folder is refused).
    settle_tol : float
        The settle stage's tolerance and the rest criterion: largest net force on a free particle
        over the load per loaded particle (dimensionless). 0: no settle (the last frame is the
        last dynamic state; metadata written before the settle stage reads back so).
    settle_max_iter : int
        Largest number of FIRE force evaluations of the settle stage.
    """

    ramp_steps: int = 128_000
    hold_steps: int = 448_000
    save_every: int = 48_000
    timestep_ps: float = TIMESTEP_PS
    temperature: float = 0.01
    friction: float = 1.5e-6
    load: float = LOAD_FORCE_KJMOL_NM
    ramp_increments: int = 128
    ramp: str = "linear"
    settle_tol: float = 1e-4
    settle_max_iter: int = 100_000

    def __post_init__(self):
        for name in ("ramp_steps", "hold_steps", "save_every", "ramp_increments", "settle_max_iter"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise CGSurrogateError(f"protocol {name} must be an integer, got {v!r}")
        if self.ramp_steps < 0 or self.hold_steps < 0 or self.save_every <= 0:
            raise CGSurrogateError("protocol steps must be non-negative and save_every positive")
        if self.total_steps == 0 or self.total_steps % self.save_every:
            raise CGSurrogateError(
                f"protocol: ramp_steps + hold_steps ({self.total_steps}) must be a positive multiple of "
                f"save_every ({self.save_every})"
            )
        vals = (self.timestep_ps, self.temperature, self.friction, self.load, self.settle_tol)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
            raise CGSurrogateError(
                f"protocol: timestep, temperature, friction, load and settle_tol must be finite numbers, got {vals}")
        if self.settle_tol < 0 or self.settle_max_iter < 1:
            raise CGSurrogateError("protocol: settle_tol must be non-negative and settle_max_iter at least 1")
        if not (self.timestep_ps > 0 and self.temperature >= 0 and self.friction >= 0):
            raise CGSurrogateError("protocol: timestep must be positive, temperature and friction non-negative")
        if self.ramp not in ("linear", "staircase"):
            raise CGSurrogateError(f"protocol ramp {self.ramp!r}: expected 'linear'")

    @property
    def total_steps(self) -> int:
        return self.ramp_steps + self.hold_steps

    @property
    def num_frames(self) -> int:
        """Frames saved per run."""
        return self.total_steps // self.save_every

    @property
    def save_steps(self) -> list[int]:
        """Step numbers at which frames are saved."""
        return [self.save_every * (i + 1) for i in range(self.num_frames)]

    def load_scale(self, step: int) -> float:
        """Ramp fraction of the load (0..1) in the force at the positions after ``step`` steps.

        ``min(step / ramp_steps, 1)``: the load at step ``s`` is ``load * load_scale(s)``.
        """
        if self.ramp_steps == 0:
            return 1.0
        return min(float(step) / float(self.ramp_steps), 1.0)

    @property
    def settles(self) -> bool:
        """Whether the last frame is the settled state (``settle_tol > 0``)."""
        return self.settle_tol > 0

    def rest_criterion(self) -> dict:
        """The rest test of this protocol's runs (:data:`REST_CRITERION` with this ``settle_tol``)."""
        return {**REST_CRITERION, "residual_force": float(self.settle_tol or REST_CRITERION["residual_force"])}

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable), with units and the rest criterion."""
        d = asdict(self)
        d["units"] = {"timestep_ps": "ps", "temperature": "K", "friction": "1/ps", "load": "kJ/mol/nm"}
        d["load_schedule"] = "load * min(step / ramp_steps, 1), updated every step"
        d["units"]["settle_tol"] = "multiples of the load on one loaded particle"
        d["rest_criterion"] = self.rest_criterion()
        d["last_frame"] = ("settled: FIRE at the full load, clamps held, until the residual force <= settle_tol"
                           if self.settles else "the last dynamic state")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Protocol":
        """Inverse of :meth:`to_dict`; unknown keys (``units``) are ignored.

        A dict without ``ramp`` (written before the linear ramp) reads as ``ramp="staircase"``; one
        without ``settle_tol`` (written before the settle stage) as ``settle_tol=0`` (no settle).
        """
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "ramp" not in d and "ramp_steps" in d:
            kw["ramp"] = "staircase"
        if "settle_tol" not in d and "ramp_steps" in d:
            kw["settle_tol"] = 0.0
        return cls(**kw)

    @classmethod
    def paper(cls) -> "Protocol":
        """The paper's setting: 0.018 ns steps, 128,000 ramp + 448,000 hold steps, 12 frames.

        The paper's step and 128,000-step ramp; the hold is 448,000 steps (the paper's 256,000
        left the softest runs moving by 1 nm per frame interval), a frame every 48,000 steps,
        10.4 us in all. Friction 1.5e-6 / ps: stiff runs are underdamped (the all-30 tip rings
        by about 0.1 nm at the end), the softest close to critically damped. The rest figures in
        the module docstring were measured with :meth:`short` (same physical times, 20x step).
        """
        return cls()

    @classmethod
    def short(cls) -> "Protocol":
        """The shortened protocol of the default demo: 12 frames in 28,800 steps of 0.36 ns.

        The same physical times and friction as :meth:`paper` with a 20x larger step:
        ramp 6,400 steps, hold 22,400, a frame every 2,400.
        """
        return cls(
            ramp_steps=6_400,
            hold_steps=22_400,
            save_every=2_400,
            timestep_ps=20 * TIMESTEP_PS,
            temperature=0.01,
            friction=1.5e-6,
            ramp_increments=32,
        )


#: When a run counts as at rest (the protocol's ``settle_tol`` sets the value): the largest net force
#: (internal + load) on a free particle at the last frame is at most ``residual_force`` times the load
#: on one loaded particle. 1e-4 (5.4e-6 kJ/mol/nm), measured: relaxing further from 1e-3 moved soft
#: runs' tips by up to 0.32 nm; at 1e-4 the all-30 tip lies 0.004 nm from its exact static
#: equilibrium. At the protocol's 0.01 K a dynamic state has a residual of about 1 (thermal
#: forces), so only a settled last frame can meet it.
REST_CRITERION = {"residual_force": 1e-4,
                  "definition": "max over free particles of |internal + load force| / load per loaded particle, "
                                "last frame"}
