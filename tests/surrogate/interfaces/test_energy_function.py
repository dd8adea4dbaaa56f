"""SurrogateEnergy: a trained checkpoint as a differentiable torch energy function."""
import math

import numpy as np
import pytest
import torch

from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.surrogate.interfaces.energy_function import SurrogateEnergy, energy_and_forces, load_surrogate

PARAMS = [3.0, 9.0, 18.0, 39.0, 57.0]


@pytest.fixture(scope="module")
def surrogate64(tiny_checkpoint):
    return load_surrogate(tiny_checkpoint, dtype=torch.float64)


def _bent(topology, scale=0.2, batch=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(topology.positions)[None].repeat(batch, 1, 1)
    noise = scale * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    noise[:, :26] = 0.0  # the clamped rings never move in the data
    return x + noise


def test_matches_model_and_normalizer_applied_by_hand(tiny_checkpoint, topology):
    from cgsurrogate.surrogate.checkpoint import load_checkpoint, rebuild_model

    model, normalizer, _ = rebuild_model(load_checkpoint(tiny_checkpoint))
    energy = load_surrogate(tiny_checkpoint)
    x = _bent(topology, batch=2)
    v = 1e-3 * torch.randn(2, 624, 3, dtype=torch.float64)
    p = torch.tensor([PARAMS, [30.0] * 5], dtype=torch.float64)
    X = torch.cat([x, v, p[:, None, :].expand(2, 624, 5)], -1)
    with torch.no_grad():
        ref = normalizer.denormalize_y(model(normalizer.normalize_x(X).float()).double())[..., 0]
        total, per_node = energy(x, p, velocities=v)
    assert per_node.shape == (2, 624) and total.shape == (2,)
    assert torch.allclose(per_node.double(), ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    assert torch.allclose(total, per_node.sum(-1))


def test_velocities_default_to_zero_and_params_broadcast(surrogate64, topology):
    x = _bent(topology, batch=3)
    p = torch.tensor(PARAMS, dtype=torch.float64)
    with torch.no_grad():
        a = surrogate64(x, p)[1]
        b = surrogate64(x, p[None].expand(3, 5), velocities=torch.zeros_like(x))[1]
        c = surrogate64(x, p[None, None].expand(3, 624, 5))[1]  # per-node features
        d = surrogate64(x[1], p)[1]  # unbatched
    assert torch.equal(a, b) and torch.allclose(a, c) and torch.allclose(a[1], d)


def test_forces_are_minus_finite_difference_gradient(surrogate64, topology):
    x = _bent(topology)
    p = torch.tensor([PARAMS], dtype=torch.float64)
    _, _, forces = energy_and_forces(surrogate64, x, p)
    # The network is piecewise smooth (ReLU): a central difference that straddles a kink is
    # wrong by construction. With h = 1e-5 one did (node 30: -fd 0.06887 against 0.06979;
    # 0.0697900 at h = 1e-6 and 1e-7), so h is 1e-6, where float64 round-off is still ~1e-10.
    h = 1e-6
    with torch.no_grad():
        for node in (30, 200, 400, 623):
            for d in range(3):
                xp, xm = x.clone(), x.clone()
                xp[0, node, d] += h
                xm[0, node, d] -= h
                fd = (surrogate64(xp, p)[0] - surrogate64(xm, p)[0]) / (2 * h)
                assert math.isclose(float(-fd), float(forces[0, node, d]), rel_tol=1e-5, abs_tol=1e-7), (node, d)


def test_float32_agrees_with_float64(tiny_checkpoint, surrogate64, topology):
    e32 = load_surrogate(tiny_checkpoint)
    assert e32.dtype == torch.float32 and load_surrogate(tiny_checkpoint, dtype=torch.float64).dtype == torch.float64
    x = _bent(topology, batch=2)
    p = torch.tensor([PARAMS] * 2)
    t32, pn32, f32 = energy_and_forces(e32, x, p.double())  # float32 network, float64 positions
    t64, pn64, f64 = energy_and_forces(surrogate64, x, p.double())
    tin, _, fin = energy_and_forces(e32, x.float(), p.float())  # float32 in, float32 out
    assert tin.dtype == fin.dtype == torch.float32 and t64.dtype == torch.float64
    assert torch.isfinite(fin).all()
    scale = float(pn64.abs().max())
    assert torch.allclose(pn32.double(), pn64, atol=1e-4 * scale)
    free = slice(26, None)  # the clamped rings' forces act on fixed particles
    assert torch.allclose(f32[:, free], f64[:, free], atol=1e-3 * float(f64[:, free].abs().max()))


def test_save_load_gives_identical_predictions(tiny_checkpoint, tmp_path, topology):
    from cgsurrogate.surrogate.checkpoint import load_checkpoint, rebuild_model, save_checkpoint

    ckpt = load_checkpoint(tiny_checkpoint)
    model, normalizer, hierarchy = rebuild_model(ckpt)
    copy = save_checkpoint(tmp_path / "copy.pt", model, normalizer, hierarchy,
                           dataset_info=ckpt["dataset"], metrics=ckpt["metrics"])
    a, b = load_surrogate(tiny_checkpoint), load_surrogate(copy)
    x = _bent(topology, batch=2).float()
    p = torch.tensor([PARAMS, [30.0] * 5])
    with torch.no_grad():
        assert torch.equal(a(x, p)[1], b(x, p)[1])
    ref = SurrogateEnergy.from_normalizer(model, normalizer)
    with torch.no_grad():
        assert torch.equal(ref(x, p)[1], a(x, p)[1])
    assert a.info["model_name"] == ckpt["model_name"] and a.info["units"]["energy"].startswith("kJ/mol")


def test_energy_and_forces_on_the_reference_energy(topology):
    f = TrueEnergy(topology)
    x = _bent(topology)
    p = torch.tensor(PARAMS, dtype=torch.float64)
    total, per_node, forces = energy_and_forces(f, x[0], p)
    h = 1e-6
    xp, xm = x[0].clone(), x[0].clone()
    xp[100, 2] += h
    xm[100, 2] -= h
    fd = (f(xp, p)[0] - f(xm, p)[0]) / (2 * h)
    assert math.isclose(float(-fd), float(forces[100, 2]), rel_tol=1e-6)
    assert math.isclose(float(total), float(per_node.sum()), rel_tol=1e-12)


def test_wrong_shapes_give_clear_errors(surrogate64, topology):
    x = _bent(topology)
    with pytest.raises(ValueError, match=r"expected \[B, 624, 3\]"):
        surrogate64(x[:, :600], torch.tensor(PARAMS))
    with pytest.raises(ValueError, match="params have shape"):
        surrogate64(x, torch.tensor([1.0, 2.0, 3.0]))


def test_corrupt_foreign_or_missing_checkpoint_gives_one_line_error(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x80\x02 not a checkpoint at all")
    with pytest.raises(ValueError) as e:
        load_surrogate(bad)
    assert "corrupt.pt" in str(e.value) and "\n" not in str(e.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="foreign.pt: not a cgsurrogate"):
        load_surrogate(foreign)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_surrogate(tmp_path / "missing.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(tiny_checkpoint, topology):
    cpu = load_surrogate(tiny_checkpoint, dtype=torch.float64)
    gpu = load_surrogate(tiny_checkpoint, device="cuda", dtype=torch.float64)
    x = _bent(topology)
    p = torch.tensor([PARAMS], dtype=torch.float64)
    _, a, fa = energy_and_forces(cpu, x, p)
    _, b, fb = energy_and_forces(gpu, x.cuda(), p.cuda())
    assert torch.allclose(a, b.cpu(), rtol=1e-9, atol=1e-9)
    assert torch.allclose(fa, fb.cpu(), rtol=1e-7, atol=1e-9)
    assert np.isfinite(fb.cpu().numpy()).all()
