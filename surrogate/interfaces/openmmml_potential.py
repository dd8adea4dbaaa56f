"""The surrogate as an OpenMM-ML potential: ``MLPotential('cgsurrogate', model=...)``.

Registered through the ``openmmml.potentials`` entry point in ``pyproject.toml`` (name
``cgsurrogate``), so after ``pip install -e .`` OpenMM-ML finds it by name::

    from openmmml import MLPotential
    potential = MLPotential("cgsurrogate", model="model.pt", params=(30, 30, 30, 30, 30))
    system = potential.createSystem(microtubule_openmm_topology())

``model`` is a checkpoint path or an energy model with ``TrueEnergy``'s call signature
(``MLPotential("cgsurrogate", model=TrueEnergy())`` gives the reference force field).
The force is an ``openmm.PythonForce`` (:func:`cgsurrogate.surrogate.interfaces.openmm_force.surrogate_force`);
the strengths are its global parameters. A topology without elements gives
massless particles in OpenMM-ML; ``createSystem`` here gives those particles the masses of
the model's ``system_spec`` (the microtubule: 50 ag) except its clamped particles
(``clamp=True``, mass 0).
"""
from __future__ import annotations

import functools
import os

import openmm
import openmm.app

from cgsurrogate.core.errors import CGSurrogateError


def spec_openmm_topology(system_spec, residue_names=None, atom_name: str = "CA") -> openmm.app.Topology:
    """An ``openmm.app.Topology`` of a system (one chain, one residue per particle, no elements).

    Parameters
    ----------
    system_spec : SystemSpec
        Particle count, bonds and particle types.
    residue_names : sequence of str, optional
        Residue name of each particle type (default the first three letters of ``type_names``,
        upper case; ``"PRT"`` without types).
    atom_name : str
        Name of every atom.
    """
    spec = system_spec
    types = spec.particle_types if spec.particle_types is not None else (0,) * spec.num_particles
    names = tuple(residue_names) if residue_names is not None else (
        tuple(n[:3].upper() for n in spec.type_names) or ("PRT",))
    top = openmm.app.Topology()
    chain = top.addChain("M")
    atoms = []
    for i in range(spec.num_particles):
        res = top.addResidue(names[types[i]], chain, id=str(i + 1))
        atoms.append(top.addAtom(atom_name, None, res, id=str(i + 1)))
    for a, b in spec.bonds:
        top.addBond(atoms[a], atoms[b])
    return top


def microtubule_openmm_topology() -> openmm.app.Topology:
    """An ``openmm.app.Topology`` of the 624 monomers (one chain, one residue per monomer).

    Residues are named ``TBA`` (alpha tubulin, even turns) and ``TBB`` (beta); atoms
    have no element. Bonds follow the tube's edges.
    """
    from cgsurrogate.simulate.microtubule import microtubule_spec

    return spec_openmm_topology(microtubule_spec(), residue_names=("TBA", "TBB"))


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
    params : sequence of P floats, optional
        Default strength parameters (global parameters of the force; default the spec's).
    """

    def __init__(self, name: str, model=None, params=None, **_):
        if model is None:
            raise CGSurrogateError("MLPotential('cgsurrogate'): pass model=<checkpoint path or torch module>")
        if isinstance(model, (str, os.PathLike)):
            from cgsurrogate.surrogate.interfaces.energy_function import load_surrogate

            model = load_surrogate(model)
        from cgsurrogate.surrogate.interfaces.openmm_force import model_spec

        self.spec = model_spec(model, "MLPotential('cgsurrogate')")
        self.name = name
        self.model = model
        self.params = None if params is None else tuple(self.spec.check_params(params, "MLPotential('cgsurrogate') params"))

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
            Keep the spec's clamped particles' mass 0 (fixed); other element-less particles
            get the spec's masses.
        params : sequence of P floats, optional
            Overrides the strengths given to ``MLPotential``.
        """
        from cgsurrogate.surrogate.interfaces.openmm_force import surrogate_force

        spec = self.spec
        idx = list(range(topology.getNumAtoms())) if atoms is None else [int(i) for i in atoms]
        if len(idx) != spec.num_particles:
            raise CGSurrogateError(
                f"MLPotential('cgsurrogate'): the topology has {len(idx)} particles, the model expects {spec.num_particles}"
            )
        clamped = {idx[i] for i in spec.clamp_nodes} if clamp else set()
        for k, i in enumerate(idx):
            if system.getParticleMass(i).value_in_unit(openmm.unit.dalton) == 0.0 and i not in clamped:
                system.setParticleMass(i, spec.masses[k])
        params = args.get("params", self.params)
        force = surrogate_force(self.model, params, particles=None if atoms is None else idx, force_group=forceGroup)
        system.addForce(force)
