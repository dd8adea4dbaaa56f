"""Microtubule sweep datasets on disk: loader, split by run, per-node normalisation.

On-disk format (written by :mod:`cgsurrogate.simulate.sweep`)
-------------------------------------------------
A dataset is a folder::

    metadata.json        units, parameter names, grid / parameter sets, protocol,
                         topology name "Tube(48,13,3)", software versions, frames per run
    runs/run_00000.npz   one file per completed run, written atomically (tmp + os.replace)

Each run file holds ``params`` float64 [5] (zJ/nm^2, zJ/rad^2; order ``PARAM_NAMES``),
``positions`` [F, 624, 3] nm, ``velocities`` [F, 624, 3] nm/ps, ``forces``
[F, 624, 3] kJ/mol/nm (internal force, ``-dE/dx`` of the bond + angle energy),
``energies`` [F, 624] kJ/mol (per particle, LAMMPS ``pe/atom`` split) and ``steps``
int64 [F]. A run is complete iff its file exists and loads.

Model input per node (paper sec. 3.1, with all five varying parameters): columns 0-2
position (nm), 3-5 velocity (nm/ps), 6-10 the five strengths (zJ); target the
per-node energy (kJ/mol).
"""
from __future__ import annotations

import json
import re
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError, InputFileError
from cgsurrogate.simulate.sweep import FORMAT_NAME, RUN_ARRAYS, run_path

RUN_FILE_RE = re.compile(r"^run_(\d+)\.npz$")
NUM_FEATURES = 11


