"""Simulation layer: the coarse-grained microtubule in OpenMM and the EGHN benchmark systems.

Public API
----------
Tube, microtubule_topology, tube_topology, TrueEnergy, true_energy, parse_params,
PARAM_NAMES, GRID_VALUES
"""
from cgsurrogate.core.lazy_exports import lazy_exports

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


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

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
