"""The numba engine against independent references: TrueEnergy's autograd forces, OpenMM's forces and
OpenMM's trajectory (Reference platform, same Langevin-middle scheme and per-step ramp, 0 K), its clamps,
its thermal noise (equipartition), and its use by the sweep and the command line."""
import dataclasses
import sys

import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from cgsurrogate.core.errors import CGSurrogateError, MissingExtraError
from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.simulate.integrator import ramp_integrator
from cgsurrogate.simulate.microtubule import MONOMER_MASS_AMU, microtubule_topology, tube_topology
from cgsurrogate.simulate.numba_engine import BOLTZ_KJMOL_K, NumbaEngine, kernels
from cgsurrogate.simulate.openmm_system import build_microtubule_system, microtubule_positions
from cgsurrogate.simulate.protocol import Protocol
from cgsurrogate.simulate.replicas import run_replicas, tip_deflection
from cgsurrogate.simulate.tube import Tube

SMALL = tube_topology(Tube(8, 5, 1))  # 40 particles, every term kind (straight angles included)
PARAMS = np.array([[3.0, 57.0, 9.0, 30.0, 48.0], [30.0] * 5, [57.0, 3.0, 39.0, 18.0, 3.0]])


def _strained(topo, scale, seed=0, replicas=3):
    rng = np.random.default_rng(seed)
    return topo.positions[None] + scale * rng.standard_normal((replicas, topo.num_nodes, 3))


@pytest.mark.parametrize("scale", [0.05, 0.5, 2.0])  # 2 nm on 5 nm bonds: angles far from rest (range reductions)
def test_forces_and_energies_equal_true_energy_autograd(scale):
    topo = microtubule_topology()
    eng = NumbaEngine(PARAMS, Protocol.short(), topo)
    x = _strained(topo, scale)
    f, e = eng.forces_energies(x)
    xt = torch.tensor(x, requires_grad=True)
    total, _ = TrueEnergy(topo)(xt, torch.tensor(PARAMS))
    (g,) = torch.autograd.grad(total.sum(), xt)
    ref_e = total.detach().numpy()
    assert np.abs(e - ref_e).max() <= 1e-10 * np.abs(ref_e).max()
    assert np.abs(f + g.numpy()).max() <= 1e-10 * np.abs(g.numpy()).max()


def test_exactly_straight_angles_give_zero_force_not_nan():
    eng = NumbaEngine(PARAMS[:1], Protocol.short())
    f, e = eng.forces_energies()  # the resting tube: longitudinal angles exactly pi
    assert np.all(np.isfinite(f)) and np.abs(f).max() < 1e-10 and abs(e[0]) < 1e-20
    x = eng.positions.copy()
    x[0, 300, 0] += 1e-9  # a tiny bend of three straight angles: the force is the harmonic one, finite
    f2, _ = eng.forces_energies(x)
    assert np.all(np.isfinite(f2)) and 0 < np.abs(f2).max() < 1e-3


def _openmm_internal_forces(params, x, topo):
    system, info = build_microtubule_system(params, topo)
    ctx = openmm.Context(system, openmm.VerletIntegrator(1.0), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(x.reshape(-1, 3) + np.repeat(info.offsets, topo.num_nodes, axis=0))
    st = ctx.getState(getForces=True, getEnergy=True, groups=set(info.internal_groups))
    return (st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer).reshape(x.shape),
            st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))


def test_forces_equal_openmm_reference():
    topo = microtubule_topology()
    x = _strained(topo, 0.3, seed=4)
    f, e = NumbaEngine(PARAMS, Protocol.short(), topo).forces_energies(x)
    f_omm, e_omm = _openmm_internal_forces(PARAMS, x, topo)
    assert np.abs(f - f_omm).max() <= 1e-10 * np.abs(f_omm).max()
    assert abs(e.sum() - e_omm) <= 1e-10 * abs(e_omm)


