"""A trained surrogate (or the reference energy) inside an OpenMM Context.

Uses OpenMM's own ``openmm.PythonForce`` (new in OpenMM 8.6): OpenMM calls a Python
function with the current ``State``; the function evaluates the torch energy and its
autograd forces. The five strength parameters are global parameters of the force
(names ``PARAM_NAMES``, optionally prefixed), so ``context.setParameter("LatAssoc", 9.0)``
changes them without rebuilding the System. Units: nm, kJ/mol, kJ/mol/nm; the strength
parameters in zJ as everywhere in this package.

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

from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM, MONOMER_MASS_AMU, PARAM_NAMES, microtubule_topology


class TorchEnergyComputation:
    """The function a ``PythonForce`` calls: ``state -> (energy kJ/mol, forces [n, 3] kJ/mol/nm)``.

    Parameters
    ----------
    energy : nn.Module
        ``(positions [1, N, 3] nm, params [1, 5] zJ) -> (total [1], per_node [1, N])`` kJ/mol.
    parameter_names : sequence of str
        Names of the global parameters holding the five strengths, in ``PARAM_NAMES`` order.
    dtype : torch.dtype, optional
        Dtype of the positions given to the model (default float64).
    """

    def __init__(self, energy: torch.nn.Module, parameter_names, dtype=None):
        self.energy = energy.eval()
        self.parameter_names = tuple(parameter_names)
        buffers = list(energy.buffers()) + list(energy.parameters())
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


def surrogate_force(energy: torch.nn.Module, params=(30.0, 30.0, 30.0, 30.0, 30.0), particles=None,
                    parameter_prefix: str = "", dtype=None, force_group: int = 0) -> openmm.PythonForce:
    """An ``openmm.PythonForce`` evaluating ``energy`` and its autograd forces.

    Parameters
    ----------
    energy : nn.Module
        ``SurrogateEnergy`` (see :func:`cgsurrogate.surrogate.interfaces.energy_function.load_surrogate`),
        ``cgsurrogate.simulate.energy.TrueEnergy`` or any module with their call signature.
    params : sequence of 5 floats
        Default values (zJ) of the global parameters ``parameter_prefix + PARAM_NAMES``.
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
    """
    p = np.asarray(params, dtype=np.float64).reshape(-1)
    if p.shape != (len(PARAM_NAMES),):
        raise ValueError(f"surrogate_force: need {len(PARAM_NAMES)} strength parameters, got {p.size}")
    names = [parameter_prefix + n for n in PARAM_NAMES]
    compute = TorchEnergyComputation(energy, names, dtype=dtype)
    force = openmm.PythonForce(compute, {n: float(v) for n, v in zip(names, p)})
    force.setForceGroup(int(force_group))
    force.setUsesPeriodicBoundaryConditions(False)
    if particles is not None:
        force.setParticles([int(i) for i in particles])
    return force


def surrogate_system(energy: torch.nn.Module, params=(30.0, 30.0, 30.0, 30.0, 30.0), clamp: bool = True,
                     load: bool = False, dtype=None) -> openmm.System:
    """An OpenMM System of the microtubule whose internal energy is ``energy``.

    Parameters
    ----------
    energy : nn.Module
        The torch energy function (``SurrogateEnergy`` or ``TrueEnergy``).
    params : sequence of 5 floats
        Strength parameters (zJ); global parameters of the force, changeable per Context.
    clamp : bool
        Give the first two rings mass 0 so integrators and the minimiser hold them fixed.
    load : bool
        Add the protocol's load on the last two rings: a ``CustomExternalForce``
        ``load_fraction * F * y`` (force ``F = LOAD_FORCE_KJMOL_NM`` kJ/mol/nm per monomer
        along -y) in force group 1, with global parameter ``load_fraction`` (default 1).
    dtype : torch.dtype, optional
        Dtype of the model input.

    Returns
    -------
    openmm.System
        624 particles of 50 ag (in amu), the surrogate in force group 0.
    """
    topo = microtubule_topology()
    system = openmm.System()
    clamped = set(topo.ring_nodes([0, 1]).tolist()) if clamp else set()
    for i in range(topo.num_nodes):
        system.addParticle(0.0 if i in clamped else MONOMER_MASS_AMU)
    system.addForce(surrogate_force(energy, params, dtype=dtype))
    if load:
        ext = openmm.CustomExternalForce("load_fraction*load_force*y")
        ext.addGlobalParameter("load_fraction", 1.0)
        ext.addGlobalParameter("load_force", LOAD_FORCE_KJMOL_NM)
        for i in topo.ring_nodes([-2, -1]):
            ext.addParticle(int(i), [])
        ext.setForceGroup(1)
        system.addForce(ext)
    return system
