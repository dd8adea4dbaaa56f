"""SystemSpec: the constants of a coarse-grained system, round trips and checks; the microtubule's
spec derived independently from the paper's protocol."""
import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.core.system_spec import SystemSpec


def _spec(**kw):
    d = dict(name="toy", num_particles=3, param_names=("a", "b"), param_units=("zJ", "nm"), masses=(1.0, 2.0, 3.0))
    d.update(kw)
    return SystemSpec(**d)


def test_round_trip_through_a_weights_only_checkpoint(tmp_path):
    spec = _spec(clamp_nodes=[0], load_nodes=np.array([2]), load_force=(0, -1, 0), default_params=[1, 2],
                 reference_positions=np.eye(3), bonds=[(0, 1), (1, 2)], particle_types=[0, 1, 0],
                 type_names=("p", "q"), type_label="kind")
    torch.save({"spec": spec.to_dict()}, tmp_path / "s.pt")
    back = SystemSpec.from_dict(torch.load(tmp_path / "s.pt", weights_only=True)["spec"])
    assert back == spec and hash(back) == hash(spec)
    assert back.clamp_nodes == (0,) and back.load_nodes == (2,) and back.num_params == 2
    assert np.array_equal(back.reference_positions_array(), np.eye(3))


@pytest.mark.parametrize("kw, message", [
    (dict(masses=(1.0, 2.0)), "masses must be 3"),
    (dict(masses=(1.0, -2.0, 3.0)), "masses"),
    (dict(param_units=("zJ",)), "2 parameter names but 1 units"),
    (dict(clamp_nodes=(3,)), "clamp_nodes holds particle 3"),
    (dict(load_nodes=(1.5,)), "not an integer"),
    (dict(default_params=(1.0,)), "default_params: need 2"),
    (dict(reference_positions=np.zeros((2, 3))), "reference_positions"),
    (dict(bonds=[(0, 5)]), "bond"),
    (dict(num_particles=0, masses=()), "num_particles must be positive"),
])
def test_bad_specs_are_refused(kw, message):
    with pytest.raises(CGSurrogateError, match=message):
        _spec(**kw)


def test_bad_dicts_and_params_are_refused():
    d = _spec().to_dict()
    with pytest.raises(CGSurrogateError, match="lacks masses"):
        SystemSpec.from_dict({k: v for k, v in d.items() if k != "masses"}, where="model.pt")
    with pytest.raises(CGSurrogateError, match="model.pt: unknown system specification field 'colour'"):
        SystemSpec.from_dict(dict(d, colour="red"), where="model.pt")
    with pytest.raises(CGSurrogateError, match="not a system specification"):
        SystemSpec.from_dict([1, 2])
    with pytest.raises(CGSurrogateError, match=r"need 2 strength parameters \(a, b\), got 3"):
        _spec().check_params([1, 2, 3])
    with pytest.raises(CGSurrogateError, match="finite"):
        _spec().check_params([1, float("nan")])


def test_microtubule_spec_from_the_papers_protocol(topology):
    """624 monomers of 50 ag, the first two turns clamped and the last two pulled with 9e-14 N along -y."""
    from cgsurrogate.simulate.microtubule import microtubule_spec

    spec = microtubule_spec()
    avogadro = 6.02214076e23
    assert spec.num_particles == 48 * 13
    assert spec.param_names == ("LatAssoc", "LongAssoc", "LatAngle", "LongAngle", "QuadAngles")
    assert np.allclose(spec.masses_array(), 50e-18 * avogadro)
    assert spec.clamp_nodes == tuple(range(26)) and spec.load_nodes == tuple(range(624 - 26, 624))
    newton_in_kjmol_nm = 1e-9 * avogadro / 1000.0  # 1 N = 1 J/m = 1e-9 J/nm, times N_A, in kJ
    assert np.allclose(spec.load_force, (0.0, -9e-14 * newton_in_kjmol_nm, 0.0), rtol=1e-12)
    assert np.array_equal(spec.reference_positions_array(), topology.positions)
    assert len(spec.bonds) == len(topology.bonds) == 1232
    turn = np.arange(624) // 13
    assert np.array_equal(np.asarray(spec.particle_types), turn % 2) and spec.type_names == ("alpha", "beta")
    assert SystemSpec.from_dict(spec.to_dict()) == spec