def test_trajectory_equals_an_independent_integration_and_openmm_at_0K():
    """200 steps of the short protocol's step and friction (ramp over 120 steps, then hold), two replicas:
    the Langevin-middle scheme written out in torch with TrueEnergy autograd forces and the load
    fmax * min(s / ramp, 1) agrees to 1e-10 of the motion; OpenMM's CustomIntegrator (Reference) to 1e-6
    (measured 2e-8 nm of 0.04-1.5 nm: OpenMM's acos-based angle loses digits near the straight angles)."""
    topo = microtubule_topology()
    proto = dataclasses.replace(Protocol.short(), ramp_steps=120, hold_steps=80, save_every=50, temperature=0.0)
    params = PARAMS[:2]
    system, info = build_microtubule_system(params, topo, load_force=proto.load)
    integ = ramp_integrator(proto.timestep_ps, 0.0, proto.friction, proto.ramp_steps, info.load_scale_param)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(microtubule_positions(2, topo))
    ctx.setParameter(info.load_scale_param, proto.load_scale(0))
    eng = NumbaEngine(params, proto, topo)

    te, p = TrueEnergy(topo), torch.tensor(params)
    x = torch.tensor(np.repeat(topo.positions[None], 2, 0))
    v = torch.zeros_like(x)
    inv_m = torch.full((topo.num_nodes, 1), 1.0 / MONOMER_MASS_AMU, dtype=torch.float64)
    inv_m[torch.as_tensor(info.clamp_nodes)] = 0.0
    a, dt, load = float(np.exp(-proto.friction * proto.timestep_ps)), proto.timestep_ps, torch.as_tensor(info.load_nodes)
    s = 0
    for _ in range(proto.num_frames):
        for _ in range(proto.save_every):
            xg = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(te(xg, p)[0].sum(), xg)
            f = -g
            f[:, load, 1] -= proto.load * min(s / proto.ramp_steps, 1.0)
            v = v + dt * f * inv_m
            x = x + 0.5 * dt * v
            v = a * v
            x = x + 0.5 * dt * v
            s += 1
        integ.step(proto.save_every)
        eng.advance(proto.save_every)
        x_ref = x.numpy()
        moved = np.abs(x_ref - topo.positions).max()
        assert moved > 0.01  # the tube bends: a real comparison
        assert np.abs(eng.positions - x_ref).max() <= 1e-10 * moved
        x_omm = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        x_omm = x_omm.reshape(2, topo.num_nodes, 3) - info.offsets[:, None]
        assert np.abs(eng.positions - x_omm).max() <= 1e-6 * moved
    assert eng.step == proto.total_steps and moved > 1.0
    clamp = topo.ring_nodes([0, 1])
    assert np.array_equal(eng.positions[:, clamp], np.repeat(topo.positions[None, clamp], 2, 0))
    assert np.all(eng.velocities[:, clamp] == 0)


def test_thermal_noise_gives_equipartition_and_is_seeded():
    """High friction, short step, 300 K: the mean kinetic energy per free degree of freedom is kT/2."""
    proto = Protocol(ramp_steps=0, hold_steps=4000, save_every=4000, timestep_ps=2.0, temperature=300.0,
                     friction=0.05, load=0.0)
    eng = NumbaEngine(np.full((4, 5), 30.0), proto, SMALL, seed=7)
    eng.advance(500)
    free = np.setdiff1d(np.arange(SMALL.num_nodes), SMALL.ring_nodes([0, 1]))
    v2 = []
    for _ in range(70):
        eng.advance(50)
        v2.append((eng.velocities[:, free] ** 2).mean())
    kt_over_m = BOLTZ_KJMOL_K * 300.0 / MONOMER_MASS_AMU
    assert abs(np.mean(v2) / kt_over_m - 1.0) < 0.05
    a, b, c = (NumbaEngine(np.full((2, 5), 30.0), proto, SMALL, seed=s) for s in (3, 3, 4))
    for e in (a, b, c):
        e.advance(20)
    assert np.array_equal(a.positions, b.positions) and not np.array_equal(a.positions, c.positions)
    assert not np.array_equal(a.positions[0], a.positions[1])  # replicas have their own streams


