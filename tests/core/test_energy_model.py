"""The energy-model contract: the EnergyModel base, validate_energy_model over every energy model of
the project, and the check catching models that break the contract."""
import math

import numpy as np
import pytest
import torch

from cgsurrogate.core.energy_model import EnergyModel
from cgsurrogate.core.energy_model_check import EnergyModelCheckError, validate_energy_model
from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.core.system_spec import SystemSpec
from cgsurrogate.simulate.energy import TrueEnergy

PARAMS = [3.0, 9.0, 18.0, 39.0, 57.0]


# ---- a user's own small model: a ring of 5 particles with harmonic bonds ------------------------
def _ring_spec(n=5):
    ang = 2 * np.pi * np.arange(n) / n
    ref = np.stack([np.cos(ang), np.sin(ang), np.zeros(n)], 1)
    return SystemSpec(name="ring", num_particles=n, param_names=("k", "r0"), param_units=("kJ/mol/nm^2", "nm"),
                      masses=(12.0,) * n, clamp_nodes=(0,), default_params=(100.0, 1.2),
                      reference_positions=ref, bonds=[(i, (i + 1) % n) for i in range(n)])


class Ring(EnergyModel):
    """Per-particle harmonic bond energy k (r - r0)^2, half to each end."""

    rotation_invariant = True
    translation_invariant = True

    def __init__(self, spec=None):
        super().__init__(spec or _ring_spec())
        self.register_buffer("pairs", torch.tensor(self.system_spec.bonds))

    def energy_per_particle(self, positions, params, velocities=None):
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        r = (positions[:, j] - positions[:, i]).norm(dim=-1)
        e = params[:, :1] * (r - params[:, 1:2]) ** 2
        per = positions.new_zeros(positions.shape[:2])
        per.index_add_(1, i, 0.5 * e)
        per.index_add_(1, j, 0.5 * e)
        return per


def _ring_energy_by_hand(x, k, r0):
    n = len(x)
    return sum(k * (np.linalg.norm(x[(i + 1) % n] - x[i]) - r0) ** 2 for i in range(n))


def test_user_model_on_the_base_passes_and_matches_a_hand_computation():
    model = Ring()
    report = validate_energy_model(model)
    assert report["forces_finite_differences"] < 1e-7 and report["rotation_invariance"] < 1e-12
    x = np.random.default_rng(0).normal(size=(5, 3))
    total, per = model(torch.tensor(x), [50.0, 0.9])
    assert total.dim() == 0 and per.shape == (5,)
    assert math.isclose(float(total), _ring_energy_by_hand(x, 50.0, 0.9), rel_tol=1e-12)


def test_base_checks_inputs_with_one_line_errors():
    model = TrueEnergy()
    x = torch.as_tensor(model.topology.positions)
    cases = [
        (lambda: model(x.clone().index_fill_(0, torch.tensor([7]), float("nan")), torch.tensor(PARAMS)),
         r"positions hold NaN or infinite values .*particle 7"),
        (lambda: model(x, torch.tensor([30.0, 30.0, float("inf"), 30.0, 30.0])), "params hold NaN"),
        (lambda: model(x, torch.tensor(PARAMS[:4])), r"params have shape \(4,\), expected \[1, 5\]"),  # issue #7
        (lambda: model(x[:600], torch.tensor(PARAMS)), r"expected \[B, 624, 3\]"),
        (lambda: model(x[None].repeat(3, 1, 1), torch.tensor([PARAMS, PARAMS])), r"expected \[3, 5\]"),
        (lambda: model(x, torch.tensor(PARAMS), velocities=torch.zeros_like(x)), "does not take velocities"),
        (lambda: model("abc", torch.tensor(PARAMS)), "positions"),
    ]
    for call, pattern in cases:
        with pytest.raises(CGSurrogateError, match=pattern) as err:
            call()
        assert "\n" not in str(err.value)


def test_base_dtypes_and_broadcasting():
    model = TrueEnergy()
    g = torch.Generator().manual_seed(0)
    x = torch.as_tensor(model.topology.positions)[None] + 0.05 * torch.randn(1, 624, 3, generator=g, dtype=torch.float64)
    p = torch.tensor(PARAMS, dtype=torch.float64)
    t64, e64 = model(x.repeat(2, 1, 1), p)  # one parameter set for the batch
    t32, e32 = model(x.float(), p)  # float32 in, float32 out
    assert e64.dtype == torch.float64 and e32.dtype == torch.float32 and t64.shape == (2,)
    assert torch.equal(e64[0], e64[1])
    assert torch.allclose(e32.double(), e64[:1], rtol=0, atol=1e-3 * float(e64.abs().max()))  # float32 at 100 nm
    # integer positions are treated as float64; lists are accepted
    assert model(x.round().long(), PARAMS)[1].dtype == torch.float64


