"""Benchmark the message-aggregation kernels of cgsurrogate.surrogate.equivariant.message_passing.

Compares ``index_add_`` and ``scatter_reduce_`` (sum) on 20k edges x 64 features at one and two
threads, for uniformly spread receivers and for a skewed case where many edges land on few rows.
Prints a table and writes JSON (default bench/results/scatter.json).

    python bench/scatter.py [--out bench/results/scatter.json] [--repeats 200]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cgsurrogate.surrogate.equivariant.message_passing import aggregate  # noqa: E402


def _time(fn, repeats: int, blocks: int = 7) -> tuple[float, float]:
    """Median and minimum over ``blocks`` of the mean time per call (ms); the median resists the
    noise of a shared machine."""
    for _ in range(10):
        fn()
    per = max(1, repeats // blocks)
    out = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(per):
            fn()
        out.append((time.perf_counter() - t0) / per * 1e3)
    return float(np.median(out)), float(np.min(out))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/scatter.json")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--edges", type=int, default=20000)
    ap.add_argument("--features", type=int, default=64)
    args = ap.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    E, F = args.edges, args.features
    msgs = torch.randn(E, F, generator=g)
    cases = {
        "uniform (2000 rows)": (torch.randint(0, 2000, (E,), generator=g), 2000),
        "skewed (20 rows)": (torch.randint(0, 20, (E,), generator=g), 20),
        "sorted (2000 rows)": (torch.sort(torch.randint(0, 2000, (E,), generator=g)).values, 2000),
    }
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for case, (idx, n) in cases.items():
            for method in ("index_add", "scatter_reduce"):
                med, best = _time(lambda: aggregate(msgs, idx, n, method=method), args.repeats)
                rows.append({"threads": threads, "case": case, "method": method, "ms_median": round(med, 4),
                             "ms_min": round(best, 4)})
    print(f"{'threads':>7} {'case':<22} {'method':<15} {'median ms':>10} {'min ms':>8}")
    for r in rows:
        print(f"{r['threads']:>7} {r['case']:<22} {r['method']:<15} {r['ms_median']:>10.3f} {r['ms_min']:>8.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"edges": E, "features": F, "torch": torch.__version__,
                               "cpu_count": os.cpu_count(), "rows": rows}, indent=1))
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
