"""An ASE calculator for an energy model (a trained surrogate or the reference energy).

Follows the conventions of MACE's and TorchANI's calculators: ``implemented_properties``
are ``energy``, ``free_energy`` (equal to ``energy``), ``energies`` (per atom) and
``forces``; eV and Angstrom at the boundary, while the model works in nm and kJ/mol.
It works with ``ase.md`` (VelocityVerlet, Langevin) and ``ase.optimize`` (BFGS, FIRE)
on the ``ase.Atoms`` built by :func:`spec_atoms` (any system) or :func:`microtubule_atoms`.
The strength parameters are a calculator parameter (``calc.set(params=...)``) or read from
``atoms.info``; either way a change recomputes (ASE's own state check ignores ``atoms.info``).

Example
-------
>>> from cgsurrogate.surrogate.interfaces.ase_calculator import SurrogateCalculator, microtubule_atoms
>>> from cgsurrogate.simulate.energy import TrueEnergy
>>> atoms = microtubule_atoms(params=(30, 30, 30, 30, 30))
>>> atoms.calc = SurrogateCalculator(TrueEnergy())
>>> abs(atoms.get_potential_energy()) < 1e-9
True
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.constraints import FixAtoms

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.core.units import KJ_PER_MOL_IN_EV, NM_IN_ANGSTROM, PS_IN_ASE_TIME

#: 1 kJ/mol in eV (``cgsurrogate.core.units.KJ_PER_MOL_IN_EV``).
KJMOL_TO_EV = KJ_PER_MOL_IN_EV
#: 1 nm in Angstrom.
NM_TO_ANGSTROM = NM_IN_ANGSTROM
#: 1 ps in ASE time units.
PS_TO_ASE_TIME = PS_IN_ASE_TIME


def spec_atoms(system_spec, params=None, clamp: bool = True, positions=None, symbol: str = "X") -> Atoms:
    """A system's reference geometry as an ``ase.Atoms`` (from its ``SystemSpec``).

    Parameters
    ----------
    system_spec : SystemSpec
        Supplies the particle count, masses (amu), clamped particles and reference positions.
    params : sequence of P floats, optional
        Strength parameters, stored in ``atoms.info["params"]`` where :class:`SurrogateCalculator`
        finds them (default: the spec's ``default_params``, if any).
    clamp : bool
        Fix the spec's ``clamp_nodes`` with ``ase.constraints.FixAtoms``.
    positions : array [N, 3] nm, optional
        Default: the spec's ``reference_positions``.
    symbol : str
        Chemical symbol of every particle (``"X"``, a dummy element, by default).

    Returns
    -------
    ase.Atoms
        Positions in Angstrom, masses in amu, no cell, no periodicity.
    """
    spec = system_spec
    x = spec.reference_positions_array() if positions is None else np.asarray(positions, dtype=np.float64)
    if x is None or x.shape != (spec.num_particles, 3):
        raise CGSurrogateError(f"spec_atoms: need positions [{spec.num_particles}, 3] nm "
                               f"({spec.name!r} has no reference geometry)" if x is None else
                               f"spec_atoms: positions have shape {x.shape}, expected [{spec.num_particles}, 3]")
    atoms = Atoms(symbols=[symbol] * spec.num_particles, positions=x * NM_TO_ANGSTROM)
    atoms.set_masses(spec.masses_array())
    p = params if params is not None else spec.default_params
    if p is not None:
        atoms.info["params"] = spec.check_params(p, "spec_atoms: params")
    if clamp and spec.clamp_nodes:
        atoms.set_constraint(FixAtoms(indices=list(spec.clamp_nodes)))
    return atoms


def microtubule_atoms(params=(30.0, 30.0, 30.0, 30.0, 30.0), clamp: bool = True, symbol: str = "X") -> Atoms:
    """The resting microtubule (Tube(48,13,3), 624 monomers) as an ``ase.Atoms``
    (:func:`spec_atoms` of ``cgsurrogate.simulate.microtubule.microtubule_spec()``).

    Parameters
    ----------
    params : sequence of 5 floats
        Strength parameters (zJ, order ``PARAM_NAMES``), stored in ``atoms.info["params"]``.
    clamp : bool
        Fix the first two rings (26 monomers) with ``ase.constraints.FixAtoms``, as the
        simulation protocol clamps them.
    symbol : str
        Chemical symbol of every particle.

    Returns
    -------
    ase.Atoms
        Positions in Angstrom, masses 50 ag each (in amu), no cell, no periodicity.
    """
    from cgsurrogate.simulate.microtubule import microtubule_spec

    spec = microtubule_spec()
    return spec_atoms(spec, spec.check_params(params, "microtubule_atoms"), clamp=clamp, symbol=symbol)


class SurrogateCalculator(Calculator):
    """ASE calculator around an energy model (``TrueEnergy``'s signature).

    Parameters
    ----------
    model : str, Path or nn.Module
        A checkpoint path (loaded with :func:`cgsurrogate.surrogate.interfaces.energy_function.load_surrogate`)
        or an energy model ``(positions [B, N, 3] nm, params [B, P]) -> (total [B], per_node [B, N])``
        kJ/mol such as ``SurrogateEnergy`` or ``cgsurrogate.simulate.energy.TrueEnergy``. Its
        ``system_spec`` names the parameters.
    params : sequence of P floats, optional
        Strength parameters: a calculator parameter (``calc.set(params=...)`` recomputes).
        When omitted, the atoms' ``info["params"]`` (or one info key per parameter name) is used,
        and a change there also recomputes.
    device : str, optional
        Torch device: where a checkpoint is loaded, or where a given module is moved.
    dtype : torch.dtype, optional
        Dtype of the positions passed to the model (default float64; a ``SurrogateEnergy``
        normalises in float64 and runs its network in its own dtype).
    use_velocities : bool
        Pass the atoms' velocities (converted to nm/ps) to a model that takes them, and
        recompute when they change. Off by default: the energy of MD is then a function of
        positions only, which keeps ``energy + kinetic`` conserved.

    Notes
    -----
    Results: ``energy`` and ``free_energy`` (eV), ``energies`` (eV per atom, summing to
    ``energy``), ``forces`` (eV/Angstrom).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces"]
    default_parameters = {"params": None}

    def __init__(self, model, params=None, device=None, dtype=None, use_velocities: bool = False, **kwargs):
        from cgsurrogate.surrogate.interfaces.energy_function import check_device, load_surrogate

        dev = check_device(device, "SurrogateCalculator device")
        if isinstance(model, (str, os.PathLike)):
            model = load_surrogate(Path(model), device=dev)
        if not isinstance(model, torch.nn.Module):
            raise CGSurrogateError(f"SurrogateCalculator: model must be a checkpoint path or a torch module, "
                                   f"got {type(model).__name__}")
        if dev is not None:
            model = model.to(dev)
        self.model = model.eval()
        self.spec = getattr(model, "system_spec", None)
        super().__init__(params=params, **kwargs)
        self.dtype = dtype or torch.float64
        self.device = _module_device(model)
        self.use_velocities = use_velocities
        self._used = None  # (params, momenta) the cached results were computed with

    def set(self, **kwargs):
        """Set calculator parameters (``params=[P floats]``); a change clears the cached results."""
        if kwargs.get("params") is not None:
            kwargs["params"] = self._check(kwargs["params"], "params")
        return super().set(**kwargs)

    def _check(self, p, where) -> np.ndarray:
        if self.spec is not None:
            return self.spec.check_params(p, f"SurrogateCalculator: {where}")
        return np.asarray(p, dtype=np.float64).reshape(-1)

    def strengths(self, atoms) -> np.ndarray:
        """The strength parameters in effect for ``atoms`` (``[P]`` float64)."""
        p = self.parameters.get("params")
        if p is not None:
            return np.asarray(p, dtype=np.float64)
        names = self.spec.param_names if self.spec is not None else ()
        if names and all(n in atoms.info for n in names):
            return self._check([atoms.info[n] for n in names], "atoms.info")
        if "params" not in atoms.info:
            raise CGSurrogateError("SurrogateCalculator: no strength parameters; pass params=... "
                                   "or set atoms.info['params']")
        return self._check(atoms.info["params"], "atoms.info['params']")

    def check_state(self, atoms, tol=1e-15):
        """ASE's comparison, plus the strengths (and, with ``use_velocities``, the momenta)."""
        changes = super().check_state(atoms, tol)
        if self._used is not None and "params" not in changes:
            try:
                same = np.array_equal(self.strengths(atoms), self._used[0])
            except CGSurrogateError:
                same = False
            if not same:
                changes.append("params")
            if self.use_velocities and not np.array_equal(atoms.get_momenta(), self._used[1]):
                changes.append("momenta")
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Compute the requested properties for ``atoms`` (ASE calls this)."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        pos_nm = atoms.get_positions() / NM_TO_ANGSTROM
        if not np.all(np.isfinite(pos_nm)):
            raise CGSurrogateError("SurrogateCalculator: the atoms have NaN or infinite coordinates")
        strengths = self.strengths(atoms)
        x = torch.as_tensor(pos_nm, dtype=self.dtype, device=self.device)[None]
        p = torch.as_tensor(strengths, dtype=self.dtype, device=self.device)[None]
        kwargs = {}
        if self.use_velocities:
            v = atoms.get_velocities() / NM_TO_ANGSTROM * PS_TO_ASE_TIME  # nm/ps
            kwargs["velocities"] = torch.as_tensor(v, dtype=self.dtype, device=self.device)[None]
        want_forces = "forces" in properties
        if want_forces:
            from cgsurrogate.surrogate.interfaces.energy_function import energy_and_forces

            total, per_node, f = energy_and_forces(self.model, x, p, **kwargs)
            forces = f[0].detach().cpu().double().numpy()
        else:
            with torch.inference_mode():
                total, per_node = self.model(x, p, **kwargs)
        e_atoms = per_node[0].detach().cpu().double().numpy() * KJMOL_TO_EV
        energy = float(e_atoms.sum())
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energies"] = e_atoms
        if want_forces:
            self.results["forces"] = forces * (KJMOL_TO_EV / NM_TO_ANGSTROM)
        self._used = (strengths.copy(), atoms.get_momenta().copy())

    def reset(self):
        """Forget the cached results (ASE calls this when the state changed)."""
        super().reset()
        self._used = None


def _module_device(model) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")
