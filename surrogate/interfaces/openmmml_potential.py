"""The surrogate as an OpenMM-ML potential: ``MLPotential('cgsurrogate', model=...)``.

Registered through the ``openmmml.potentials`` entry point in ``pyproject.toml`` (name
``cgsurrogate``), so after ``pip install -e .`` OpenMM-ML finds it by name::

    from openmmml import MLPotential
    potential = MLPotential("cgsurrogate", model="model.pt", params=(30, 30, 30, 30, 30))
    system = potential.createSystem(microtubule_openmm_topology())

``model`` is a checkpoint path or a torch module with ``TrueEnergy``'s call signature
(``MLPotential("cgsurrogate", model=TrueEnergy())`` gives the reference force field).
The force is an ``openmm.PythonForce`` (:func:`cgsurrogate.surrogate.interfaces.openmm_force.surrogate_force`);
the strengths are its global parameters. A topology without elements gives
massless particles in OpenMM-ML; ``createSystem`` here gives those particles the
monomer mass (50 ag) except the clamped rings (``clamp=True``, mass 0).
"""
from __future__ import annotations

import functools
import os

import openmm
import openmm.app

from cgsurrogate.simulate.microtubule import MONOMER_MASS_AMU, microtubule_topology


def microtubule_openmm_topology() -> openmm.app.Topology:
    """An ``openmm.app.Topology`` of the 624 monomers (one chain, one residue per monomer).

    Residues are named ``TBA`` (alpha tubulin, even turns) and ``TBB`` (beta); atoms
    have no element. Bonds follow the tube's edges.
    """
    from cgsurrogate.simulate.microtubule import tubulin_kind

    topo = microtubule_topology()
    kinds = tubulin_kind(topo.tube.n, topo.tube.k)
    top = openmm.app.Topology()
    chain = top.addChain("M")
    atoms = []
    for i in range(topo.num_nodes):
        res = top.addResidue("TBA" if kinds[i] == "alpha" else "TBB", chain, id=str(i + 1))
        atoms.append(top.addAtom("CA", None, res, id=str(i + 1)))
    for a, b in topo.bonds:
        top.addBond(atoms[int(a)], atoms[int(b)])
    return top


class SurrogatePotentialImplFactory:
    """Creates the surrogate's ``MLPotentialImpl`` (the ``openmmml.potentials`` entry point).

    OpenMM-ML loads every entry point while ``openmmml.mlpotential`` is being imported, so
    this module must not import OpenMM-ML at its top (importing this module first would then
    hand OpenMM-ML a half-initialised module). The factory is therefore duck-typed (OpenMM-ML
    only calls ``createImpl``) and the implementation class is built on first use.
    """

    def createImpl(self, name: str, **args):
        return surrogate_potential_impl_class()(name, **args)


@functools.cache
def surrogate_potential_impl_class() -> type:
    """The ``openmmml.mlpotential.MLPotentialImpl`` subclass of the surrogate (built once)."""
    from openmmml.mlpotential import MLPotentialImpl

    return type("SurrogatePotentialImpl", (_SurrogatePotentialImplMixin, MLPotentialImpl), {})


class _SurrogatePotentialImplMixin:
    """OpenMM-ML implementation of the surrogate potential.

    Parameters
    ----------
    name : str
        The registered name (``cgsurrogate``).
    model : str, Path or nn.Module
        Checkpoint path (loaded with ``load_surrogate``) or a torch energy module.
    params : sequence of 5 floats
        Default strength parameters (zJ); global parameters of the force.
    """

    def __init__(self, name: str, model=None, params=(30.0, 30.0, 30.0, 30.0, 30.0), **_):
        if model is None:
            raise ValueError("MLPotential('cgsurrogate'): pass model=<checkpoint path or torch module>")
        if isinstance(model, (str, os.PathLike)):
            from cgsurrogate.surrogate.interfaces.energy_function import load_surrogate

            model = load_surrogate(model)
        self.name = name
        self.model = model
        self.params = tuple(float(v) for v in params)

    def addForces(self, topology, system, atoms, forceGroup, clamp: bool = True, **args):
        """Add the surrogate's ``PythonForce`` to ``system`` (called by ``MLPotential.createSystem``).

        Parameters
        ----------
        topology : openmm.app.Topology
        system : openmm.System
        atoms : iterable of int or None
            The particles the model sees (default all), in model order.
        forceGroup : int
        clamp : bool
            Keep the first two rings' mass 0 (fixed); other element-less particles get
            the monomer mass.
        params : sequence of 5 floats, optional
            Overrides the strengths given to ``MLPotential``.
        """
        from cgsurrogate.surrogate.interfaces.openmm_force import surrogate_force

        idx = list(range(topology.getNumAtoms())) if atoms is None else [int(i) for i in atoms]
        n_model = getattr(self.model, "num_nodes", None)
        if n_model is not None and len(idx) != n_model:
            raise ValueError(
                f"MLPotential('cgsurrogate'): the topology has {len(idx)} particles, the model expects {n_model}"
            )
        clamped = set()
        if clamp:
            clamped = {idx[int(i)] for i in microtubule_topology().ring_nodes([0, 1]) if int(i) < len(idx)}
        for i in idx:
            if system.getParticleMass(i).value_in_unit(openmm.unit.dalton) == 0.0 and i not in clamped:
                system.setParticleMass(i, MONOMER_MASS_AMU)
        params = args.get("params", self.params)
        force = surrogate_force(self.model, params, particles=None if atoms is None else idx, force_group=forceGroup)
        system.addForce(force)
