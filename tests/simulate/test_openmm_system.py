"""OpenMM microtubule system: energy sum rule and forces vs the torch reference, replicas,
clamping, the load, and short protocol runs bending the tube."""
import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM, ZJ_TO_KJMOL
from cgsurrogate.simulate.openmm_system import (
    build_microtubule_system,
    get_platform,
    microtubule_positions,
)
from cgsurrogate.simulate.protocol import Protocol
from cgsurrogate.simulate.replicas import run_replicas, tip_deflection

KJ = unit.kilojoule_per_mole
PARAMS = np.array([[3.0, 9.0, 18.0, 39.0, 57.0], [30.0] * 5, [57.0, 3.0, 48.0, 9.0, 18.0]])


def _reference_context(system):
    integ = openmm.VerletIntegrator(1.0)
    return openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))


def _state(ctx, groups):
    st = ctx.getState(getEnergy=True, getForces=True, groups=groups)
    e = st.getPotentialEnergy().value_in_unit(KJ)
    f = st.getForces(asNumpy=True).value_in_unit(KJ / unit.nanometer)
    return e, np.asarray(f)


@pytest.fixture(scope="module")
def perturbed():
    system, info = build_microtubule_system(PARAMS)
    rng = np.random.default_rng(7)
    x = microtubule_positions(3) + 0.3 * rng.standard_normal((3 * 624, 3))
    ctx = _reference_context(system)
    ctx.setPositions(x)
    return system, info, ctx, x


def test_system_layout(perturbed):
    system, info, _, _ = perturbed
    assert system.getNumParticles() == 3 * 624
    masses = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(624)])
    assert np.all(masses[:26] == 0) and np.all(masses[26:] > 0)
    assert list(info.clamp_nodes) == list(range(26)) and list(info.load_nodes) == list(range(598, 624))
    forces = {type(system.getForce(i)).__name__: system.getForce(i) for i in range(system.getNumForces())}
    assert forces["HarmonicBondForce"].getNumBonds() == 3 * 1232
    assert forces["HarmonicAngleForce"].getNumAngles() == 3 * 3648
    # k = 2 L converted to kJ/mol: replica 1 has every strength 30 zJ
    _, _, _, k = forces["HarmonicBondForce"].getBondParameters(1232)
    assert np.isclose(k.value_in_unit(KJ / unit.nanometer**2), 2 * 30 * ZJ_TO_KJMOL)


def test_energy_sum_rule_and_forces_match_torch_reference(perturbed):
    _, info, ctx, x = perturbed
    e_omm, f_omm = _state(ctx, set(info.internal_groups))
    te = TrueEnergy()
    X = torch.tensor(x.reshape(3, 624, 3) - info.offsets[:, None], requires_grad=True)
    tot, per = te(X, torch.tensor(PARAMS))
    (g,) = torch.autograd.grad(tot.sum(), X)
    e_torch = per.sum().item()
    assert abs(e_torch - e_omm) / abs(e_omm) < 1e-6
    f_torch = -g.numpy().reshape(-1, 3)
    assert np.abs(f_torch - f_omm).max() < 1e-6 * np.abs(f_omm).max()


def test_replicas_are_independent(perturbed):
    """Each replica alone gives exactly its share of the 3-replica System: the internal energies
    of the replicas alone sum to the System's, each replica's forces equal its block of the
    System's forces, and moving the other replicas does not change them."""
    system, info, ctx, x = perturbed
    e_all, f_all = _state(ctx, set(info.internal_groups))
    f_all = f_all.reshape(3, 624, 3)
    e_sum = 0.0
    for r in range(3):
        sys_r, info_r = build_microtubule_system(PARAMS[r])
        ctx_r = _reference_context(sys_r)
        ctx_r.setPositions(x[info.replica_slice(r)] - info.offsets[r])
        e_r, f_r = _state(ctx_r, set(info_r.internal_groups))
        e_sum += e_r
        np.testing.assert_allclose(f_all[r], f_r, rtol=1e-9, atol=1e-9 * np.abs(f_r).max())
    assert abs(e_sum - e_all) <= 1e-9 * abs(e_all)
    # displace replicas 0 and 2 far from rest: replica 1's forces do not change
    moved = x.copy()
    moved[info.replica_slice(0)] += np.random.default_rng(3).standard_normal((624, 3))
    moved[info.replica_slice(2)] *= 1.1
    ctx.setPositions(moved)
    _, f_moved = _state(ctx, set(info.internal_groups))
    ctx.setPositions(x)
    np.testing.assert_array_equal(f_moved.reshape(3, 624, 3)[1], f_all[1])
    assert np.abs(f_moved.reshape(3, 624, 3)[0] - f_all[0]).max() > 1.0


def test_load_force_and_energy_groups(perturbed):
    _, info, ctx, x = perturbed
    ctx.setParameter(info.load_scale_param, 0.5)
    e, f = _state(ctx, {info.load_group})
    f = f.reshape(3, 624, 3)
    load = info.load_nodes
    assert np.allclose(f[:, load, 1], -0.5 * LOAD_FORCE_KJMOL_NM)
    assert np.allclose(f[:, load][..., [0, 2]], 0) and np.allclose(np.delete(f, load, axis=1), 0)
    assert np.isclose(e, 0.5 * LOAD_FORCE_KJMOL_NM * x.reshape(3, 624, 3)[:, load, 1].sum())
    ctx.setParameter(info.load_scale_param, 1.0)
    # 9e-14 N per monomer in kJ/mol/nm
    assert np.isclose(LOAD_FORCE_KJMOL_NM, 9e-14 * 6.02214076e23 * 1e-12)


def test_resting_geometry_has_zero_energy_in_openmm():
    system, info = build_microtubule_system(PARAMS)
    ctx = _reference_context(system)
    ctx.setPositions(microtubule_positions(3))
    e, f = _state(ctx, set(info.internal_groups))
    assert abs(e) < 1e-9 and np.abs(f).max() < 1e-6


def test_bad_inputs():
    with pytest.raises(ValueError, match="expected"):
        build_microtubule_system(np.ones((2, 4)))
    with pytest.raises(ValueError, match="positive"):
        build_microtubule_system([30, 30, -1, 30, 30])
    with pytest.raises(ValueError, match="not available"):
        get_platform("NoSuchPlatform")


def test_short_run_bends_down_and_stiffer_bends_less():
    """A short loaded run on the CPU platform: the tip moves in -y, the clamp holds,
    the stiffer replica deflects less, energies follow the sum rule."""
    proto = Protocol(ramp_steps=320, hold_steps=320, save_every=160, timestep_ps=90.0, friction=3e-5, settle_tol=0.0)
    out = run_replicas(np.array([[9.0] * 5, [57.0] * 5]), proto, platform="CPU", threads=1, seed=3)
    assert out["positions"].shape == (2, 4, 624, 3) and out["energies"].shape == (2, 4, 624)
    assert list(out["steps"]) == [160, 320, 480, 640]
    d = tip_deflection(out["positions"])
    assert np.all(d[:, -1] > 0.2)  # bent towards -y
    assert d[1, -1] < d[0, -1]  # stiffer bends less
    assert np.allclose(out["positions"][:, :, :26], microtubule_positions(1)[:26])  # clamp holds
    assert out["energy_check"] < 1e-4
    assert np.all(out["energies"] >= -1e-12)
