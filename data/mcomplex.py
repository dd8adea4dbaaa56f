"""Loader for M-complex datasets (EGHN paper sec. 4.1).

Reads both our generator's files (:func:`cgsurrogate.simulate.mcomplex.write_mcomplex_dataset`) and the
reference file ``<CGS_SHARED_DATA>/mcomplex/mcomplex_3x3.npz`` (same layout, without mask and
metadata). Each sample becomes one graph: positions and velocities at the input frame (10),
node feature ``|v|``, A_global fully connected with edge attributes ``[q_i q_j, same-complex]``,
A_local the same-complex pairs, target the positions at frame 25. Units: the generator's
dimensionless ones.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

SPLITS = ("train", "valid", "test")


def default_mcomplex_path() -> Path:
    """``$CGS_SHARED_DATA/mcomplex/mcomplex_3x3.npz``; FileNotFoundError when the variable is unset."""
    root = os.environ.get("CGS_SHARED_DATA")
    if not root:
        raise FileNotFoundError("M-complex: no path given and CGS_SHARED_DATA is not set "
                                "(point it at the folder holding mcomplex/)")
    return Path(root) / "mcomplex" / "mcomplex_3x3.npz"


def load_mcomplex_arrays(path) -> dict:
    """Load and validate an M-complex ``.npz`` (no pickle).

    Returns
    -------
    dict
        ``{split}_loc``/``_vel`` [n, F, N, 3], ``_charges`` [n, N], ``_complex`` [n, N], ``_mask`` [n, N]
        for each split present, and ``metadata`` (dict, empty for the reference file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: M-complex file not found")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # corrupt/foreign file
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    out: dict = {}
    with z:
        for split in SPLITS:
            if f"{split}_loc" not in z.files:
                continue
            for k in ("loc", "vel", "charges", "complex"):
                if f"{split}_{k}" not in z.files:
                    raise ValueError(f"{path}: missing array {split}_{k}")
                out[f"{split}_{k}"] = z[f"{split}_{k}"]
            loc = out[f"{split}_loc"]
            if loc.ndim != 4 or loc.shape[-1] != 3 or out[f"{split}_vel"].shape != loc.shape:
                raise ValueError(f"{path}: {split}_loc/{split}_vel must both be [n, frames, N, 3], "
                                 f"got {loc.shape} and {out[f'{split}_vel'].shape}")
            if out[f"{split}_charges"].shape != loc.shape[:1] + loc.shape[2:3]:
                raise ValueError(f"{path}: {split}_charges shape {out[f'{split}_charges'].shape} "
                                 f"does not match {split}_loc {loc.shape}")
            out[f"{split}_mask"] = z[f"{split}_mask"] if f"{split}_mask" in z.files else \
                out[f"{split}_complex"] >= 0
        if not any(k.endswith("_loc") for k in out):
            raise ValueError(f"{path}: no train_loc/valid_loc/test_loc arrays: not an M-complex file")
        out["metadata"] = json.loads(str(z["metadata"])) if "metadata" in z.files else {}
    return out


def mcomplex_graph(loc_in, vel_in, charges, complex_id, loc_out=None) -> dict:
    """One M-complex sample as a graph dict (see :func:`cgsurrogate.surrogate.equivariant.message_passing.collate_graphs`).

    Parameters
    ----------
    loc_in, vel_in : array [N, 3];  charges : [N];  complex_id : int [N];  loc_out : [N, 3], optional
    """
    n = len(charges)
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    same = (complex_id[i] == complex_id[j]).astype(np.float64)
    qq = charges[i] * charges[j]
    ea = np.stack([qq, same], 1)
    loc_mask = same > 0
    return dict(pos=torch.as_tensor(loc_in, dtype=torch.float32),
                vel=torch.as_tensor(vel_in, dtype=torch.float32),
                h=torch.as_tensor(np.linalg.norm(vel_in, axis=-1, keepdims=True), dtype=torch.float32),
                edge_index=torch.as_tensor(np.stack([i, j])), edge_attr=torch.as_tensor(ea, dtype=torch.float32),
                local_edge_index=torch.as_tensor(np.stack([i[loc_mask], j[loc_mask]])),
                local_edge_attr=torch.as_tensor(ea[loc_mask], dtype=torch.float32),
                target=None if loc_out is None else torch.as_tensor(loc_out, dtype=torch.float32),
                complex=torch.as_tensor(complex_id))


class MComplexDataset(torch.utils.data.Dataset):
    """Graphs of one split of an M-complex file.

    Parameters
    ----------
    path : str or Path, optional
        Defaults to :func:`default_mcomplex_path`.
    split : {"train", "valid", "test"}
    input_frame, target_frame : int
        Paper: 10 and 25 (1500 integration steps apart).
    max_samples : int, optional
        Keep the first ``max_samples`` trajectories.

    Attributes
    ----------
    graphs : list of dict
    n_clusters : int
        Number of complexes M (the EGHN cluster count).
    metadata : dict
    """

    def __init__(self, path=None, split: str = "train", input_frame: int = 10, target_frame: int = 25,
                 max_samples: int | None = None):
        path = Path(path) if path is not None else default_mcomplex_path()
        if split not in SPLITS:
            raise ValueError(f"M-complex: split must be one of {SPLITS}, got {split!r}")
        arr = load_mcomplex_arrays(path)
        if f"{split}_loc" not in arr:
            raise ValueError(f"{path}: has no {split} split")
        loc, vel = arr[f"{split}_loc"], arr[f"{split}_vel"]
        F = loc.shape[1]
        if not (0 <= input_frame < target_frame < F):
            raise ValueError(f"{path}: frames {input_frame}->{target_frame} outside the {F} stored frames")
        n = loc.shape[0] if max_samples is None else min(max_samples, loc.shape[0])
        self.metadata = arr["metadata"]
        self.n_clusters = int(arr[f"{split}_complex"].max()) + 1
        self.graphs = []
        for s in range(n):
            m = arr[f"{split}_mask"][s]
            self.graphs.append(mcomplex_graph(loc[s, input_frame, m], vel[s, input_frame, m],
                                              arr[f"{split}_charges"][s, m], arr[f"{split}_complex"][s, m],
                                              loc[s, target_frame, m]))

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> dict:
        return self.graphs[i]
