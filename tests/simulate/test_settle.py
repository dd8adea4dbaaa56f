"""The settle stage (issue 15, runs at rest): FIRE at the full load with the clamps held ends at
the static equilibrium an independent minimiser finds; its residual, recomputed from the torch
force field, meets the protocol's criterion; the numba and OpenMM engines settle alike; a soft
run's criterion is met and recorded in its run file and the dataset metadata."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM, microtubule_topology
from cgsurrogate.simulate.protocol import REST_CRITERION, Protocol
from cgsurrogate.simulate.replicas import tip_deflection
from cgsurrogate.simulate.settle import fire_settle, settle_replicas

pytest.importorskip("numba")
from cgsurrogate.simulate.numba_engine import NumbaEngine  # noqa: E402

TOPO = microtubule_topology()
CLAMP, LOAD = TOPO.ring_nodes([0, 1]), TOPO.ring_nodes([-2, -1])
FREE = np.setdiff1d(np.arange(TOPO.num_nodes), CLAMP)


def _torch_residual(params, positions):
    """Largest |-dE/dx + load| on a free particle over the load, from TrueEnergy's autograd (independent of
    both engines' force code)."""
    x = torch.tensor(np.asarray(positions)[None], dtype=torch.float64, requires_grad=True)
    e, _ = TrueEnergy(TOPO)(x, torch.tensor(np.asarray(params, dtype=np.float64)[None]))
    (g,) = torch.autograd.grad(e.sum(), x)
    net = -g[0].numpy()
    net[LOAD, 1] -= LOAD_FORCE_KJMOL_NM
    return np.linalg.norm(net[FREE], axis=-1).max() / LOAD_FORCE_KJMOL_NM


def test_settle_reaches_the_openmm_minimum_and_meets_its_tolerance():
    """All strengths 30 (one minimum) from the resting geometry: the settled state equals
    openmm.LocalEnergyMinimizer's minimum within 0.01 nm, its tip the exact static equilibrium
    (41.61 nm) within 0.02 nm, and its residual, from the torch field, is under the tolerance."""
    from cgsurrogate.optimize.references import openmm_minimize

    proto = Protocol.short()
    eng = NumbaEngine([[30.0] * 5], proto, TOPO)
    out = settle_replicas(eng.positions.copy(), eng.net_forces, CLAMP, LOAD, proto)
    assert out["settle_converged"][0] and out["settle_residual"][0] <= proto.settle_tol
    x = out["positions"][0]
    assert _torch_residual([30.0] * 5, x) <= proto.settle_tol * (1 + 1e-6)
    ref = openmm_minimize([30.0] * 5, load_force=LOAD_FORCE_KJMOL_NM, tolerance=1e-7, platform="Reference")
    assert np.abs(x - ref["positions"]).max() < 0.01
    assert abs(float(tip_deflection(x)) - 41.61) < 0.02
    assert np.allclose(x[CLAMP], TOPO.positions[CLAMP])  # the clamps held
    assert out["settle_tip_shift_nm"][0] == pytest.approx(float(tip_deflection(x)), rel=1e-9)


def test_fire_on_a_quadratic_bowl_stops_at_the_tolerance():
    """Independent of the tube: f = -k (x - c) on 3 particles, one clamped; FIRE ends within tol/k of c,
    leaves the clamped particle where it was, and counts its evaluations."""
    k = np.array([1.0, 40.0, 400.0])[None, :, None]
    c = np.array([[[0.5, -1.0, 2.0], [3.0, 0.0, -2.0], [1.0, 1.0, 1.0]]])
    x0 = np.zeros((1, 3, 3))
    calls = []

    def net(x, active):
        calls.append(1)
        return -k * (x - c)

    res = fire_settle(x0, net, free=np.array([1, 2]), load=1.0, tol=1e-6, max_iter=20000)
    assert res["converged"][0] and res["iterations"][0] == len(calls)
    np.testing.assert_allclose(res["positions"][0, 1:], c[0, 1:], atol=1e-6 / 40.0)
    assert np.array_equal(res["positions"][0, 0], x0[0, 0])
    capped = fire_settle(x0, net, free=np.array([1, 2]), load=1.0, tol=1e-6, max_iter=3)
    assert not capped["converged"][0] and capped["iterations"][0] == 3 and capped["residual"][0] > 1e-6
    with pytest.raises(CGSurrogateError, match="tolerance"):
        fire_settle(x0, net, free=np.array([1, 2]), load=1.0, tol=0.0, max_iter=10)


def test_numba_and_openmm_settle_alike_from_the_same_state(openmm_net_forces):
    """The two engines' force evaluations drive the same FIRE: from one strained, loaded state of two
    replicas the settled positions agree to 1e-6 nm and the evaluation counts within one."""
    params = np.array([[9.0] * 5, [57.0, 30.0, 9.0, 30.0, 57.0]])
    proto = Protocol.short()
    rng = np.random.default_rng(2)
    x0 = np.repeat(TOPO.positions[None], 2, 0).copy()
    x0[:, :, 1] -= 1e-3 * (x0[:, :, 2] - x0[:, :, 2].min()) ** 2  # a bent tube
    x0[:, FREE] += 0.02 * rng.standard_normal((2, len(FREE), 3))
    eng = NumbaEngine(params, proto, TOPO)
    a = settle_replicas(x0, eng.net_forces, CLAMP, LOAD, proto)

    omm_forces = openmm_net_forces(params, TOPO)
    b = settle_replicas(x0, omm_forces, CLAMP, LOAD, proto)
    assert a["settle_converged"].all() and b["settle_converged"].all()
    assert np.abs(a["positions"] - b["positions"]).max() < 1e-6
    assert np.abs(a["settle_iterations"] - b["settle_iterations"]).max() <= 1


