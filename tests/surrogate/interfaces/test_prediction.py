"""Prediction API and `cli.py predict`: read configurations, write per-particle energies/forces."""
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import units

from cgsurrogate import cli
from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.surrogate.interfaces.ase_calculator import microtubule_atoms
from cgsurrogate.surrogate.interfaces.energy_function import energy_and_forces, load_surrogate
from cgsurrogate.surrogate.interfaces.prediction import predict

PARAMS = (3.0, 9.0, 18.0, 39.0, 57.0)


def _frames(n=5, params=PARAMS, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        a = microtubule_atoms(params=params)
        d = rng.normal(scale=0.3, size=a.positions.shape)
        d[:26] = 0.0
        a.positions += d
        frames.append(a)
    return frames


@pytest.fixture
def xyz(tmp_path):
    path = tmp_path / "frames.xyz"
    ase.io.write(path, _frames())
    return path


def test_xyz_to_npz_with_reference_energy_and_forces(xyz, tmp_path):
    out = tmp_path / "pred.npz"
    res = predict("reference", xyz, out, forces=True, batch_size=2, progress=False)
    saved = np.load(out, allow_pickle=False)
    assert saved["energies"].shape == (5, 624) and saved["forces"].shape == (5, 624, 3)
    assert str(saved["units_energies"]) == "kJ/mol" and str(saved["units_forces"]) == "kJ/mol/nm"
    f = TrueEnergy()
    for i, atoms in enumerate(ase.io.read(xyz, ":")):
        x = torch.tensor(atoms.positions / 10.0)
        total, per_node, forces = energy_and_forces(f, x, torch.tensor(PARAMS, dtype=torch.float64))
        assert np.allclose(saved["energies"][i], per_node.numpy(), rtol=1e-10, atol=1e-14)
        assert np.allclose(saved["forces"][i], forces.numpy(), rtol=1e-9, atol=1e-9 * float(forces.abs().max()))
        assert np.isclose(saved["total"][i], float(total), rtol=1e-12)
    assert np.array_equal(res["energies"], saved["energies"])
    assert np.allclose(saved["params"], PARAMS)


def test_surrogate_predictions_match_energy_function_and_use_xyz_velocities(tiny_checkpoint, tmp_path):
    frames = _frames(3)
    rng = np.random.default_rng(4)
    v_nm_ps = 1e-3 * rng.normal(size=(3, 624, 3))
    v_nm_ps[:, :26] = 0.0  # the clamped rings (FixAtoms) keep zero velocity
    for a, v in zip(frames, v_nm_ps):
        a.set_velocities(v * 10.0 / (1000.0 * units.fs))  # nm/ps -> Angstrom / ASE time
    path = tmp_path / "moving.extxyz"
    ase.io.write(path, frames)
    f64 = torch.float64  # a float64 network, so that the comparison can be tight
    res = predict(tiny_checkpoint, path, forces=True, batch_size=2, progress=False, dtype=f64)
    still = predict(tiny_checkpoint, path, use_velocities=False, progress=False, dtype=f64)
    energy = load_surrogate(tiny_checkpoint, dtype=f64)
    back = ase.io.read(path, ":")  # the file holds 8 decimals; compare on what it holds
    x = torch.tensor(np.stack([a.positions / 10.0 for a in back]))
    v_nm_ps = np.stack([a.get_velocities() / 10.0 * (1000.0 * units.fs) for a in back])
    p = torch.tensor([PARAMS] * 3, dtype=torch.float64)
    with torch.no_grad():
        _, moving = energy(x, p, velocities=torch.tensor(v_nm_ps))
        _, at_rest = energy(x, p)
    assert np.allclose(res["energies"], moving.numpy(), rtol=1e-8, atol=1e-14)
    assert np.allclose(still["energies"], at_rest.numpy(), rtol=1e-8, atol=1e-14)
    assert not np.allclose(res["energies"], still["energies"], rtol=1e-7, atol=0)
    _, _, forces = energy_and_forces(energy, x, p, velocities=torch.tensor(v_nm_ps))
    free = forces.numpy()[:, 26:]  # forces on the clamped rings act on fixed particles
    assert np.allclose(res["forces"][:, 26:], free, rtol=1e-6, atol=1e-6 * np.abs(free).max())


def test_mdanalysis_trajectory_with_topology(tmp_path):
    import MDAnalysis as mda

    frames = _frames(4)
    u = mda.Universe.empty(624, trajectory=True)
    u.add_TopologyAttr("names", ["MT"] * 624)
    u.atoms.positions = frames[0].positions
    u.atoms.write(tmp_path / "top.pdb")
    with mda.Writer(str(tmp_path / "traj.dcd"), 624) as w:
        for a in frames:
            u.atoms.positions = a.positions
            w.write(u.atoms)
    res = predict("reference", tmp_path / "traj.dcd", tmp_path / "out.npz", topology=tmp_path / "top.pdb",
                  params=PARAMS, progress=False)
    f = TrueEnergy()
    x = torch.tensor(np.stack([a.positions for a in frames]).astype(np.float32).astype(np.float64) / 10.0)
    with torch.no_grad():
        total, _ = f(x, torch.tensor([PARAMS] * 4, dtype=torch.float64))
    assert res["energies"].shape == (4, 624)
    assert np.allclose(res["total"], total.numpy(), rtol=1e-9)


def test_xyz_output_in_ev_and_angstrom(xyz, tmp_path):
    out = tmp_path / "pred.xyz"
    res = predict("reference", xyz, out, forces=True, progress=False)
    back = ase.io.read(out, ":")
    ev = units.kJ / units.mol
    assert len(back) == 5
    # ASE writes per-atom columns with 8 decimals: 1e-8 eV, 1e-8 eV/A resolution
    assert np.isclose(back[2].get_potential_energy(), res["total"][2] * ev, rtol=1e-7)
    assert np.allclose(back[2].get_potential_energies(), res["energies"][2] * ev, rtol=1e-6, atol=1e-8)
    assert np.allclose(back[2].get_forces(), res["forces"][2] * ev / 10.0, rtol=1e-6, atol=1e-8)


def test_bad_inputs_give_one_line_errors(xyz, tmp_path):
    wrong = tmp_path / "wrong.xyz"
    ase.io.write(wrong, [microtubule_atoms()[:600]])
    with pytest.raises(ValueError, match="frame 0 has 600 particles, the model expects 624"):
        predict("reference", wrong, progress=False)
    nan = tmp_path / "nan.xyz"
    frames = _frames(2)
    frames[1].positions[7, 2] = np.nan
    ase.io.write(nan, frames)
    with pytest.raises(ValueError, match="frame 1 has NaN"):
        predict("reference", nan, progress=False)
    bare = tmp_path / "bare.xyz"
    a = _frames(1)[0]
    del a.info["params"]
    ase.io.write(bare, a)
    with pytest.raises(ValueError, match="no strength parameters"):
        predict("reference", bare, progress=False)
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("this is\nnot xyz\n")
    with pytest.raises(ValueError, match="garbage.xyz"):
        predict("reference", garbage, progress=False)
    with pytest.raises(FileNotFoundError, match="missing.xyz"):
        predict("reference", tmp_path / "missing.xyz", progress=False)
    with pytest.raises(ValueError, match="must end in"):
        predict("reference", xyz, tmp_path / "out.csv", progress=False)


def test_cli_predict_writes_npz_and_reports_errors(tiny_checkpoint, xyz, tmp_path, capsys):
    out = tmp_path / "cli.npz"
    rc = cli.main(["predict", "--model", str(tiny_checkpoint), "--input", str(xyz), "--output", str(out),
                   "--forces", "--no-progress"])
    assert rc == 0
    saved = np.load(out, allow_pickle=False)
    energy = load_surrogate(tiny_checkpoint)
    x = torch.tensor(np.stack([a.positions / 10.0 for a in ase.io.read(xyz, ":")]))
    with torch.no_grad():
        _, per_node = energy(x, torch.tensor([PARAMS] * 5))
    assert np.allclose(saved["energies"], per_node.numpy(), rtol=1e-5, atol=1e-12)
    assert saved["forces"].shape == (5, 624, 3)
    assert "wrote" in capsys.readouterr().out

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    rc = cli.main(["predict", "--model", str(corrupt), "--input", str(xyz), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "corrupt.pt" in err and "\n" not in err
    rc = cli.main(["predict", "--model", "reference", "--input", str(xyz), "--params", "1,2", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err


class _CountingTrueEnergy(TrueEnergy):
    """The reference energy, counting its evaluations (to see that nothing was computed)."""

    calls = 0

    def energy_per_particle(self, positions, params, velocities=None):
        type(self).calls += 1
        return super().energy_per_particle(positions, params, velocities)


def test_output_path_is_checked_before_computing(xyz, tmp_path):
    from cgsurrogate.core.errors import CGSurrogateError

    model = _CountingTrueEnergy()
    folder = tmp_path / "existing"
    folder.mkdir()
    a_file = tmp_path / "file.npz"
    a_file.write_bytes(b"keep")
    original = xyz.read_bytes()
    cases = [(folder, "is a folder"), (a_file / "sub" / "x.npz", "file.npz is a file, not a folder"),
             (xyz, "is the input file"), (tmp_path / "out.csv", "must end in")]
    for out, message in cases:
        with pytest.raises(CGSurrogateError, match=message) as err:
            predict(model, xyz, out, progress=False)
        assert str(out) in str(err.value) and "\n" not in str(err.value)
    assert _CountingTrueEnergy.calls == 0
    assert xyz.read_bytes() == original and a_file.read_bytes() == b"keep"


def test_outputs_are_0644_and_unwritable_outputs_name_the_target(xyz, tmp_path):
    import os
    import stat

    from cgsurrogate.core.errors import CGSurrogateError

    old = os.umask(0o022)
    try:
        for name in ("pred.npz", "pred.xyz"):
            predict("reference", xyz, tmp_path / name, progress=False)
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.xyz", "pred.npz", "pred.xyz"]  # no temporaries
    target = Path("/proc/cgsurrogate-test/pred.npz")  # a folder nobody can create, root included
    with pytest.raises(CGSurrogateError) as err:
        predict("reference", xyz, target, progress=False)
    assert str(target) in str(err.value) and ".tmp" not in str(err.value)


def test_library_api_refuses_nan_and_wrong_strength_counts(xyz):
    """Issue #7: clear errors from the library, not NaN energies or an IndexError."""
    from cgsurrogate.core.errors import CGSurrogateError

    with pytest.raises(CGSurrogateError, match=r"need 5 strength parameters .*got 4"):
        predict("reference", xyz, params=(30, 30, 30, 30), progress=False)
    f = TrueEnergy()
    x = torch.as_tensor(f.topology.positions).clone()
    x[3, 1] = float("nan")
    with pytest.raises(CGSurrogateError, match="NaN"):
        f(x, torch.tensor(PARAMS))
    with pytest.raises(CGSurrogateError, match="params have shape"):
        f(torch.as_tensor(f.topology.positions), torch.tensor(PARAMS[:4]))


def test_reference_forces_equal_openmms_own_forces(xyz):
    """predict's forces against an independent implementation: OpenMM's native bonds and angles."""
    import openmm
    from openmm import unit

    from cgsurrogate.simulate.openmm_system import build_microtubule_system

    res = predict("reference", xyz, forces=True, progress=False)
    system, info = build_microtubule_system(np.array(PARAMS))
    ctx = openmm.Context(system, openmm.VerletIntegrator(1.0), openmm.Platform.getPlatformByName("Reference"))
    groups = sum(1 << g for g in info.internal_groups)
    for i in range(len(res["total"])):
        ctx.setPositions(res["positions"][i])
        st = ctx.getState(getEnergy=True, getForces=True, groups=groups)
        f = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        assert np.isclose(res["total"][i], e, rtol=1e-9)
        assert np.allclose(res["forces"][i], f, rtol=1e-6, atol=1e-7 * np.abs(f).max())


def test_surrogate_forces_are_minus_finite_differences_of_its_energy(tiny_checkpoint, xyz):
    res = predict(tiny_checkpoint, xyz, forces=True, dtype=torch.float64, progress=False)
    energy = load_surrogate(tiny_checkpoint, dtype=torch.float64)
    x = torch.tensor(res["positions"][1:2])
    p = torch.tensor(res["params"][1:2])
    h = 1e-6  # nm; near the clamped rings the inputs are scaled by 1/std ~ 1e3 /nm
    fmax = np.abs(res["forces"][1, 26:]).max()
    rng = np.random.default_rng(5)
    with torch.no_grad():
        for node, d in zip(rng.integers(26, 624, 6), rng.integers(0, 3, 6)):
            xp, xm = x.clone(), x.clone()
            xp[0, node, d] += h
            xm[0, node, d] -= h
            fd = float(energy(xp, p)[0] - energy(xm, p)[0]) / (2 * h)
            assert abs(-fd - res["forces"][1, node, d]) <= 1e-5 * fmax, (node, d)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: predict(device='cuda') needs one")
def test_predict_on_cuda_matches_cpu(tiny_checkpoint, xyz):
    cpu = predict(tiny_checkpoint, xyz, forces=True, dtype=torch.float64, progress=False)
    gpu = predict(tiny_checkpoint, xyz, forces=True, dtype=torch.float64, device="cuda", progress=False)
    assert np.allclose(gpu["energies"], cpu["energies"], rtol=1e-9, atol=1e-12)
    assert np.allclose(gpu["forces"], cpu["forces"], rtol=1e-7, atol=1e-9)


def test_predict_refuses_cuda_without_cuda(xyz):
    from cgsurrogate.core.errors import CGSurrogateError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so the error for a missing CUDA device cannot occur here")
    with pytest.raises(CGSurrogateError, match="CUDA is not available"):
        predict("reference", xyz, device="cuda", progress=False)
