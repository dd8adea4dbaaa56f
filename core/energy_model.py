"""The one contract every energy model of the project follows, and a check a user runs on theirs.

:class:`EnergyModel` is a ``torch.nn.Module`` with one call signature::

    total [B], per_particle [B, N] = model(positions [B, N, 3] nm, params [B, P], velocities=None)

(kJ/mol; unbatched ``[N, 3]`` / ``[P]`` input gives a scalar and ``[N]``). The base class does
everything but the physics: it checks the inputs against the model's
:class:`~cgsurrogate.core.system_spec.SystemSpec` (shapes, particle count, parameter count, NaN and
infinity) and raises :class:`~cgsurrogate.core.errors.CGSurrogateError` with a one-line message,
broadcasts one parameter set over a batch, moves the inputs to the model's device, converts them to
float64 (``compute_dtype``; a network then casts to its own dtype after normalising), and returns
the energies in the dtype of ``positions``. A subclass implements only
:meth:`EnergyModel.energy_per_particle`. Forces are ``-dE/dx`` by autograd
(:meth:`EnergyModel.energy_and_forces`).

:func:`validate_energy_model` (in :mod:`cgsurrogate.core.energy_model_check`) checks a model
against this contract, in the spirit of TorchSim's ``validate_model_outputs`` and e3nn's
``assert_equivariant``.
"""
from __future__ import annotations

import abc
import math

import numpy as np
import torch
from torch import nn

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.core.system_spec import SystemSpec


class EnergyModel(nn.Module, metaclass=abc.ABCMeta):
    """Base class of every energy model: input checks, dtypes and devices; subclasses do the math.

    Parameters
    ----------
    system_spec : SystemSpec or its dict form
        The system the model describes (particle count ``N``, parameter names ``P``, ...).

    Class attributes (claims a subclass sets; :func:`validate_energy_model` tests them)
    ---------------------------------------------------------------------------------
    rotation_invariant : bool
        The energies do not change when positions (and velocities) are rotated or reflected.
    translation_invariant : bool
        The energies do not change when positions are shifted.
    takes_velocities : bool
        The model reads ``velocities`` [B, N, 3] nm/ps (otherwise passing them is an error).
    per_particle_params : bool
        The model also accepts one parameter set per particle, ``params [B, N, P]``.
    compute_dtype : torch.dtype or None
        Dtype the inputs reach :meth:`energy_per_particle` in: float64 (default; normalisation
        statistics need it), or None for the caller's floating dtype.
    """

    rotation_invariant: bool = False
    translation_invariant: bool = False
    takes_velocities: bool = False
    per_particle_params: bool = False
    compute_dtype: torch.dtype | None = torch.float64

    def __init__(self, system_spec):
        super().__init__()
        self.system_spec = SystemSpec.from_dict(system_spec, where=type(self).__name__)

    # ---- what a subclass implements -------------------------------------------------------------
    @abc.abstractmethod
    def energy_per_particle(self, positions: torch.Tensor, params: torch.Tensor,
                            velocities: torch.Tensor | None) -> torch.Tensor:
        """Per-particle energies ``[B, N]`` kJ/mol (differentiable in ``positions``).

        Called with checked inputs on the model's device: ``positions [B, N, 3]`` nm,
        ``params [B, P]`` (or ``[B, N, P]`` when ``per_particle_params``), ``velocities
        [B, N, 3]`` nm/ps or None (None unless ``takes_velocities``), all finite, in
        ``compute_dtype`` (or the caller's floating dtype). Never modify them in place.
        """

    # ---- the contract ---------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        """``N``, the number of particles."""
        return self.system_spec.num_particles

    @property
    def num_params(self) -> int:
        """``P``, the number of strength parameters."""
        return self.system_spec.num_params

    @property
    def device(self) -> torch.device:
        """Device of the model's first parameter or buffer (CPU when it has none); cached, and
        refreshed whenever the module is moved (``.to``, ``.cuda``, ...)."""
        dev = self.__dict__.get("_device_cache")
        if dev is None:
            dev = next((t.device for t in self.parameters()), None) or next(
                (t.device for t in self.buffers()), torch.device("cpu"))
            self.__dict__["_device_cache"] = dev
        return dev

    def _apply(self, fn, recurse=True):
        self.__dict__.pop("_device_cache", None)
        return super()._apply(fn, recurse)

    def forward(self, positions, params, velocities=None):
        """Total and per-particle energy.

        Parameters
        ----------
        positions : Tensor [B, N, 3] or [N, 3], nm (array-likes are converted)
        params : Tensor [B, P], [1, P] or [P] (one set for the whole batch); [B, N, P] when
            the model has ``per_particle_params``
        velocities : Tensor [B, N, 3] or [N, 3], nm/ps, optional (models with ``takes_velocities``)

        Returns
        -------
        total : Tensor [B] (scalar for unbatched input), kJ/mol
        per_particle : Tensor [B, N] (or [N]), kJ/mol; sums to ``total``. On the model's device,
            in the dtype of ``positions`` (float64 for non-float input).

        Raises
        ------
        CGSurrogateError
            Wrong shapes, particle count or parameter count; NaN or infinite inputs; velocities
            given to a model that does not take them.
        """
        x, p, v, squeeze, out_dtype = self.check_inputs(positions, params, velocities)
        per = self.energy_per_particle(x, p, v)
        if tuple(per.shape) != tuple(x.shape[:2]):
            raise RuntimeError(f"{type(self).__name__}.energy_per_particle returned shape "
                               f"{tuple(per.shape)}, expected {tuple(x.shape[:2])}")
        per = per.to(out_dtype)
        total = per.sum(-1)
        if squeeze:
            return total[0], per[0]
        return total, per

    def check_inputs(self, positions, params, velocities=None):
        """Checked, batched inputs: ``(positions [B, N, 3], params [B, P] or [B, N, P],
        velocities [B, N, 3] or None, squeeze, out_dtype)`` on the model's device, in the compute
        dtype. ``squeeze`` is True for unbatched input. Raises :class:`CGSurrogateError`."""
        name = type(self).__name__
        N, P = self.num_nodes, self.num_params
        x = _as_tensor(positions, "positions", name)
        squeeze = x.dim() == 2
        if squeeze:
            x = x[None]
        if x.dim() != 3 or tuple(x.shape[1:]) != (N, 3):
            raise CGSurrogateError(f"{name}: positions have shape {tuple(x.shape)}, expected [B, {N}, 3] (nm; "
                                   f"the model describes {N} particles of {self.system_spec.name})")
        B = x.shape[0]
        out_dtype = x.dtype if x.dtype.is_floating_point else torch.float64
        dtype = self.compute_dtype or out_dtype
        device = self.device
        x = x.to(device=device, dtype=dtype)
        _check_finite(x, "positions", name)

        p = _as_tensor(params, "params", name)
        if squeeze and self.per_particle_params and p.dim() == 2 and p.shape[0] == N and N != 1:
            p = p[None]
        if p.dim() == 1:
            p = p[None]
        if p.dim() == 2 or (p.dim() == 3 and self.per_particle_params):
            if p.shape[0] == 1 and B > 1:
                p = p.expand(B, *p.shape[1:])
        want = f"[{B}, {P}]" + (f" or [{B}, {N}, {P}]" if self.per_particle_params else "")
        ok = (p.dim() == 2 and tuple(p.shape) == (B, P)) or (
            self.per_particle_params and p.dim() == 3 and tuple(p.shape) == (B, N, P))
        if not ok:
            raise CGSurrogateError(f"{name}: params have shape {tuple(_as_tensor(params, 'params', name).shape)}, "
                                   f"expected {want} ({', '.join(self.system_spec.param_names)})")
        p = p.to(device=device, dtype=dtype)
        _check_finite(p, "params", name)

        v = None
        if velocities is not None:
            if not self.takes_velocities:
                raise CGSurrogateError(f"{name}: this model does not take velocities")
            v = _as_tensor(velocities, "velocities", name)
            if v.dim() == 2:
                v = v[None]
            if tuple(v.shape) != (B, N, 3):
                raise CGSurrogateError(f"{name}: velocities have shape {tuple(v.shape)}, expected [{B}, {N}, 3] (nm/ps)")
            v = v.to(device=device, dtype=dtype)
            _check_finite(v, "velocities", name)
        return x, p, v, squeeze, out_dtype

    def energy_and_forces(self, positions, params, velocities=None, *, create_graph: bool = False):
        """Energies and forces ``-dE/dx`` by autograd (:func:`energy_and_forces`)."""
        return energy_and_forces(self, positions, params, velocities, create_graph=create_graph)


