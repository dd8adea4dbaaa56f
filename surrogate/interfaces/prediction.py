"""Prediction API: per-particle energies (and forces) of configurations read from a file.

Inputs
------
* Extended XYZ (``.xyz``, ``.extxyz``), read with ``ase.io``: positions in Angstrom;
  the strength parameters of each frame from one info key per parameter name of the model's
  :class:`~cgsurrogate.core.system_spec.SystemSpec` (``LatAssoc=...``, as ``write_extxyz`` and
  ``cli.py relax`` write them) or ``atoms.info["params"]`` unless given explicitly; velocities
  from the frame's momenta, or its ``vel`` column (Angstrom/ps), when present.
* Any trajectory MDAnalysis reads (PDB, GRO, DCD + topology, XTC + topology, ...):
  positions in Angstrom, velocities (Angstrom/ps) when the format carries them. The
  strength parameters must be given.

Outputs (chosen by the output file's suffix, written atomically with mode 0644)
-------------------------------------------------------------------------------
* ``.npz``: ``energies [F, N]`` kJ/mol, ``total [F]`` kJ/mol, ``params [F, P]``,
  ``forces [F, N, 3]`` kJ/mol/nm (with ``forces=True``), ``positions [F, N, 3]`` nm and
  string entries ``units_*`` and ``model``; loads with ``np.load(allow_pickle=False)``.
* ``.xyz`` / ``.extxyz``: extended XYZ in ASE's units (Angstrom, eV) through the project's one
  writer, :func:`cgsurrogate.simulate.trajectory_io.write_extxyz` (11 significant digits).

The output path is checked before anything is computed: a folder, a path under a file, the
input file itself or another suffix is refused with a :class:`CGSurrogateError`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cgsurrogate.core.atomic import atomic_path
from cgsurrogate.core.errors import CGSurrogateError, InputFileError
from cgsurrogate.core.units import NM_IN_ANGSTROM, PS_IN_ASE_TIME

#: Suffixes read with ase.io as extended XYZ.
XYZ_SUFFIXES = (".xyz", ".extxyz")
#: Suffixes ``predict`` writes.
OUTPUT_SUFFIXES = (".npz",) + XYZ_SUFFIXES


def read_configurations(path, topology=None, params=None, use_velocities: bool = True, param_names=()):
    """Iterate over the configurations of a file.

    Parameters
    ----------
    path : str or Path
        Extended XYZ file, or a trajectory/coordinate file MDAnalysis reads.
    topology : str or Path, optional
        Topology file for MDAnalysis when ``path`` holds only coordinates (DCD, XTC, ...).
    params : sequence of P floats, optional
        Strength parameters for every frame; overrides what the file holds.
    use_velocities : bool
        Yield velocities when the file has them (otherwise ``None``).
    param_names : sequence of str
        Info keys of the parameters in an extended XYZ frame (the model's
        ``system_spec.param_names``); ``info["params"]`` is read too.

    Yields
    ------
    positions : ndarray [N, 3] float64, nm
    params : ndarray [P] float64 or None when neither the file nor the caller gives them
    velocities : ndarray [N, 3] float64 nm/ps, or None
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise InputFileError(f"{path}: no such input file")
    fixed = None if params is None else np.asarray(params, dtype=np.float64).reshape(-1)
    if path.suffix.lower() in XYZ_SUFFIXES and topology is None:
        yield from _read_xyz(path, fixed, use_velocities, tuple(param_names))
    else:
        yield from _read_mdanalysis(path, topology, fixed, use_velocities)


def count_frames(path, topology=None) -> int | None:
    """Number of frames in the file (for the progress bar), or ``None`` if unknown cheaply."""
    path = Path(os.fspath(path))
    try:
        if path.suffix.lower() in XYZ_SUFFIXES and topology is None:
            with open(path, "rb") as fh:
                try:
                    natoms = int(fh.readline().split()[0])
                except (ValueError, IndexError):
                    return None
                fh.seek(0)
                lines = sum(1 for _ in fh)
            return lines // (natoms + 2)
        import MDAnalysis as mda

        u = mda.Universe(str(topology), str(path)) if topology else mda.Universe(str(path))
        return len(u.trajectory)
    except Exception:  # only a progress-bar hint
        return None


def _read_xyz(path: Path, fixed, use_velocities, param_names):
    import ase.io

    try:
        for atoms in ase.io.iread(str(path), index=":", format="extxyz"):
            pos = atoms.get_positions() / NM_IN_ANGSTROM
            p = fixed if fixed is not None else _info_params(atoms.info, param_names)
            vel = None
            if use_velocities and atoms.has("momenta"):
                vel = atoms.get_velocities() / NM_IN_ANGSTROM * PS_IN_ASE_TIME
            elif use_velocities and "vel" in atoms.arrays:  # write_extxyz's column, Angstrom/ps
                vel = np.asarray(atoms.arrays["vel"], dtype=np.float64) / NM_IN_ANGSTROM
            yield pos, p, vel
    except Exception as exc:  # ase raises XYZError (an OSError), ValueError, IndexError, ...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"{path}: not a readable extended XYZ file ({msg})") from None


