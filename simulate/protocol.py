"""The bending protocol of the microtubule sweep (Scott & Mjolsness 2021, sec. 3.1).

Clamp the first two rings, pull the last two rings along -y with a load ramped
linearly from 0 to its maximum over ``ramp_steps``, hold it for ``hold_steps``, and
save a frame every ``save_every`` steps (12 frames for the paper's protocol), with
Langevin dynamics at a small temperature.

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

from dataclasses import asdict, dataclass, fields

from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM, TIMESTEP_PS


@dataclass(frozen=True)
class Protocol:
    """A ramp-and-hold loading protocol.

    Attributes
    ----------
    ramp_steps : int
        Steps over which the load rises linearly from 0 to ``load``.
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
        The ramp is applied as this many equal steps of the load (the load changes
        every ``ramp_steps / ramp_increments`` steps).
    """

    ramp_steps: int = 128_000
    hold_steps: int = 256_000
    save_every: int = 32_000
    timestep_ps: float = TIMESTEP_PS
    temperature: float = 0.01
    friction: float = 1.5e-6
    load: float = LOAD_FORCE_KJMOL_NM
    ramp_increments: int = 128

    def __post_init__(self):
        for name in ("ramp_steps", "hold_steps", "save_every", "ramp_increments"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"protocol {name} must be an integer, got {v!r}")
        if self.ramp_steps < 0 or self.hold_steps < 0 or self.save_every <= 0 or self.ramp_increments <= 0:
            raise ValueError("protocol steps must be non-negative and save_every, ramp_increments positive")
        if self.total_steps % self.save_every:
            raise ValueError(
                f"protocol: ramp_steps + hold_steps ({self.total_steps}) must be a multiple of save_every ({self.save_every})"
            )
        if self.ramp_steps and self.ramp_steps % self.ramp_increments:
            raise ValueError(
                f"protocol: ramp_steps ({self.ramp_steps}) must be a multiple of ramp_increments ({self.ramp_increments})"
            )
        if not (self.timestep_ps > 0 and self.temperature >= 0 and self.friction >= 0):
            raise ValueError("protocol: timestep must be positive, temperature and friction non-negative")

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
        """Ramp fraction in force during the chunk that starts at ``step`` (0..1).

        The load rises in ``ramp_increments`` equal increments; during the increment
        ``[i h, (i + 1) h)`` it is ``(i + 1) / ramp_increments`` of the maximum.
        """
        if self.ramp_steps == 0 or step >= self.ramp_steps:
            return 1.0
        h = self.ramp_steps // self.ramp_increments
        return (step // h + 1) / self.ramp_increments

    def chunk_boundaries(self) -> list[int]:
        """Sorted step numbers where the integrator stops (ramp increments and frame saves)."""
        pts = set(self.save_steps)
        if self.ramp_steps:
            h = self.ramp_steps // self.ramp_increments
            pts.update(range(h, self.ramp_steps + 1, h))
        pts.add(self.total_steps)
        return sorted(p for p in pts if 0 < p <= self.total_steps)

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable), with units."""
        d = asdict(self)
        d["units"] = {"timestep_ps": "ps", "temperature": "K", "friction": "1/ps", "load": "kJ/mol/nm"}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Protocol":
        """Inverse of :meth:`to_dict`; unknown keys (``units``) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def paper(cls) -> "Protocol":
        """The paper's protocol: 128,000 ramp + 256,000 hold steps of 0.018 ns, a frame every 32,000.

        12 frames a run, 6.9 us of simulated time. Friction 1.5e-6 / ps (1.5e6 / s),
        close to critical damping of the tube's lowest bending mode for mid-range
        strengths: with every strength 30 the tip settles 41.5 nm below the axis, and the
        stiffest uniform setting (57) settles within 0.1 nm by the last frames; the
        softest (all 3) is still creeping by under 0.5 % per frame at the end.
        """
        return cls()

    @classmethod
    def short(cls) -> "Protocol":
        """A shortened protocol for development and the default demo: 12 frames in 19,200 steps.

        The same 6.9 us of physical time and friction as :meth:`paper`, with a 20x
        larger step (0.36 ns) over 1/20 as many steps. The dynamics here are slow
        compared with the step: tip deflections match runs with a 0.09 ns step to
        within 0.6 nm (0.3 %) at every frame (all strengths 3, 30 and 57 measured).
        """
        return cls(
            ramp_steps=6_400,
            hold_steps=12_800,
            save_every=1_600,
            timestep_ps=20 * TIMESTEP_PS,
            temperature=0.01,
            friction=1.5e-6,
            ramp_increments=32,
        )
