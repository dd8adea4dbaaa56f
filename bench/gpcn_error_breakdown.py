"""Where does a trained GCN-family checkpoint's validation error sit? (issue 13)

For a checkpoint from ``cli.py train`` and its dataset: validation NMSE (normalised per-node
energies) split by node class (clamped rings 0-25, loaded rings 598-623, the rest), by frame, by
run class (soft angles: LongAngle and QuadAngles both at the grid minimum, against the rest), and
the part of it that is "fast" content: on hold frames, the error against the run's hold-frame mean
target (``(p - ybar_hold)^2``) beside the error against the frame's own target (``(p - y)^2``).
A model that learns only the smooth part of the signal has the first small and the second about
equal to the fast share.

    python bench/gpcn_error_breakdown.py --checkpoint runs/x/best.pt --data runs/grid3
"""
from __future__ import annotations

import argparse
import ast
import json

import numpy as np
import torch


@torch.no_grad()
def breakdown(checkpoint, data_dir) -> dict:
    from cgsurrogate.data.microtubule import MicrotubuleDataset
    from cgsurrogate.surrogate.checkpoint import load_checkpoint, rebuild_model

    ck = load_checkpoint(checkpoint)
    model, norm, _ = rebuild_model(ck)
    model.eval()
    ds = MicrotubuleDataset(data_dir, ck["dataset"]["val_ids"])
    proto = ds.metadata["protocol"]
    proto = proto if isinstance(proto, dict) else ast.literal_eval(proto)
    e2, d2, s2, soft = [], [], [], []
    for rid, x, y in ds.iter_runs():
        run = ds.run(rid)
        hold = run["steps"] > int(proto["ramp_steps"])
        pn = model(norm.normalize_x(torch.from_numpy(x)).float())[..., 0]
        yn = norm.normalize_y(torch.from_numpy(y)).float()[..., 0]
        ybar = yn.clone()
        ybar[hold] = yn[hold].mean(0, keepdim=True)
        e2.append(((pn - yn) ** 2).numpy())
        s2.append(((pn - ybar) ** 2).numpy())
        d2.append(((yn - ybar) ** 2).numpy())
        p = run["params"]
        soft.append(bool(p[3] == 3.0 and p[4] == 3.0))
    e2, s2, d2, soft = np.stack(e2), np.stack(s2), np.stack(d2), np.array(soft)  # [R, F, N]
    N = e2.shape[-1]
    cls = {"clamp_rings": np.arange(N) < 26, "load_rings": np.arange(N) >= N - 26}
    cls["middle"] = ~(cls["clamp_rings"] | cls["load_rings"])
    return {
        "checkpoint": str(checkpoint), "model": ck["model_name"], "val_runs": len(ds.run_ids),
        "nmse": float(e2.mean()),
        "nmse_vs_hold_mean_target": float(s2.mean()), "fast_share": float(d2.mean()),
        "by_node_class": {k: float(e2[..., m].mean()) for k, m in cls.items()},
        "by_node_class_share": {k: float(e2[..., m].sum() / e2.sum()) for k, m in cls.items()},
        "by_frame": [round(float(v), 4) for v in e2.mean((0, 2))],
        "soft_angle_runs": {"runs": int(soft.sum()), "nmse": float(e2[soft].mean()) if soft.any() else None,
                            "share_of_error": float(e2[soft].sum() / e2.sum())},
        "other_runs_nmse": float(e2[~soft].mean()),
        "worst_nodes": [int(i) for i in np.argsort(e2.mean((0, 1)))[::-1][:8]],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    res = breakdown(a.checkpoint, a.data)
    txt = json.dumps(res, indent=1)
    print(txt)
    if a.out:
        from cgsurrogate.core.atomic import write_text_atomic

        write_text_atomic(a.out, txt + "\n")
    return res


if __name__ == "__main__":
    main()
