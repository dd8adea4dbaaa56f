"""Prediction API: per-particle energies (and forces) of configurations read from a file.

Inputs
------
* Extended XYZ (``.xyz``, ``.extxyz``), read with ``ase.io``: positions in Angstrom;
  the strength parameters of each frame from ``atoms.info["params"]`` (5 numbers, zJ)
  or the keys ``LatAssoc`` ... ``QuadAngles`` (as ``cli.py relax`` writes them) unless
  given explicitly; velocities from the frame's momenta when present.
* Any trajectory MDAnalysis reads (PDB, GRO, DCD + topology, XTC + topology, ...):
  positions in Angstrom, velocities (Angstrom/ps) when the format carries them. The
  strength parameters must be given.

Outputs (chosen by the output file's suffix, written atomically)
----------------------------------------------------------------
* ``.npz``: ``energies [F, N]`` kJ/mol, ``total [F]`` kJ/mol, ``params [F, 5]`` zJ,
  ``forces [F, N, 3]`` kJ/mol/nm (with ``forces=True``), ``positions [F, N, 3]`` nm and
  string entries ``units_*`` and ``model``; loads with ``np.load(allow_pickle=False)``.
* ``.xyz`` / ``.extxyz``: extended XYZ in ASE's units (Angstrom, eV): per-atom
  ``energies`` (and ``forces``), the frame's ``energy`` and ``params`` in its info.
  ASE writes per-atom columns with 8 decimals (1e-8 eV resolution); use ``.npz`` for
  full precision.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

#: Suffixes read with ase.io as extended XYZ.
XYZ_SUFFIXES = (".xyz", ".extxyz")
_NM_PER_ANGSTROM = 0.1


def read_configurations(path, topology=None, params=None, use_velocities: bool = True):
    """Iterate over the configurations of a file.

    Parameters
    ----------
    path : str or Path
        Extended XYZ file, or a trajectory/coordinate file MDAnalysis reads.
    topology : str or Path, optional
        Topology file for MDAnalysis when ``path`` holds only coordinates (DCD, XTC, ...).
    params : sequence of 5 floats, optional
        Strength parameters (zJ) for every frame; overrides ``atoms.info["params"]``.
    use_velocities : bool
        Yield velocities when the file has them (otherwise ``None``).

    Yields
    ------
    positions : ndarray [N, 3] float64, nm
    params : ndarray [5] float64 (zJ) or None when neither the file nor the caller gives them
    velocities : ndarray [N, 3] float64 nm/ps, or None
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file")
    fixed = None if params is None else np.asarray(params, dtype=np.float64).reshape(-1)
    if path.suffix.lower() in XYZ_SUFFIXES and topology is None:
        yield from _read_xyz(path, fixed, use_velocities)
    else:
        yield from _read_mdanalysis(path, topology, fixed, use_velocities)


def count_frames(path, topology=None) -> int | None:
    """Number of frames in the file (for the progress bar), or ``None`` if unknown cheaply."""
    path = Path(os.fspath(path))
    try:
        if path.suffix.lower() in XYZ_SUFFIXES and topology is None:
            n = 0
            with open(path, "rb") as fh:
                first = fh.readline()
                try:
                    natoms = int(first.split()[0])
                except (ValueError, IndexError):
                    return None
                fh.seek(0)
                lines = sum(1 for _ in fh)
            n = lines // (natoms + 2)
            return n
        import MDAnalysis as mda

        u = mda.Universe(str(topology), str(path)) if topology else mda.Universe(str(path))
        return len(u.trajectory)
    except Exception:  # only a progress-bar hint
        return None


def _read_xyz(path: Path, fixed, use_velocities):
    import ase.io
    from ase import units

    try:
        frames = ase.io.iread(str(path), index=":", format="extxyz")
        for atoms in frames:
            pos = atoms.get_positions() * _NM_PER_ANGSTROM
            p = fixed if fixed is not None else _info_params(atoms.info)
            vel = None
            if use_velocities and atoms.has("momenta"):
                vel = atoms.get_velocities() * _NM_PER_ANGSTROM * (1000.0 * units.fs)
            yield pos, p, vel
    except Exception as exc:  # ase raises XYZError (an OSError), ValueError, IndexError, ...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: not a readable extended XYZ file ({msg})") from None


def _info_params(info: dict):
    """Strengths from an XYZ frame's info: ``params`` (5 numbers) or one key per name."""
    from cgsurrogate.simulate.microtubule import PARAM_NAMES

    if "params" in info:
        return np.asarray(info["params"], dtype=np.float64).reshape(-1)
    if all(n in info for n in PARAM_NAMES):
        return np.array([float(info[n]) for n in PARAM_NAMES])
    return None


