"""A dataset of static equilibria only: the last frame of every run of a settled sweep (issue 13).

``cli.py simulate`` with the settle stage (e.g. ``runs/rest_grid3``) ends every run with a frame
relaxed to rest at the full load (residual force <= settle_tol x load). This copies that frame of
every run into a new dataset folder (``frames_per_run`` 1; the other arrays sliced alike), so the GCN
family can be trained on states at rest only, as the paper's runs were (sec. 3.1).

    python bench/gpcn_last_frames.py --src runs/rest_grid3 --out runs/gpcn_rest3_last
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    from cgsurrogate.core.atomic import write_bytes_atomic, write_json_atomic
    from cgsurrogate.data.microtubule import list_runs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    src, out = Path(a.src), Path(a.out)
    meta = json.loads((src / "metadata.json").read_text())
    (out / "runs").mkdir(parents=True, exist_ok=True)
    ids = list_runs(src)
    for rid in ids:
        name = f"run_{rid:05d}.npz"
        with np.load(src / "runs" / name) as z:
            arrs = {k: (z[k][-1:] if z[k].ndim >= 1 and k != "params" else z[k]) for k in z.files}
        import io

        buf = io.BytesIO()
        np.savez(buf, **arrs)
        write_bytes_atomic(out / "runs" / name, buf.getvalue())
    meta["frames_per_run"] = 1
    meta["derived_from"] = {"source": str(src), "frames": "last frame of every run (settled, at rest)"}
    write_json_atomic(out / "metadata.json", meta)
    print(f"{out}: {len(ids)} runs x 1 frame from {src}")
    return 0


if __name__ == "__main__":
    main()
