"""AdK backbone: a 3-level hierarchy from learned (DSGPM) mappings, compared with LGDD-optimal P.

For each level, prints the intertwining objective ||(1/alpha) P L_coarse - alpha L_fine P||_F of
the mapping's orthonormal prolongation next to the LGDD-optimal P for the same coarse graph
(alpha = 1 and alpha searched), for DSGPM mappings and, as a reference, spectral clustering on
the plain adjacency. Writes JSON and a PNG of the first-level mapping.

    python bench/cg_hierarchy_adk.py --out bench/results/cg_hierarchy_adk.json
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


from cgsurrogate.surrogate.graphs.mapping_hierarchy import (adk_backbone_graph, coarse_adjacency, compare_with_lgdd,  # noqa: E402
                                    hierarchy_from_mappings, learned_mappings)
from cgsurrogate.surrogate.cgmap.mapping import draw_mapping  # noqa: E402
from cgsurrogate.surrogate.cgmap.dsgpm import enforce_connectivity, spectral_partition  # noqa: E402


def spectral_mappings(graph, counts, seed=0):
    """Nested spectral-clustering mappings on the plain adjacency (reference)."""
    a = graph.adjacency()
    out = []
    for k in counts:
        edges = np.argwhere(np.triu(a, 1) > 0)
        lab = enforce_connectivity(spectral_partition(a, k, seed=seed), edges, k, affinity=a)
        out.append(lab)
        a = coarse_adjacency(a, lab)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--beads", type=int, nargs=2, default=[214, 54])
    p.add_argument("--out", default="bench/results/cg_hierarchy_adk.json")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = adk_backbone_graph()
    res = {"n_atoms": g.num_atoms, "beads": args.beads, "note": "shared, loaded 2-core machine"}
    for name, fn in (("DSGPM", lambda: learned_mappings(g, args.beads)),
                     ("spectral clustering", lambda: spectral_mappings(g, args.beads))):
        t0 = time.perf_counter()
        maps = fn()
        h = hierarchy_from_mappings(g.adjacency(), maps, names=["backbone"] + [f"{k} beads" for k in args.beads])
        a, rows = g.adjacency(), []
        for lab in maps:
            rows.append(compare_with_lgdd(a, lab))
            a = coarse_adjacency(a, lab)
        res[name] = {"sizes": h.sizes, "levels": rows, "seconds": time.perf_counter() - t0,
                     "bead_size_range": [[int(np.bincount(m).min()), int(np.bincount(m).max())] for m in maps]}
        if name == "DSGPM":
            png = Path(args.out).with_suffix(".png")
            draw_mapping(g, maps[0], png, title=f"AdK backbone ({g.num_atoms} atoms) -> {args.beads[0]} DSGPM beads")
            res["png"] = str(png)
    print(f"{'mapping':20s} {'level':>10s} | {'mapping P':>10s} {'LGDD P':>8s} (alpha=1) | "
          f"{'mapping P':>10s} {'LGDD P':>8s} (best alpha)")
    for name in ("DSGPM", "spectral clustering"):
        for r in res[name]["levels"]:
            print(f"{name:20s} {r['n_fine']:4d}->{r['n_coarse']:<4d} | {r['mapping_distance']:10.3f} "
                  f"{r['lgdd_distance']:8.3f}           | {r['mapping_distance_best_alpha']:10.3f} "
                  f"{r['lgdd_distance_best_alpha']:8.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