def _info_params(info: dict, param_names):
    """Strengths from an XYZ frame's info: one key per name, or ``params``."""
    if param_names and all(n in info for n in param_names):
        return np.array([float(info[n]) for n in param_names])
    if "params" in info:
        return np.asarray(info["params"], dtype=np.float64).reshape(-1)
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
        raise InputFileError(f"{path}: MDAnalysis cannot read it ({msg})") from None
    for ts in u.trajectory:
        pos = np.asarray(ts.positions, dtype=np.float64) / NM_IN_ANGSTROM
        vel = None
        if use_velocities and ts.has_velocities:
            vel = np.asarray(ts.velocities, dtype=np.float64) / NM_IN_ANGSTROM
        yield pos, fixed, vel


def check_output_path(output_path, *inputs) -> Path:
    """Refuse an output path before anything is computed.

    Parameters
    ----------
    output_path : str or Path
        Must end in ``.npz``, ``.xyz`` or ``.extxyz``; must not be a folder, lie under a file,
        sit in a folder that cannot be written, or be one of ``inputs``.
    *inputs : str or Path or None
        The files read (input trajectory, topology); writing over them is refused.

    Returns
    -------
    Path

    Raises
    ------
    CGSurrogateError
        One line naming ``output_path`` and the problem.
    """
    out = Path(os.fspath(output_path))
    if out.is_dir():
        raise CGSurrogateError(f"{out}: is a folder; give an output file name such as {out / 'energies.npz'}")
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise CGSurrogateError(f"{out}: output must end in .npz, .xyz or .extxyz")
    existing = next((d for d in out.parents if d.exists()), None)
    if existing is not None and not existing.is_dir():
        raise CGSurrogateError(f"{out}: cannot write, {existing} is a file, not a folder")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise CGSurrogateError(f"{out}: cannot write, the folder {existing} is not writable")
    for src in inputs:
        if src is not None and out.exists() and Path(os.fspath(src)).exists() and out.samefile(src):
            raise CGSurrogateError(f"{out}: is the input file {src}; refusing to overwrite it (choose another --output)")
    return out


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
        ``cgsurrogate.simulate.energy.TrueEnergy``), or an energy model with ``TrueEnergy``'s
        signature (its ``system_spec`` names the parameters and fixes ``N`` and ``P``).
    input_path : str or Path
        Extended XYZ, or any file MDAnalysis reads (see :func:`read_configurations`).
    output_path : str or Path, optional
        ``.npz`` or ``.xyz``/``.extxyz`` file to write (atomically, mode 0644); checked by
        :func:`check_output_path` before anything is computed. Nothing is written when omitted.
    params : sequence of P floats, optional
        Strength parameters; required unless every XYZ frame holds them.
    topology : str or Path, optional
        MDAnalysis topology file for coordinate-only trajectories.
    forces : bool
        Also compute forces (kJ/mol/nm) by autograd.
    batch_size : int
        Frames per model call.
    use_velocities : bool
        Pass the file's velocities to models that take them (``takes_velocities``); zero
        velocities otherwise.
    device, dtype : optional
        Where and in which precision a checkpoint runs (default CPU, float32). A CUDA device on
        a machine without one is refused.
    progress : bool
        Show a tqdm progress bar over frames.

    Returns
    -------
    dict
        ``energies [F, N]``, ``total [F]`` (kJ/mol), ``params [F, P]``,
        ``positions [F, N, 3]`` (nm) and, with ``forces``, ``forces [F, N, 3]`` (kJ/mol/nm);
        float64 numpy arrays.

    Raises
    ------
    InputFileError
        Missing or unreadable input, topology or checkpoint.
    CGSurrogateError
        A bad output path, a frame with the wrong number of particles or non-finite
        coordinates, missing or wrong-length parameters, a bad device or batch size.
    """
    from cgsurrogate.surrogate.interfaces.energy_function import check_device

    input_path = Path(os.fspath(input_path))
    if not input_path.is_file():
        raise InputFileError(f"{input_path}: no such input file")
    if topology is not None and not Path(os.fspath(topology)).is_file():
        raise InputFileError(f"{topology}: no such topology file")
    if output_path is not None:
        output_path = check_output_path(output_path, input_path, topology)
    if int(batch_size) != batch_size or batch_size < 1:
        raise CGSurrogateError(f"batch_size must be a positive integer, got {batch_size}")
    check_device(device)
    energy = _resolve_model(model, device=device, dtype=dtype)
    spec = getattr(energy, "system_spec", None)
    n_expected = getattr(energy, "num_nodes", None)
    n_params = spec.num_params if spec is not None else getattr(energy, "num_params", None)
    if params is not None:
        params = (spec.check_params(params, "params") if spec is not None
                  else np.asarray(params, dtype=np.float64).reshape(-1))
    takes_velocities = use_velocities and bool(getattr(energy, "takes_velocities", False))
    run_device = getattr(energy, "device", None) or _module_device(energy)

    out = {"energies": [], "total": [], "params": [], "positions": [], "forces": []}
    total_frames = count_frames(input_path, topology) if progress else None
    bar = tqdm(total=total_frames, desc=f"predict {input_path.name}", unit="frame", disable=not progress)
    batch = []

    def flush():
        if batch:
            _evaluate(energy, batch, out, forces, takes_velocities, run_device)
            bar.update(len(batch))
            batch.clear()

    names = spec.param_names if spec is not None else ()
    try:
        frames = read_configurations(input_path, topology, params, use_velocities, names)
        for i, (pos, p, vel) in enumerate(frames):
            if n_expected is not None and pos.shape[0] != n_expected:
                raise CGSurrogateError(
                    f"{input_path}: frame {i} has {pos.shape[0]} particles, the model expects {n_expected}")
            if not np.all(np.isfinite(pos)):
                raise CGSurrogateError(f"{input_path}: frame {i} has NaN or infinite coordinates")
            if p is None:
                raise CGSurrogateError(f"{input_path}: frame {i} has no strength parameters; give params (--params) "
                                       f"or store them in the extended XYZ info ({', '.join(names) or 'params'})")
            if (n_params is not None and p.shape != (n_params,)) or not np.all(np.isfinite(p)):
                raise CGSurrogateError(f"{input_path}: frame {i} has {p.size} strength parameters "
                                       f"{p.tolist()}, need {n_params} finite values")
            if batch and batch[0][0].shape != pos.shape:
                flush()
            batch.append((pos, p, vel))
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        bar.close()
    if not out["energies"]:
        raise CGSurrogateError(f"{input_path}: no configurations in the file")
    result = {k: np.concatenate(v) for k, v in out.items() if v}
    if output_path is not None:
        model_name = str(model) if not isinstance(model, torch.nn.Module) else type(model).__name__
        write_predictions(output_path, result, model_name=model_name, system_spec=spec)
    return result


def _evaluate(energy, batch, out, forces, takes_velocities, device):
    """Run one batch of ``(positions [N, 3], params [P], velocities or None)`` and append to ``out``."""
    x = torch.as_tensor(np.stack([b[0] for b in batch]), dtype=torch.float64, device=device)
    p = torch.as_tensor(np.stack([b[1] for b in batch]), dtype=torch.float64, device=device)
    kwargs = {}
    if takes_velocities and any(b[2] is not None for b in batch):
        v = np.stack([b[2] if b[2] is not None else np.zeros_like(b[0]) for b in batch])
        kwargs["velocities"] = torch.as_tensor(v, dtype=torch.float64, device=device)
    if forces:
        from cgsurrogate.surrogate.interfaces.energy_function import energy_and_forces

        _, per_node, f = energy_and_forces(energy, x, p, **kwargs)
        out["forces"].append(f.detach().cpu().double().numpy())
    else:
        with torch.inference_mode():
            _, per_node = energy(x, p, **kwargs)
    e = per_node.detach().cpu().double().numpy()
    out["energies"].append(e)
    out["total"].append(e.sum(-1))
    out["params"].append(p.cpu().double().numpy())
    out["positions"].append(np.stack([b[0] for b in batch]))


def write_predictions(path, result: dict, model_name: str = "", system_spec=None, inputs=()) -> Path:
    """Write the output of :func:`predict` to ``.npz`` or extended XYZ, atomically (mode 0644).

    Parameters
    ----------
    path : str or Path
        Destination; its suffix picks the format (see the module docstring). Checked with
        :func:`check_output_path` (``inputs`` are the files it must not overwrite).
    result : dict
        ``energies [F, N]``, ``total [F]``, ``params [F, P]``, ``positions [F, N, 3]``
        and optionally ``forces [F, N, 3]`` in kJ/mol, nm, kJ/mol/nm.
    model_name : str
        Stored as provenance.
    system_spec : SystemSpec, optional
        Names the parameters and their units in the files.

    Returns
    -------
    Path of the file written.

    Raises
    ------
    CGSurrogateError
        A bad or unwritable path (the message names ``path``, never a temporary file).
    """
    path = check_output_path(path, *inputs)
    if path.suffix.lower() != ".npz":
        from cgsurrogate.simulate.trajectory_io import write_extxyz

        return write_extxyz(path, result["positions"], result["energies"], forces=result.get("forces"),
                            params=result.get("params"), system_spec=system_spec)
    arrays = {k: np.asarray(v) for k, v in result.items()}
    param_units = ("; ".join(f"{n} {u}" for n, u in zip(system_spec.param_names, system_spec.param_units))
                   if system_spec is not None else "as given")
    arrays.update(units_energies=np.array("kJ/mol"), units_total=np.array("kJ/mol"),
                  units_forces=np.array("kJ/mol/nm"), units_positions=np.array("nm"),
                  units_params=np.array(param_units), model=np.array(model_name))
    try:
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
    except OSError as exc:
        raise CGSurrogateError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})") from None
    return path


def _module_device(model) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")
