"""A damped microtubule dataset for the GCN family (issue 13, hypothesis 1: ringing).

``runs/grid3`` (short protocol, friction 1.5e-6/ps) still rings: 9-15 % of its per-node
normalised energy variance changes between the hold frames of one run (``bench/gpcn_diagnose.py``).
This builds a dataset through the library (``simulate.sweep.run_sweep``; ``cli.py simulate`` does
not expose the friction) with the short protocol at a higher Langevin friction over the whole run
(ramp and hold), on strength sets drawn at random, without replacement, from the paper's
7-value grid (7^5 = 16,807 sets; the paper simulates them all).

    python bench/gpcn_dataset.py --out runs/gpcn_g7s240_f3e-5 --runs 240 --friction 3e-5
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np


def main(argv=None) -> dict:
    from cgsurrogate.simulate.grid import grid_param_sets
    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.sweep import run_sweep

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=240, help="strength sets drawn from the 7-value grid")
    ap.add_argument("--friction", type=float, default=3e-5, help="Langevin friction over the whole run (1/ps)")
    ap.add_argument("--seed", type=int, default=0, help="draw of the strength sets and Langevin seed")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args(argv)
    grid = grid_param_sets(7)
    pick = np.sort(np.random.default_rng(args.seed).choice(len(grid), size=args.runs, replace=False))
    proto = dataclasses.replace(Protocol.short(), friction=float(args.friction))
    t0 = time.time()
    res = run_sweep(args.out, param_sets=grid[pick], protocol=proto, batch_size=args.batch_size, n_workers=1,
                    seed=args.seed, engine="numba", processes=False, progress=False)
    rest = res.get("rest") or {}
    print(f"{args.out}: {res['num_runs']} runs, computed {len(res['computed'])}, pending {len(res['pending'])}, "
          f"{time.time() - t0:.0f} s; friction {args.friction}/ps; at rest {rest.get('num_at_rest', '?')}")
    return res


if __name__ == "__main__":
    main()