def test_true_energy_passes_the_contract():
    report = validate_energy_model(TrueEnergy())
    assert report["forces_finite_differences"] < 1e-6
    assert report["translation_invariance"] < 1e-9 and report["reflection_invariance"] < 1e-9
    assert report["float32"] < 1e-3


def test_gcn_checkpoint_surrogate_passes_the_contract(tiny_checkpoint):
    from cgsurrogate.surrogate.interfaces.energy_function import load_surrogate

    for dtype in (torch.float64, torch.float32):  # the check itself runs float64 and float32 versions
        model = load_surrogate(tiny_checkpoint, dtype=dtype)
        x = torch.as_tensor(model.system_spec.reference_positions_array())[None] + 0.01
        before = model(x, PARAMS)[1]
        report = validate_energy_model(model)
        assert report["forces_finite_differences"] < 1e-4 and "rotation_invariance" not in report
        assert model.dtype == dtype and torch.equal(model(x, PARAMS)[1], before)  # left exactly as it was


def test_eghn_energy_head_passes_the_contract(topology):
    from cgsurrogate.data.microtubule import Normalizer
    from cgsurrogate.simulate.microtubule import microtubule_spec
    from cgsurrogate.surrogate.equivariant.eghn import EGHN
    from cgsurrogate.surrogate.equivariant.energy_head import EGHNMicrotubuleEnergy, MicrotubuleGraphs

    g = torch.Generator().manual_seed(0)
    pos0 = torch.as_tensor(topology.positions)
    X = torch.cat([pos0 + 0.05 * torch.randn(4, *pos0.shape, generator=g, dtype=torch.float64),
                   0.1 * torch.randn(4, 624, 3, generator=g, dtype=torch.float64),
                   (torch.rand(4, 1, 5, generator=g, dtype=torch.float64) * 50).expand(4, 624, 5)], -1)
    norm = Normalizer.fit(X, torch.rand(4, 624, 1, generator=g, dtype=torch.float64))
    torch.manual_seed(0)
    net = EGHN(6, 1, 1, hidden=8, n_clusters=[6], layers_per_block=1, pool_layers=1, head="energy").eval()
    model = EGHNMicrotubuleEnergy(net, MicrotubuleGraphs(topology.bonds, 624, norm), system_spec=microtubule_spec())
    report = validate_energy_model(model, displacement=0.02, fd_step=1e-5, fd_rtol=1e-4)
    assert report["rotation_invariance"] < 1e-9 and report["translation_invariance"] < 1e-9


# ---- the check fails models that break the contract ---------------------------------------------
class _MixesTheBatch(Ring):
    def energy_per_particle(self, positions, params, velocities=None):
        per = super().energy_per_particle(positions, params)
        return per - per.mean(0, keepdim=True) + per  # depends on the other configurations


class _DetachesHalf(Ring):
    def energy_per_particle(self, positions, params, velocities=None):
        per = super().energy_per_particle(positions, params)
        return 0.5 * per + 0.5 * per.detach()  # autograd sees half the energy


class _NotInvariant(Ring):
    def energy_per_particle(self, positions, params, velocities=None):
        return super().energy_per_particle(positions, params) + positions[..., 0]


class _ChangesItsInput(Ring):
    compute_dtype = None  # gets the caller's tensor itself

    def energy_per_particle(self, positions, params, velocities=None):
        params.mul_(1.0)
        positions[:, 0] = positions[:, 0]  # harmless value, but an in-place write
        positions.data[:, 1, 0] += 1e-3
        return super().energy_per_particle(positions, params)


class _Plain(torch.nn.Module):
    """A module without the base class: no input checks."""

    def __init__(self):
        super().__init__()
        self.ring = Ring()
        self.system_spec = self.ring.system_spec

    def forward(self, positions, params):
        return self.ring.energy_per_particle(positions, params).sum(-1), self.ring.energy_per_particle(positions, params)


@pytest.mark.parametrize("model, failed", [
    (_MixesTheBatch(), "batch_of_two"),
    (_DetachesHalf(), "forces_finite_differences"),
    (_NotInvariant(), "rotation_invariance"),
    (_ChangesItsInput(), "inputs_unmodified"),
    (_Plain(), "error_nan_positions"),
])
def test_the_check_catches_broken_models(model, failed):
    with pytest.raises(EnergyModelCheckError, match=failed):
        validate_energy_model(model)


def test_the_check_needs_inputs_or_a_reference_geometry():
    spec = _ring_spec()
    bare = SystemSpec(name="no geometry", num_particles=5, param_names=("k", "r0"), param_units=("", ""),
                      masses=(1.0,) * 5, bonds=spec.bonds)
    with pytest.raises(CGSurrogateError, match="reference_positions"):
        validate_energy_model(Ring(bare))
    x = np.asarray(spec.reference_positions) * 1.1
    assert validate_energy_model(Ring(bare), positions=x, params=[10.0, 1.0])["batch_of_two"] < 1e-12
