"""CMU motion-capture benchmark (EGHN paper sec. 4.2, table 2 "Subject #9 Run").

File ``<CGS_SHARED_DATA>/mocap/cmu_subject09_run.npz`` (see its README): 31 joints, a skeleton
tree of 30 bonds, 11 trials and per-split start frames. A sample takes the positions at start
frame ``s`` and the velocities as the forward difference ``x[s+1] - x[s]``, and predicts the
positions at ``s + 30``. Graph: A_global joins joints within two hops of the skeleton,
A_local is the skeleton itself; node features are ``|v|`` and the height coordinate (axis 1)
divided by the largest height in the training trials (the EGHN authors' code divides by the
batch maximum; a dataset constant gives every sample the same feature whatever its batch), so
models are height-aware and equivariant only about the vertical axis (as in the paper).
Edge attribute: 1 for a bond, 0 for a 2-hop pair. Units: the file's (CMU skeleton units).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

SPLIT_TRIALS = {"train": (1, 2, 5, 6, 10), "valid": (0, 4, 9), "test": (3, 7, 8)}
DELTA_FRAMES = 30
HEIGHT_AXIS = 1


def default_mocap_path() -> Path:
    """``$CGS_SHARED_DATA/mocap/cmu_subject09_run.npz``."""
    root = os.environ.get("CGS_SHARED_DATA")
    if not root:
        raise FileNotFoundError("motion capture: no path given and CGS_SHARED_DATA is not set")
    return Path(root) / "mocap" / "cmu_subject09_run.npz"


def two_hop_edges(bonds: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges between nodes at graph distance 1 or 2.

    Parameters
    ----------
    bonds : int array [B, 2]
    n : int

    Returns
    -------
    edge_index : int [2, E];  is_bond : float [E]
    """
    A = np.zeros((n, n), dtype=bool)
    A[bonds[:, 0], bonds[:, 1]] = A[bonds[:, 1], bonds[:, 0]] = True
    A2 = (A.astype(int) @ A.astype(int)) > 0
    reach = (A | A2) & ~np.eye(n, dtype=bool)
    i, j = np.nonzero(reach)
    return np.stack([i, j]), A[i, j].astype(np.float64)


class MocapDataset(torch.utils.data.Dataset):
    """Frame pairs of one split.

    Parameters
    ----------
    path : str or Path, optional
    split : {"train", "valid", "test"}
    delta : int
        Frames between input and target (paper: 30).
    max_per_trial : int
        First start frames kept per trial (paper protocol: 80).

    normalise_height : bool
        Divide the height feature by the training trials' largest |height| (default True).

    Attributes
    ----------
    graphs : list of dict;  bonds : int [30, 2];  n_joints : int
    height_scale : float
        The divisor of the height feature (1 when not normalised).
    """

    def __init__(self, path=None, split: str = "train", delta: int = DELTA_FRAMES, max_per_trial: int = 80,
                 normalise_height: bool = True):
        path = Path(path) if path is not None else default_mocap_path()
        if split not in SPLIT_TRIALS:
            raise ValueError(f"motion capture: split must be one of {tuple(SPLIT_TRIALS)}, got {split!r}")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: motion-capture file not found")
        try:
            z = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
        with z:
            if "skeleton_edges" not in z.files:
                raise ValueError(f"{path}: missing skeleton_edges: not the CMU motion-capture archive")
            self.bonds = z["skeleton_edges"].astype(np.int64)
            self.height_scale = 1.0
            if normalise_height:
                tr = [f"trial_{i:02d}" for i in SPLIT_TRIALS["train"]]
                missing = [k for k in tr if k not in z.files]
                if missing:
                    raise ValueError(f"{path}: missing {missing[0]}")
                self.height_scale = float(max(np.abs(z[k][..., HEIGHT_AXIS]).max() for k in tr))
                if not self.height_scale > 0:
                    raise ValueError(f"{path}: training trials have no height extent")
            self.graphs = []
            for trial in SPLIT_TRIALS[split]:
                key, skey = f"trial_{trial:02d}", f"split_{split}_trial_{trial:02d}"
                if key not in z.files or skey not in z.files:
                    raise ValueError(f"{path}: missing {key} or {skey}")
                x = z[key]
                starts = z[skey][:max_per_trial]
                if starts.max() + delta >= x.shape[0]:
                    raise ValueError(f"{path}: start frame {starts.max()} + {delta} beyond the {x.shape[0]} "
                                     f"frames of {key}")
                for s in starts:
                    self.graphs.append(self._graph(x[s], x[s + 1] - x[s], x[s + delta]))
        self.n_joints = int(self.graphs[0]["pos"].shape[0]) if self.graphs else 0

    def _graph(self, pos, vel, target):
        n = pos.shape[0]
        if not hasattr(self, "_edges"):
            self._edges = two_hop_edges(self.bonds, n)
            b = self.bonds
            self._local = np.concatenate([b.T, b[:, ::-1].T], 1)
        ei, is_bond = self._edges
        h = np.stack([np.linalg.norm(vel, axis=-1), pos[:, HEIGHT_AXIS] / self.height_scale], 1)
        f32 = torch.float32
        return dict(pos=torch.as_tensor(pos, dtype=f32), vel=torch.as_tensor(vel, dtype=f32),
                    h=torch.as_tensor(h, dtype=f32), edge_index=torch.as_tensor(ei),
                    edge_attr=torch.as_tensor(is_bond[:, None], dtype=f32),
                    local_edge_index=torch.as_tensor(self._local),
                    local_edge_attr=torch.ones(self._local.shape[1], 1), target=torch.as_tensor(target, dtype=f32))

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> dict:
        return self.graphs[i]
