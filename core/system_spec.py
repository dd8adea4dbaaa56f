"""The constants of one coarse-grained system, in one object that checkpoints carry.

A :class:`SystemSpec` says what an energy model of the system consumes and produces: how many
particles, which strength parameters (names and units), which particles the protocol clamps and
which it loads (and with what force), the particle masses, the units. The wrappers (prediction,
checkpoints, trajectory files, ASE, OpenMM, OpenMM-ML) read it from the model or the checkpoint
(``model.system_spec``) instead of importing one molecule's constants, so a surrogate of another
system goes through them unchanged. The microtubule's spec is
``cgsurrogate.simulate.microtubule.microtubule_spec()``.

Checkpoints store it as a plain dict (:meth:`SystemSpec.to_dict`), which
``torch.load(weights_only=True)`` reads back; :meth:`SystemSpec.from_dict` checks it.
Nothing here imports torch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError

#: Units of everything a spec describes (OpenMM's units; the ASE wrapper converts at its boundary).
UNITS = {"positions": "nm", "velocities": "nm/ps", "masses": "amu", "forces": "kJ/mol/nm"}


@dataclass(frozen=True)
class SystemSpec:
    """A coarse-grained system's constants (immutable; hashable).

    Attributes
    ----------
    name : str
        What the system is, e.g. ``"microtubule Tube(48,13,3)"``.
    num_particles : int
        ``N``: every position array is ``[N, 3]`` nm, every per-particle energy ``[N]``.
    param_names : tuple of str
        The ``P`` strength parameters a model takes (``params [B, P]``), in order.
    param_units : tuple of str
        Unit of each parameter (same length as ``param_names``).
    masses : tuple of float
        ``[N]`` particle masses in amu (the physical masses; clamping is ``clamp_nodes``).
    clamp_nodes : tuple of int
        Particles the protocol holds fixed (mass 0 in OpenMM, ``FixAtoms`` in ASE).
    load_nodes : tuple of int
        Particles the protocol pulls with ``load_force``.
    load_force : tuple of 3 float
        Force (kJ/mol/nm) on each load node at full load.
    default_params : tuple of float, optional
        Parameters used when a caller gives none (e.g. the OpenMM force's defaults).
    reference_positions : tuple of (x, y, z), optional
        ``[N, 3]`` nm: a resting geometry (start of a relaxation, the check of
        :func:`cgsurrogate.core.energy_model.validate_energy_model`).
    bonds : tuple of (i, j)
        Pairs of bonded particles (topology files, drawings); may be empty.
    particle_types : tuple of int, optional
        ``[N]`` index into ``type_names`` for each particle (e.g. alpha/beta tubulin).
    type_names : tuple of str
        Names of the particle types.
    type_label : str
        What the types are called (the extended-XYZ column name), e.g. ``"tubulin"``.
    energy_unit : str
        Unit of the per-particle energies, ``"kJ/mol"``.
    """

    name: str
    num_particles: int
    param_names: tuple
    param_units: tuple
    masses: tuple
    clamp_nodes: tuple = ()
    load_nodes: tuple = ()
    load_force: tuple = (0.0, 0.0, 0.0)
    default_params: tuple | None = None
    reference_positions: tuple | None = None
    bonds: tuple = ()
    particle_types: tuple | None = None
    type_names: tuple = ()
    type_label: str = "type"
    energy_unit: str = "kJ/mol"
    units: dict = field(default_factory=lambda: dict(UNITS), compare=False, hash=False)

    def __post_init__(self):
        where = f"system spec {self.name!r}"
        n = _int(self.num_particles, f"{where}: num_particles")
        if n < 1:
            raise CGSurrogateError(f"{where}: num_particles must be positive, got {n}")
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        put("name", str(self.name))
        put("num_particles", n)
        put("param_names", tuple(str(s) for s in self.param_names))
        put("param_units", tuple(str(s) for s in self.param_units))
        if len(self.param_units) != len(self.param_names):
            raise CGSurrogateError(f"{where}: {len(self.param_names)} parameter names but "
                                   f"{len(self.param_units)} units")
        masses = np.asarray(self.masses, dtype=np.float64).reshape(-1)
        if masses.shape != (n,) or not np.all(np.isfinite(masses)) or np.any(masses < 0):
            raise CGSurrogateError(f"{where}: masses must be {n} finite non-negative numbers (amu), "
                                   f"got {masses.size}")
        put("masses", tuple(float(m) for m in masses))
        for key in ("clamp_nodes", "load_nodes"):
            idx = tuple(_int(i, f"{where}: {key}") for i in np.asarray(getattr(self, key)).reshape(-1))
            bad = [i for i in idx if not 0 <= i < n]
            if bad:
                raise CGSurrogateError(f"{where}: {key} holds particle {bad[0]}, outside 0..{n - 1}")
            put(key, idx)
        put("load_force", _floats(self.load_force, 3, f"{where}: load_force"))
        if self.default_params is not None:
            put("default_params", _floats(self.default_params, len(self.param_names), f"{where}: default_params"))
        if self.reference_positions is not None:
            x = np.asarray(self.reference_positions, dtype=np.float64)
            if x.shape != (n, 3) or not np.all(np.isfinite(x)):
                raise CGSurrogateError(f"{where}: reference_positions must be finite [{n}, 3] nm, got {x.shape}")
            put("reference_positions", tuple(tuple(float(c) for c in row) for row in x))
        bonds = np.asarray(self.bonds, dtype=np.int64).reshape(-1, 2) if len(self.bonds) else np.zeros((0, 2), int)
        if bonds.size and (bonds.min() < 0 or bonds.max() >= n):
            raise CGSurrogateError(f"{where}: a bond names a particle outside 0..{n - 1}")
        put("bonds", tuple((int(a), int(b)) for a, b in bonds))
        if self.particle_types is not None:
            t = tuple(_int(i, f"{where}: particle_types") for i in np.asarray(self.particle_types).reshape(-1))
            if len(t) != n or (t and (min(t) < 0 or max(t) >= max(1, len(self.type_names)))):
                raise CGSurrogateError(f"{where}: particle_types must be {n} indices into type_names")
            put("particle_types", t)
        put("type_names", tuple(str(s) for s in self.type_names))
        put("units", dict(UNITS, **dict(self.units or {})))

    @classmethod
    def minimal(cls, num_particles: int, num_params: int) -> "SystemSpec":
        """A spec that knows only the sizes: ``N`` particles of unit mass (amu), nothing clamped or
        loaded, parameters named ``p0 ...`` without units. For models built without a spec."""
        return cls(name=f"unspecified system ({num_particles} particles)", num_particles=num_particles,
                   param_names=tuple(f"p{i}" for i in range(num_params)), param_units=("",) * num_params,
                   masses=(1.0,) * num_particles)

    @property
    def num_params(self) -> int:
        """``P``, the number of strength parameters."""
        return len(self.param_names)

    def masses_array(self) -> np.ndarray:
        """``[N]`` float64 masses in amu."""
        return np.asarray(self.masses, dtype=np.float64)

    def reference_positions_array(self) -> np.ndarray | None:
        """``[N, 3]`` float64 nm, or None when the spec holds no reference geometry."""
        if self.reference_positions is None:
            return None
        return np.asarray(self.reference_positions, dtype=np.float64)

    def check_params(self, params, where: str = "params") -> np.ndarray:
        """``params`` as a float64 ``[P]`` array; raises :class:`CGSurrogateError` for the wrong
        count or a non-finite value (the message names ``where`` and the parameter names)."""
        try:
            p = np.asarray(params, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise CGSurrogateError(f"{where}: not a list of numbers ({params!r})") from None
        if p.shape != (self.num_params,):
            raise CGSurrogateError(f"{where}: need {self.num_params} strength parameters "
                                   f"({', '.join(self.param_names)}), got {p.size}")
        if not np.all(np.isfinite(p)):
            raise CGSurrogateError(f"{where}: strength parameters must be finite, got {p.tolist()}")
        return p

    def to_dict(self) -> dict:
        """Plain-python form (str, int, float, lists, dicts) that checkpoints and JSON hold."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = _plain(v)
        return out

    @classmethod
    def from_dict(cls, d, where: str = "system spec") -> "SystemSpec":
        """Rebuild from :meth:`to_dict`'s output; raises :class:`CGSurrogateError` naming ``where``
        for a missing or unknown key or a bad value."""
        if isinstance(d, SystemSpec):
            return d
        if not isinstance(d, dict):
            raise CGSurrogateError(f"{where}: not a system specification (a {type(d).__name__})")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(d))
        if missing:
            raise CGSurrogateError(f"{where}: system specification lacks {', '.join(missing)}")
        unknown = sorted(set(d) - names)
        if unknown:
            raise CGSurrogateError(f"{where}: unknown system specification field {unknown[0]!r} "
                                   "(written by a newer cgsurrogate?)")
        try:
            return cls(**d)
        except CGSurrogateError as exc:
            raise CGSurrogateError(f"{where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise CGSurrogateError(f"{where}: bad system specification ({exc})") from None


def _int(v, where: str) -> int:
    try:
        i = int(v)
    except (TypeError, ValueError):
        raise CGSurrogateError(f"{where}: {v!r} is not an integer") from None
    if i != v:
        raise CGSurrogateError(f"{where}: {v!r} is not an integer")
    return i


def _floats(v, n: int, where: str) -> tuple:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (n,) or not np.all(np.isfinite(a)):
        raise CGSurrogateError(f"{where}: need {n} finite numbers, got {a.size}")
    return tuple(float(x) for x in a)


def _plain(v):
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v
