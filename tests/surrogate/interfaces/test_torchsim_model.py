"""The TorchSim model interface: TorchSim's own validation, forces against finite differences of the
exact field plus the load, clamps, many strength sets at once (batched FIRE and NVE equal each
system alone), any callable with TrueEnergy's signature, bad input."""
import dataclasses

import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.simulate.microtubule import LOAD_FORCE_KJMOL_NM, tube_system_spec, tube_topology
from cgsurrogate.simulate.tube import Tube

# torch-sim-atomistic is in the [test] extra: a missing install fails here rather than skipping
from cgsurrogate.surrogate.interfaces.torchsim_model import TorchSimEnergyModel, microtubule_state

PARAMS3 = [[30.0] * 5, [57.0, 3.0, 48.0, 9.0, 18.0], [3.0] * 5]


def _ring_model(load_scale=0.5):
    """The exact field on one-turn tubes of 8 and 12 particles (the sizes of TorchSim's test systems),
    particle 0 clamped and the last one loaded."""
    energies, specs = {}, {}
    for n in (8, 12):
        topo = tube_topology(Tube(1, n, 0))
        energies[n] = TrueEnergy(topo)
        specs[n] = dataclasses.replace(tube_system_spec(topo), clamp_nodes=(0,), load_nodes=(n - 1,))
    return TorchSimEnergyModel(energies, params=[30.0, 9.0, 18.0, 39.0, 57.0], system_spec=specs,
                               load_scale=load_scale)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_passes_torchsim_validate_model_outputs(dtype):
    from torch_sim.models.interface import validate_model_outputs

    validate_model_outputs(_ring_model(), torch.device("cpu"), dtype)


def test_forces_are_minus_the_gradient_of_field_plus_load_and_clamps_hold():
    model = TorchSimEnergyModel(params=PARAMS3[1], load_scale=0.7)
    topo = TrueEnergy().topology
    gen = torch.Generator().manual_seed(0)
    x = torch.as_tensor(topo.positions) + 0.2 * torch.randn(624, 3, generator=gen, dtype=torch.float64)
    out = model(microtubule_state(1, x))
    te = TrueEnergy()
    load = topo.ring_nodes([-2, -1])
    clamp = topo.ring_nodes([0, 1])

    def energy(xx):  # independent: field + load potential -0.7 * f . x on every load node
        e = te(xx, torch.tensor(PARAMS3[1], dtype=torch.float64))[0]
        return e + 0.7 * LOAD_FORCE_KJMOL_NM * xx[load, 1].sum()

    assert float(out["energy"][0]) == pytest.approx(float(energy(x)), rel=1e-12)
    h = 1e-5
    for node, d in [(100, 0), (311, 2), (int(load[3]), 1), (623, 0)]:
        xp, xm = x.clone(), x.clone()
        xp[node, d] += h
        xm[node, d] -= h
        fd = -(energy(xp) - energy(xm)) / (2 * h)
        assert float(out["forces"][node, d]) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)
    assert torch.all(out["forces"][torch.as_tensor(clamp)] == 0)
    # at rest only the load acts: exactly 0.7 of the load along -y on the load nodes, zero elsewhere
    rest = model(microtubule_state(1))["forces"]
    expect = torch.zeros(624, 3, dtype=torch.float64)
    expect[torch.as_tensor(load), 1] = -0.7 * LOAD_FORCE_KJMOL_NM
    torch.testing.assert_close(rest, expect, rtol=0, atol=1e-10)


def test_many_strength_sets_at_once_equal_each_alone():
    gen = torch.Generator().manual_seed(1)
    topo = TrueEnergy().topology
    x = torch.as_tensor(topo.positions)[None] + 0.1 * torch.randn(3, 624, 3, generator=gen, dtype=torch.float64)
    batch = TorchSimEnergyModel(params=PARAMS3)(microtubule_state(3, x))
    for s in range(3):
        alone = TorchSimEnergyModel(params=PARAMS3[s])(microtubule_state(1, x[s]))
        torch.testing.assert_close(batch["energy"][s], alone["energy"][0], rtol=1e-12, atol=0)
        torch.testing.assert_close(batch["forces"][624 * s:624 * (s + 1)], alone["forces"], rtol=1e-12, atol=1e-14)


