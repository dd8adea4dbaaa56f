"""An energy model (a trained surrogate or the reference energy) inside an OpenMM Context.

Uses OpenMM's own ``openmm.PythonForce`` (new in OpenMM 8.6): OpenMM calls a Python
function with the current ``State``; the function evaluates the torch energy and its
autograd forces. The strength parameters are global parameters of the force (the names of the
model's ``system_spec.param_names``, optionally prefixed), so
``context.setParameter("LatAssoc", 9.0)`` changes them without rebuilding the System.
Particle count, masses, clamped and loaded particles come from the model's
:class:`~cgsurrogate.core.system_spec.SystemSpec`. Units: nm, kJ/mol, kJ/mol/nm, amu.

A model on a CUDA device works as is: positions go to the model's device, forces come back to
the CPU for OpenMM (whatever OpenMM platform runs the rest of the System).

Example
-------
>>> import openmm
>>> from cgsurrogate.simulate.energy import TrueEnergy
>>> from cgsurrogate.surrogate.interfaces.openmm_force import surrogate_system
>>> system = surrogate_system(TrueEnergy(), params=(30, 30, 30, 30, 30))
>>> system.getNumParticles()
624
"""
from __future__ import annotations

import numpy as np
import openmm
import torch
from openmm import unit

from cgsurrogate.core.errors import CGSurrogateError


class TorchEnergyComputation:
    """The function a ``PythonForce`` calls: ``state -> (energy kJ/mol, forces [n, 3] kJ/mol/nm)``.

    Parameters
    ----------
    energy : nn.Module
        ``(positions [1, N, 3] nm, params [1, P]) -> (total [1], per_node [1, N])`` kJ/mol.
    parameter_names : sequence of str
        Names of the global parameters holding the strengths, in the model's order.
    dtype : torch.dtype, optional
        Dtype of the positions given to the model (default float64).
    """

    def __init__(self, energy: torch.nn.Module, parameter_names, dtype=None):
        self.energy = energy.eval()
        self.parameter_names = tuple(parameter_names)
        buffers = list(energy.parameters()) + list(energy.buffers())
        self.device = buffers[0].device if buffers else torch.device("cpu")
        self.dtype = dtype or torch.float64

    def __call__(self, state):
        pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        values = state.getParameters()
        p = [values[name] for name in self.parameter_names]
        x = torch.as_tensor(np.asarray(pos), dtype=self.dtype, device=self.device)[None].requires_grad_(True)
        params = torch.as_tensor(p, dtype=self.dtype, device=self.device)[None]
        with torch.enable_grad():
            total, _ = self.energy(x, params)
            (grad,) = torch.autograd.grad(total.sum(), x)
        forces = -grad[0].detach().cpu().double().numpy()
        return float(total.detach().sum()), forces


def model_spec(energy, where: str):
    """The ``system_spec`` of an energy model, or a :class:`CGSurrogateError` naming ``where``."""
    spec = getattr(energy, "system_spec", None)
    if spec is None:
        raise CGSurrogateError(f"{where}: the model has no system_spec (an EnergyModel or a loaded checkpoint has one)")
    return spec


def surrogate_force(energy: torch.nn.Module, params=None, particles=None, parameter_prefix: str = "",
                    dtype=None, force_group: int = 0) -> openmm.PythonForce:
    """An ``openmm.PythonForce`` evaluating ``energy`` and its autograd forces.

    Parameters
    ----------
    energy : EnergyModel
        ``SurrogateEnergy`` (see :func:`cgsurrogate.surrogate.interfaces.energy_function.load_surrogate`),
        ``cgsurrogate.simulate.energy.TrueEnergy`` or any module with their call signature and a
        ``system_spec``.
    params : sequence of P floats, optional
        Default values of the global parameters ``parameter_prefix + name`` for each name of
        ``system_spec.param_names`` (default: the spec's ``default_params``).
    particles : sequence of int, optional
        The System's particles the model sees, in model order (default: all particles).
    parameter_prefix : str
        Prefix of the global parameter names (to avoid clashes with other forces).
    dtype : torch.dtype, optional
        Dtype of the positions given to the model (default float64).
    force_group : int
        OpenMM force group of the new force.

    Returns
    -------
    openmm.PythonForce

    Raises
    ------
    CGSurrogateError
        Wrong number of parameters, no parameters and no defaults, a model without a spec, or
        ``particles`` of another length than the model's particle count.
    """
    spec = model_spec(energy, "surrogate_force")
    if params is None:
        params = spec.default_params
        if params is None:
            raise CGSurrogateError(f"surrogate_force: give params ({', '.join(spec.param_names)})")
    p = spec.check_params(params, "surrogate_force")
    names = [parameter_prefix + n for n in spec.param_names]
    compute = TorchEnergyComputation(energy, names, dtype=dtype)
    force = openmm.PythonForce(compute, {n: float(v) for n, v in zip(names, p)})
    force.setForceGroup(int(force_group))
    force.setUsesPeriodicBoundaryConditions(False)
    if particles is not None:
        particles = [int(i) for i in particles]
        if len(particles) != spec.num_particles:
            raise CGSurrogateError(f"surrogate_force: {len(particles)} particles given, the model describes "
                                   f"{spec.num_particles}")
        force.setParticles(particles)
    return force


def surrogate_system(energy: torch.nn.Module, params=None, clamp: bool = True, load: bool = False,
                     dtype=None) -> openmm.System:
    """An OpenMM System of the model's particles whose internal energy is ``energy``.

    Parameters
    ----------
    energy : EnergyModel
        The torch energy function (``SurrogateEnergy``, ``TrueEnergy``, ...) with a ``system_spec``.
    params : sequence of P floats, optional
        Strength parameters; global parameters of the force, changeable per Context
        (default: the spec's ``default_params``).
    clamp : bool
        Give the spec's ``clamp_nodes`` mass 0 so integrators and the minimiser hold them fixed.
    load : bool
        Add the protocol's load on the spec's ``load_nodes``: a ``CustomExternalForce``
        ``-load_fraction * (fx x + fy y + fz z)`` (force ``load_fraction * spec.load_force``
        kJ/mol/nm on each load node) in force group 1, with global parameter ``load_fraction``
        (default 1).
    dtype : torch.dtype, optional
        Dtype of the model input.

    Returns
    -------
    openmm.System
        ``N`` particles with the spec's masses (amu), the model in force group 0.
    """
    spec = model_spec(energy, "surrogate_system")
    system = openmm.System()
    clamped = set(spec.clamp_nodes) if clamp else set()
    for i, m in enumerate(spec.masses):
        system.addParticle(0.0 if i in clamped else m)
    system.addForce(surrogate_force(energy, params, dtype=dtype))
    if load:
        terms = [(c, f) for c, f in zip("xyz", spec.load_force) if f != 0.0]
        if not terms or not spec.load_nodes:
            raise CGSurrogateError(f"surrogate_system: load=True, but the system {spec.name!r} has no load")
        ext = openmm.CustomExternalForce("-load_fraction*(" + " + ".join(f"load_f{c}*{c}" for c, _ in terms) + ")")
        ext.addGlobalParameter("load_fraction", 1.0)
        for c, f in terms:
            ext.addGlobalParameter(f"load_f{c}", f)
        for i in spec.load_nodes:
            ext.addParticle(int(i), [])
        ext.setForceGroup(1)
        system.addForce(ext)
    return system