def read_metadata(root) -> dict:
    """Read ``<root>/metadata.json``; clear ``FileNotFoundError`` / ``ValueError`` otherwise."""
    path = Path(root) / "metadata.json"
    if not Path(root).is_dir():
        raise InputFileError(f"{root}: dataset folder not found")
    if not path.is_file():
        raise InputFileError(f"{path}: not found (is {root} a microtubule dataset folder?)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CGSurrogateError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CGSurrogateError(f"{path}: not a microtubule sweep dataset (format is not {FORMAT_NAME!r})")
    return meta


def load_run(path, num_nodes: int | None = None, frames: int | None = None) -> dict:
    """Load and validate one run file.

    Parameters
    ----------
    path : path of a ``run_<id>.npz``
    num_nodes, frames : int, optional
        Expected ``N`` and ``F``; checked when given.

    Returns
    -------
    dict of numpy arrays (see the module docstring for names, shapes and units).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is corrupt, truncated, misses an array or has wrong shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: run file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in RUN_ARRAYS if k not in z.files]
            if missing:
                raise CGSurrogateError(f"{path}: corrupt run file, missing arrays {missing}")
            out = {k: z[k] for k in RUN_ARRAYS}
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise CGSurrogateError(f"{path}: corrupt or not a run file (holds no plain numeric arrays)") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CGSurrogateError(f"{path}: corrupt run file ({type(exc).__name__}: {exc})") from None
    F, N = out["energies"].shape if out["energies"].ndim == 2 else (-1, -1)
    ok = (
        out["params"].shape == (5,)
        and F > 0
        and out["positions"].shape == (F, N, 3)
        and out["velocities"].shape == (F, N, 3)
        and out["forces"].shape == (F, N, 3)
        and out["steps"].shape == (F,)
        and (num_nodes is None or N == num_nodes)
        and (frames is None or F == frames)
    )
    if not ok:
        shapes = {k: tuple(v.shape) for k, v in out.items()}
        raise CGSurrogateError(f"{path}: run file has inconsistent array shapes {shapes}")
    return out


def list_runs(root) -> list[int]:
    """Sorted ids of the run files present in ``<root>/runs`` (not checked for loading)."""
    d = Path(root) / "runs"
    if not d.is_dir():
        return []
    ids = []
    for p in d.iterdir():
        m = RUN_FILE_RE.match(p.name)
        if m:
            ids.append(int(m.group(1)))
    return sorted(ids)


def run_features(run: dict) -> tuple[np.ndarray, np.ndarray]:
    """Model input and target of one run.

    Returns
    -------
    x : ndarray float32 [F, N, 11]
        position (nm), velocity (nm/ps), the five strengths (zJ) broadcast to every node.
    y : ndarray float32 [F, N, 1]
        per-node energy (kJ/mol).
    """
    pos, vel = run["positions"], run["velocities"]
    F, N = pos.shape[:2]
    par = np.broadcast_to(run["params"].astype(np.float64), (F, N, 5))
    x = np.concatenate([pos, vel, par], axis=-1).astype(np.float32)
    y = run["energies"][..., None].astype(np.float32)
    return x, y


class MicrotubuleDataset(torch.utils.data.Dataset):
    """Frames of a microtubule sweep as ``(x [624, 11], y [624, 1])`` float32 samples.

    Parameters
    ----------
    root : path
        Dataset folder (``metadata.json`` and ``runs/``).
    run_ids : sequence of int, optional
        Runs to use; default every run file present.
    cache_runs : int
        How many run files to keep in memory (least recently used are dropped).

    Attributes
    ----------
    run_ids : list of int
    topology : cgsurrogate.simulate.microtubule.Topology
        The graph (bonds, angles, resting geometry).
    metadata : dict
    frames_per_run : int
    edge_index : LongTensor [2, 2 * num_bonds]
        Both directions of every bond, for graph networks.

    Sample ``i`` is frame ``i % F`` of run ``run_ids[i // F]``.
    """

    def __init__(self, root, run_ids=None, cache_runs: int = 64):
        from cgsurrogate.simulate.microtubule import microtubule_topology

        self.root = Path(root)
        self.metadata = read_metadata(self.root)
        self.frames_per_run = int(self.metadata["frames_per_run"])
        present = list_runs(self.root)
        if run_ids is None:
            run_ids = present
        else:
            run_ids = [int(r) for r in run_ids]
            have = set(present)
            missing = [r for r in run_ids if r not in have]
            if missing:
                raise InputFileError(
                    f"{self.root}: run files missing for run ids {missing[:5]}"
                    + (" ..." if len(missing) > 5 else "")
                )
        if not run_ids:
            raise CGSurrogateError(f"{self.root}: dataset has no completed runs")
        self.run_ids = list(run_ids)
        self.topology = microtubule_topology()
        name = self.metadata.get("topology")
        if name and name != self.topology.tube.name:
            raise CGSurrogateError(f"{self.root}: topology {name!r} is not the microtubule {self.topology.tube.name}")
        e = torch.as_tensor(self.topology.bonds.T)
        self.edge_index = torch.cat([e, e.flip(0)], 1)
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = max(1, int(cache_runs))

    @property
    def num_nodes(self) -> int:
        return self.topology.num_nodes

    def __len__(self) -> int:
        return len(self.run_ids) * self.frames_per_run

    def run(self, run_id: int) -> dict:
        """The raw arrays of one run (see :func:`load_run`)."""
        return load_run(run_path(self.root, run_id), self.num_nodes, self.frames_per_run)

    def _features(self, k: int):
        rid = self.run_ids[k]
        if rid in self._cache:
            self._cache.move_to_end(rid)
            return self._cache[rid]
        xy = run_features(self.run(rid))
        self._cache[rid] = xy
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return xy

    def __getitem__(self, i: int):
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        k, f = divmod(i, self.frames_per_run)
        x, y = self._features(k)
        return torch.from_numpy(x[f].copy()), torch.from_numpy(y[f].copy())

    def iter_runs(self):
        """Yield ``(run_id, x [F, N, 11], y [F, N, 1])`` float32 numpy arrays run by run."""
        for k, rid in enumerate(self.run_ids):
            x, y = run_features(self.run(rid))
            yield rid, x, y

    def tensors(self):
        """All samples in memory: ``(X [M, 624, 11], Y [M, 624, 1])`` float32, ``M = len(self)``."""
        M, N, F = len(self), self.num_nodes, self.frames_per_run
        X = torch.empty(M, N, NUM_FEATURES)
        Y = torch.empty(M, N, 1)
        for k, (_, x, y) in enumerate(self.iter_runs()):
            X[k * F : (k + 1) * F] = torch.from_numpy(x)
            Y[k * F : (k + 1) * F] = torch.from_numpy(y)
        return X, Y


def split_runs(run_ids, val_fraction: float = 0.2, seed: int = 0):
    """Split run ids into training and validation sets, by run (paper sec. 3.1).

    Parameters
    ----------
    run_ids : sequence of int
    val_fraction : float in [0, 1)
    seed : int

    Returns
    -------
    train_ids, val_ids : sorted lists of int; disjoint, union is ``run_ids``. With at
    least two runs and ``val_fraction > 0`` both are non-empty.
    """
    ids = sorted(int(r) for r in run_ids)
    if not 0.0 <= val_fraction < 1.0:
        raise CGSurrogateError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(ids)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    val = sorted(ids[i] for i in perm[:n_val])
    vs = set(val)
    return [r for r in ids if r not in vs], val


class Normalizer:
    """Per-node, per-feature standardisation fitted on training samples (paper sec. 3.1).

    Statistics have shape ``[N, 11]`` for inputs and ``[N, 1]`` for targets. Each std is
    floored at ``1e-6`` times the feature's overall scale (its std over all nodes and
    samples, or 1 where that is zero) so that features constant at some node (the
    clamped nodes' positions and velocities) stay finite.

    Attributes
    ----------
    x_mean, x_std : Tensor float64 [N, F]
    y_mean, y_std : Tensor float64 [N, 1]
    """

    def __init__(self, x_mean, x_std, y_mean, y_std):
        self.x_mean = torch.as_tensor(x_mean, dtype=torch.float64)
        self.x_std = torch.as_tensor(x_std, dtype=torch.float64)
        self.y_mean = torch.as_tensor(y_mean, dtype=torch.float64)
        self.y_std = torch.as_tensor(y_std, dtype=torch.float64)

    @staticmethod
    def _stats(s1, s2, count):
        mean = s1 / count
        var = np.maximum(s2 / count - mean**2, 0.0)
        std = np.sqrt(var)
        gmean = mean.mean(0)
        gvar = np.maximum((s2.sum(0) / (count * s1.shape[0])) - gmean**2, 0.0)
        scale = np.sqrt(gvar)
        scale = np.where(scale > 0, scale, 1.0)
        return mean, np.maximum(std, 1e-6 * scale)

    @classmethod
    def _from_sums(cls, sx, sxx, sy, syy, count):
        if count < 1:
            raise CGSurrogateError("cannot fit a normaliser on zero samples")
        xm, xs = cls._stats(sx, sxx, count)
        ym, ys = cls._stats(sy, syy, count)
        return cls(xm, xs, ym, ys)

    @classmethod
    def fit(cls, X, Y) -> "Normalizer":
        """Fit on in-memory samples ``X [M, N, F]``, ``Y [M, N, 1]``."""
        X = torch.as_tensor(X).double()
        Y = torch.as_tensor(Y).double()
        if X.dim() != 3 or Y.dim() != 3 or X.shape[:2] != Y.shape[:2]:
            raise CGSurrogateError(f"Normalizer.fit needs X [M, N, F] and Y [M, N, 1], got {tuple(X.shape)}, {tuple(Y.shape)}")
        x, y = X.numpy(), Y.numpy()
        return cls._from_sums(x.sum(0), (x * x).sum(0), y.sum(0), (y * y).sum(0), x.shape[0])

    @classmethod
    def fit_dataset(cls, dataset: MicrotubuleDataset) -> "Normalizer":
        """Fit by streaming over a dataset's runs (never holds more than one run in memory)."""
        sx = sxx = sy = syy = None
        count = 0
        for _, x, y in dataset.iter_runs():
            x = x.astype(np.float64)
            y = y.astype(np.float64)
            if sx is None:
                sx, sxx = np.zeros(x.shape[1:]), np.zeros(x.shape[1:])
                sy, syy = np.zeros(y.shape[1:]), np.zeros(y.shape[1:])
            sx += x.sum(0)
            sxx += (x * x).sum(0)
            sy += y.sum(0)
            syy += (y * y).sum(0)
            count += x.shape[0]
        return cls._from_sums(sx, sxx, sy, syy, count)

    def normalize_x(self, X: torch.Tensor) -> torch.Tensor:
        """``(X - mean) / std`` for ``X [..., N, F]``, in ``X``'s dtype and device."""
        return (X - self.x_mean.to(X)) / self.x_std.to(X)

    def normalize_y(self, Y: torch.Tensor) -> torch.Tensor:
        """``(Y - mean) / std`` for ``Y [..., N, 1]`` (kJ/mol -> normalised)."""
        return (Y - self.y_mean.to(Y)) / self.y_std.to(Y)

    def denormalize_y(self, Yn: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize_y` (normalised -> kJ/mol)."""
        return Yn * self.y_std.to(Yn) + self.y_mean.to(Yn)

    def state_dict(self) -> dict:
        """Plain dict of float64 tensors; loads with ``torch.load(weights_only=True)``."""
        return {"x_mean": self.x_mean, "x_std": self.x_std, "y_mean": self.y_mean, "y_std": self.y_std}

    @classmethod
    def from_state_dict(cls, d: dict) -> "Normalizer":
        """Rebuild from :meth:`state_dict`."""
        try:
            return cls(d["x_mean"], d["x_std"], d["y_mean"], d["y_std"])
        except KeyError as exc:
            raise CGSurrogateError(f"normaliser state is missing {exc}") from None


def warn_missing_runs(root, metadata: dict, present) -> int:
    """Warn (``UserWarning``) when ``metadata["num_runs"]`` announces more runs than ``present``
    holds (an interrupted sweep); returns the number missing."""
    import warnings

    expected = metadata.get("num_runs")
    missing = int(expected) - len(present) if expected is not None else 0
    if missing > 0:
        warnings.warn(f"{root}: {missing} of {expected} runs are missing on disk (an unfinished sweep?); "
                      f"using the {len(present)} present", stacklevel=3)
    return max(missing, 0)


def load_microtubule_splits(root, val_fraction: float = 0.2, seed: int = 0):
    """Training and validation datasets split by run, with a normaliser fitted on training runs only.

    Returns
    -------
    train_ds : MicrotubuleDataset
    val_ds : MicrotubuleDataset, or None when the dataset has a single run
    normalizer : Normalizer
        Fitted on ``train_ds`` only.
    """
    full = MicrotubuleDataset(root)
    ids = full.run_ids
    warn_missing_runs(root, full.metadata, ids)
    tr, va = split_runs(ids, val_fraction, seed)
    train_ds = MicrotubuleDataset(root, tr)
    val_ds = MicrotubuleDataset(root, va) if va else None
    return train_ds, val_ds, Normalizer.fit_dataset(train_ds)
