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
