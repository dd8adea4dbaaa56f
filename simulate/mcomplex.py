"""The M-complex benchmark system of the EGHN paper (sec. 4.1): charged particles on M rigid complexes.

Physics (as in the EGHN authors' public generator, re-implemented here vectorised over trajectories):

* charges +1/-1 at random; force on i ``F_i = sum_j q_i q_j (x_i - x_j) / |x_i - x_j|^3``, each
  component clipped to +-100 (``0.1 / dt``);
* every complex is a rigid body: centre velocity ``v_c += dt * mean_i(F_i) / n``, angular velocity
  ``w += dt * (sum_i r_i x F_i) / J`` with the simple inertia ``J = sum_i |r_i,perp|^2 / 3``
  (``r_perp`` = offset orthogonal to ``w``), member offsets rotated by ``|w| dt`` about ``w``,
  velocities ``v_c + w x r``; symplectic Euler with ``dt = 0.001``;
* initial state: complex centres uniform in ``[-s, s]^3`` (``s = (N/5)^(1/3) + 0.5``) kept at least
  1.6 apart (20 tries), members on a shell of radius ``(0.6..1.1) * d_min / 1.6`` about the centre,
  particle speeds 0.5 in random directions projected onto the rigid motion;
* a trajectory is redrawn if a velocity component exceeds 5 at the end; frames are stored after
  steps 0, 100, 200, ... ; the benchmark's input is frame 10 and its target frame 25;
* complex sizes drawn without replacement from ``{2, ..., 2 N/M - 2}`` (with the authors'
  weights, uniform for (3, 3)); single-system mode uses one size set, multi-system mode ``J``.

Units are the generator's dimensionless ones. Files: see :func:`write_mcomplex_dataset`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

DT = 0.001
SAMPLE_EVERY = 100
MAX_FORCE = 0.1 / DT
INPUT_FRAME, TARGET_FRAME = 10, 25


def draw_size_sets(n_complex: int, average_size: int, n_systems: int, rng: np.random.Generator) -> list[list[int]]:
    """Complex-size sets for ``n_systems`` system types.

    Sizes are drawn without replacement from ``{2, ..., 2*average_size - 2}`` with the authors'
    weights (decreasing with size, first three equal).

    Returns
    -------
    list of ``n_systems`` lists of ``n_complex`` ints
    """
    targets = np.arange(2, 2 * average_size - 1)
    if len(targets) < n_complex:
        raise ValueError(f"M-complex: cannot draw {n_complex} distinct sizes from {list(targets)} "
                         f"(average size {average_size} too small)")
    w = (targets[::-1] + 4).astype(float)
    if len(w) >= 3:
        w[0] = w[2] = w[1]
    w /= w.sum()
    return [[int(s) for s in rng.choice(targets, size=n_complex, replace=False, p=w)] for _ in range(n_systems)]


def coulomb_forces(X: np.ndarray, q: np.ndarray, clip: float = MAX_FORCE) -> np.ndarray:
    """Pairwise inverse-square forces, component-clipped.

    Parameters
    ----------
    X : array [T, N, 3]
    q : array [T, N]

    Returns
    -------
    array [T, N, 3]
    """
    diff = X[:, :, None, :] - X[:, None, :, :]
    d2 = (diff ** 2).sum(-1)
    n = X.shape[1]
    d2[:, np.arange(n), np.arange(n)] = np.inf
    size = q[:, :, None] * q[:, None, :] / d2 ** 1.5
    F = (size[..., None] * diff).sum(2)
    return np.clip(F, -clip, clip)


def _rodrigues(axis: np.ndarray, theta: np.ndarray, r: np.ndarray) -> np.ndarray:
    # rotate r [..., 3] by angle theta [...] about unit axis [..., 3]
    c, s = np.cos(theta)[..., None], np.sin(theta)[..., None]
    return r * c + np.cross(axis, r) * s + axis * (axis * r).sum(-1, keepdims=True) * (1 - c)


class RigidComplexes:
    """State of ``T`` independent M-complex systems with the same size set, integrated together.

    Parameters
    ----------
    X, V : array [T, N, 3]
    charges : array [T, N]
    membership : int array [T, N]
        Complex index (0..M-1) of each particle.
    """

    def __init__(self, X, V, charges, membership, n_complex: int):
        self.X, self.q, self.comp, self.M = X.copy(), charges, membership, n_complex
        T = X.shape[0]
        self.onehot = np.zeros((T, X.shape[1], n_complex))
        np.put_along_axis(self.onehot, membership[..., None], 1.0, axis=2)
        self.size = self.onehot.sum(1)  # [T, M]
        self.xc = self._mean(X)
        self.vc = self._mean(V)
        r = X - self._gather(self.xc)
        w = np.cross(r, V - self._gather(self.vc)) / (r ** 2).sum(-1, keepdims=True)
        self.wc = self._mean(w)
        self.V = np.cross(self._gather(self.wc), r)  # as the authors' generator: rigid rotation only
        self.lengths = np.linalg.norm(r, axis=-1)

    @classmethod
    def from_state(cls, X, V, charges, membership, n_complex: int) -> "RigidComplexes":
        """Resume from stored frames (no re-projection of the velocities).

        The angular velocity of each complex is the least-squares (minimum-norm) solution of
        ``v_i - v_c = w x r_i`` over its members; for two-particle complexes the component along
        the stick is not observable and is set to zero.

        Parameters
        ----------
        X, V : array [T, N, 3];  charges : [T, N];  membership : int [T, N];  n_complex : int
        """
        self = cls.__new__(cls)
        self.X, self.q, self.comp, self.M = np.array(X, dtype=float), charges, membership, n_complex
        T, N = self.X.shape[:2]
        self.onehot = np.zeros((T, N, n_complex))
        np.put_along_axis(self.onehot, membership[..., None], 1.0, axis=2)
        self.size = self.onehot.sum(1)
        self.xc, self.vc = self._mean(self.X), self._mean(V)
        r = self.X - self._gather(self.xc)
        vr = V - self._gather(self.vc)
        # w x r = A(r) w with A(r) columns e_k x r
        A = np.stack([np.cross(np.broadcast_to(e, r.shape), r) for e in np.eye(3)], -1)  # [T, N, 3, 3]
        self.wc = np.zeros((T, n_complex, 3))
        for t in range(T):
            for c in range(n_complex):
                idx = membership[t] == c
                if idx.any():
                    self.wc[t, c] = np.linalg.lstsq(A[t, idx].reshape(-1, 3), vr[t, idx].reshape(-1), rcond=None)[0]
        self.V = np.array(V, dtype=float)
        self.lengths = np.linalg.norm(r, axis=-1)
        return self

    def _mean(self, a):
        return np.einsum("tnm,tnd->tmd", self.onehot, a) / self.size[..., None]

    def _sum(self, a):
        return np.einsum("tnm,tnd->tmd", self.onehot, a)

    def _gather(self, a):
        return np.take_along_axis(a, self.comp[..., None], axis=1)

    def step(self, dt: float = DT):
        """Advance every system by one step."""
        F = coulomb_forces(self.X, self.q)
        r = self.X - self._gather(self.xc)
        ac = self._mean(F) / self.size[..., None]
        self.vc = self.vc + ac * dt
        self.xc = self.xc + self.vc * dt
        wg = self._gather(self.wc)
        w2 = (self.wc ** 2).sum(-1, keepdims=True)
        r_perp = r - (r * wg).sum(-1, keepdims=True) / self._gather(w2) * wg
        J = self._sum((r_perp ** 2).mean(-1, keepdims=True))[..., 0]  # [T, M]
        torque = self._sum(np.cross(r, F))
        self.wc = self.wc + torque / J[..., None] * dt
        wn = np.linalg.norm(self.wc, axis=-1)
        axis = self.wc / wn[..., None]
        r_new = _rodrigues(self._gather(axis), self._gather(wn[..., None])[..., 0] * dt, r)
        self.X = self._gather(self.xc) + r_new
        self.V = self._gather(self.vc) + np.cross(self._gather(self.wc), r_new)

    def stick_errors(self) -> np.ndarray:
        """Max deviation of member-to-centre distances from their initial values, per system [T]."""
        r = self.X - self._gather(self._mean(self.X))
        return np.abs(np.linalg.norm(r, axis=-1) - self.lengths).max(-1)


def initial_state(sizes: list[int], n_traj: int, rng: np.random.Generator):
    """Random initial positions, velocities, charges and membership for one size set.

    Returns
    -------
    X, V : [T, N, 3];  charges : [T, N];  membership : int [T, N]
    """
    M, N = len(sizes), int(sum(sizes))
    loc_std = (N / 5.0) ** (1 / 3) + 0.5
    X = np.zeros((n_traj, N, 3))
    V = rng.standard_normal((n_traj, N, 3))
    V = V / np.linalg.norm(V, axis=-1, keepdims=True) * 0.5
    q = rng.choice([1.0, -1.0], size=(n_traj, N))
    comp = np.zeros((n_traj, N), dtype=np.int64)
    for t in range(n_traj):
        centres = np.zeros((M, 3))
        for i in range(M):
            for _ in range(20):
                xx = 2 * (rng.random(3) - 0.5) * loc_std
                if i == 0 or np.min(np.linalg.norm(centres[:i] - xx, axis=-1)) >= 1.6:
                    break
            centres[i] = xx
        dmin = min(np.linalg.norm(centres[i] - centres[j]) for i in range(M) for j in range(i + 1, M)) / 1.6 \
            if M > 1 else 1.0
        order = rng.permutation(N)
        start = 0
        for c, s in enumerate(sizes):
            idx = order[start:start + s]
            start += s
            comp[t, idx] = c
            d = rng.standard_normal((s, 3))
            rad = (rng.random((s, 1)) / 2 + 0.6) * dmin
            X[t, idx] = centres[c] + d / np.linalg.norm(d, axis=-1, keepdims=True) * rad
    return X, V, q, comp


def simulate_mcomplex(sizes: list[int], n_traj: int, n_steps: int = 2600, rng: np.random.Generator | None = None,
                      sample_every: int = SAMPLE_EVERY, max_redraws: int = 20, progress: bool = False):
    """Generate ``n_traj`` valid trajectories of one size set.

    Parameters
    ----------
    sizes : list of int
        Complex sizes (M entries).
    n_traj : int
    n_steps : int
        Integration steps; frames are stored after steps 0, sample_every, ... (2600 -> 26 frames).
    rng : numpy Generator

    Returns
    -------
    dict with ``loc``, ``vel`` [T, F, N, 3], ``charges`` [T, N], ``complex`` int [T, N]
    """
    rng = rng or np.random.default_rng()
    out = {k: [] for k in ("loc", "vel", "charges", "complex")}
    need = n_traj
    for _ in range(max_redraws):
        X, V, q, comp = initial_state(sizes, need, rng)
        sysm = RigidComplexes(X, V, q, comp, len(sizes))
        locs, vels = [], []
        it = range(n_steps)
        if progress:
            from tqdm import tqdm
            it = tqdm(it, desc=f"M-complex {sizes}", leave=False)
        for t in it:
            sysm.step()
            if t % sample_every == 0:
                locs.append(sysm.X.copy())
                vels.append(sysm.V.copy())
        ok = ~(sysm.V > 5).any(axis=(1, 2))
        out["loc"].append(np.stack(locs, 1)[ok])
        out["vel"].append(np.stack(vels, 1)[ok])
        out["charges"].append(q[ok])
        out["complex"].append(comp[ok])
        need -= int(ok.sum())
        if need <= 0:
            break
    else:
        raise RuntimeError(f"M-complex: too many invalid trajectories for sizes {sizes}")
    return {k: np.concatenate(v)[:n_traj] for k, v in out.items()}


def write_mcomplex_dataset(path, n_complex: int = 3, average_size: int = 3, n_systems: int = 1,
                           n_train: int = 500, n_valid: int = 200, n_test: int = 200, n_steps: int = 2600,
                           seed: int = 0, progress: bool = True) -> Path:
    """Write an M-complex dataset in the layout of ``../shared/data/mcomplex/mcomplex_3x3.npz``.

    Arrays, for split in train/valid/test: ``{split}_loc``, ``{split}_vel`` float64 [n, F, N_max, 3],
    ``{split}_charges`` [n, N_max], ``{split}_complex`` int64 [n, N_max] (-1 marks padding when the
    systems of a multi-system set differ in size), ``{split}_mask`` bool [n, N_max]; plus
    ``metadata`` (a JSON string: configuration, size sets, frames, units).
    Written to a temporary name then renamed (safe to interrupt).

    Parameters
    ----------
    path : str or Path
        Output ``.npz`` file.
    n_complex, average_size, n_systems : int
        The configuration ``(M, N/M, J)``; ``n_systems=1`` is the single-system mode.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    size_sets = draw_size_sets(n_complex, average_size, n_systems, rng)
    n_max = max(sum(s) for s in size_sets)
    arrays = {}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        which = rng.integers(0, n_systems, size=n)
        parts = []
        for j, sizes in enumerate(size_sets):
            k = int((which == j).sum())
            if k:
                parts.append(simulate_mcomplex(sizes, k, n_steps, rng, progress=progress))
        F = parts[0]["loc"].shape[1]
        loc = np.zeros((n, F, n_max, 3))
        vel = np.zeros_like(loc)
        ch = np.zeros((n, n_max))
        comp = -np.ones((n, n_max), dtype=np.int64)
        mask = np.zeros((n, n_max), dtype=bool)
        i = 0
        for p in parts:
            k, N = p["loc"].shape[0], p["loc"].shape[2]
            loc[i:i + k, :, :N], vel[i:i + k, :, :N] = p["loc"], p["vel"]
            ch[i:i + k, :N], comp[i:i + k, :N], mask[i:i + k, :N] = p["charges"], p["complex"], True
            i += k
        order = rng.permutation(n)
        arrays.update({f"{split}_loc": loc[order], f"{split}_vel": vel[order], f"{split}_charges": ch[order],
                       f"{split}_complex": comp[order], f"{split}_mask": mask[order]})
    meta = dict(kind="mcomplex", n_complex=n_complex, average_size=average_size, n_systems=n_systems,
                size_sets=size_sets, n_steps=n_steps, sample_every=SAMPLE_EVERY, dt=DT,
                input_frame=INPUT_FRAME, target_frame=TARGET_FRAME, seed=seed,
                units="dimensionless (generator units)", generator="cgsurrogate.simulate.mcomplex")
    arrays["metadata"] = np.array(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path