def test_batched_fire_relaxes_each_strength_set_as_alone():
    """TorchSim's batched FIRE on three strength sets at once: each system follows the path it
    follows alone, and the energy (field + load) goes down."""
    import torch_sim as ts

    def relax(params, steps=25):
        model = TorchSimEnergyModel(params=params)
        init, step = ts.optimizers.fire(model, dt_max=2000.0, dt_start=500.0)
        state = init(microtubule_state(len(params)))
        e0 = state.energy.clone()
        for _ in range(steps):
            state = step(state)
        return state.positions.view(len(params), 624, 3), e0, state.energy

    xb, e0, e1 = relax(PARAMS3)
    assert torch.all(e1 < e0)
    assert torch.all(xb[:, :26] == torch.as_tensor(TrueEnergy().topology.positions)[:26])  # clamps hold
    for s in (0, 2):
        xs, _, _ = relax([PARAMS3[s]])
        torch.testing.assert_close(xb[s], xs[0], rtol=0, atol=1e-10)


def test_nve_runs_many_systems_at_once():
    import torch_sim as ts

    def run(params, steps=10):
        model = TorchSimEnergyModel(params=params)
        init, step = ts.integrators.nve(model, dt=torch.tensor(300.0, dtype=torch.float64),
                                        kT=torch.tensor(0.0, dtype=torch.float64))
        state = init(microtubule_state(len(params)))
        for _ in range(steps):
            state = step(state)
        return state.positions.view(len(params), 624, 3)

    both = run(PARAMS3[:2])
    rest_y = torch.as_tensor(TrueEnergy().topology.positions)[-26:, 1]
    assert torch.all(both[:, -26:, 1].mean(-1) < rest_y.mean() - 1e-6)  # the load pulled the tip along -y
    torch.testing.assert_close(both[1], run([PARAMS3[1]])[0], rtol=0, atol=1e-12)


def test_any_callable_with_the_true_energy_signature():
    """A user's energy function (harmonic springs to the resting geometry, strength params[:, 0])."""
    rest = torch.as_tensor(TrueEnergy().topology.positions)

    def springs(positions, params):
        per = params[:, :1] * (positions - rest).pow(2).sum(-1)
        return per.sum(-1), per

    from cgsurrogate.simulate.microtubule import microtubule_spec

    model = TorchSimEnergyModel(springs, params=[2.0, 0, 0, 0, 0], system_spec=microtubule_spec(), load_scale=0.0)
    x = rest + 0.1
    out = model(microtubule_state(1, x))
    free = torch.ones(624, dtype=torch.bool)
    free[:26] = False
    torch.testing.assert_close(out["forces"][free], torch.full((598, 3), -0.4, dtype=torch.float64))
    assert float(out["energy"][0]) == pytest.approx(2.0 * 624 * 3 * 0.01)


def test_bad_input_is_one_clear_error():
    model = TorchSimEnergyModel(params=PARAMS3[:2])
    with pytest.raises(CGSurrogateError, match="2 rows for a state of 3 systems"):
        model(microtubule_state(3))
    x = torch.as_tensor(TrueEnergy().topology.positions).clone()
    x[5, 1] = float("nan")
    with pytest.raises(CGSurrogateError, match="NaN"):
        TorchSimEnergyModel()(microtubule_state(1, x))
    with pytest.raises(CGSurrogateError, match="serves"):
        _ring_model()(microtubule_state(1))
    with pytest.raises(CGSurrogateError, match="params"):
        TorchSimEnergyModel(params=[[np.nan] * 5])
