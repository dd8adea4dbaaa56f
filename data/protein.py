"""Protein MD trajectories as EGHN dynamics data (EGHN paper sec. 4.3).

Any topology + trajectory MDAnalysis reads (PSF/PDB/GRO with DCD/XTC/TRR/NetCDF). Defaults follow
the paper's text (sec. 4.3): the ``backbone`` selection, velocities from backward frame differences
``x[t] - x[t-1]``, prediction span 15 frames, A_global from a distance cutoff of 10 A (1.0 nm).
The authors' code (hanjq17/EGHN, ``mdanalysis/preprocess.py``) differs in two of these: it uses
forward differences ``x[t+1] - x[t]`` (pass ``velocity="forward"``) and an 8 A cutoff (pass
``cutoff_nm=0.8``). A_local from the topology's bonds among the selected atoms
(guessed from distances when the topology has none; for coarse selections such as ``name CA``,
virtual bonds between chain neighbours closer than 4.2 A), and a split along the timeline
(default fractions 0.6/0.2/0.2, close to the paper's 2481/827/878 pairs).

Positions are stored in nm (the toolkit's unit inside ``data/``); multiply MSEs by 100 for A^2.

Offline default: the AdK DCD trajectories shipped in MDAnalysisTests (``adk_dims.dcd``,
``adk_dims2.dcd`` with ``adk.psf``, and ``adk_gbis_tmd-fast1_NAMD.dcd`` with
``adk_closed_NAMD.psf``: 3341 atoms, 855 backbone atoms, 252 frame pairs at span 15). The paper's
1 us AdK equilibrium trajectory (MDAnalysisData ``adk_equilibrium``) loads the same way once a
user has placed its files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cgsurrogate.core.errors import CGSurrogateError

DEFAULT_CUTOFF_NM = 1.0
DEFAULT_SPAN = 15
#: Velocity definitions: ``backward`` ``x[t] - x[t-1]`` (the paper's text), ``forward`` ``x[t+1] - x[t]``
#: (the authors' code). Both are displacements per saved frame, in nm.
VELOCITIES = ("backward", "forward")


def mdanalysis_test_adk() -> list[tuple[str, str]]:
    """(topology, trajectory) pairs of the AdK DCDs shipped in MDAnalysisTests."""
    try:
        from MDAnalysisTests import datafiles as d
    except ImportError:
        raise FileNotFoundError("AdK test trajectories need the MDAnalysisTests package "
                                "(pip install MDAnalysisTests), or pass your own topology/trajectory") from None
    root = Path(d.PSF).parent
    return [(str(root / "adk.psf"), str(root / "adk_dims.dcd")),
            (str(root / "adk.psf"), str(root / "adk_dims2.dcd")),
            (str(root / "adk_closed_NAMD.psf"), str(root / "adk_gbis_tmd-fast1_NAMD.dcd"))]


def _count_atoms(path: str) -> int | None:
    try:
        import MDAnalysis as mda
        with mda.coordinates.core.reader(path) as r:
            return int(r.n_atoms)
    except Exception:
        return None


def open_universe(topology, trajectory):
    """Open an MDAnalysis Universe with one-line errors for missing files and atom-count mismatches."""
    import warnings

    import MDAnalysis as mda
    for p in (topology, trajectory):
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mda.Universe(str(topology), str(trajectory))
    except Exception as exc:
        n_traj = _count_atoms(str(trajectory))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                n_top = mda.Universe(str(topology)).atoms.n_atoms
        except Exception:
            n_top = None
        if n_traj is not None and n_top is not None and n_traj != n_top:
            raise ValueError(f"{trajectory}: trajectory has {n_traj} atoms but topology {topology} has {n_top}; "
                             f"they must describe the same system") from None
        raise ValueError(f"{trajectory}: MDAnalysis cannot read it with topology {topology} "
                         f"({str(exc).splitlines()[0]})") from None


@dataclass
class ProteinTrajectory:
    """Selected atoms of one or more trajectory segments.

    Attributes
    ----------
    positions : list of float32 arrays [F_s, n, 3] in nm, one per segment
    names : array [n] of atom names;  bonds : int [B, 2] (within the selection);  vocab : list of names
    sources : list of (topology, trajectory)
    """

    positions: list
    names: np.ndarray
    bonds: np.ndarray
    vocab: list
    sources: list = field(default_factory=list)


def load_protein_trajectory(sources=None, selection: str = "backbone", stride: int = 1) -> ProteinTrajectory:
    """Read the selected atoms of (topology, trajectory) pairs.

    Parameters
    ----------
    sources : list of (topology, trajectory), optional
        Defaults to :func:`mdanalysis_test_adk`. All segments must select the same atom names.
    selection : str
        MDAnalysis selection (paper: ``backbone``).
    stride : int
        Keep every ``stride``-th frame.
    """
    sources = sources or mdanalysis_test_adk()
    positions, names, bonds = [], None, None
    for top, traj in sources:
        u = open_universe(top, traj)
        sel = u.select_atoms(selection)
        if sel.n_atoms == 0:
            raise ValueError(f"{top}: selection {selection!r} matches no atoms")
        if names is None:
            names = np.asarray(sel.names)
            try:
                local = {a: k for k, a in enumerate(sel.indices)}
                b = [(local[x.atoms[0].index], local[x.atoms[1].index]) for x in sel.bonds
                     if x.atoms[0].index in local and x.atoms[1].index in local]
            except Exception:  # topology without bonds: guess from distances
                b = []
            if not b:  # topology without bonds among the selection: guess covalent bonds from distances
                from MDAnalysis.lib.distances import self_capped_distance
                pairs, _ = self_capped_distance(sel.positions, 1.9)
                b = [tuple(p) for p in pairs]
            if not b:  # coarse selections (e.g. CA traces): virtual bonds between chain neighbours < 4.2 A
                seg = np.asarray(sel.segids)
                d = np.linalg.norm(np.diff(sel.positions, axis=0), axis=1)
                b = [(k, k + 1) for k in range(len(sel) - 1) if seg[k] == seg[k + 1] and d[k] < 4.2]
            bonds = np.unique(np.sort(np.asarray(b, dtype=np.int64), 1), axis=0)
        elif len(sel) != len(names) or not np.array_equal(np.asarray(sel.names), names):
            raise ValueError(f"{traj}: selection {selection!r} gives {len(sel)} atoms, not the {len(names)} "
                             f"of the first segment")
        xyz = np.stack([sel.positions.copy() for _ in u.trajectory[::stride]]) / 10.0  # A -> nm
        positions.append(xyz.astype(np.float32))
    vocab = sorted(set(names.tolist()))
    return ProteinTrajectory(positions, names, bonds, vocab, list(sources))


def radius_edges(pos: np.ndarray, cutoff: float) -> np.ndarray:
    """Directed pairs closer than ``cutoff`` (same unit as ``pos``), no self loops; int [2, E]."""
    from scipy.spatial import cKDTree
    pairs = cKDTree(pos).query_pairs(cutoff, output_type="ndarray")
    return np.concatenate([pairs.T, pairs[:, ::-1].T], 1).astype(np.int64)


def protein_graph(traj: ProteinTrajectory, seg: int, t: int, span: int, cutoff_nm: float,
                  velocity: str = "backward") -> dict:
    """Graph for input frame ``t`` of segment ``seg`` (target ``t + span``).

    Parameters
    ----------
    traj : ProteinTrajectory
    seg, t : int
        Segment and input frame (``t >= 1`` for backward, ``t + 1 < F`` for forward velocities).
    span : int
        Frames between input and target.
    cutoff_nm : float
        A_global cutoff in nm (pairs strictly closer).
    velocity : {"backward", "forward"}
        ``vel = x[t] - x[t-1]`` or ``x[t+1] - x[t]`` (nm per frame), see :data:`VELOCITIES`.

    Returns
    -------
    dict with ``pos``, ``vel``, ``target`` [n, 3] (nm), ``h`` [n, 1 + len(vocab)] (speed and the
    one-hot atom name), ``edge_index`` [2, E] (A_global, both directions), ``edge_attr`` [E, 1]
    (1 for a bond), ``local_edge_index`` [2, 2B] (bonds, both directions), ``local_edge_attr`` [2B, 1].
    """
    if velocity not in VELOCITIES:
        raise CGSurrogateError(f"protein: velocity must be one of {VELOCITIES}, got {velocity!r}")
    x = traj.positions[seg]
    lo, hi = (t - 1, t + span) if velocity == "backward" else (t, max(t + 1, t + span))
    if lo < 0 or hi >= x.shape[0]:
        raise CGSurrogateError(f"protein: input frame {t} with span {span} and {velocity} velocity needs frames "
                               f"{lo}..{hi}, segment {seg} has 0..{x.shape[0] - 1}")
    vel = x[t] - x[t - 1] if velocity == "backward" else x[t + 1] - x[t]
    pos, tgt = x[t], x[t + span]
    onehot = np.zeros((len(traj.names), len(traj.vocab)), dtype=np.float32)
    onehot[np.arange(len(traj.names)), [traj.vocab.index(n) for n in traj.names]] = 1
    h = np.concatenate([np.linalg.norm(vel, axis=-1, keepdims=True), onehot], 1)
    ei = radius_edges(pos, cutoff_nm)
    b = traj.bonds
    bond_set = set(map(tuple, b.tolist())) | set(map(tuple, b[:, ::-1].tolist()))
    is_bond = np.array([(i, j) in bond_set for i, j in ei.T.tolist()], dtype=np.float32)
    local = np.concatenate([b.T, b[:, ::-1].T], 1)
    f32 = torch.float32
    return dict(pos=torch.as_tensor(pos, dtype=f32), vel=torch.as_tensor(vel, dtype=f32), h=torch.as_tensor(h),
                edge_index=torch.as_tensor(ei), edge_attr=torch.as_tensor(is_bond[:, None]),
                local_edge_index=torch.as_tensor(local), local_edge_attr=torch.ones(local.shape[1], 1),
                target=torch.as_tensor(tgt, dtype=f32))


def protein_splits(traj: ProteinTrajectory, span: int = DEFAULT_SPAN, cutoff_nm: float = DEFAULT_CUTOFF_NM,
                   fractions=(0.6, 0.2, 0.2), max_pairs: int | None = None, progress: bool = False,
                   velocity: str = "backward") -> dict:
    """Frame pairs split along the timeline.

    All segments are laid end to end in the given order; pairs never cross a segment boundary.
    The first ``fractions[0]`` of the pairs train, the next ``fractions[1]`` validate, the rest test.

    Parameters
    ----------
    span : int
        Frames between input and target (paper: 15).
    cutoff_nm : float
        A_global distance cutoff (default 1.0 nm = the paper's 10 A; the authors' code: 0.8 nm).
    velocity : {"backward", "forward"}
        Input velocity ``x[t] - x[t-1]`` (paper's text) or ``x[t+1] - x[t]`` (authors' code). Both
        give ``F - 1 - span`` pairs per segment of ``F`` frames: input frames ``1 .. F-span-1``
        (backward) or ``0 .. F-span-2`` (forward, as the authors' code, which keeps the last frame
        for the target's own forward velocity).
    max_pairs : int, optional
        Use only the first ``max_pairs`` pairs of the timeline (for quick runs).

    Returns
    -------
    dict ``{"train": [graph, ...], "valid": [...], "test": [...]}``
    """
    if span < 1:
        raise ValueError(f"protein: span must be >= 1 frame, got {span}")
    if velocity not in VELOCITIES:
        raise CGSurrogateError(f"protein: velocity must be one of {VELOCITIES}, got {velocity!r}")
    first = 1 if velocity == "backward" else 0
    pairs = [(s, t) for s, x in enumerate(traj.positions) for t in range(first, x.shape[0] - span - 1 + first)]
    if not pairs:
        raise ValueError(f"protein: no frame pairs at span {span} (segments have "
                         f"{[x.shape[0] for x in traj.positions]} frames)")
    if max_pairs:
        pairs = pairs[:max_pairs]
    n = len(pairs)
    a = int(round(fractions[0] * n))
    b = a + int(round(fractions[1] * n))
    it = pairs
    if progress:
        from tqdm import tqdm
        it = tqdm(pairs, desc="protein graphs", leave=False)
    graphs = [protein_graph(traj, s, t, span, cutoff_nm, velocity) for s, t in it]
    return {"train": graphs[:a], "valid": graphs[a:b], "test": graphs[b:]}