def energy_and_forces(model: nn.Module, positions, params, velocities=None, *, create_graph: bool = False):
    """Energies and forces ``-dE/dx`` (autograd) of any module with the energy-model signature.

    Parameters
    ----------
    model : nn.Module
        An :class:`EnergyModel` (positions are moved to its device) or any module
        ``(positions [B, N, 3] nm, params, velocities=...) -> (total [B], per_particle [B, N])`` kJ/mol.
    positions : Tensor [B, N, 3] or [N, 3], nm
    params : Tensor [B, P] or [P]
    velocities : Tensor like ``positions``, nm/ps, optional (passed only when given)
    create_graph : bool
        Keep the graph of the forces (for higher derivatives).

    Returns
    -------
    total : Tensor [B] (or scalar), kJ/mol
    per_particle : Tensor [B, N] (or [N]), kJ/mol
    forces : Tensor shaped like ``positions``, kJ/mol/nm
    """
    x = _as_tensor(positions, "positions", type(model).__name__).detach()
    if isinstance(model, EnergyModel):
        x = x.to(model.device)
    if not x.dtype.is_floating_point:
        x = x.double()
    x.requires_grad_(True)
    kwargs = {} if velocities is None else {"velocities": velocities}
    with torch.enable_grad():
        total, per = model(x, params, **kwargs)
        (grad,) = torch.autograd.grad(total.sum(), x, create_graph=create_graph)
    if not create_graph:
        total, per = total.detach(), per.detach()
    return total, per, -grad


def _as_tensor(value, what: str, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:  # through numpy, so that Python floats stay float64 (torch.as_tensor would give float32)
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(arr.dtype)
        return torch.as_tensor(arr)
    except (TypeError, ValueError, RuntimeError):
        raise CGSurrogateError(f"{name}: {what} is not an array of numbers ({type(value).__name__})") from None


def _check_finite(t: torch.Tensor, what: str, name: str) -> None:
    if not t.dtype.is_floating_point and not t.dtype.is_complex:
        return
    if math.isfinite(float(t.detach().sum())):  # one reduction: NaN and inf propagate into the sum
        return
    bad = ~torch.isfinite(t.detach())
    if not bool(bad.any()):
        raise CGSurrogateError(f"{name}: {what} are too large (their sum overflows {t.dtype})")
    if bool(bad.any()):
        first = [int(i) for i in bad.nonzero()[0].tolist()]
        where = f"configuration {first[0]}" + (f", particle {first[1]}" if len(first) > 2 else "")
        raise CGSurrogateError(f"{name}: {what} hold NaN or infinite values ({int(bad.sum())} entries; first at {where})")


__all__ = ["EnergyModel", "energy_and_forces"]
