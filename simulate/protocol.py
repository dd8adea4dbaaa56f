"""The bending protocol of the microtubule sweep (Scott & Mjolsness 2021, sec. 3.1).

Clamp the first two rings, pull the last two rings along -y with a load ramped
linearly from 0 to its maximum over ``ramp_steps`` (updated every step: the force at the
positions after step ``s`` carries ``load * min(s / ramp_steps, 1)``), hold it for
``hold_steps``, and save a frame every ``save_every`` steps (12 frames), with Langevin
dynamics at a small temperature.

Runs at rest. The hold is long enough for every run of the grid, the softest (all
strengths 3) included, to come to rest: :data:`REST_CRITERION` states the test, and each
run records the value it reached (``tip_motion_nm``, with ``residual_force``, in its run
file and in the dataset metadata). Measured with the short protocol: the tip of the all-3 run
moves 0.07 nm between its last two frames (204.3 nm deflection), [3, 57, 3, 3, 3] 0.16 nm,
all-30 0.17 nm (it rings by about 0.1 nm around 41.6 nm), all-57 0.09 nm.

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

    def __post_init__(self):
        for name in ("ramp_steps", "hold_steps", "save_every", "ramp_increments"):
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
        vals = (self.timestep_ps, self.temperature, self.friction, self.load)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
            raise CGSurrogateError(f"protocol: timestep, temperature, friction and load must be finite numbers, got {vals}")
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

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable), with units and the rest criterion."""
        d = asdict(self)
        d["units"] = {"timestep_ps": "ps", "temperature": "K", "friction": "1/ps", "load": "kJ/mol/nm"}
        d["load_schedule"] = "load * min(step / ramp_steps, 1), updated every step"
        d["rest_criterion"] = dict(REST_CRITERION)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Protocol":
        """Inverse of :meth:`to_dict`; unknown keys (``units``) are ignored.

        A dict without ``ramp`` (written before the linear ramp) reads as ``ramp="staircase"``.
        """
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "ramp" not in d and "ramp_steps" in d:
            kw["ramp"] = "staircase"
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


#: When a run counts as at rest: its tip (mean y of the loaded rings) moves less than
#: ``tip_motion_nm`` between its last two frames. (``residual_force``, the largest net force on a
#: free particle at the last frame over the load per particle, is recorded too but is not part of
#: the test: at 0.01 K the thermal force on one particle is about one load, so it stays near 1-10.)
REST_CRITERION = {"tip_motion_nm": 0.2}
