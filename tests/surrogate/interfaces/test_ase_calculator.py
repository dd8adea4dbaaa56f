"""The ASE calculator: units at the boundary, per-atom energies, MD and optimisers."""
import numpy as np
import pytest
import torch
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS, FIRE

from cgsurrogate.simulate.energy import TrueEnergy
from cgsurrogate.surrogate.interfaces.ase_calculator import KJMOL_TO_EV, SurrogateCalculator, microtubule_atoms
from cgsurrogate.surrogate.interfaces.energy_function import load_surrogate

PARAMS = (3.0, 9.0, 18.0, 39.0, 57.0)


def _perturbed(params=PARAMS, scale=0.3, seed=0):
    atoms = microtubule_atoms(params=params)
    rng = np.random.default_rng(seed)
    d = rng.normal(scale=scale, size=atoms.positions.shape)  # Angstrom
    d[:26] = 0.0
    atoms.positions += d
    return atoms


@pytest.fixture(autouse=True)
def one_thread():
    """MD and optimisers evaluate one small configuration at a time: a second torch thread
    only adds contention (and stalls badly on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def surrogate64(tiny_checkpoint):
    return load_surrogate(tiny_checkpoint, dtype=torch.float64)


def test_atoms_helper_builds_the_microtubule(topology):
    atoms = microtubule_atoms()
    assert len(atoms) == 624
    assert np.allclose(atoms.positions, topology.positions * 10.0)  # Angstrom
    assert np.allclose(atoms.get_masses(), 50e-18 * 6.02214076e23)  # 50 ag in amu
    assert sorted(atoms.constraints[0].get_indices().tolist()) == list(range(26))
    with pytest.raises(ValueError, match="5 strength parameters"):
        microtubule_atoms(params=(1, 2))


def test_energy_and_forces_in_ev_and_angstrom_match_reference():
    atoms = _perturbed()
    atoms.calc = SurrogateCalculator(TrueEnergy())
    f = TrueEnergy()
    x = torch.tensor(atoms.positions / 10.0)
    total, per_node = f(x, torch.tensor(PARAMS, dtype=torch.float64))
    assert np.isclose(atoms.get_potential_energy(), float(total) * KJMOL_TO_EV, rtol=1e-12)
    assert np.isclose(KJMOL_TO_EV, 1.0 / 96.485, rtol=1e-4)  # 1 eV = 96.485 kJ/mol
    # forces are minus the finite-difference gradient of the calculator's own energy (eV/A)
    forces = atoms.get_forces(apply_constraint=False)
    h = 1e-4
    for i, d in [(30, 0), (300, 1), (623, 2)]:
        a = atoms.copy()
        a.calc = atoms.calc
        p = a.positions.copy()
        p[i, d] += h
        a.positions = p
        ep = a.get_potential_energy()
        p[i, d] -= 2 * h
        a.positions = p
        em = a.get_potential_energy()
        assert np.isclose(forces[i, d], -(ep - em) / (2 * h), rtol=1e-6, atol=1e-10)


def test_per_atom_energies_sum_to_energy_and_free_energy(surrogate64):
    atoms = _perturbed()
    atoms.calc = SurrogateCalculator(surrogate64)
    e = atoms.get_potential_energy()
    per_atom = atoms.get_potential_energies()
    assert per_atom.shape == (624,)
    assert np.isclose(per_atom.sum(), e, rtol=1e-12, atol=0)
    assert atoms.get_potential_energy(force_consistent=True) == e
    assert set(SurrogateCalculator.implemented_properties) == {"energy", "free_energy", "energies", "forces"}


def test_checkpoint_path_params_from_info_and_errors(tiny_checkpoint, surrogate64):
    atoms = _perturbed()
    atoms.calc = SurrogateCalculator(str(tiny_checkpoint))  # float32 network from a path
    e32 = atoms.get_potential_energy()
    atoms.calc = SurrogateCalculator(surrogate64, params=PARAMS)
    assert np.isclose(e32, atoms.get_potential_energy(), rtol=1e-4)
    bare = _perturbed()
    del bare.info["params"]
    bare.calc = SurrogateCalculator(surrogate64)
    with pytest.raises(ValueError, match="no strength parameters"):
        bare.get_potential_energy()
    bad = _perturbed()
    bad.positions[5, 1] = np.nan
    bad.calc = SurrogateCalculator(surrogate64)
    with pytest.raises(ValueError, match="NaN"):
        bad.get_forces()
    small = microtubule_atoms()[:600]
    small.calc = SurrogateCalculator(surrogate64)
    with pytest.raises(ValueError, match="624"):
        small.get_potential_energy()


def test_nve_conserves_total_energy_over_1000_steps(tiny_dataset, surrogate64):
    """VelocityVerlet, 9 ps step (half the paper's 18 ps), 1000 steps from a dataset frame,
    thermal velocities at the protocol's 0.01 K. Bound: the total energy never moves by more
    than 1 % of the potential-energy range the trajectory explores."""
    from cgsurrogate.data.microtubule import MicrotubuleDataset

    ds = MicrotubuleDataset(tiny_dataset)
    x, _ = ds[len(ds) - 1]
    atoms = microtubule_atoms(params=x[0, 6:11].double().numpy())
    atoms.positions = x[:, :3].double().numpy() * 10.0
    atoms.calc = SurrogateCalculator(surrogate64)
    MaxwellBoltzmannDistribution(atoms, temperature_K=0.01, rng=np.random.default_rng(0))
    atoms.set_momenta(atoms.get_momenta() * (np.arange(624) >= 26)[:, None])
    dyn = VelocityVerlet(atoms, timestep=9.0 * 1000 * units.fs)
    etot, epot = [], []

    def log():
        epot.append(atoms.get_potential_energy())
        etot.append(epot[-1] + atoms.get_kinetic_energy())

    dyn.attach(log, interval=5)
    dyn.run(1000)
    etot, epot = np.array(etot), np.array(epot)
    assert len(etot) == 201
    moved = np.abs(atoms.positions - x[:, :3].double().numpy() * 10.0).max()
    assert moved > 0.05  # Angstrom: the particles really moved
    assert np.ptp(epot) > 0
    assert np.abs(etot - etot[0]).max() < 1e-2 * np.ptp(epot)


def test_langevin_bfgs_and_fire_run_on_the_calculator(surrogate64):
    from threadpoolctl import threadpool_limits

    atoms = _perturbed(scale=0.2)
    atoms.calc = SurrogateCalculator(surrogate64)
    dyn = Langevin(atoms, timestep=18.0 * 1000 * units.fs, temperature_K=0.01, friction=2e-5 / (1000 * units.fs),
                   fixcm=False, rng=np.random.default_rng(1))
    dyn.run(20)
    assert np.isfinite(atoms.get_forces()).all()
    assert np.allclose(atoms.positions[:26], microtubule_atoms().positions[:26])  # clamped rings stay

    # FIRE on the reference force field, whose minimum (zero energy) is known ...
    atoms = _perturbed(scale=0.3)
    atoms.calc = SurrogateCalculator(TrueEnergy())
    e0 = atoms.get_potential_energy()
    FIRE(atoms, logfile=None).run(fmax=1e-12, steps=100)
    assert atoms.get_potential_energy() < 0.1 * e0
    # ... and on the surrogate, whose energy it lowers too.
    atoms = _perturbed(scale=0.2)
    atoms.calc = SurrogateCalculator(surrogate64)
    e0 = atoms.get_potential_energy()
    FIRE(atoms, logfile=None).run(fmax=1e-12, steps=30)
    assert atoms.get_potential_energy() < e0
    # BFGS diagonalises a 1872 x 1872 Hessian every step: two steps, BLAS on one thread.
    for model in (TrueEnergy(), surrogate64):
        atoms = _perturbed(scale=0.3)
        atoms.calc = SurrogateCalculator(model)
        e0 = atoms.get_potential_energy()
        with threadpool_limits(1):
            BFGS(atoms, logfile=None).run(fmax=1e-12, steps=2)
        assert atoms.get_potential_energy() < e0, type(model).__name__


def test_changed_strengths_recompute_instead_of_returning_the_cached_energy():
    """Strengths in atoms.info, or set on the calculator, are part of the state ASE compares."""
    atoms = _perturbed(params=PARAMS)
    atoms.calc = SurrogateCalculator(TrueEnergy())
    x = torch.tensor(atoms.positions / 10.0)

    def reference(p):
        total, _ = TrueEnergy()(x, torch.tensor(p, dtype=torch.float64))
        return float(total) * KJMOL_TO_EV

    e1 = atoms.get_potential_energy()
    f1 = atoms.get_forces()
    assert np.isclose(e1, reference(PARAMS), rtol=1e-12)
    other = (57.0, 3.0, 30.0, 9.0, 18.0)
    atoms.info["params"] = np.array(other)
    e2 = atoms.get_potential_energy()
    assert np.isclose(e2, reference(other), rtol=1e-12) and not np.isclose(e1, e2, rtol=1e-3)
    assert not np.allclose(atoms.get_forces(), f1)
    third = (9.0, 9.0, 9.0, 9.0, 9.0)
    atoms.calc.set(params=third)  # a calculator parameter wins over atoms.info
    assert np.isclose(atoms.get_potential_energy(), reference(third), rtol=1e-12)
    atoms.calc.set(params=None)
    assert np.isclose(atoms.get_potential_energy(), reference(other), rtol=1e-12)


def test_velocity_change_recomputes_with_use_velocities(surrogate64):
    atoms = _perturbed()
    calc = SurrogateCalculator(surrogate64, use_velocities=True)
    atoms.calc = calc
    e0 = atoms.get_potential_energy()
    v = np.zeros((624, 3))
    v[26:] = np.random.default_rng(2).normal(scale=1e-2, size=(598, 3))  # nm/ps
    atoms.set_velocities(v * 10.0 / units.fs / 1000.0)
    e1 = atoms.get_potential_energy()
    with torch.no_grad():
        ref = surrogate64(torch.tensor(atoms.positions / 10.0)[None], torch.tensor([PARAMS]),
                          velocities=torch.tensor(v)[None])[0]
    assert np.isclose(e1, float(ref) * KJMOL_TO_EV, rtol=1e-10) and e1 != e0


def test_wrong_strength_count_and_unavailable_device_are_clear_errors():
    from cgsurrogate.core.errors import CGSurrogateError

    with pytest.raises(CGSurrogateError, match=r"need 5 strength parameters .*got 4"):
        SurrogateCalculator(TrueEnergy(), params=(1.0, 2.0, 3.0, 4.0))
    atoms = _perturbed()
    atoms.info["params"] = np.array([1.0, 2.0, 3.0, 4.0])
    atoms.calc = SurrogateCalculator(TrueEnergy())
    with pytest.raises(CGSurrogateError, match=r"atoms.info\['params'\]: need 5 strength parameters"):
        atoms.get_potential_energy()
    if not torch.cuda.is_available():
        with pytest.raises(CGSurrogateError, match="CUDA is not available"):
            SurrogateCalculator(TrueEnergy(), device="cuda")
    with pytest.raises(CGSurrogateError, match="not a torch device"):
        SurrogateCalculator(TrueEnergy(), device="gpu0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the calculator's device= path needs one")
def test_calculator_on_cuda_matches_cpu(tiny_checkpoint):
    atoms = _perturbed()
    atoms.calc = SurrogateCalculator(str(tiny_checkpoint), device="cuda")
    assert atoms.calc.device.type == "cuda"
    e_gpu, f_gpu = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SurrogateCalculator(str(tiny_checkpoint))
    assert np.isclose(e_gpu, atoms.get_potential_energy(), rtol=1e-5)
    assert np.allclose(f_gpu[26:], atoms.get_forces()[26:], rtol=1e-3, atol=1e-4 * np.abs(f_gpu).max())
