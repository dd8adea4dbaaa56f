"""References for the coarse-to-fine relaxation.

* Fine-only: :func:`cgsurrogate.optimize.relax` with ``schedule="fine"`` (the same optimiser on
  the fine coordinates only); :func:`fine_only` is that call.
* ASE's FIRE through an ASE calculator (:func:`ase_fire`): the energy function wrapped by
  ``cgsurrogate.surrogate.interfaces.ase_calculator.SurrogateCalculator``, the constant load added by a small
  calculator around it, the clamps as ``ase.constraints.FixAtoms``.
* Ground truth (:func:`openmm_minimize`): ``openmm.LocalEnergyMinimizer`` on the true
  force field of the simulation layer (``cgsurrogate.simulate.openmm_system.build_microtubule_system``,
  harmonic bonds and angles, the load as a ``CustomExternalForce``), with the same
  clamps (mass 0, which the minimiser keeps fixed), load and strength parameters.

Units: nm, kJ/mol, kJ/mol/nm throughout (ASE's eV and Angstrom only inside
:func:`ase_fire`). Every energy reported here is ``E_internal - sum F . (x - x_rest)``,
the objective of :mod:`cgsurrogate.optimize.objective`.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.optimize.driver import relax
from cgsurrogate.optimize.objective import LoadedEnergy, default_boundary
from cgsurrogate.optimize.results import RelaxResult


def fine_only(energy_fn, params, x0=None, **kwargs) -> RelaxResult:
    """The same optimiser on the fine coordinates only (``relax(..., schedule="fine")``).

    Parameters
    ----------
    energy_fn, params, x0 : see :func:`cgsurrogate.optimize.relax`
    **kwargs : passed on (``tol``, ``load_force``, ``optimizer``, ``max_evals``, ...)

    Returns
    -------
    RelaxResult
    """
    kwargs = dict(kwargs)
    kwargs.pop("schedule", None)
    kwargs.pop("hierarchy", None)
    return relax(energy_fn, params, x0, schedule="fine", **kwargs)


def _boundary(topology, clamp_nodes, load_nodes):
    dc, dl = default_boundary(topology)
    clamp = dc if clamp_nodes is None else np.asarray(clamp_nodes, dtype=np.int64)
    load = dl if load_nodes is None else np.asarray(load_nodes, dtype=np.int64)
    return clamp, load


def true_objective(params, positions, *, load_force: float = 0.0, clamp_nodes=None, load_nodes=None,
                   topology=None) -> dict:
    """Terms of the true objective at a structure (no evaluation counted).

    Parameters
    ----------
    params : array [5] zJ
    positions : array [N, 3] nm
    load_force : float, kJ/mol/nm per loaded node (along -y)
    clamp_nodes, load_nodes : int arrays, optional (default: the protocol's rings)
    topology : Topology, optional (default the microtubule)

    Returns
    -------
    dict with ``energy``, ``internal``, ``load`` (kJ/mol), ``per_node`` ([N] kJ/mol) and
    ``fmax`` (kJ/mol/nm, largest per-node gradient norm on free nodes).
    """
    from cgsurrogate.simulate.energy import TrueEnergy

    f = TrueEnergy(topology)
    clamp, load = _boundary(f.topology, clamp_nodes, load_nodes)
    obj = LoadedEnergy(f, params, torch.as_tensor(f.topology.positions), clamp, load, load_force)
    return obj.parts(torch.as_tensor(np.asarray(positions, dtype=np.float64)))


def openmm_minimize(params, x0=None, *, load_force: float = 0.0, clamp_nodes=None, load_nodes=None,
                    tolerance: float = 1e-6, max_iterations: int = 0, platform: str | None = "Reference",
                    topology=None) -> dict:
    """Minimise the true force field with ``openmm.LocalEnergyMinimizer``.

    Parameters
    ----------
    params : array [5]
        Strength parameters (zJ/nm^2, zJ/rad^2).
    x0 : array [N, 3] nm, optional
        Start (default the resting geometry).
    load_force : float
        Constant force on each loaded node along -y (kJ/mol/nm).
    clamp_nodes, load_nodes : int arrays, optional
        Default: the first two and the last two turns.
    tolerance : float
        OpenMM's stopping rule: root-mean-square force component (kJ/mol/nm).
    max_iterations : int
        0 = until converged.
    platform : str or None
        OpenMM platform ("Reference" is double precision; None picks the fastest).
    topology : Topology, optional

    Returns
    -------
    dict with ``positions`` ([N, 3] nm), ``energy``, ``internal``, ``load`` (kJ/mol, the
    objective of :mod:`cgsurrogate.optimize.objective`, evaluated by the torch twin of the force field),
    ``openmm_internal`` (kJ/mol, OpenMM's own bond + angle energy), ``fmax`` (kJ/mol/nm),
    ``per_node`` ([N] kJ/mol), ``time_s``, ``platform``.
    """
    import openmm
    from openmm import unit

    from cgsurrogate.simulate.microtubule import microtubule_topology
    from cgsurrogate.simulate.openmm_system import build_microtubule_system, get_platform

    topo = topology or microtubule_topology()
    clamp, load = _boundary(topo, clamp_nodes, load_nodes)
    x = np.asarray(topo.positions if x0 is None else x0, dtype=np.float64)
    if x.shape != (topo.num_nodes, 3):
        raise CGSurrogateError(f"start positions have shape {x.shape}, expected ({topo.num_nodes}, 3)")
    system, info = build_microtubule_system(np.asarray(params, dtype=np.float64)[None], topology=topo,
                                            clamp_nodes=clamp, load_nodes=load, load_force=load_force)
    plat = get_platform(platform)
    integ = openmm.VerletIntegrator(0.001)
    ctx = openmm.Context(system, integ, plat)
    ctx.setParameter(info.load_scale_param, 1.0)
    ctx.setPositions(x * unit.nanometer)
    t0 = time.perf_counter()
    openmm.LocalEnergyMinimizer.minimize(ctx, tolerance, max_iterations)
    dt = time.perf_counter() - t0
    state = ctx.getState(getPositions=True, getEnergy=True, groups=set(info.internal_groups))
    pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    e_mm = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    del ctx, integ
    parts = true_objective(params, pos, load_force=load_force, clamp_nodes=clamp, load_nodes=load,
                           topology=topo)
    return {
        "positions": np.asarray(pos, dtype=np.float64),
        "energy": parts["energy"],
        "internal": parts["internal"],
        "load": parts["load"],
        "openmm_internal": float(e_mm),
        "per_node": parts["per_node"],
        "fmax": parts["fmax"],
        "time_s": dt,
        "platform": plat.getName(),
    }


class _LoadedCalculator:
    """ASE calculator adding a constant load to an inner calculator; counts evaluations."""

    def __new__(cls, inner, force_ev_a, reference_a):
        from ase.calculators.calculator import Calculator, all_changes

        class LoadedCalculator(Calculator):
            implemented_properties = ["energy", "free_energy", "forces"]

            def __init__(self):
                super().__init__()
                self.inner = inner
                self.force = force_ev_a
                self.reference = reference_a
                self.evals = 0

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                self.inner.calculate(self.atoms, ["energy", "forces"], all_changes)
                self.evals += 1
                x = self.atoms.get_positions()
                e = self.inner.results["energy"] - float((self.force * (x - self.reference)).sum())
                self.results["energy"] = e
                self.results["free_energy"] = e
                self.results["forces"] = self.inner.results["forces"] + self.force

        return LoadedCalculator()


def ase_fire(energy_fn, params, x0=None, *, load_force: float = 0.0, clamp_nodes=None, load_nodes=None,
             tol: float = 1e-4, max_steps: int = 20000, dt: float = 2.0, dt_max: float = 8.0,
             max_step_nm: float = 0.1) -> dict:
    """Relax with ASE's FIRE through ``cgsurrogate.surrogate.interfaces.ase_calculator.SurrogateCalculator``.

    Parameters
    ----------
    energy_fn : torch module with ``TrueEnergy``'s signature (``TrueEnergy`` or ``SurrogateEnergy``)
    params : array [5] zJ
    x0 : array [N, 3] nm, optional (default the resting geometry of ``energy_fn.topology``
        or the microtubule)
    load_force : float, kJ/mol/nm per loaded node along -y
    clamp_nodes, load_nodes : int arrays, optional (default the protocol's rings)
    tol : float
        Stop when the largest per-atom force is below this (kJ/mol/nm; ASE's ``fmax``).
    max_steps : int
    dt, dt_max : float
        FIRE's initial and largest time step (ASE units; ASE's defaults 0.1 / 1.0 are
        far too small for forces of 1e-4 eV/Angstrom and stiffnesses of 1e-2 eV/A^2).
    max_step_nm : float
        FIRE's ``maxstep`` (largest move of an atom per step), nm.

    Returns
    -------
    dict with ``positions`` ([N, 3] nm), ``energy``, ``internal``, ``load`` (kJ/mol),
    ``fmax`` (kJ/mol/nm), ``evals`` (energy+force evaluations), ``steps``,
    ``converged``, ``time_s``.
    """
    from ase import Atoms
    from ase.constraints import FixAtoms
    from ase.optimize import FIRE

    from cgsurrogate.simulate.microtubule import microtubule_topology
    from cgsurrogate.surrogate.interfaces.ase_calculator import KJMOL_TO_EV, NM_TO_ANGSTROM, SurrogateCalculator

    topo = getattr(energy_fn, "topology", None) or microtubule_topology()
    clamp, load = _boundary(topo, clamp_nodes, load_nodes)
    x = np.asarray(topo.positions if x0 is None else x0, dtype=np.float64)
    params = np.asarray(params, dtype=np.float64)
    atoms = Atoms(symbols=["X"] * len(x), positions=x * NM_TO_ANGSTROM)
    atoms.set_constraint(FixAtoms(indices=clamp))
    inner = SurrogateCalculator(energy_fn, params=params, dtype=torch.float64)
    force = np.zeros((len(x), 3))
    force[load, 1] = -load_force * KJMOL_TO_EV / NM_TO_ANGSTROM
    calc = _LoadedCalculator(inner, force, topo.positions * NM_TO_ANGSTROM)
    atoms.calc = calc
    fmax_ev = tol * KJMOL_TO_EV / NM_TO_ANGSTROM
    opt = FIRE(atoms, dt=dt, dtmax=dt_max, maxstep=max_step_nm * NM_TO_ANGSTROM, logfile=None)
    t0 = time.perf_counter()
    converged = bool(opt.run(fmax=fmax_ev, steps=max_steps))
    elapsed = time.perf_counter() - t0
    pos = atoms.get_positions() / NM_TO_ANGSTROM
    obj = LoadedEnergy(energy_fn, params, torch.as_tensor(topo.positions), clamp, load, load_force)
    parts = obj.parts(torch.as_tensor(pos))
    return {
        "positions": pos,
        "energy": parts["energy"],
        "internal": parts["internal"],
        "load": parts["load"],
        "fmax": parts["fmax"],
        "evals": calc.evals,
        "steps": int(opt.nsteps),
        "converged": converged,
        "time_s": elapsed,
    }


def rmsd(a, b) -> float:
    """Root-mean-square distance (nm) between two structures ``[N, 3]``, no superposition.

    The clamped rings fix the frame, so structures are compared as they are.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise CGSurrogateError(f"structures have shapes {a.shape} and {b.shape}")
    return float(np.sqrt(((a - b) ** 2).sum(1).mean()))
