"""A damped microtubule dataset for the GCN family (issue 13, hypothesis 1: ringing).

``runs/grid3`` (short protocol, friction 1.5e-6/ps) still rings: 9-15 % of its per-node
normalised energy variance changes between the hold frames of one run (``bench/gpcn_diagnose.py``).
This builds a dataset through the library (``simulate.sweep.run_sweep``, numba engine, one
process; ``cli.py simulate`` does not expose the friction) with the short protocol on strength sets
drawn at random, without replacement, from the paper's 7-value grid (7^5 = 16,807 sets; the paper
simulates them all), with either

* ``--friction F``: Langevin friction F over the whole run (ramp and hold; an overdamped ramp: the
  tube lags the load and creeps through the hold), or
* ``--hold-friction F``: the protocol's friction (1.5e-6/ps) during the ramp and F from the end of
  the ramp on (as ``bench/hold_friction.py``; done by switching the numba engine's friction factor
  and noise amplitude at ``ramp_steps``: the library's protocol has one friction). The value is
  added to ``metadata.json`` as ``hold_friction_per_ps``.

    python bench/gpcn_dataset.py --out runs/gpcn_g7s240_f3e-5 --runs 240 --friction 3e-5
    python bench/gpcn_dataset.py --out runs/gpcn_g7s240_h3e-5 --runs 240 --hold-friction 3e-5
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np


def use_hold_friction(friction_hold: float) -> None:
    """Make :class:`NumbaEngine` switch to ``friction_hold`` (1/ps) at the end of the ramp (this process)."""
    from cgsurrogate.simulate.numba_engine import BOLTZ_KJMOL_K, NumbaEngine

    plain = NumbaEngine.advance

    def advance(self, num_steps: int) -> None:
        ramp = int(self.protocol.ramp_steps)
        stop = self.step + int(num_steps)
        if self.step < ramp < stop:  # split at the end of the ramp
            plain(self, ramp - self.step)
        if self.step >= ramp and not getattr(self, "_hold_friction_on", False):
            a = math.exp(-friction_hold * self.protocol.timestep_ps)
            self._fric_a = a
            self._noise = math.sqrt(max(0.0, 1 - a * a) * BOLTZ_KJMOL_K * self.protocol.temperature) * np.sqrt(self._invm)
            self._hold_friction_on = True
        plain(self, stop - self.step)

    NumbaEngine.advance = advance


def main(argv=None) -> dict:
    from cgsurrogate.simulate.grid import grid_param_sets
    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.sweep import run_sweep

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=240, help="strength sets drawn from the 7-value grid")
    ap.add_argument("--friction", type=float, default=None, help="Langevin friction over the whole run (1/ps)")
    ap.add_argument("--hold-friction", type=float, default=None, help="Langevin friction after the ramp (1/ps)")
    ap.add_argument("--seed", type=int, default=0, help="draw of the strength sets and Langevin seed")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args(argv)
    grid = grid_param_sets(7)
    pick = np.sort(np.random.default_rng(args.seed).choice(len(grid), size=args.runs, replace=False))
    proto = Protocol.short()
    if args.friction is not None:
        proto = dataclasses.replace(proto, friction=float(args.friction))
    if args.hold_friction is not None:
        use_hold_friction(float(args.hold_friction))
    t0 = time.time()
    res = run_sweep(args.out, param_sets=grid[pick], protocol=proto, batch_size=args.batch_size, n_workers=1,
                    seed=args.seed, engine="numba", processes=False, progress=False)
    rest = res.get("rest") or {}
    if args.hold_friction is not None:
        from cgsurrogate.core.atomic import write_json_atomic

        meta_path = Path(args.out) / "metadata.json"
        meta = json.loads(meta_path.read_text())
        meta["hold_friction_per_ps"] = float(args.hold_friction)
        write_json_atomic(meta_path, meta)
    print(f"{args.out}: {res['num_runs']} runs, computed {len(res['computed'])}, pending {len(res['pending'])}, "
          f"{time.time() - t0:.0f} s; friction {proto.friction}/ps, hold friction {args.hold_friction}; at rest {rest.get('num_at_rest', '?')}")
    return res


if __name__ == "__main__":
    main()
