"""An EGHN energy-head checkpoint used like any surrogate: load_surrogate, ASE, OpenMM, predict.

The model is trained through ``cli.py eghn-train --task microtubule`` for two tiny epochs on the
``tiny_dataset`` fixture; the checks are on the mechanics (forces = -gradient, reproducible
save/load, E(3) invariance, clear errors), not on accuracy.
"""
import numpy as np
import pytest
import torch

from cgsurrogate.surrogate.equivariant.energy_head import EGHNMicrotubuleEnergy, save_energy_checkpoint
from cgsurrogate.surrogate.interfaces.energy_function import energy_and_forces, load_surrogate
from cgsurrogate.surrogate.equivariant.testing import random_orthogonal

PARAMS = (30.0, 9.0, 18.0, 48.0, 3.0)


@pytest.fixture(autouse=True)
def one_thread():
    """Single small graphs: a second torch thread only adds contention (on a loaded 2-core machine
    it makes each evaluation ~100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def eghn_checkpoint(tiny_dataset, tmp_path_factory):
    """``best.pt`` of an EGHN energy head trained for 2 epochs of 1 batch of 2 frames (a few seconds)."""
    from cgsurrogate import cli

    out = tmp_path_factory.mktemp("eghn_energy")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = cli.main(["eghn-train", "--task", "microtubule", "--data", str(tiny_dataset), "--epochs", "2",
                       "--batches-per-epoch", "1", "--batch-size", "2", "--hidden", "8", "--clusters", "4",
                       "--max-val-samples", "2", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0 and (out / "best.pt").is_file()
    return out / "best.pt"


@pytest.fixture(scope="module")
def eghn64(eghn_checkpoint):
    return load_surrogate(eghn_checkpoint, dtype=torch.float64)


def _configuration(topology, seed=0, scale=0.05, batch=1):
    g = torch.Generator().manual_seed(seed)
    pos0 = torch.as_tensor(topology.positions, dtype=torch.float64)
    pos = pos0 + scale * torch.randn(batch, *pos0.shape, generator=g, dtype=torch.float64)
    vel = 0.1 * torch.randn(batch, *pos0.shape, generator=g, dtype=torch.float64)
    return pos, vel, torch.tensor([PARAMS] * batch, dtype=torch.float64)


def test_checkpoint_is_a_surrogate_checkpoint(eghn_checkpoint, eghn64):
    from cgsurrogate.surrogate.checkpoint import FORMAT_NAME, load_checkpoint

    raw = torch.load(eghn_checkpoint, map_location="cpu", weights_only=True)
    assert raw["format"] == FORMAT_NAME and raw["kind"] == "eghn-energy"
    assert raw["payload"]["model_name"] == "eghn-energy" and raw["payload"]["hierarchy"] is None
    ck = load_checkpoint(eghn_checkpoint)
    assert ck["model_config"]["eghn"]["head"] == "energy" and ck["extra"]["bonds"].shape[1] == 2
    assert ck["dataset"]["train_ids"] and ck["dataset"]["val_ids"] and "best_val_nmse" in ck["metrics"]
    assert isinstance(eghn64, EGHNMicrotubuleEnergy) and eghn64.num_nodes == 624
    assert eghn64.info["model_name"] == "eghn-energy" and not eghn64.training


def test_forces_are_minus_the_finite_difference_gradient(eghn64, topology):
    pos, vel, p = _configuration(topology, seed=1)
    total, per_node, forces = energy_and_forces(eghn64, pos, p, velocities=vel)
    assert per_node.shape == (1, 624) and forces.shape == (1, 624, 3)
    assert torch.allclose(total, per_node.sum(1))
    rng = np.random.default_rng(0)
    h = 1e-5  # nm
    fmax = float(forces.abs().max())
    assert fmax > 0
    for i, k in zip(rng.choice(np.arange(26, 624), 6, replace=False), rng.integers(3, size=6)):
        plus, minus = pos.clone(), pos.clone()
        plus[0, i, k] += h
        minus[0, i, k] -= h
        with torch.no_grad():
            fd = -(eghn64(plus, p, vel)[0] - eghn64(minus, p, vel)[0]) / (2 * h)
        assert abs(float(fd) - float(forces[0, i, k])) <= 1e-4 * fmax + 1e-9, (i, k, float(fd), float(forces[0, i, k]))


def test_save_load_gives_identical_predictions(eghn_checkpoint, topology, tmp_path):
    pos, vel, p = _configuration(topology, seed=2, batch=2)
    a = load_surrogate(eghn_checkpoint)
    b = load_surrogate(eghn_checkpoint)
    again = save_energy_checkpoint(tmp_path / "again.pt", a, dataset_info=a.info["dataset"],
                                   metrics=a.info["metrics"])
    c = load_surrogate(again)
    with torch.no_grad():
        ta, pa = a(pos, p, vel)
        tb, pb = b(pos, p, vel)
        tc, pc = c(pos, p, vel)
    assert pa.shape == (2, 624) and pa.dtype == torch.float64
    assert torch.equal(pa, pb) and torch.equal(pa, pc) and torch.equal(ta, tc)
    # unbatched input and parameters given once for the whole batch
    with torch.no_grad():
        t0, p0 = a(pos[0], p[0], vel[0])
        t1, _ = a(pos, p[:1], vel)
    assert p0.shape == (624,) and torch.equal(p0, pa[0]) and torch.equal(t1, ta)


def test_ase_calculator_per_atom_energies_sum_to_the_energy(eghn_checkpoint):
    from cgsurrogate.surrogate.interfaces.ase_calculator import KJMOL_TO_EV, SurrogateCalculator, microtubule_atoms

    atoms = microtubule_atoms(params=PARAMS)
    atoms.positions += np.random.default_rng(0).normal(scale=0.3, size=atoms.positions.shape)
    atoms.calc = SurrogateCalculator(eghn_checkpoint)
    e = atoms.get_potential_energy()
    per_atom = atoms.get_potential_energies()
    forces = atoms.get_forces()
    assert per_atom.shape == (624,) and forces.shape == (624, 3) and np.all(np.isfinite(forces))
    assert abs(per_atom.sum() - e) <= 1e-9 * max(1.0, abs(e))
    energy = load_surrogate(eghn_checkpoint)
    with torch.no_grad():
        total, _ = energy(torch.as_tensor(atoms.positions / 10.0)[None], torch.tensor([PARAMS]))
    assert abs(float(total) * KJMOL_TO_EV - e) <= 1e-9 * max(1.0, abs(e))


def test_openmm_force_and_predict_accept_it(eghn64, topology, tmp_path):
    import ase.io
    import openmm
    from openmm import unit

    from cgsurrogate.surrogate.interfaces.ase_calculator import microtubule_atoms
    from cgsurrogate.surrogate.interfaces.openmm_force import surrogate_system
    from cgsurrogate.surrogate.interfaces.prediction import predict

    pos, _, p = _configuration(topology, seed=3, batch=2)
    total, _, forces = energy_and_forces(eghn64, pos, p)
    ctx = openmm.Context(surrogate_system(eghn64, params=PARAMS, clamp=False), openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos[0].numpy())
    st = ctx.getState(getEnergy=True, getForces=True)
    assert abs(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) - float(total[0])) < 1e-9
    f = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    assert np.allclose(f, forces[0].numpy(), atol=1e-9)

    frames = []
    for x in pos.numpy():
        a = microtubule_atoms(params=PARAMS, clamp=False)
        a.positions = x * 10.0
        frames.append(a)
    ase.io.write(tmp_path / "in.xyz", frames, format="extxyz")
    res = predict(eghn64, tmp_path / "in.xyz", tmp_path / "out.npz", forces=True, progress=False)
    assert np.allclose(res["total"], total.numpy(), rtol=1e-10, atol=1e-9)
    assert np.allclose(res["forces"], forces.numpy(), atol=1e-9)


def test_energy_is_invariant_under_rotation_and_translation(eghn64, topology):
    pos, vel, p = _configuration(topology, seed=4)
    R = random_orthogonal(np.random.default_rng(5), reflect=False)
    shift = torch.tensor([3.0, -7.5, 12.0], dtype=torch.float64)
    with torch.no_grad():
        t1, e1 = eghn64(pos, p, vel)
        t2, e2 = eghn64(pos @ R.T + shift, p, vel @ R.T)
    assert abs(float(t2 - t1)) <= 1e-5 * max(1.0, abs(float(t1)))
    assert float((e2 - e1).abs().max()) <= 1e-5


def test_wrong_particle_count_and_bad_files_give_clear_errors(eghn64, eghn_checkpoint, topology, tmp_path):
    pos, vel, p = _configuration(topology)
    with pytest.raises(ValueError, match=r"positions have shape \(1, 600, 3\), expected \[B, 624, 3\]"):
        eghn64(pos[:, :600], p)
    with pytest.raises(ValueError, match="params have shape"):
        eghn64(pos, p[:, :4])
    with pytest.raises(ValueError, match="velocities have shape"):
        eghn64(pos, p, vel[:, :600])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: corrupt or not a cgsurrogate file"):
        load_surrogate(junk)
    ck = torch.load(eghn_checkpoint, map_location="cpu", weights_only=True)
    del ck["payload"]["model_config"]["eghn"]
    torch.save(ck, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match=r"broken.pt: EGHN energy checkpoint: model_config lacks") as err:
        load_surrogate(tmp_path / "broken.pt")
    assert "\n" not in str(err.value)
