"""A trained model as something to use: a torch energy function, an ASE calculator, an OpenMM
force and OpenMM-ML potential, and prediction on trajectory files. Every wrapper takes an
:class:`cgsurrogate.core.energy_model.EnergyModel` and reads its ``system_spec``.

The public names below are imported on first use (ASE, OpenMM and MDAnalysis are heavy)."""
from __future__ import annotations

import importlib

_EXPORTS = {
    "SurrogateEnergy": "energy_function",
    "load_surrogate": "energy_function",
    "energy_and_forces": "energy_function",
    "SurrogateCalculator": "ase_calculator",
    "spec_atoms": "ase_calculator",
    "microtubule_atoms": "ase_calculator",
    "surrogate_force": "openmm_force",
    "surrogate_system": "openmm_force",
    "export_openmm_system": "surrogate_openmm_native",
    "spec_openmm_topology": "openmmml_potential",
    "microtubule_openmm_topology": "openmmml_potential",
    "predict": "prediction",
    "write_predictions": "prediction",
    "read_configurations": "prediction",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