def test_compiled_fire_equals_the_numpy_reference():
    """The numba engine's compiled FIRE loop (numba_settle) runs the reference's update rules: from a strained,
    loaded state of three replicas it takes the same number of evaluations and ends within 1e-8 nm of
    fire_settle on the same forces; capped at 40 evaluations it stops unconverged at the same positions with
    the residual at those positions; settle_replicas through the engine uses it and matches too."""
    from cgsurrogate.simulate.numba_settle import fire_settle_compiled

    params = np.array([[9.0] * 5, [57.0, 30.0, 9.0, 30.0, 57.0], [3.0] * 5])
    proto = Protocol.short()
    rng = np.random.default_rng(5)
    x0 = np.repeat(TOPO.positions[None], 3, 0).copy()
    x0[:, :, 1] -= 1e-3 * (x0[:, :, 2] - x0[:, :, 2].min()) ** 2
    x0[:, FREE] += 0.02 * rng.standard_normal((3, len(FREE), 3))
    eng = NumbaEngine(params, proto, TOPO)
    for max_iter in (proto.settle_max_iter, 40):
        ref = fire_settle(x0, eng.net_forces, FREE, proto.load, proto.settle_tol, max_iter)
        got = fire_settle_compiled(eng, x0, FREE, proto.load, proto.settle_tol, max_iter)
        assert np.array_equal(ref["iterations"], got["iterations"]) and np.array_equal(ref["converged"], got["converged"])
        assert np.abs(ref["positions"] - got["positions"]).max() < 1e-8
        np.testing.assert_allclose(got["residual"], ref["residual"], rtol=0, atol=1e-9)  # tolerance is 1e-4
        # the residual belongs to the returned positions (independent torch force field)
        for r in range(3):
            assert got["residual"][r] == pytest.approx(_torch_residual(params[r], got["positions"][r]), abs=1e-8)
    assert ref["converged"].sum() == 0 and got["iterations"].tolist() == [40, 40, 40]
    eng.positions[:] = x0
    out = eng.settle()
    assert np.abs(eng.positions - fire_settle(x0, eng.net_forces, FREE, proto.load, proto.settle_tol,
                                              proto.settle_max_iter)["positions"]).max() < 1e-8
    assert out["settle_converged"].all() and not eng.velocities.any()


def test_protocol_settle_fields_and_legacy_metadata():
    p = Protocol.short()
    assert p.settles and p.settle_tol == REST_CRITERION["residual_force"] == 1e-4
    d = p.to_dict()
    assert d["rest_criterion"]["residual_force"] == 1e-4 and Protocol.from_dict(d) == p
    legacy = {k: v for k, v in d.items() if k not in ("settle_tol", "settle_max_iter")}
    assert Protocol.from_dict(legacy).settle_tol == 0.0 and not Protocol.from_dict(legacy).settles
    assert dataclasses.replace(p, settle_tol=3e-4).rest_criterion()["residual_force"] == 3e-4
    for kw in ({"settle_tol": -1.0}, {"settle_tol": float("nan")}, {"settle_max_iter": 0}):
        with pytest.raises(CGSurrogateError, match="settle"):
            dataclasses.replace(p, **kw)


def test_a_soft_run_meets_the_criterion_and_records_it(tmp_path):
    """A soft-angle run (LongAngle and QuadAngles 3: the runs that kept moving under the tip-motion
    criterion) and the softest (all 3) through a numba sweep: the last frame is at rest by the stated
    criterion, recomputed here from the torch field on the stored positions; the value, the settle's
    shift and its evaluations are in the run files and in metadata.json; earlier frames are dynamic."""
    from cgsurrogate.simulate.sweep import run_path, run_sweep

    proto = dataclasses.replace(Protocol.short(), ramp_steps=1600, hold_steps=800, save_every=800)
    params = [[30.0, 30.0, 57.0, 3.0, 3.0], [3.0] * 5]
    res = run_sweep(tmp_path / "soft", param_sets=params, protocol=proto, batch_size=2, n_workers=1,
                    progress=False, engine="numba")
    meta = json.loads((tmp_path / "soft" / "metadata.json").read_text())
    crit = meta["rest"]["criterion"]["residual_force"]
    assert crit == proto.settle_tol == meta["protocol"]["rest_criterion"]["residual_force"]
    assert meta["rest"]["at_rest"] == [True, True] and meta["rest"]["num_at_rest"] == 2
    assert res["rest"]["max_residual_force"] <= crit
    for i, p in enumerate(params):
        with np.load(run_path(tmp_path / "soft", i)) as z:
            r = _torch_residual(p, z["positions"][-1])
            assert r <= crit * (1 + 1e-6)
            assert float(z["residual_force"]) == pytest.approx(r, rel=1e-6, abs=1e-9)
            assert float(z["residual_force"]) == meta["rest"]["residual_force"][i] and bool(z["at_rest"])
            assert int(z["settle_iterations"]) == meta["rest"]["settle_iterations"][i] > 0
            assert float(z["settle_tip_shift_nm"]) == meta["rest"]["settle_tip_shift_nm"][i] > 0
            assert np.all(z["velocities"][-1] == 0.0) and np.abs(z["velocities"][-2]).max() > 0
            assert _torch_residual(p, z["positions"][-2]) > 10 * crit  # the last dynamic frame was not at rest