def test_run_replicas_numba_matches_openmm_tips_at_0K():
    """The dynamics (no settle) of a soft and a stiff run agree frame by frame; with the settle stage, the
    settled last frames agree within what the stopping rule allows (both stop within 1e-4 loads)."""
    proto = dataclasses.replace(Protocol.short(), ramp_steps=600, hold_steps=600, save_every=300, temperature=0.0,
                                settle_tol=0.0)
    params = np.array([[3.0] * 5, [30.0] * 5])
    a = run_replicas(params, proto, engine="numba")
    b = run_replicas(params, proto, platform="CPU", threads=1)
    assert a["engine"] == "numba" and a["energy_check"] < 1e-12
    assert np.abs(tip_deflection(a["positions"]) - tip_deflection(b["positions"])).max() < 1e-5
    for k in ("velocities", "forces", "energies"):
        assert np.allclose(a[k], b[k], rtol=1e-4, atol=1e-6 * np.abs(b[k]).max()), k
    assert np.array_equal(a["at_rest"], b["at_rest"]) and not a["at_rest"].any()  # dynamic: not at rest
    settled = dataclasses.replace(proto, settle_tol=1e-4)
    a = run_replicas(params[1:], settled, engine="numba")
    b = run_replicas(params[1:], settled, platform="CPU", threads=1)
    assert a["at_rest"].all() and b["at_rest"].all() and np.all(a["velocities"][:, -1] == 0)
    assert np.abs(tip_deflection(a["positions"][:, -1]) - tip_deflection(b["positions"][:, -1])).max() < 1e-3
    assert np.abs(tip_deflection(a["positions"][:, -1]) - 41.61).max() < 0.02  # the exact static equilibrium
    assert np.abs(a["settle_iterations"] - b["settle_iterations"]).max() <= 2
    with pytest.raises(CGSurrogateError, match="CPU only"):
        run_replicas(params, proto, engine="numba", platform="CUDA")
    with pytest.raises(CGSurrogateError, match="engine"):
        run_replicas(params, proto, engine="jax")


def test_sweep_and_cli_with_the_numba_engine(tmp_path, capsys):
    from cgsurrogate.cli import main
    from cgsurrogate.simulate.sweep import run_sweep

    proto = Protocol(ramp_steps=100, hold_steps=100, save_every=100, timestep_ps=360.0)
    res = run_sweep(tmp_path / "s", param_sets=[[30.0] * 5, [3.0] * 5], protocol=proto, batch_size=2, n_workers=1,
                    progress=False, engine="numba")
    assert res["computed"] == [0, 1] and res["results"][0]["engine"] == "numba"
    assert set(res["results"][0]["timing"]) == {"integration", "energies", "settle", "files"}
    assert res["rest"]["num_at_rest"] == 2 and res["rest"]["max_residual_force"] <= proto.settle_tol
    with pytest.raises(CGSurrogateError, match="engine"):  # a rerun with another engine is refused
        run_sweep(tmp_path / "s", param_sets=[[30.0] * 5, [3.0] * 5], protocol=proto, batch_size=2, n_workers=1,
                  progress=False)
    assert main(["simulate", "--out", str(tmp_path / "c"), "--params", "30,30,30,30,30", "--workers", "1",
                 "--engine", "numba", "--no-extras", "--no-progress"]) == 0
    assert "1/1 runs complete" in capsys.readouterr().out


def test_missing_numba_names_the_fast_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)
    with pytest.raises(MissingExtraError, match=r"\[fast\]"):
        kernels()


@pytest.mark.parametrize("topo", [SMALL, microtubule_topology()], ids=["small", "microtubule"])
def test_per_particle_energies_equal_true_energy_split(topo):
    """The numba engine's own per-particle split (what its sweep workers store) equals TrueEnergy's
    LAMMPS pe/atom split on strained positions."""
    x = _strained(topo, 0.3, seed=5)
    _, e, per = NumbaEngine(PARAMS, Protocol.short(), topo).forces_energies(x, per_particle=True)
    with torch.no_grad():
        _, ref = TrueEnergy(topo)(torch.from_numpy(x), torch.from_numpy(PARAMS))
    np.testing.assert_allclose(per, ref.numpy(), rtol=1e-10, atol=1e-12 * np.abs(ref.numpy()).max())
    np.testing.assert_allclose(per.sum(1), e, rtol=1e-12)


def test_a_numba_sweep_worker_does_not_import_torch(tmp_path):
    """A sweep batch on the numba engine (what each local worker process runs) never imports torch: it
    would cost every spawned worker seconds of start-up."""
    import subprocess
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        from cgsurrogate.simulate.protocol import Protocol
        from cgsurrogate.simulate.sweep import simulate_batch
        proto = Protocol(ramp_steps=20, hold_steps=20, save_every=20, timestep_ps=360.0, settle_tol=1e-2)
        res = simulate_batch({str(tmp_path)!r}, [0], [[30.0] * 5], proto.to_dict(), 1, engine="numba")
        assert res["written"] == [0], res
        print("torch" in sys.modules)
    """)
    (tmp_path / "runs").mkdir()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