def _read_mdanalysis(path: Path, topology, fixed, use_velocities):
    import warnings

    import MDAnalysis as mda

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            u = mda.Universe(str(topology), str(path)) if topology else mda.Universe(str(path))
    except Exception as exc:  # MDAnalysis raises many types for unreadable files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: MDAnalysis cannot read it ({msg})") from None
    for ts in u.trajectory:
        pos = np.asarray(ts.positions, dtype=np.float64) * _NM_PER_ANGSTROM
        vel = None
        if use_velocities and ts.has_velocities:
            vel = np.asarray(ts.velocities, dtype=np.float64) * _NM_PER_ANGSTROM
        yield pos, fixed, vel


def _resolve_model(model, device=None, dtype=None):
    if isinstance(model, torch.nn.Module):
        return model.eval()
    if isinstance(model, str) and model == "reference":
        from cgsurrogate.simulate.energy import TrueEnergy

        return TrueEnergy().to(device or "cpu").eval()
    from cgsurrogate.surrogate.interfaces.energy_function import load_surrogate

    return load_surrogate(model, device=device, dtype=dtype or torch.float32)


def predict(model, input_path, output_path=None, *, params=None, topology=None, forces: bool = False,
            batch_size: int = 16, use_velocities: bool = True, device=None, dtype=None,
            progress: bool = True) -> dict:
    """Per-particle energies (and forces) of every configuration in a file.

    Parameters
    ----------
    model : str, Path or nn.Module
        A checkpoint path, ``"reference"`` (the true microtubule force field,
        ``cgsurrogate.simulate.energy.TrueEnergy``), or a module with ``TrueEnergy``'s signature.
    input_path : str or Path
        Extended XYZ, or any file MDAnalysis reads (see :func:`read_configurations`).
    output_path : str or Path, optional
        ``.npz`` or ``.xyz``/``.extxyz`` file to write (atomically); nothing is written
        when omitted.
    params : sequence of 5 floats, optional
        Strength parameters (zJ); required unless every XYZ frame has ``info["params"]``.
    topology : str or Path, optional
        MDAnalysis topology file for coordinate-only trajectories.
    forces : bool
        Also compute forces (kJ/mol/nm) by autograd.
    batch_size : int
        Frames per model call.
    use_velocities : bool
        Pass the file's velocities to models that take them (``SurrogateEnergy``, ``EGHNMicrotubuleEnergy``);
        zero velocities otherwise.
    device, dtype : optional
        Where and in which precision a checkpoint runs (default CPU, float32).
    progress : bool
        Show a tqdm progress bar over frames.

    Returns
    -------
    dict
        ``energies [F, N]``, ``total [F]`` (kJ/mol), ``params [F, 5]`` (zJ),
        ``positions [F, N, 3]`` (nm) and, with ``forces``, ``forces [F, N, 3]`` (kJ/mol/nm);
        float64 numpy arrays.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing or unreadable input, a frame with the wrong number of particles or
        non-finite coordinates, missing parameters, an unsupported output suffix.
    """
    from cgsurrogate.surrogate.interfaces.energy_function import SurrogateEnergy

    input_path = Path(os.fspath(input_path))
    if not input_path.is_file():
        raise FileNotFoundError(f"{input_path}: no such input file")
    if topology is not None and not Path(os.fspath(topology)).is_file():
        raise FileNotFoundError(f"{topology}: no such topology file")
    if output_path is not None:
        output_path = Path(os.fspath(output_path))
        if output_path.suffix.lower() not in (".npz",) + XYZ_SUFFIXES:
            raise ValueError(f"{output_path}: output must end in .npz, .xyz or .extxyz")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if params is not None:
        params = np.asarray(params, dtype=np.float64).reshape(-1)
        if params.shape != (5,):
            raise ValueError(f"need 5 strength parameters, got {params.size}")
    energy = _resolve_model(model, device=device, dtype=dtype)
    takes_velocities = use_velocities and (isinstance(energy, SurrogateEnergy)
                                           or bool(getattr(energy, "takes_velocities", False)))
    n_expected = getattr(energy, "num_nodes", None)
    buffers = [b for b in list(energy.buffers()) + list(energy.parameters()) if b.dtype.is_floating_point]
    run_dtype = torch.float64  # positions; a SurrogateEnergy runs its network in its own dtype
    run_device = buffers[0].device if buffers else torch.device("cpu")

    out = {"energies": [], "total": [], "params": [], "positions": [], "forces": []}
    total_frames = count_frames(input_path, topology) if progress else None
    bar = tqdm(total=total_frames, desc=f"predict {input_path.name}", unit="frame", disable=not progress)
    batch = []

    def flush():
        if not batch:
            return
        x = torch.as_tensor(np.stack([b[0] for b in batch]), dtype=run_dtype, device=run_device)
        p = torch.as_tensor(np.stack([b[1] for b in batch]), dtype=run_dtype, device=run_device)
        kwargs = {}
        if takes_velocities and any(b[2] is not None for b in batch):
            v = np.stack([b[2] if b[2] is not None else np.zeros_like(b[0]) for b in batch])
            kwargs["velocities"] = torch.as_tensor(v, dtype=run_dtype, device=run_device)
        if forces:
            xg = x.detach().requires_grad_(True)
            with torch.enable_grad():
                total, per_node = energy(xg, p, **kwargs)
                (grad,) = torch.autograd.grad(total.sum(), xg)
            out["forces"].append(-grad.detach().cpu().double().numpy())
        else:
            with torch.inference_mode():
                total, per_node = energy(x, p, **kwargs)
        out["energies"].append(per_node.detach().cpu().double().numpy())
        out["total"].append(per_node.detach().cpu().double().numpy().sum(-1))
        out["params"].append(p.cpu().double().numpy())
        out["positions"].append(np.stack([b[0] for b in batch]))
        bar.update(len(batch))
        batch.clear()

    try:
        for i, (pos, p, vel) in enumerate(read_configurations(input_path, topology, params, use_velocities)):
            if n_expected is not None and pos.shape[0] != n_expected:
                raise ValueError(
                    f"{input_path}: frame {i} has {pos.shape[0]} particles, the model expects {n_expected}"
                )
            if not np.all(np.isfinite(pos)):
                raise ValueError(f"{input_path}: frame {i} has NaN or infinite coordinates")
            if p is None:
                raise ValueError(
                    f"{input_path}: frame {i} has no strength parameters; give params (--params) "
                    "or store info['params'] in the extended XYZ"
                )
            if p.shape != (5,):
                raise ValueError(f"{input_path}: frame {i} has {p.size} strength parameters, need 5")
            if batch and batch[0][0].shape != pos.shape:
                flush()
            batch.append((pos, p, vel))
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        bar.close()
    if not out["energies"]:
        raise ValueError(f"{input_path}: no configurations in the file")
    result = {k: np.concatenate(v) for k, v in out.items() if v}
    if output_path is not None:
        model_name = str(model) if not isinstance(model, torch.nn.Module) else type(model).__name__
        write_predictions(output_path, result, model_name=model_name)
    return result


