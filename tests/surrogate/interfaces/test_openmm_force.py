"""The surrogate inside an OpenMM Context through openmm.PythonForce, and the openmmml potential."""
import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.surrogate.interfaces.energy_function import energy_and_forces, load_surrogate
from cgsurrogate.surrogate.interfaces.openmm_force import surrogate_force, surrogate_system

PARAMS = (3.0, 9.0, 18.0, 39.0, 57.0)
KJ = unit.kilojoule_per_mole
KJ_NM = unit.kilojoule_per_mole / unit.nanometer


def _positions(topology, scale=0.1, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(scale=scale, size=topology.positions.shape)
    d[:26] = 0.0
    return topology.positions + d


def _state(system, x, platform, groups=-1):
    ctx = openmm.Context(system, openmm.VerletIntegrator(1.0), openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(x)
    st = ctx.getState(getEnergy=True, getForces=True, groups=groups)
    return ctx, st.getPotentialEnergy().value_in_unit(KJ), st.getForces(asNumpy=True).value_in_unit(KJ_NM)


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_python_force_reproduces_openmm_native_microtubule_forces(topology, platform):
    """PythonForce(TrueEnergy) == OpenMM's own HarmonicBondForce + HarmonicAngleForce."""
    from cgsurrogate.simulate.openmm_system import build_microtubule_system

    x = _positions(topology)
    native, info = build_microtubule_system(np.array(PARAMS))
    groups = sum(1 << g for g in info.internal_groups)
    _, e_ref, f_ref = _state(native, x, platform, groups)
    ours = surrogate_system(TrueEnergy(), params=PARAMS)
    _, e, f = _state(ours, x, platform)
    assert np.isclose(e, e_ref, rtol=1e-6)
    assert np.allclose(f, f_ref, rtol=1e-5, atol=1e-6 * np.abs(f_ref).max())


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_surrogate_in_context_equals_torch_energy_and_forces(tiny_checkpoint, topology, platform):
    energy = load_surrogate(tiny_checkpoint, dtype=torch.float64)
    x = _positions(topology)
    system = surrogate_system(energy, params=PARAMS)
    ctx, e, f = _state(system, x, platform)
    total, _, forces = energy_and_forces(energy, torch.tensor(x)[None], torch.tensor([PARAMS]))
    assert np.isclose(e, float(total), rtol=1e-12, atol=1e-15)
    assert np.allclose(f, forces[0].numpy(), rtol=1e-12, atol=1e-15)
    # the strengths are global parameters of the Context
    ctx.setParameter("LatAssoc", 30.0)
    e2 = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(KJ)
    with torch.no_grad():
        t2 = energy(torch.tensor(x)[None], torch.tensor([[30.0, *PARAMS[1:]]]))[0]
    assert np.isclose(e2, float(t2), rtol=1e-12, atol=1e-15) and e2 != e


def test_load_force_and_clamped_masses_match_the_simulation_system(topology):
    from cgsurrogate.simulate.openmm_system import build_microtubule_system

    x = _positions(topology)
    native, info = build_microtubule_system(np.array(PARAMS))
    _, e_ref, f_ref = _state(native, x, "Reference", 1 << info.load_group)
    ours = surrogate_system(TrueEnergy(), params=PARAMS, load=True)
    _, e, f = _state(ours, x, "Reference", 1 << 1)
    assert np.isclose(e, e_ref, rtol=1e-12) and np.allclose(f, f_ref)
    masses = [ours.getParticleMass(i).value_in_unit(unit.dalton) for i in range(624)]
    assert masses == [native.getParticleMass(i).value_in_unit(unit.dalton) for i in range(624)]


def test_langevin_dynamics_keeps_clamped_particles_fixed(tiny_checkpoint, topology):
    system = surrogate_system(load_surrogate(tiny_checkpoint), params=PARAMS, load=True)
    integ = openmm.LangevinMiddleIntegrator(0.01, 2e-5, 18.0)
    integ.setRandomNumberSeed(3)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(topology.positions)
    integ.step(5)
    pos = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    assert np.isfinite(pos).all()
    assert np.allclose(pos[:26], topology.positions[:26])
    assert not np.allclose(pos[26:], topology.positions[26:])


def test_surrogate_force_subset_of_particles(topology):
    """With setParticles the model sees only its particles, in the given order."""
    x = _positions(topology)
    system = openmm.System()
    for _ in range(624 + 3):
        system.addParticle(1.0)
    order = np.arange(624) + 3  # three extra particles in front
    system.addForce(surrogate_force(TrueEnergy(), PARAMS, particles=order, parameter_prefix="mt_"))
    full = np.concatenate([np.zeros((3, 3)), x])
    ctx, e, f = _state(system, full, "Reference")
    with torch.no_grad():
        ref = TrueEnergy()(torch.tensor(x), torch.tensor(PARAMS))[0]
    assert np.isclose(e, float(ref), rtol=1e-12)
    assert np.allclose(f[:3], 0.0)
    assert set(ctx.getParameters()) >= {"mt_LatAssoc", "mt_QuadAngles"}
    with pytest.raises(ValueError, match="5 strength parameters"):
        surrogate_force(TrueEnergy(), (1.0, 2.0))


def test_openmmml_entry_point_builds_a_system(tiny_checkpoint, topology):
    from importlib.metadata import entry_points

    from openmmml import MLPotential  # in the [test] extra: fail, never skip, when it is missing

    from cgsurrogate.surrogate.interfaces.openmmml_potential import microtubule_openmm_topology

    assert "cgsurrogate" in {e.name for e in entry_points(group="openmmml.potentials")}
    top = microtubule_openmm_topology()
    assert top.getNumAtoms() == 624 and top.getNumBonds() == 1232
    potential = MLPotential("cgsurrogate", model=str(tiny_checkpoint), params=PARAMS)
    system = potential.createSystem(top)
    assert system.getParticleMass(0).value_in_unit(unit.dalton) == 0.0
    assert system.getParticleMass(100).value_in_unit(unit.dalton) == pytest.approx(50e-18 * 6.02214076e23)
    x = _positions(topology)
    _, e, f = _state(system, x, "Reference")
    energy = load_surrogate(tiny_checkpoint, dtype=torch.float32)
    total, _, forces = energy_and_forces(energy, torch.tensor(x)[None], torch.tensor([PARAMS]))
    assert np.isclose(e, float(total), rtol=1e-9) and np.allclose(f, forces[0].numpy(), rtol=1e-9, atol=1e-15)
    # the reference force field through the same entry point equals OpenMM's native one
    ref_system = MLPotential("cgsurrogate", model=TrueEnergy(), params=PARAMS).createSystem(top)
    _, e_ref, _ = _state(ref_system, x, "Reference")
    with torch.no_grad():
        assert np.isclose(e_ref, float(TrueEnergy()(torch.tensor(x), torch.tensor(PARAMS))[0]), rtol=1e-12)
    with pytest.raises(ValueError, match="pass model"):
        MLPotential("cgsurrogate")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: PythonForce with a CUDA model needs one")
def test_python_force_with_a_cuda_model_matches_the_cpu_model(tiny_checkpoint, topology):
    x = _positions(topology)
    cpu = load_surrogate(tiny_checkpoint, dtype=torch.float64)
    gpu = load_surrogate(tiny_checkpoint, dtype=torch.float64, device="cuda")
    _, e_cpu, f_cpu = _state(surrogate_system(cpu, params=PARAMS), x, "Reference")
    _, e_gpu, f_gpu = _state(surrogate_system(gpu, params=PARAMS), x, "Reference")
    assert np.isclose(e_gpu, e_cpu, rtol=1e-9) and np.allclose(f_gpu, f_cpu, rtol=1e-7, atol=1e-9)


def test_a_model_without_a_spec_or_with_wrong_particles_is_refused(topology):
    from cgsurrogate.core.errors import CGSurrogateError

    class Bare(torch.nn.Module):
        def forward(self, positions, params):
            return positions.sum((-1, -2)), positions.sum(-1)

    with pytest.raises(CGSurrogateError, match="no system_spec"):
        surrogate_system(Bare(), params=PARAMS)
    with pytest.raises(CGSurrogateError, match="10 particles given, the model describes 624"):
        surrogate_force(TrueEnergy(), PARAMS, particles=range(10))
