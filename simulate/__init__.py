"""Simulation layer: the coarse-grained microtubule in OpenMM and the EGHN benchmark systems.

Public API
----------
Tube, microtubule_topology, tube_topology, TrueEnergy, true_energy, parse_params,
PARAM_NAMES, GRID_VALUES
"""
import importlib

#: public name -> module that defines it; imported on first use, so that importing a submodule (a sweep
#: worker of the numba engine) does not import torch.
_EXPORTS = {
    "TrueEnergy": "cgsurrogate.simulate.energy",
    "true_energy": "cgsurrogate.simulate.energy",
    "GRID_VALUES": "cgsurrogate.simulate.microtubule",
    "PARAM_NAMES": "cgsurrogate.simulate.microtubule",
    "microtubule_topology": "cgsurrogate.simulate.microtubule",
    "parse_params": "cgsurrogate.simulate.microtubule",
    "tube_topology": "cgsurrogate.simulate.microtubule",
    "build_microtubule_system": "cgsurrogate.simulate.openmm_system",
    "microtubule_positions": "cgsurrogate.simulate.openmm_system",
    "Protocol": "cgsurrogate.simulate.protocol",
    "run_sweep": "cgsurrogate.simulate.sweep",
    "Tube": "cgsurrogate.simulate.tube",
}


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = [
    "Tube",
    "microtubule_topology",
    "tube_topology",
    "TrueEnergy",
    "true_energy",
    "parse_params",
    "PARAM_NAMES",
    "GRID_VALUES",
    "Protocol",
    "build_microtubule_system",
    "microtubule_positions",
    "run_sweep",
]