def write_predictions(path, result: dict, model_name: str = "") -> Path:
    """Write the output of :func:`predict` to ``.npz`` or extended XYZ, atomically.

    Parameters
    ----------
    path : str or Path
        Destination; its suffix picks the format (see the module docstring).
    result : dict
        ``energies [F, N]``, ``total [F]``, ``params [F, 5]``, ``positions [F, N, 3]``
        and optionally ``forces [F, N, 3]`` in kJ/mol, nm, kJ/mol/nm.
    model_name : str
        Stored as provenance.

    Returns
    -------
    Path
    """
    path = Path(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        if path.suffix.lower() == ".npz":
            arrays = {k: np.asarray(v) for k, v in result.items()}
            arrays.update(
                units_energies=np.array("kJ/mol"), units_total=np.array("kJ/mol"),
                units_forces=np.array("kJ/mol/nm"), units_positions=np.array("nm"),
                units_params=np.array("zJ/nm^2 (bonds), zJ/rad^2 (angles)"),
                model=np.array(model_name),
            )
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        else:
            _write_xyz(tmp, result)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _write_xyz(tmp: str, result: dict) -> None:
    import ase.io
    from ase import Atoms, units
    from ase.calculators.singlepoint import SinglePointCalculator

    ev = units.kJ / units.mol
    frames = []
    for f in range(len(result["total"])):
        atoms = Atoms(symbols=["X"] * result["positions"].shape[1], positions=result["positions"][f] * 10.0)
        atoms.info["params"] = result["params"][f]
        kw = {"energy": float(result["total"][f]) * ev, "energies": result["energies"][f] * ev}
        if "forces" in result:
            kw["forces"] = result["forces"][f] * ev / 10.0
        atoms.calc = SinglePointCalculator(atoms, **kw)
        frames.append(atoms)
    ase.io.write(tmp, frames, format="extxyz")
