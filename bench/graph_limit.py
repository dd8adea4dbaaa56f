"""Graph-limit experiment of Scott & Mjolsness 2021, sec. 5.3 / fig. 12.

For growing n computes D(Tube(n,13,1), Tube(2n,13,3)) and D(Grid(n,13), Tube(2n,13,3))
(linear graph diffusion distance, alpha optimised exactly by the envelope search; the alpha = 1
value is recorded too), prints a table, writes JSON (default bench/results/graph_limit.json)
and a plot with seventh-degree polynomial fits like the paper's (graph_limit.png). Results are
written after every n, and a rerun resumes from the JSON on disk.

    python bench/graph_limit.py [--n 2 40 2] [--out bench/results/graph_limit.json] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path



def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for fam, color, label in (("tube", "C0", "D(Tube(n,13,1), Tube(2n,13,3))"),
                              ("grid", "C3", "D(Grid(n,13), Tube(2n,13,3))")):
        pts = sorted((r["n"], r["distance"]) for r in rows if r["family"] == fam)
        if not pts:
            continue
        n, d = map(np.array, zip(*pts))
        ax.plot(n, d, "o", color=color, ms=4, label=label)
        if len(n) > 2:
            deg = min(7, len(n) - 1)
            coef = np.polynomial.polynomial.Polynomial.fit(n, d, deg)
            xs = np.linspace(n.min(), n.max(), 300)
            ax.plot(xs, coef(xs), "-", color=color, lw=1, alpha=0.7, label=f"degree-{deg} fit")
    ax.set_xlabel("n")
    ax.set_ylabel("linear graph diffusion distance D (alpha optimised)")
    ax.set_title("Graph limits (paper fig. 12)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=130)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", nargs=3, type=int, default=[2, 40, 2], metavar=("START", "STOP", "STEP"),
                    help="n values: range(START, STOP + 1, STEP) (default 2 40 2)")
    ap.add_argument("--out", default="bench/results/graph_limit.json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fresh", action="store_true", help="ignore results already on disk")
    args = ap.parse_args(argv)
    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    from cgsurrogate.simulate.tube import Tube
    from cgsurrogate.surrogate.graphs.weighted_graph import Grid
    from cgsurrogate.surrogate.graphs.lgdd import alpha_search, assignment, assignment_cost, laplacian_spectrum

    out = Path(args.out)
    rows = []
    if out.is_file() and not args.fresh:
        rows = json.loads(out.read_text()).get("rows", [])
    done = {(r["family"], r["n"]) for r in rows}
    ns = list(range(args.n[0], args.n[1] + 1, args.n[2]))
    todo = [(fam, n) for n in ns for fam in ("tube", "grid") if (fam, n) not in done and n >= 2]
    big_cache = {}
    for fam, n in tqdm(todo, desc="graph limit", unit="pair"):
        t0 = time.perf_counter()
        if n not in big_cache:
            big_cache.clear()
            big_cache[n] = laplacian_spectrum(Tube(2 * n, 13, 3), vectors=False)[0]
        lam2 = big_cache[n]
        small = Tube(n, 13, 1) if fam == "tube" else Grid(n, 13)
        lam1 = laplacian_spectrum(small, vectors=False)[0]
        res = alpha_search(lam1, lam2)
        d1 = math.sqrt(assignment_cost(lam1, lam2, assignment(lam1, lam2, 1.0), 1.0))
        rows.append({"family": fam, "n": n, "small": small.name, "large": f"Tube({2 * n},13,3)",
                     "nodes_small": small.num_nodes, "nodes_large": 26 * n, "distance": res.distance,
                     "alpha": res.alpha, "distance_alpha1": d1, "num_rlap": res.num_rlap,
                     "seconds": time.perf_counter() - t0})
        _write_json(out, {"benchmark": "graph_limit", "rows": rows, "threads": args.threads,
                          "machine": platform.platform(), "cpu_count": os.cpu_count(),
                          "note": "distance: alpha optimised exactly; distance_alpha1: alpha = 1"})
    rows.sort(key=lambda r: (r["n"], r["family"]))
    print(f"{'n':>4} {'D(Tube(n,13,1))':>16} {'alpha':>7} {'D(Grid(n,13))':>14} {'alpha':>7} {'s':>6}")
    for n in sorted({r["n"] for r in rows}):
        t = next((r for r in rows if r["n"] == n and r["family"] == "tube"), None)
        g = next((r for r in rows if r["n"] == n and r["family"] == "grid"), None)
        if t and g:
            print(f"{n:>4} {t['distance']:>16.4f} {t['alpha']:>7.4f} {g['distance']:>14.4f} {g['alpha']:>7.4f}"
                  f" {t['seconds'] + g['seconds']:>6.1f}")
    _write_json(out, {"benchmark": "graph_limit", "rows": rows, "threads": args.threads,
                      "machine": platform.platform(), "cpu_count": os.cpu_count(),
                      "note": "distance: alpha optimised exactly; distance_alpha1: alpha = 1"})
    _plot(rows, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
