"""The invariant potential exported to native OpenMM forces equals the torch model (energies and
forces, float64 Reference platform) on strained configurations, harmonic and anharmonic, any length."""
import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.interfaces.surrogate_openmm_native import export_openmm_system

openmm = pytest.importorskip("openmm")


def _openmm_energy_forces(system, x):
    from openmm import unit

    ctx = openmm.Context(system, openmm.VerletIntegrator(1.0), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(x * unit.nanometer)
    st = ctx.getState(getEnergy=True, getForces=True, groups={0, 1})
    e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    f = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return e, np.asarray(f)


def _torch_energy_forces(model, x, s):
    xt = torch.as_tensor(x)[None].clone().requires_grad_(True)
    tot, _ = model(xt, torch.as_tensor(s, dtype=torch.float64)[None])
    (g,) = torch.autograd.grad(tot.sum(), xt)
    return float(tot.detach()), -g[0].numpy()


def _strained(topo, rng, sigma):
    free = np.ones(topo.num_nodes, bool)
    free[topo.ring_nodes([0, 1])] = False
    bend = np.zeros_like(topo.positions)
    bend[:, 1] = -0.02 * (topo.positions[:, 2] - topo.positions[:, 2].min()) ** 2 / np.ptp(topo.positions[:, 2])
    return topo.positions + bend + sigma * rng.standard_normal(topo.positions.shape) * free[:, None]


def _check(model, s, rng, sigmas=(0.02, 0.1, 0.3)):
    system, info = export_openmm_system(model, s)
    for sig in sigmas:
        x = _strained(model.topology, rng, sig)
        e_t, f_t = _torch_energy_forces(model, x, s)
        e_o, f_o = _openmm_energy_forces(system, x)
        assert abs(e_o - e_t) <= 1e-10 * abs(e_t), (sig, e_o, e_t)
        assert np.abs(f_o - f_t).max() <= 1e-9 * np.abs(f_t).max(), (sig, np.abs(f_o - f_t).max())
    return info


def test_shipped_model_exports_exactly_off_grid():
    from cgsurrogate import load_surrogate

    model = load_surrogate("microtubule-invariant", dtype=torch.float64)
    rng = np.random.default_rng(0)
    for s in ([12.0, 40.0, 22.0, 15.0, 44.0], [4.0, 5.5, 3.2, 50.0, 7.0]):
        info = _check(model, s, rng)
        k, _ = model.kind_coefficients(torch.tensor([s], dtype=torch.float64))
        np.testing.assert_allclose(info.surrogate_k, k[0].detach().numpy())


def test_anharmonic_model_exports_exactly_on_another_length():
    from cgsurrogate.simulate.microtubule import tube_topology
    from cgsurrogate.simulate.tube import Tube
    from cgsurrogate.surrogate.gcn.potential import InvariantPotential

    torch.manual_seed(0)
    model = InvariantPotential(tube_topology(Tube(8, 13, 3)), hidden=8, anharmonic=True).double()
    with torch.no_grad():
        model.kind_bias.normal_(0.0, 0.5)
        model.kind_weight.normal_(0.0, 0.3)
    _, b = model.kind_coefficients(torch.tensor([[10.0, 20.0, 30.0, 15.0, 25.0]], dtype=torch.float64))
    assert b.abs().min() > 1e-3  # the anharmonic factor is really on
    _check(model.eval(), [10.0, 20.0, 30.0, 15.0, 25.0], np.random.default_rng(1))


def test_bad_input_is_one_clear_error():
    from cgsurrogate import load_surrogate
    from cgsurrogate.simulate.energy import TrueEnergy

    model = load_surrogate("microtubule-invariant", dtype=torch.float64)
    with pytest.raises(CGSurrogateError):
        export_openmm_system(model, [1.0, 2.0, -3.0, 4.0, 5.0])
    with pytest.raises(CGSurrogateError):
        export_openmm_system(model, [1.0, 2.0, 3.0])
    with pytest.raises(CGSurrogateError):
        export_openmm_system(TrueEnergy(), [1.0, 2.0, 3.0, 4.0, 5.0])
