"""Candidate configurations for active learning: the states a surrogate itself visits.

An active-learning round (:mod:`cgsurrogate.surrogate.train.active_learning`) proposes
configurations, scores them against the exact field and labels the worst. The candidates come
from the current surrogate, so they are the states where its own errors matter: a model with a
wrong stiffness drives its MD and relaxations to wrong states, which the exact field then labels.
Every candidate gets its own strength set, drawn log-uniformly from the paper's range [3, 57] zJ
(off the grid), and starts from a configuration of the training data. Kinds (cycled):

``md``
    ``md_steps`` steps of BAOAB Langevin dynamics **under the surrogate** (100 ps steps, friction
    1e-3/ps, the monomer mass, the clamp fixed) at 10, 100 or 300 K, with a load along -y of 0 to 2
    times the protocol's on the load rings.
``relax``
    ``relax_iterations`` L-BFGS iterations on the surrogate energy plus such a load, from the start
    perturbed by 0.1 nm.
``perturb``
    The start plus Gaussian noise of sigma log-uniform in [0.01, 0.2] nm (model-independent; what
    ``cli.py sample`` draws).

Candidates whose surrogate trajectory left finite numbers are dropped (and counted).
"""
from __future__ import annotations

import numpy as np
import torch

CANDIDATE_KINDS = ("md", "relax", "perturb")
STRENGTH_RANGE_ZJ = (3.0, 57.0)


def propose_candidates(model, starts, meta: dict, count: int, rng, kinds=CANDIDATE_KINDS, md_steps: int = 20,
                       relax_iterations: int = 20, progress: bool = False) -> dict:
    """Propose ``count`` candidate configurations visited by ``model``.

    Parameters
    ----------
    model : energy model (``model(x [1, N, 3], s [1, 5]) -> (total [1], per-particle [1, N])``, kJ/mol)
    starts : array or Tensor [M, N, 3] nm, start configurations (e.g. the training frames)
    meta : dataset metadata (``clamp_nodes``, ``load_nodes``, ``protocol.load`` kJ/mol/nm,
        ``monomer_mass_amu``)
    count : number of candidates
    rng : numpy Generator
    kinds : subset of :data:`CANDIDATE_KINDS`, cycled over the candidates
    md_steps, relax_iterations : length of the ``md`` and ``relax`` trajectories

    Returns
    -------
    dict with ``positions [C, N, 3]`` nm and ``params [C, 5]`` zJ (float64 numpy, ``C <= count``),
    ``kinds`` (list of str), ``dropped`` (int: non-finite trajectories).
    """
    from cgsurrogate.core.errors import CGSurrogateError
    from cgsurrogate.data.sampling import LoadedField, langevin_states, lbfgs_states

    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in CANDIDATE_KINDS]
    if bad or not kinds:
        raise CGSurrogateError(f"unknown candidate kind(s) {bad}; choose from {', '.join(CANDIDATE_KINDS)}")
    starts = np.asarray(starts.detach().numpy() if torch.is_tensor(starts) else starts, np.float64)
    M, N = starts.shape[:2]
    free = np.ones(N, bool)
    free[np.asarray(meta["clamp_nodes"], int)] = False
    load_nodes = np.asarray(meta["load_nodes"], int)
    load = float(meta["protocol"]["load"])
    mass = float(meta.get("monomer_mass_amu", 3.011e7))
    lo, hi = np.log(STRENGTH_RANGE_ZJ[0]), np.log(STRENGTH_RANGE_ZJ[1])
    X, P, K, dropped = [], [], [], 0
    it = range(int(count))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="candidates", unit="conf", leave=False)
    for c in it:
        kind = kinds[c % len(kinds)]
        x0 = starts[rng.integers(M)]
        s = np.exp(rng.uniform(lo, hi, size=5))
        lf = np.zeros((N, 3))
        lf[load_nodes, 1] = -load * rng.uniform(0.0, 2.0)
        if kind == "perturb":
            x = x0 + np.exp(rng.uniform(np.log(0.01), np.log(0.2))) * rng.standard_normal((N, 3)) * free[:, None]
        else:
            field = LoadedField(model, s, free, lf)
            try:
                if kind == "md":
                    x, _ = langevin_states(field, x0, float(rng.choice([10.0, 100.0, 300.0])), mass, int(md_steps), rng)
                else:
                    start = x0 + 0.1 * rng.standard_normal((N, 3)) * free[:, None]
                    x = lbfgs_states(field, start, [int(relax_iterations)])[0]
            except (RuntimeError, FloatingPointError):
                x = None
        if x is None or not np.all(np.isfinite(x)):
            dropped += 1
            continue
        X.append(np.asarray(x, np.float64)), P.append(s), K.append(kind)
    N3 = (0, N, 3)
    return {"positions": np.stack(X) if X else np.zeros(N3), "params": np.stack(P) if P else np.zeros((0, 5)),
            "kinds": K, "dropped": dropped}


__all__ = ["CANDIDATE_KINDS", "propose_candidates"]
