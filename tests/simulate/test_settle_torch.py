"""The device-resident settle (issue 15, GPU sweeps): FIRE in torch follows the numpy reference's rules
step for step, its exact-field net force equals OpenMM's, and an OpenMM run settled on a torch device
ends where the Context-force settle ends. Runs on the CPU device here; the GPU figures are in
bench/gpu_check.py."""
import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.microtubule import microtubule_topology
from cgsurrogate.simulate.protocol import Protocol
from cgsurrogate.simulate.settle import fire_settle
from cgsurrogate.simulate.settle_torch import exact_net_forces, fire_settle_torch

TOPO = microtubule_topology()
CLAMP, LOAD = TOPO.ring_nodes([0, 1]), TOPO.ring_nodes([-2, -1])
FREE = np.setdiff1d(np.arange(TOPO.num_nodes), CLAMP)
PARAMS = np.array([[9.0] * 5, [57.0, 30.0, 9.0, 30.0, 57.0], [3.0] * 5])


def _strained(R, seed):
    rng = np.random.default_rng(seed)
    x0 = np.repeat(TOPO.positions[None], R, 0).copy()
    x0[:, :, 1] -= 1e-3 * (x0[:, :, 2] - x0[:, :, 2].min()) ** 2  # a bent tube
    x0[:, FREE] += 0.02 * rng.standard_normal((R, len(FREE), 3))
    return x0


def test_exact_net_force_equals_openmm_with_the_load(openmm_net_forces):
    """TrueEnergy's autograd force plus the load equals the OpenMM System's net force (internal + load at
    full scale) to 1e-9 relative on strained replicas; inactive replicas get zero rows."""
    x0 = _strained(3, 1)
    proto = Protocol.short()
    net = exact_net_forces(PARAMS, LOAD, proto.load, TOPO)
    got = net(torch.from_numpy(x0), torch.tensor([True, False, True])).numpy()
    ref = openmm_net_forces(PARAMS, TOPO)(x0, None)
    scale = np.abs(ref).max()
    assert np.abs(got[[0, 2]] - ref[[0, 2]]).max() < 1e-9 * scale
    assert not got[1].any()


def test_torch_fire_follows_the_numpy_reference_step_for_step(openmm_net_forces):
    """On the same force (OpenMM's, through numpy) the torch loop takes the same evaluation counts and ends
    within 1e-8 nm of fire_settle (summation order differs), converged and capped at 40 evaluations alike."""
    x0 = _strained(3, 5)
    proto = Protocol.short()
    omm = openmm_net_forces(PARAMS, TOPO)

    def as_torch(x, active):
        return torch.from_numpy(omm(x.numpy(), active.numpy()))

    for max_iter in (proto.settle_max_iter, 40):
        ref = fire_settle(x0, omm, FREE, proto.load, proto.settle_tol, max_iter)
        got = fire_settle_torch(torch.from_numpy(x0), as_torch, FREE, proto.load, proto.settle_tol, max_iter)
        assert got["iterations"].tolist() == ref["iterations"].tolist()
        assert got["converged"].tolist() == ref["converged"].tolist()
        assert np.abs(got["positions"].numpy() - ref["positions"]).max() < 1e-8
        np.testing.assert_allclose(got["residual"].numpy(), ref["residual"], rtol=0, atol=1e-8)  # tolerance is 1e-4
    assert got["iterations"].tolist() == [40, 40, 40] and not got["converged"].any()
    with pytest.raises(CGSurrogateError, match="tolerance"):
        fire_settle_torch(torch.from_numpy(x0), as_torch, FREE, proto.load, -1.0, 10)


def test_openmm_run_settled_on_a_torch_device_matches_the_context_settle():
    """A short OpenMM run, settled with the Context's forces and on the torch CPU device (exact field): both
    meet the criterion, the dynamic frames are untouched, and the settled frames agree within 1e-3 nm. (The
    two forces differ by ~1e-9 relative, so FIRE's paths part late and stop at different points of the
    tolerance region: measured 4.3e-4 nm apart for these strengths after ~3650 evaluations, 3e-12 nm
    for all strengths 9.)"""
    from cgsurrogate.simulate.replicas import run_replicas

    proto = Protocol(ramp_steps=200, hold_steps=400, save_every=200, temperature=0.0)
    params = PARAMS[1:2]
    a = run_replicas(params, proto, platform="Reference", settle_device="context")
    b = run_replicas(params, proto, platform="Reference", settle_device="cpu")
    assert (a["settle_iterations"] > 0).all() and (b["settle_iterations"] > 0).all()
    assert np.abs(a["positions"][:, -1] - b["positions"][:, -1]).max() < 1e-3
    assert np.abs(a["positions"][:, :-1] - b["positions"][:, :-1]).max() == 0.0  # dynamics untouched
    assert (a["residual_force"] <= proto.settle_tol * 1.001).all() and (b["residual_force"] <= proto.settle_tol * 1.001).all()
    with pytest.raises(CGSurrogateError, match="settle_device"):
        run_replicas(params[:1], proto, platform="Reference", settle_device="no-such-device")
