"""The microtubule bending case behind ``cli.py relax``: load a surrogate trained on the
microtubule (or take the true energy), relax under the protocol's clamps and load, compare with
OpenMM's minimiser and write the outputs (:mod:`cgsurrogate.optimize.report`)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.optimize.report import write_relax_outputs


def load_model_for_relax(path):
    """Load a surrogate checkpoint (float64) and check it was trained on the microtubule.

    Parameters
    ----------
    path : str or Path of a checkpoint written by ``cgsurrogate.surrogate.checkpoint.save_checkpoint``

    Returns
    -------
    cgsurrogate.surrogate.interfaces.energy_function.SurrogateEnergy

    Raises
    ------
    CGSurrogateError
        Missing or unreadable file, or a model whose graph is not the 624-node
        microtubule ``Tube(48,13,3)``, with a one-line message naming the file.
    """
    import torch

    from cgsurrogate.simulate.microtubule import microtubule_topology
    from cgsurrogate.surrogate.interfaces.energy_function import load_surrogate

    path = Path(path)
    energy = load_surrogate(path, dtype=torch.float64)
    n = microtubule_topology().num_nodes
    if energy.num_nodes != n or energy.num_params != 5:
        raise CGSurrogateError(
            f"{path}: the model was trained on a graph of {energy.num_nodes} nodes with {energy.num_params} "
            f"parameters; relaxation needs the microtubule Tube(48,13,3) with {n} nodes and 5 parameters"
        )
    return energy


def run_relax(out_dir, params, *, model=None, load: float = 1.0, schedule="default", optimizer: str = "lbfgs",
              coarse_space=None, prolongation_kind=None, tol=None, max_evals=None, perturb: float = 0.0,
              seed: int = 0, openmm_reference: bool = True, hierarchy_cache=None, progress: bool = True) -> dict:
    """Relax the microtubule (under the surrogate, or the true energy) and write the outputs.

    Parameters
    ----------
    out_dir : folder for ``relaxed.xyz``, ``stages.txt``, ``relax.json``, ``relaxed.png``
    params : array [5] zJ
    model : path of a surrogate checkpoint, optional
        None relaxes the true energy function (``cgsurrogate.simulate.energy.TrueEnergy``), so the
        optimiser can be judged on its own.
    load : float
        Load as a multiple of the protocol's full load (9e-14 N = 0.0542 kJ/mol/nm per
        monomer of the last two turns, along -y); 0 for none.
    schedule, optimizer, coarse_space, prolongation_kind, tol, max_evals :
        see :func:`cgsurrogate.optimize.relax` (None: its defaults)
    perturb : float
        Standard deviation (nm) of a Gaussian perturbation of the free nodes' start.
    seed : int
        Seed of that perturbation.
    openmm_reference : bool
        Also minimise the true force field with OpenMM (PNG panel, RMSD, energies).
    hierarchy_cache : folder for the hierarchy cache (default: the hierarchy module's)
    progress : bool

    Returns
    -------
    dict with ``result`` (RelaxResult), ``paths``, ``reference`` (dict or None),
    ``true`` (true-energy terms of the relaxed structure), ``rmsd_nm``.
    """
    from cgsurrogate.optimize.driver import relax
    from cgsurrogate.optimize.objective import default_boundary
    from cgsurrogate.optimize.references import openmm_minimize, rmsd, true_objective
    from cgsurrogate.simulate.energy import TrueEnergy
    from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM, microtubule_topology
    from cgsurrogate.optimize.schedule import parse_schedule
    from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy

    params = np.asarray(params, dtype=np.float64).reshape(-1)
    if not math.isfinite(load):
        raise CGSurrogateError(f"load {load} is not finite")
    if not (math.isfinite(perturb) and perturb >= 0):
        raise CGSurrogateError(f"start perturbation {perturb} nm: must be finite and non-negative")
    topo = microtubule_topology()
    if model is None:
        energy, label = TrueEnergy(topo), "true energy"
    else:
        energy, label = load_model_for_relax(model), f"surrogate {Path(model).name}"
    clamp, loaded = default_boundary(topo)
    x0 = topo.positions.copy()
    if perturb > 0:
        rng = np.random.default_rng(seed)
        free = np.ones(len(x0), bool)
        free[clamp] = False
        x0[free] += perturb * rng.standard_normal((int(free.sum()), 3))
    force = float(load) * LOAD_FORCE_KJMOL_NM
    stages = parse_schedule(schedule)
    hierarchy = microtubule_hierarchy(cache_dir=hierarchy_cache) if any(s.level > 0 for s in stages) else None
    kw = {}
    for name, val in (("coarse_space", coarse_space), ("prolongation_kind", prolongation_kind), ("tol", tol),
                      ("max_evals", max_evals)):
        if val is not None:
            kw[name] = val
    result = relax(energy, params, x0, hierarchy=hierarchy, schedule=stages, optimizer=optimizer,
                   clamp_nodes=clamp, load_nodes=loaded, load_force=force, reference=topo.positions,
                   progress=progress, **kw)
    true_parts = true_objective(params, result.positions, load_force=force) if model is not None else None
    reference = openmm_minimize(params, x0, load_force=force) if openmm_reference else None
    paths = write_relax_outputs(out_dir, result, params=params, load_force=force, energy_label=label,
                                reference=reference, true_parts=true_parts, rest_positions=topo.positions,
                                extra={"load_multiple_of_protocol": float(load), "start_perturbation_nm": perturb,
                                       "seed": seed, "model": None if model is None else str(model)})
    return {
        "result": result,
        "paths": paths,
        "reference": reference,
        "true": true_parts,
        "rmsd_nm": None if reference is None else rmsd(result.positions, reference["positions"]),
    }
