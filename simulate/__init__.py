"""Simulation layer: the coarse-grained microtubule in OpenMM and the EGHN benchmark systems.

Public API
----------
Tube, microtubule_topology, tube_topology, TrueEnergy, true_energy, parse_params,
PARAM_NAMES, GRID_VALUES
"""
from cgsurrogate.simulate.energy import TrueEnergy, true_energy
from cgsurrogate.simulate.microtubule import (
    GRID_VALUES,
    PARAM_NAMES,
    microtubule_topology,
    parse_params,
    tube_topology,
)
from cgsurrogate.simulate.openmm_system import build_microtubule_system, microtubule_positions
from cgsurrogate.simulate.protocol import Protocol
from cgsurrogate.simulate.sweep import run_sweep
from cgsurrogate.simulate.tube import Tube

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
