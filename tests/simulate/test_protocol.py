"""The protocol's linear load ramp, updated every step, against an independent integration;
the rest measures; bad protocol input."""
import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.simulate.integrator import ramp_integrator
from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM, MONOMER_MASS_AMU, tube_topology
from cgsurrogate.simulate.openmm_system import build_microtubule_system, microtubule_positions
from cgsurrogate.simulate.protocol import REST_CRITERION, Protocol
from cgsurrogate.simulate.replicas import rest_measures, tip_deflection
from cgsurrogate.simulate.tube import Tube

SMALL = tube_topology(Tube(8, 5, 1))  # 40 particles: fast, same force field
KJ = unit.kilojoule_per_mole


@pytest.mark.parametrize("ramp", [7, 64])
def test_protocol_load_scale_is_linear(ramp):
    p = Protocol(ramp_steps=ramp, hold_steps=64 + (-(ramp + 64)) % 8, save_every=8)
    for s in range(0, ramp + 10):
        assert p.load_scale(s) == pytest.approx(min(s / ramp, 1.0), abs=1e-15)
    assert Protocol(ramp_steps=0, hold_steps=8, save_every=8).load_scale(0) == 1.0


def _context(params, ramp, dt, friction=0.0, temperature=0.0):
    system, info = build_microtubule_system(params, SMALL)
    integ = ramp_integrator(dt, temperature, friction, ramp, info.load_scale_param, 5)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(microtubule_positions(len(np.atleast_2d(params)), SMALL))
    ctx.setVelocities(np.zeros((system.getNumParticles(), 3)))
    ctx.setParameter(info.load_scale_param, 0.0)
    return ctx, integ, info


def test_load_at_step_s_is_fmax_times_min_s_over_ramp():
    """After s steps the load force on every loaded particle is -fmax * min(s / ramp, 1) along y."""
    ramp = 10
    ctx, integ, info = _context([30.0] * 5, ramp, dt=90.0)
    done = 0
    for s in (0, 1, 2, 5, 9, 10, 11, 17):
        integ.step(s - done)
        done = s
        expect = LOAD_FORCE_KJMOL_NM * min(s / ramp, 1.0)
        assert ctx.getParameter(info.load_scale_param) == pytest.approx(min(s / ramp, 1.0), abs=1e-12)
        f = ctx.getState(getForces=True, groups={info.load_group}).getForces(asNumpy=True).value_in_unit(
            KJ / unit.nanometer)
        np.testing.assert_allclose(f[info.load_nodes, 1], -expect, rtol=1e-12, atol=1e-18)
        assert np.all(np.delete(f, info.load_nodes, axis=0) == 0)


