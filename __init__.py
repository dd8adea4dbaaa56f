"""cgsurrogate: differentiable coarse-grained MD surrogates, prolongation hierarchies and
coarse-to-fine relaxation.

The distribution installs this one package; its subpackages are
``cgsurrogate.simulate`` (OpenMM systems and sweeps), ``cgsurrogate.data`` (datasets and
loaders), ``cgsurrogate.surrogate`` (graphs, models, training, interfaces) and
``cgsurrogate.optimize`` (relaxation). The names below are the public entry points; they are
imported on first use so that ``import cgsurrogate`` (and ``cgsurrogate --help``) stays fast.
"""
from __future__ import annotations

from cgsurrogate.core.lazy_exports import lazy_exports

__version__ = "0.2.0"

#: public name -> module that defines it
_EXPORTS = {
    "TrueEnergy": "cgsurrogate.simulate.energy",
    "run_sweep": "cgsurrogate.simulate.sweep",
    "load_microtubule_splits": "cgsurrogate.data.microtubule",
    "MicrotubuleDataset": "cgsurrogate.data.microtubule",
    "load_surrogate": "cgsurrogate.surrogate.interfaces.energy_function",
    "SurrogateCalculator": "cgsurrogate.surrogate.interfaces.ase_calculator",
    "surrogate_system": "cgsurrogate.surrogate.interfaces.openmm_force",
    "predict": "cgsurrogate.surrogate.interfaces.prediction",
    "relax": "cgsurrogate.optimize.driver",
    "EnergyModel": "cgsurrogate.core.energy_model",
    "validate_energy_model": "cgsurrogate.core.energy_model_check",
    "SystemSpec": "cgsurrogate.core.system_spec",
    "CGSurrogateError": "cgsurrogate.core.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
