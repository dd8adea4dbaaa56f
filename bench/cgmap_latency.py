"""Cold latency of ``python cli.py cgmap`` (a fresh interpreter per call) and AdK mapping time.

Small molecules: three SMILES, each mapped in a new process (imports included), best and
all of ``--repeats`` runs. AdK: ``cgmap`` on MDAnalysisTests' PSF + DCD and on its PDB
(``PDB_small``, 3341 atoms), residue mode (DSGPM inside residues) and whole-structure
spectral, timing reading, mapping and writing (the command's wall time, imports included).
Prints a table, writes ``bench/results/cgmap_latency.json`` with the machine load.

    python bench/cgmap_latency.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cgsurrogate.core.atomic import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
SMALL = [("ethyl acetate", "CCOC(C)=O", 2), ("salicylamide (isopropyl)", "CC(C)NC(=O)c1ccccc1O", 4),
         ("ibuprofen", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", 5)]


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _run(args, out):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(REPO / "cli.py"), "cgmap", *args, "--out", str(out)],
                       capture_output=True, text=True, cwd=REPO)
    dt = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"cgmap failed: {r.stderr}")
    return dt, r.stdout.strip()


def main():
    from MDAnalysisTests.datafiles import DCD, PDB_small, PSF

    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, smi, k in SMALL:
            times = []
            for r in range(repeats):
                dt, msg = _run(["--smiles", smi, "--beads", str(k)], Path(tmp) / f"s{r}.json")
                times.append(dt)
            rows.append(dict(case=f"{name} ({smi}, {k} beads)", seconds=times, best=min(times), load=_uptime(),
                             output=msg))
        big = [("AdK PSF+DCD, residue mode, 400 beads, DSGPM", ["--structure", PSF, "--coords", DCD, "--by-residue",
                                                                 "--beads", "400"]),
               ("AdK PDB, residue mode, 400 beads, DSGPM", ["--structure", PDB_small, "--by-residue", "--beads", "400"]),
               ("AdK PSF+DCD, whole structure, 214 beads, spectral", ["--structure", PSF, "--coords", DCD,
                                                                      "--method", "spectral", "--beads", "214"]),
               ("AdK PDB, whole structure, 214 beads, DSGPM", ["--structure", PDB_small, "--beads", "214"])]
        for name, args in big:
            dt, msg = _run(args, Path(tmp) / "adk.json")
            rows.append(dict(case=name, seconds=[dt], best=dt, load=_uptime(), output=msg))
    print(f"{'case':60s} {'best s':>7s}  all (s)   load")
    for r in rows:
        print(f"{r['case'][:60]:60s} {r['best']:7.2f}  {', '.join(f'{t:.2f}' for t in r['seconds'])}   "
              f"{r['load'].split('load average:')[-1].strip()}")
    out = REPO / "bench" / "results" / "cgmap_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, dict(rows=rows, cpus=os.cpu_count(), python=sys.version.split()[0]), indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