def test_trajectory_matches_an_independent_integration_with_the_per_step_ramp():
    """At T = 0 and no friction the integrator is kick-drift with the force at the current
    positions; a numpy/torch loop with TrueEnergy forces and the load fmax * min(s / ramp, 1)
    reproduces its positions. A load applied in increments (the old staircase) would not."""
    ramp, steps, dt = 6, 14, 300.0
    params = np.array([9.0, 30.0, 18.0, 39.0, 57.0])
    ctx, integ, info = _context(params, ramp, dt)
    integ.step(steps)
    x_omm = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)

    te = TrueEnergy(SMALL)
    x = torch.tensor(SMALL.positions)
    v = torch.zeros_like(x)
    inv_m = torch.full((SMALL.num_nodes, 1), 1.0 / MONOMER_MASS_AMU, dtype=torch.float64)
    inv_m[torch.as_tensor(info.clamp_nodes)] = 0.0
    p = torch.tensor(params)

    def force(xx, scale):
        xx = xx.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(te(xx, p)[0], xx)
        f = -g
        f[torch.as_tensor(info.load_nodes), 1] -= LOAD_FORCE_KJMOL_NM * scale
        return f

    def integrate(scale_at):
        x, v = torch.tensor(SMALL.positions), torch.zeros(SMALL.num_nodes, 3, dtype=torch.float64)
        for s in range(steps):
            v = v + dt * force(x, scale_at(s)) * inv_m
            x = x + dt * v
        return x.numpy()

    x_ref = integrate(lambda s: min(s / ramp, 1.0))
    moved = np.abs(x_ref - SMALL.positions).max()
    assert moved > 1e-3  # the load did something
    tol = 1e-6 * moved
    np.testing.assert_allclose(x_omm, x_ref, rtol=0, atol=tol)
    # a ramp in two increments (the old staircase) is far outside that tolerance
    x_stairs = integrate(lambda s: min((s // 3 + 1) / 2, 1.0))
    assert np.abs(x_stairs - x_ref).max() > 100 * tol


def test_rest_measures_follow_their_definition():
    """tip motion = |change of the tip deflection| between the last two frames; residual = largest
    |internal + load| force on a free particle over the load; at rest iff the residual is at most the
    protocol's criterion; settle measures are passed through (NaN / -1 without a settle)."""
    proto = Protocol.short()
    topo = SMALL
    rng = np.random.default_rng(0)
    pos = topo.positions[None, None] + 0.01 * rng.standard_normal((2, 3, topo.num_nodes, 3))
    frc = np.zeros((2, 3, topo.num_nodes, 3))
    load = topo.ring_nodes([-2, -1])
    clamp = topo.ring_nodes([0, 1])
    frc[:, -1, load, 1] = proto.load  # internal forces balance the load exactly
    frc[1, -1, clamp, 0] = 100.0  # clamped particles do not count
    frc[1, -1, 20, 2] = 0.3 * proto.load
    big = 0.7
    frc[1, -1, load[0], 0] = big * proto.load
    out = rest_measures(pos, frc, proto, clamp, load, topo)
    d = tip_deflection(pos, topo)
    np.testing.assert_allclose(out["tip_motion_nm"], np.abs(d[:, 2] - d[:, 1]))
    np.testing.assert_allclose(out["residual_force"], [0.0, max(big, 0.3)], atol=1e-12)
    assert out["at_rest"].tolist() == [True, False]
    assert np.isnan(out["settle_tip_shift_nm"]).all() and out["settle_iterations"].tolist() == [-1, -1]
    tol = REST_CRITERION["residual_force"]
    frc[1] = 0.0
    frc[1, -1, load, 1] = proto.load
    frc[1, -1, 20, 0] = 0.99 * tol * proto.load  # just under the criterion
    assert rest_measures(pos, frc, proto, clamp, load, topo)["at_rest"].tolist() == [True, True]
    frc[1, -1, 20, 0] = 1.01 * tol * proto.load  # just over it
    settle = {"settle_tip_shift_nm": [1.0, 2.0], "settle_max_shift_nm": [3.0, 4.0], "settle_iterations": [5, 6]}
    out = rest_measures(pos, frc, proto, clamp, load, topo, settle=settle)
    assert out["at_rest"].tolist() == [True, False] and out["settle_iterations"].tolist() == [5, 6]
    assert out["settle_max_shift_nm"].tolist() == [3.0, 4.0]


@pytest.mark.parametrize("kw, msg", [
    ({"ramp_steps": 10, "hold_steps": 5, "save_every": 10}, "multiple of save_every"),
    ({"ramp_steps": -1}, "non-negative"),
    ({"ramp_steps": 1.5}, "integer"),
    ({"friction": float("nan")}, "finite"),
    ({"timestep_ps": 0.0}, "timestep must be positive"),
    ({"ramp": "steps"}, "expected 'linear'"),
])
def test_bad_protocols_are_refused(kw, msg):
    with pytest.raises(CGSurrogateError, match=msg):
        Protocol(**kw)


def test_metadata_written_before_the_linear_ramp_reads_as_staircase():
    old = Protocol.short().to_dict()
    del old["ramp"]
    assert Protocol.from_dict(old).ramp == "staircase"
    assert Protocol.from_dict(Protocol.short().to_dict()) == Protocol.short()


def test_host_driven_and_custom_integrators_give_the_same_run():
    """run_replicas drives the per-step ramp either inside a CustomIntegrator or from the host around
    OpenMM's LangevinMiddleIntegrator: at T = 0 (deterministic) both give the same frames."""
    from cgsurrogate.simulate.replicas import run_replicas

    proto = Protocol(ramp_steps=9, hold_steps=7, save_every=4, timestep_ps=300.0, temperature=0.0, friction=2e-5)
    params = np.array([[9.0, 30.0, 18.0, 39.0, 57.0], [3.0] * 5])
    a = run_replicas(params, proto, platform="Reference", topology=SMALL, integrator="custom")
    b = run_replicas(params, proto, platform="Reference", topology=SMALL, integrator="host")
    moved = np.abs(a["positions"][:, -1] - SMALL.positions).max()
    assert moved > 1e-3
    np.testing.assert_allclose(a["positions"], b["positions"], rtol=0, atol=1e-7 * moved)
    np.testing.assert_allclose(a["velocities"], b["velocities"], rtol=1e-6, atol=1e-12)
    with pytest.raises(CGSurrogateError, match="integrator"):
        run_replicas(params, proto, platform="Reference", topology=SMALL, integrator="verlet")
