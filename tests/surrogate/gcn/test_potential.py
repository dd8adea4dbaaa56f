"""The invariant potential: invariance, forces = -grad, bounded below, length transfer, errors."""
import math

import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.surrogate.gcn.potential import InvariantPotential, load_potential, save_potential


def _random_weights(model, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


@pytest.fixture(scope="module")
def model():
    return _random_weights(InvariantPotential(hidden=8).double())


def _rotation(seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    return torch.as_tensor(q)


def test_invariant_to_rotation_reflection_translation(model, topology, rng):
    x = torch.as_tensor(topology.positions + 0.2 * rng.standard_normal(topology.positions.shape))[None]
    p = torch.tensor([[7.0, 22.0, 41.0, 13.0, 50.0]], dtype=torch.float64)
    e0, n0 = model(x, p)
    for seed in range(3):
        R = _rotation(seed)  # det may be -1: a reflection
        y = x @ R.T + torch.tensor([3.0, -50.0, 12.5], dtype=torch.float64)
        e1, n1 = model(y, p)
        assert abs(float(e1 - e0)) <= 1e-9 * abs(float(e0))
        assert float((n1 - n0).abs().max()) <= 1e-9 * float(n0.abs().max())


def test_zero_at_rest_and_bounded_below_far_off(model, topology, rng):
    x0 = torch.as_tensor(topology.positions)
    p = torch.tensor([3.0, 57.0, 3.0, 57.0, 3.0], dtype=torch.float64)
    e, per = model(x0, p)
    assert abs(float(e)) < 1e-20 and float(per.abs().max()) < 1e-20
    # far-off configurations: scrambled, collapsed, stretched tenfold
    far = torch.stack([torch.as_tensor(topology.positions + s * rng.standard_normal(topology.positions.shape))
                       for s in (1.0, 10.0, 100.0)]
                      + [x0 * 0.01, x0 * 10.0, torch.zeros_like(x0) + 1.0])
    e, per = model(far, p)
    assert torch.isfinite(per).all()
    assert float(per.min()) >= 0.0


def test_forces_are_minus_gradient_finite_differences(model, topology, rng):
    x = torch.as_tensor(topology.positions + 0.1 * rng.standard_normal(topology.positions.shape))
    p = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0], dtype=torch.float64)
    _, _, f = model.energy_and_forces(x, p)
    h = 1e-5
    for _ in range(6):
        i, k = int(rng.integers(26, 624)), int(rng.integers(3))
        xp, xm = x.clone(), x.clone()
        xp[i, k] += h
        xm[i, k] -= h
        fd = -(float(model(xp, p)[0]) - float(model(xm, p)[0])) / (2 * h)
        assert abs(fd - float(f[i, k])) <= 1e-6 * max(1.0, float(f.abs().max()))


def test_exact_field_is_inside_the_model_class(topology, rng):
    """With log k set to the matching strength and no anharmonic factor the model is the exact field."""
    from cgsurrogate.surrogate.gcn.potential import K_REF, LOG_CENTER, LOG_SCALE

    m = InvariantPotential(hidden=4, anharmonic=False).double()
    kind_param = [0, 0, 1, 2, 3, 4, 4]  # lateral, seam, longitudinal bonds; pitch, long, quad angles
    with torch.no_grad():
        for p_ in m.parameters():
            p_.zero_()
        for kind, par in enumerate(kind_param):
            m.kind_weight[kind, 0, par] = LOG_SCALE
            m.kind_bias[kind, 0] = LOG_CENTER - math.log(K_REF / (1e-21 * 6.02214076e23 / 1000.0))
    x = torch.as_tensor(topology.positions + 0.3 * rng.standard_normal(topology.positions.shape))[None]
    p = torch.tensor([[5.0, 17.0, 33.0, 8.0, 51.0]], dtype=torch.float64)
    _, per_true = TrueEnergy()(x, p)
    _, per = m(x, p)
    assert torch.allclose(per, per_true, rtol=1e-10, atol=1e-12)


def test_length_transfer_same_weights_any_tube(model, rng):
    from cgsurrogate.simulate.microtubule import tube_topology
    from cgsurrogate.simulate.tube import Tube

    long = model.for_topology(tube_topology(Tube(96, 13, 3)))
    assert long.num_nodes == 96 * 13
    x = torch.as_tensor(long.topology.positions)
    p = torch.full((5,), 30.0, dtype=torch.float64)
    assert abs(float(long(x, p)[0])) < 1e-20
    # the same local deformation costs the same energy on either tube (interior ring)
    d = np.zeros_like(long.topology.positions)
    d[13 * 20 + 5] = [0.3, -0.2, 0.1]
    e_long = float(long(x + torch.as_tensor(d), p)[0])
    x48 = torch.as_tensor(model.topology.positions)
    e48 = float(model(x48 + torch.as_tensor(d[:624]), p)[0])
    assert e_long == pytest.approx(e48, rel=1e-9)


def test_bad_input_one_clear_error(model, topology):
    x = torch.as_tensor(topology.positions)
    p = torch.full((5,), 30.0, dtype=torch.float64)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(CGSurrogateError, match="NaN"):
        model(bad, p)
    with pytest.raises(CGSurrogateError, match="positions"):
        model(x[:600], p)
    with pytest.raises(CGSurrogateError, match="params"):
        model(x, p[:4])
    with pytest.raises(CGSurrogateError, match="positive"):
        model(x, -p)
    with pytest.raises(CGSurrogateError, match="velocities"):
        model(x, p, velocities=torch.zeros_like(x))


def test_save_load_roundtrip(model, topology, tmp_path, rng):
    path = save_potential(tmp_path / "m.pt", model, {"note": "test"})
    back = load_potential(path)
    x = torch.as_tensor(topology.positions + 0.1 * rng.standard_normal(topology.positions.shape))
    p = torch.full((5,), 20.0, dtype=torch.float64)
    assert float(back(x, p)[0]) == pytest.approx(float(model(x, p)[0]), rel=1e-12)
    assert back.info["note"] == "test"
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CGSurrogateError):
        load_potential(tmp_path / "junk.pt")
