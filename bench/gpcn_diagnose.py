"""Why does the GCN family underfit? Cheap data diagnostics (issue 13, hypotheses 1, 2 and 4).

For a microtubule dataset folder, with the trainer's split (``split_runs(ids, 0.2, seed)``) and
per-node normaliser (fitted on the training runs), reports:

* ``fast_share``: the share of the per-node normalised energy variance that is "fast" content,
  i.e. that varies between the hold frames of one run (at rest, all hold frames of a run carry
  the same energies). Measured as the mean over validation samples of ``(y_n - ybar_hold)^2`` where
  ``ybar_hold`` is the run's mean over its hold frames (ramp frames count 0, so this is a lower
  bound); also split by node class (clamped rings, loaded rings, the rest) and by frame.
* ``fast_share_detrended``: the same after removing a quadratic in time fitted per run and node over
  the hold frames (drift and creep drop out; ringing stays), as a share of the validation variance.
* ``smooth_floor``: validation NMSE of a non-graph regressor that sees only the strengths, the load fraction and
  the time (an MLP ``[5 strengths, load fraction, time] -> 624`` per-node energies, Adam,
  trained on the training runs): what a model reaches from the smooth part of the signal alone.
* ``kinetic``: mean kinetic energy per node over hold frames (kJ/mol) beside the per-node std of
  the energy, a second measure of the vibration still in the runs.
* ``normalisation``: per-node energy std (min / median / max, kJ/mol), the nodes with the smallest
  std, and the ratio of the within-run std of the bond lengths (hold frames; the geometric size of
  the vibration) to the per-node position std (the scale the model sees positions in).

    python bench/gpcn_diagnose.py --data runs/grid3 --out bench/results/paper_table/diagnose_grid3.json
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

AMU_NM2_PS2_TO_KJMOL = 1e-3  # 1 amu nm^2/ps^2 = 1 g/mol * 1e-18 m^2 / 1e-24 s^2 = 1e3 J/mol


def load_all(root, seed: int):
    from cgsurrogate.data.microtubule import MicrotubuleDataset, Normalizer, split_runs

    full = MicrotubuleDataset(root)
    tr, va = split_runs(full.run_ids, 0.2, seed)
    meta = full.metadata
    proto = meta["protocol"]
    proto = proto if isinstance(proto, dict) else __import__("ast").literal_eval(proto)
    runs = {rid: full.run(rid) for rid in full.run_ids}
    return full, tr, va, runs, proto, Normalizer


def stack(runs, ids):
    from cgsurrogate.data.microtubule import run_features

    xs, ys = zip(*(run_features(runs[r]) for r in ids))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))  # [R, F, N, 11], [R, F, N, 1]


def load_split(root, seed: int) -> dict:
    """Runs, the trainer's split, stacked tensors ``X`` [R, F, N, 11], ``Y`` [R, F, N, 1] of the training and
    (``Xv``, ``Yv``) validation runs, and the per-node normaliser fitted on the training runs."""
    full, tr, va, runs, proto, Normalizer = load_all(root, seed)
    X, Y = stack(runs, tr)
    Xv, Yv = stack(runs, va)
    N = Y.shape[2]
    norm = Normalizer.fit(X.reshape(-1, N, 11), Y.reshape(-1, N, 1))
    return dict(full=full, tr=tr, va=va, runs=runs, proto=proto, X=X, Y=Y, Xv=Xv, Yv=Yv, norm=norm)


def smooth_floor(X, Yn, Xv, Yvn, frac, epochs: int = 3000, seed: int = 0) -> float:
    """Validation NMSE of an MLP (strengths, load fraction, time) -> per-node normalised energies."""
    torch.manual_seed(seed)
    R, F, N = Yn.shape[:3]

    def inp(X):
        s = X[:, :, 0, 6:11] / 57.0
        f = torch.as_tensor(frac, dtype=torch.float32)[None, :, None].expand(X.shape[0], F, 1)
        t = torch.linspace(0, 1, F)[None, :, None].expand(X.shape[0], F, 1)  # time (frame index)
        return torch.cat([s, f, t], -1).reshape(-1, 7)

    a, b = inp(X), Yn.reshape(R * F, N)
    av, bv = inp(Xv), Yvn.reshape(-1, N)
    net = torch.nn.Sequential(torch.nn.Linear(7, 256), torch.nn.SiLU(), torch.nn.Linear(256, 256), torch.nn.SiLU(),
                              torch.nn.Linear(256, 256), torch.nn.SiLU(), torch.nn.Linear(256, N))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    best = float("inf")
    for e in range(epochs):
        opt.zero_grad()
        loss = ((net(a) - b) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
        if e % 100 == 99 or e == epochs - 1:
            with torch.no_grad():
                best = min(best, float(((net(av) - bv) ** 2).mean()))
    with torch.no_grad():
        return {"val_nmse_best": best, "train_mse_end": float(loss)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mlp-epochs", type=int, default=3000, help="0: skip the smooth-floor MLP")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    d = load_split(args.data, args.seed)
    full, tr, va, runs, proto, norm = d["full"], d["tr"], d["va"], d["runs"], d["proto"], d["norm"]
    X, Y, Xv, Yv = d["X"], d["Y"], d["Xv"], d["Yv"]
    R, F, N = Y.shape[:3]
    ym, ys = norm.y_mean.float()[:, 0], norm.y_std.float()[:, 0]
    Yn = (Y[..., 0] - ym) / ys  # [R, F, N]
    Yvn = (Yv[..., 0] - ym) / ys
    steps = runs[va[0]]["steps"]
    ramp = int(proto["ramp_steps"])
    hold = steps > ramp  # frames strictly after the ramp
    frac = np.minimum(steps / max(ramp, 1), 1.0)
    clamp = np.zeros(N, bool)
    clamp[:26] = True
    load = np.zeros(N, bool)
    load[-26:] = True
    mid = ~(clamp | load)

    # 1. fast content: deviation of hold frames from the run's hold mean (validation runs)
    dev = torch.zeros_like(Yvn)
    dev[:, hold] = Yvn[:, hold] - Yvn[:, hold].mean(1, keepdim=True)
    d2 = (dev**2).numpy()
    fast = {
        "fast_share_all": float(d2.mean()),
        "fast_share_hold_frames": float(d2[:, hold].mean()),
        "by_node_class": {k: float(d2[..., m].mean()) for k, m in (("clamp_rings", clamp), ("load_rings", load), ("middle", mid))},
        "by_frame": [float(v) for v in d2.mean((0, 2))],
        "val_total_variance": float((Yvn**2).mean()),
    }
    # drift-free measure: residual of a quadratic in time fitted per (run, node) over the hold frames
    # (creep and slow settling are smooth in time and drop out; ringing with a period of a few frame
    # intervals stays)
    t = torch.as_tensor(steps[hold], dtype=torch.float64)
    t = (t - t.mean()) / t.std()
    basis = torch.stack([torch.ones_like(t), t, t * t], 1)  # [H, 3]
    proj = basis @ torch.linalg.pinv(basis)  # [H, H]
    yh = Yvn[:, hold].double()
    res = yh - torch.einsum("hk,rkn->rhn", proj, yh)
    r2 = (res**2).numpy()
    fast["fast_share_detrended_all"] = float(r2.sum() / Yvn.numel())
    fast["fast_share_detrended_by_node_class"] = {k: float(r2[..., m].sum() / (Yvn.shape[0] * F * m.sum()))
                                                  for k, m in (("clamp_rings", clamp), ("load_rings", load), ("middle", mid))}
    # same on training runs, in kJ/mol, and run-by-run (which runs ring)
    dev_kj = Y[:, hold, :, 0] - Y[:, hold, :, 0].mean(1, keepdim=True)
    per_run = (((dev_kj / ys) ** 2).mean((1, 2))).numpy()
    params = np.stack([runs[r]["params"] for r in tr])
    order = np.argsort(per_run)[::-1][:8]
    fast["train_fast_share"] = float(per_run.mean() * hold.mean())
    fast["train_worst_runs"] = [{"params": params[i].tolist(), "fast_nmse_hold": float(per_run[i]),
                                 "tip_motion_nm": float(runs[tr[i]].get("tip_motion_nm", np.nan))} for i in order]
    soft = (params[:, 3] == params[:, 3].min()) & (params[:, 4] == params[:, 4].min())
    fast["train_fast_share_soft_angle_runs"] = float(per_run[soft].mean() * hold.mean()) if soft.any() else None
    fast["train_fast_share_other_runs"] = float(per_run[~soft].mean() * hold.mean())
    fast["share_of_total_from_soft_angle_runs"] = float(per_run[soft].sum() / per_run.sum()) if soft.any() else None

    # 2. kinetic energy and normalisation scales
    mass = float(full.metadata.get("monomer_mass_amu", 1.0))
    V = X[..., 3:6]
    ke = 0.5 * mass * (V.double() ** 2).sum(-1) * AMU_NM2_PS2_TO_KJMOL  # [R, F, N] kJ/mol
    bonds = full.topology.bonds
    P = X[..., 0:3].double()
    blen = (P[..., bonds[:, 0], :] - P[..., bonds[:, 1], :]).norm(dim=-1)  # [R, F, nb]
    bond_std_in_run = blen[:, hold].std(1)  # [R, nb]
    pos_std = norm.x_std[:, 0:3].norm(dim=-1)  # per node, nm
    pstd_b = 0.5 * (pos_std[bonds[:, 0]] + pos_std[bonds[:, 1]])
    ratio = (bond_std_in_run / pstd_b[None]).flatten()
    scales = {
        "energy_std_per_node_kjmol": {"min": float(ys.min()), "median": float(ys.median()), "max": float(ys.max())},
        "energy_mean_per_node_kjmol_median": float(ym.median()),
        "smallest_std_nodes": [int(i) for i in torch.argsort(ys)[:6]],
        "kinetic_hold_mean_kjmol_per_node": float(ke[:, hold].mean()),
        "energy_hold_mean_kjmol_per_node": float(Y[:, hold].mean()),
        "bond_length_std_within_run_hold_nm": {"median": float(bond_std_in_run.median()), "p90": float(bond_std_in_run.quantile(0.9)),
                                               "max": float(bond_std_in_run.max())},
        "position_std_per_node_nm": {"min": float(pos_std.min()), "median": float(pos_std.median()), "max": float(pos_std.max())},
        "bond_fluct_over_position_std": {"median": float(ratio.median()), "p90": float(ratio.quantile(0.9))},
        "float32_eps_times_position_scale_nm": float(np.finfo(np.float32).eps * float(X[..., 0:3].abs().max())),
    }
    # 3. smooth floor
    floor = smooth_floor(X, Yn, Xv, Yvn, frac, args.mlp_epochs, args.seed) if args.mlp_epochs > 0 else None
    res = {"data": str(args.data), "train_runs": len(tr), "val_runs": len(va), "frames_per_run": int(F),
           "hold_frames": int(hold.sum()), "protocol": proto, "fast": fast, "scales": scales, "smooth_floor": floor,
           "wall_s": time.perf_counter() - t0}
    txt = json.dumps(res, indent=1, default=float)
    print(txt)
    if args.out:
        from cgsurrogate.core.atomic import write_text_atomic

        write_text_atomic(args.out, txt + "\n")
    return res


if __name__ == "__main__":
    main()
