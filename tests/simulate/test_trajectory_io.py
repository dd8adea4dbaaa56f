"""The one extended-XYZ writer: what ase.io reads back, in ASE's units, to 11 significant digits."""
import os
import stat

import ase.io
import numpy as np
import pytest
from ase import units

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.microtubule import microtubule_spec
from cgsurrogate.simulate.trajectory_io import write_extxyz


def _frames(F=3, seed=0):
    spec = microtubule_spec()
    rng = np.random.default_rng(seed)
    x = spec.reference_positions_array() + rng.normal(scale=0.3, size=(F, 624, 3))
    e = rng.uniform(1e-6, 0.5, size=(F, 624))  # kJ/mol: down to the clamped rings' tiny energies
    v = rng.normal(scale=1e-2, size=(F, 624, 3))
    f = rng.normal(size=(F, 624, 3))
    return spec, x, e, v, f


def test_round_trip_through_ase_in_ase_units(tmp_path):
    spec, x, e, v, f = _frames()
    old = os.umask(0o022)
    try:
        path = write_extxyz(tmp_path / "t.xyz", x, e, v, f, steps=[0, 10, 20], params=(3, 9, 18, 39, 57),
                            system_spec=spec)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    back = ase.io.read(path, ":")
    ev = units.kJ / units.mol  # independent of cgsurrogate.core.units
    assert len(back) == 3 and back[1].info["step"] == 10 and back[2].info["QuadAngles"] == 57
    for i, a in enumerate(back):
        assert np.allclose(a.positions, x[i] * 10.0, rtol=1e-10, atol=0)
        assert np.allclose(a.calc.results["energies"], e[i] * ev, rtol=1e-10, atol=0)
        assert np.isclose(a.calc.results["energy"], e[i].sum() * ev, rtol=1e-12)
        assert np.allclose(a.calc.results["forces"], f[i] * ev / 10.0, rtol=1e-10, atol=0)
        assert np.allclose(a.arrays["vel"], v[i] * 10.0, rtol=1e-10, atol=0)
    assert back[0].arrays["tubulin"].tolist() == ((np.arange(624) // 13) % 2).tolist()
    assert back[0].arrays["clamped"][:26].all() and back[0].arrays["clamped"].sum() == 26
    assert back[0].arrays["loaded"][-26:].all() and back[0].arrays["loaded"].sum() == 26


def test_without_a_spec_and_single_frames(tmp_path):
    _, x, e, _, _ = _frames(F=1)
    path = write_extxyz(tmp_path / "one.extxyz", x[0], e[0], params=[1.0, 2.0])
    a = ase.io.read(path)
    assert len(a) == 624 and a.info["params"].tolist() == [1.0, 2.0]
    assert "tubulin" not in a.arrays and "vel" not in a.arrays


def test_bad_shapes_and_unwritable_paths_name_the_file(tmp_path):
    spec, x, e, v, _ = _frames(F=2)
    with pytest.raises(CGSurrogateError, match=r"bad.xyz: energies have shape \(2, 600\)"):
        write_extxyz(tmp_path / "bad.xyz", x, e[:, :600])
    with pytest.raises(CGSurrogateError, match="bad.xyz: velocities have shape"):
        write_extxyz(tmp_path / "bad.xyz", x, e, v[:1])
    (tmp_path / "file").write_text("x")
    with pytest.raises(CGSurrogateError, match="file/sub/t.xyz: cannot write") as err:
        write_extxyz(tmp_path / "file" / "sub" / "t.xyz", x, e)
    assert ".tmp" not in str(err.value)
    with pytest.raises(CGSurrogateError, match="has 624"):
        write_extxyz(tmp_path / "t.xyz", x[:, :600], e[:, :600], system_spec=spec)
