"""The protocol's integrator: OpenMM's Langevin "middle" scheme with the load ramped every step.

One ``openmm.CustomIntegrator`` step is, in order (the scheme of
``openmm.LangevinMiddleIntegrator``, Zhang et al. 2019)::

    v <- v + dt f(x) / m            kick with the force at the current positions
    x <- x + dt/2 v                 half drift
    v <- a v + sqrt(1 - a^2) sqrt(kT/m) xi      friction and noise, a = exp(-gamma dt)
    x <- x + dt/2 v                 half drift
    s <- s + 1;  load_scale <- min(s / ramp_steps, 1)

so the force evaluated at the positions after step ``s`` carries the load
``fmax * min(s / ramp_steps, 1)``: the linear ramp of the paper, updated every step (LAMMPS
evaluates ``fix addforce`` with a step-dependent variable the same way). Particles of mass
0 (the clamp) are never moved by a ``CustomIntegrator``.

Two ways to run it, same scheme and same load at every step (:func:`protocol_integrator`):
``"custom"`` (the ``CustomIntegrator`` above; the ramp never leaves the device, for GPUs) and
``"host"`` (OpenMM's compiled ``LangevinMiddleIntegrator``, the load scale set from Python before
each ramp step, one call for the whole hold; about 1.6x faster on the CPU platform, measured).

The friction and noise factors are global constants computed once (``a`` and
``sqrt((1 - a^2) kT)``), so a step costs three per-particle updates beyond the force.

Units: ps, 1/ps, K, kJ/mol.
"""
from __future__ import annotations

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError

#: Global variable counting the steps taken since the protocol started.
STEP_VARIABLE = "protocol_step"


def ramp_integrator(timestep_ps: float, temperature: float, friction, ramp_steps: int,
                    load_scale_param: str, seed: int = 1):
    """A Langevin-middle ``CustomIntegrator`` that sets the load scale every step.

    Parameters
    ----------
    timestep_ps : float
        Step (ps).
    temperature : float
        Bath temperature (K).
    friction : float
        Collision rate (1/ps).
    ramp_steps : int
        Steps of the linear ramp (0: full load from the first step).
    load_scale_param : str
        Name of the global parameter of the load force to drive (0..1).
    seed : int
        Random seed (0 is replaced by 1; OpenMM treats 0 as "random").

    Returns
    -------
    openmm.CustomIntegrator
        Set the Context's ``load_scale_param`` to ``load_scale_at(0)`` before the first step.
    """
    import openmm
    from openmm import unit

    kt = (unit.MOLAR_GAS_CONSTANT_R * temperature * unit.kelvin).value_in_unit(unit.kilojoule_per_mole)
    gamma = float(friction)
    if not (np.isfinite(gamma) and gamma >= 0):
        raise CGSurrogateError(f"friction {friction!r}: must be finite and non-negative")
    integ = openmm.CustomIntegrator(float(timestep_ps))
    a = float(np.exp(-gamma * timestep_ps))
    integ.addGlobalVariable("a", a)
    integ.addGlobalVariable("b", float(np.sqrt(max(0.0, 1.0 - a * a) * kt)))
    integ.addGlobalVariable(STEP_VARIABLE, 0.0)
    integ.addGlobalVariable("ramp", float(ramp_steps))
    integ.addUpdateContextState()
    integ.addComputePerDof("v", "v + dt*f/m")
    integ.addComputePerDof("x", "x + 0.5*dt*v")
    integ.addComputePerDof("v", "a*v + b*sqrt(1/m)*gaussian")
    integ.addComputePerDof("x", "x + 0.5*dt*v")
    integ.addComputeGlobal(STEP_VARIABLE, f"{STEP_VARIABLE} + 1")
    scale = f"min({STEP_VARIABLE}/ramp, 1)" if ramp_steps > 0 else "1"
    integ.addComputeGlobal(load_scale_param, scale)
    integ.setRandomNumberSeed(int(seed) if seed else 1)
    return integ


def load_scale_at(step: int, ramp_steps: int) -> float:
    """Ramp fraction of the load carried by the force at the positions after ``step`` steps: ``min(step / ramp, 1)``."""
    if ramp_steps <= 0:
        return 1.0
    return min(float(step) / float(ramp_steps), 1.0)


INTEGRATORS = ("custom", "host")


def protocol_integrator(protocol, load_scale_param: str, seed: int = 1, kind: str = "custom"):
    """The protocol's integrator: ``"custom"`` (:func:`ramp_integrator`) or ``"host"`` (OpenMM's
    ``LangevinMiddleIntegrator``; step it with :func:`advance`, which sets the ramp every step)."""
    import openmm
    from openmm import unit

    if kind == "custom":
        return ramp_integrator(protocol.timestep_ps, protocol.temperature, protocol.friction, protocol.ramp_steps,
                               load_scale_param, seed)
    if kind != "host":
        raise CGSurrogateError(f"integrator {kind!r}: expected one of {INTEGRATORS}")
    integ = openmm.LangevinMiddleIntegrator(protocol.temperature * unit.kelvin, protocol.friction / unit.picosecond,
                                            protocol.timestep_ps * unit.picosecond)
    integ.setRandomNumberSeed(int(seed) if seed else 1)
    return integ


def advance(context, integrator, protocol, load_scale_param: str, start: int, stop: int) -> None:
    """Take the protocol's steps ``start .. stop - 1``; the force at the positions after step ``s``
    carries ``load_scale(s)`` (a ``CustomIntegrator`` sets it itself; otherwise it is set here
    before every ramp step, and once for the hold)."""
    import openmm

    if isinstance(integrator, openmm.CustomIntegrator):
        integrator.step(stop - start)
        return
    s = start
    while s < stop:
        context.setParameter(load_scale_param, protocol.load_scale(s))
        n = 1 if s < protocol.ramp_steps else stop - s
        integrator.step(n)
        s += n
