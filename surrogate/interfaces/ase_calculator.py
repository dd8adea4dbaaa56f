"""An ASE calculator for a trained surrogate (or the reference energy) of the microtubule.

Follows the conventions of MACE's and TorchANI's calculators: ``implemented_properties``
are ``energy``, ``free_energy`` (equal to ``energy``), ``energies`` (per atom) and
``forces``; eV and Angstrom at the boundary, while the model works in nm and kJ/mol.
It works with ``ase.md`` (VelocityVerlet, Langevin) and ``ase.optimize`` (BFGS, FIRE)
on the ``ase.Atoms`` built by :func:`microtubule_atoms`.

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
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.constraints import FixAtoms

#: 1 kJ/mol in eV.
KJMOL_TO_EV = units.kJ / units.mol
#: 1 nm in Angstrom.
NM_TO_ANGSTROM = 10.0
#: 1 ps in ASE time units.
PS_TO_ASE_TIME = 1000.0 * units.fs


def microtubule_atoms(params=(30.0, 30.0, 30.0, 30.0, 30.0), clamp: bool = True, symbol: str = "X") -> Atoms:
    """The resting microtubule (Tube(48,13,3), 624 monomers) as an ``ase.Atoms``.

    Parameters
    ----------
    params : sequence of 5 floats
        Strength parameters (zJ, order ``cgsurrogate.simulate.microtubule.PARAM_NAMES``), stored in
        ``atoms.info["params"]`` where :class:`SurrogateCalculator` finds them.
    clamp : bool
        Fix the first two rings (26 monomers) with ``ase.constraints.FixAtoms``, as the
        simulation protocol clamps them.
    symbol : str
        Chemical symbol of every particle (``"X"``, a dummy element, by default).

    Returns
    -------
    ase.Atoms
        Positions in Angstrom, masses 50 ag each (in amu), no cell, no periodicity.
    """
    from cgsurrogate.simulate.microtubule import MONOMER_MASS_AMU, PARAM_NAMES, microtubule_topology

    topo = microtubule_topology()
    p = np.asarray(params, dtype=np.float64).reshape(-1)
    if p.shape != (len(PARAM_NAMES),):
        raise ValueError(f"microtubule_atoms: need {len(PARAM_NAMES)} strength parameters, got {p.size}")
    atoms = Atoms(symbols=[symbol] * topo.num_nodes, positions=topo.positions * NM_TO_ANGSTROM)
    atoms.set_masses(np.full(topo.num_nodes, MONOMER_MASS_AMU))
    atoms.info["params"] = p
    if clamp:
        atoms.set_constraint(FixAtoms(indices=topo.ring_nodes([0, 1])))
    return atoms


class SurrogateCalculator(Calculator):
    """ASE calculator around a torch energy function with ``TrueEnergy``'s signature.

    Parameters
    ----------
    model : str, Path or nn.Module
        A checkpoint path (loaded with :func:`cgsurrogate.surrogate.interfaces.energy_function.load_surrogate`),
        a ``SurrogateEnergy``, or any module ``(positions [B, N, 3] nm, params [B, 5] zJ)
        -> (total [B], per_node [B, N]) kJ/mol`` such as ``cgsurrogate.simulate.energy.TrueEnergy``.
    params : sequence of 5 floats, optional
        Strength parameters (zJ). When omitted, ``atoms.info["params"]`` is used.
    device : str, optional
        Torch device for a checkpoint path (default CPU).
    dtype : torch.dtype, optional
        Dtype of the positions passed to the model (default float64; a
        ``SurrogateEnergy`` normalises in float64 and runs its network in its own dtype).
    use_velocities : bool
        Pass the atoms' velocities (converted to nm/ps) to a model that takes them.
        Off by default: the energy of MD is then a function of positions only, which
        keeps ``energy + kinetic`` conserved.

    Notes
    -----
    Results: ``energy`` and ``free_energy`` (eV), ``energies`` (eV per atom, summing to
    ``energy``), ``forces`` (eV/Angstrom).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces"]

    def __init__(self, model, params=None, device=None, dtype=None, use_velocities: bool = False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, (str, os.PathLike)):
            from cgsurrogate.surrogate.interfaces.energy_function import load_surrogate

            model = load_surrogate(Path(model), device=device)
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"SurrogateCalculator: model must be a checkpoint path or a torch module, got {type(model).__name__}")
        self.model = model.eval()
        self.params = None if params is None else np.asarray(params, dtype=np.float64).reshape(-1)
        self.dtype = dtype or torch.float64
        self.device = _module_device(model)
        self.use_velocities = use_velocities
        self._params_cache = (None, None)

    def _params_tensor(self, atoms) -> torch.Tensor:
        p = self.params
        if p is None:
            if "params" not in atoms.info:
                raise ValueError(
                    "SurrogateCalculator: no strength parameters; pass params=... or set atoms.info['params']"
                )
            p = np.asarray(atoms.info["params"], dtype=np.float64).reshape(-1)
        key, cached = self._params_cache
        if key is not None and key.shape == p.shape and np.array_equal(key, p):
            return cached
        t = torch.as_tensor(p, dtype=self.dtype, device=self.device)[None]
        self._params_cache = (p.copy(), t)
        return t

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Compute the requested properties for ``atoms`` (ASE calls this)."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        pos_nm = atoms.get_positions() / NM_TO_ANGSTROM
        if not np.all(np.isfinite(pos_nm)):
            raise ValueError("SurrogateCalculator: the atoms have NaN or infinite coordinates")
        x = torch.as_tensor(pos_nm, dtype=self.dtype, device=self.device)[None]
        p = self._params_tensor(atoms)
        kwargs = {}
        if self.use_velocities:
            v = atoms.get_velocities() / NM_TO_ANGSTROM * PS_TO_ASE_TIME  # nm/ps
            kwargs["velocities"] = torch.as_tensor(v, dtype=self.dtype, device=self.device)[None]
        want_forces = "forces" in properties
        if want_forces:
            x.requires_grad_(True)
            total, per_node = self.model(x, p, **kwargs)
            (grad,) = torch.autograd.grad(total.sum(), x)
            forces = -grad[0].detach().cpu().double().numpy()
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


def _module_device(model) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")
