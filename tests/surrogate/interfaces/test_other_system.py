"""A surrogate of another system (not the microtubule: 40 particles, three parameters, its own masses,
clamps and load) goes through the checkpoint, the contract check, prediction, ASE and OpenMM: the
wrappers read its SystemSpec instead of microtubule constants."""
import ase.io
import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from cgsurrogate.core.energy_model_check import validate_energy_model
from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.core.system_spec import SystemSpec
from cgsurrogate.core.units import KJ_PER_MOL_IN_EV
from cgsurrogate.surrogate.interfaces.energy_function import energy_and_forces, load_surrogate

PARAMS = (2.0, 5.0, 0.5)


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory):
    from cgsurrogate.data.microtubule import Normalizer
    from cgsurrogate.simulate.tube import Tube
    from cgsurrogate.surrogate.checkpoint import save_checkpoint
    from cgsurrogate.surrogate.gcn.registry import build_model
    from cgsurrogate.surrogate.graphs.hierarchy import build_hierarchy

    tube = Tube(8, 5, 1)
    h = build_hierarchy([tube, Tube(4, 5, 0)], use_cache=False)
    torch.manual_seed(0)
    model = build_model("gpcn-2", hierarchy=h, in_features=9, filters=[[4], [4]], dense=[8, 1], input_skip=True)
    n = tube.num_nodes
    x = tube.positions(radius=3.0, rise=1.0)
    g = torch.Generator().manual_seed(1)
    x_mean = torch.cat([torch.as_tensor(x), torch.zeros(n, 3), torch.tensor(PARAMS).expand(n, 3)], 1)
    x_std = torch.rand(n, 9, generator=g, dtype=torch.float64) + 0.5
    norm = Normalizer(x_mean, x_std, torch.rand(n, 1, generator=g, dtype=torch.float64), torch.ones(n, 1))
    spec = SystemSpec(name="toy tube", num_particles=n, param_names=("ka", "kb", "kc"),
                      param_units=("kJ/mol/nm^2", "kJ/mol/nm^2", "kJ/mol/rad^2"), masses=(7.0,) * n,
                      clamp_nodes=range(5), load_nodes=range(n - 5, n), load_force=(0.0, 0.0, 2.0),
                      default_params=PARAMS, reference_positions=x, bonds=tube.edges)
    path = tmp_path_factory.mktemp("other") / "toy.pt"
    save_checkpoint(path, model, norm, h, dataset_info={"path": "none"}, metrics={}, system_spec=spec)
    return path, spec


def _configurations(spec, frames=3, seed=0):
    rng = np.random.default_rng(seed)
    x = spec.reference_positions_array()[None] + rng.normal(scale=0.05, size=(frames, spec.num_particles, 3))
    x[:, list(spec.clamp_nodes)] = spec.reference_positions_array()[list(spec.clamp_nodes)]
    return x


def test_checkpoint_carries_the_spec_and_the_model_passes_the_contract(other_checkpoint):
    path, spec = other_checkpoint
    energy = load_surrogate(path, dtype=torch.float64)
    assert energy.system_spec == spec and energy.num_nodes == 40 and energy.num_params == 3
    validate_energy_model(energy)
    with pytest.raises(CGSurrogateError, match=r"need 3 strength parameters \(ka, kb, kc\)|params have shape"):
        energy(torch.tensor(_configurations(spec)), torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))


def test_prediction_reads_its_parameter_names_and_writes_its_columns(other_checkpoint, tmp_path):
    from cgsurrogate.simulate.trajectory_io import write_extxyz
    from cgsurrogate.surrogate.interfaces.prediction import predict

    path, spec = other_checkpoint
    x = _configurations(spec)
    src = write_extxyz(tmp_path / "in.xyz", x, np.zeros(x.shape[:2]), params=PARAMS, system_spec=spec)
    assert ase.io.read(src).info["kb"] == PARAMS[1]  # one info key per parameter name
    res = predict(path, src, tmp_path / "out.xyz", forces=True, dtype=torch.float64, progress=False)
    energy = load_surrogate(path, dtype=torch.float64)
    with torch.no_grad():
        _, ref = energy(torch.tensor(res["positions"]), torch.tensor(PARAMS))
    assert np.allclose(res["energies"], ref.numpy(), rtol=1e-12) and np.allclose(res["params"], PARAMS)
    back = ase.io.read(tmp_path / "out.xyz", ":")
    assert np.allclose(back[2].calc.results["energies"], res["energies"][2] * KJ_PER_MOL_IN_EV, rtol=1e-9)
    assert back[0].arrays["clamped"].tolist() == [1] * 5 + [0] * 35
    with pytest.raises(CGSurrogateError, match=r"need 3 strength parameters"):
        predict(path, src, params=(1.0, 2.0), progress=False)


def test_ase_and_openmm_use_its_masses_clamps_load_and_parameters(other_checkpoint):
    from cgsurrogate.surrogate.interfaces.ase_calculator import SurrogateCalculator, spec_atoms
    from cgsurrogate.surrogate.interfaces.openmm_force import surrogate_system

    path, spec = other_checkpoint
    energy = load_surrogate(path, dtype=torch.float64)
    x = _configurations(spec, frames=1)[0]
    atoms = spec_atoms(spec, positions=x)
    assert np.allclose(atoms.get_masses(), 7.0) and atoms.info["params"].tolist() == list(PARAMS)
    assert sorted(atoms.constraints[0].get_indices().tolist()) == list(range(5))
    atoms.calc = SurrogateCalculator(energy)
    total, _, forces = energy_and_forces(energy, torch.tensor(x), torch.tensor(PARAMS))
    assert np.isclose(atoms.get_potential_energy(), float(total) * KJ_PER_MOL_IN_EV, rtol=1e-12)

    system = surrogate_system(energy, load=True)  # default parameters from the spec
    assert [system.getParticleMass(i).value_in_unit(unit.dalton) for i in (0, 4, 5)] == [0.0, 0.0, 7.0]
    ctx = openmm.Context(system, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(x)
    assert set(ctx.getParameters()) >= {"ka", "kb", "kc", "load_fraction"}
    st = ctx.getState(getEnergy=True, getForces=True, groups=1 << 0)
    assert np.isclose(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole), float(total), rtol=1e-12)
    load = ctx.getState(getForces=True, groups=1 << 1).getForces(asNumpy=True).value_in_unit(
        unit.kilojoule_per_mole / unit.nanometer)
    assert np.allclose(load[35:], [0.0, 0.0, 2.0]) and np.allclose(load[:35], 0.0)
