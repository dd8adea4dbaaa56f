"""Is the per-node target something a node-shared model can fit? Two probes (issue 13, the GCN gap).

For a microtubule dataset folder, with the trainer's split and per-node normaliser (fitted on the
training runs), reports:

* ``node_modes``: the share of the validation runs' per-node normalised energy variance left after
  projecting each sample on the first k node patterns (principal components of the training
  samples' ``[samples, 624]`` matrix). A model whose weights are shared by all nodes and whose
  inputs carry no node identity (a GCN after per-node normalisation: every node's inputs have
  zero mean and unit variance) predicts, for nodes with alike inputs, alike outputs; a target
  that one pattern explains (share ~0 at k = 1) is what such a model fits easily.
* ``shared_poly``: NMSE of a least-squares fit shared by all nodes (ridge 1e-3) of a degree-2
  polynomial of what a 3-layer GCN sees at a node: its own normalised position and velocity, their
  1-, 2- and 3-hop Laplacian aggregates (``L^k x``, ``L = A - D``) and the strengths (the input
  skip); again with the node's resting position (3 columns, nm / 100) as an identity. Training and
  validation runs.

    python bench/gpcn_probe.py --data runs/gpcn_rest3_last --out bench/results/paper_table/probe_rest3_last.json
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from gpcn_diagnose import load_split


def node_modes(Yn: np.ndarray, Yvn: np.ndarray, ks=(1, 2, 3, 5, 10, 20)) -> dict:
    """Share of validation variance left after the first k training patterns; Yn/Yvn [S, N] normalised."""
    _, _, vt = np.linalg.svd(Yn, full_matrices=False)
    tot = float((Yvn ** 2).sum())
    return {str(k): float(((Yvn - (Yvn @ vt[:k].T) @ vt[:k]) ** 2).sum() / tot) for k in ks if k <= len(vt)}


def shared_poly(Xn, Yn, Xvn, Yvn, strengths, strengths_v, lap, rest=None, ridge: float = 1e-3) -> dict:
    """Degree-2 polynomial least squares shared by all nodes; X*n [S, N, 6] normalised positions and
    velocities, strengths* [S, 5] (/57), lap [N, N], rest [N, 3] or None."""
    def feats(X, s):
        dyn = X if np.abs(X[..., 3:]).max() > 0 else X[..., :3]  # static sets: velocities are all zero
        hops = [dyn]
        for _ in range(3):
            hops.append(np.einsum("ij,sjf->sif", lap, hops[-1]))
        cols = hops + [np.repeat(s[:, None], X.shape[1], 1)]
        if rest is not None:
            cols.append(np.repeat(rest[None], X.shape[0], 0))
        B = np.concatenate(cols, -1)
        iu = np.triu_indices(B.shape[-1])
        q = (B[..., :, None] * B[..., None, :])[..., iu[0], iu[1]]
        return np.concatenate([np.ones(B.shape[:-1] + (1,)), B, q], -1)

    P, Pv = feats(Xn, strengths), feats(Xvn, strengths_v)
    A = P.reshape(-1, P.shape[-1])
    G = A.T @ A
    G[np.diag_indices_from(G)] += ridge * len(A) / P.shape[-1]
    w = np.linalg.solve(G, A.T @ Yn.reshape(-1))
    return {"features": int(P.shape[-1]), "train_nmse": float(((P @ w - Yn) ** 2).mean()),
            "val_nmse": float(((Pv @ w - Yvn) ** 2).mean())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-samples", type=int, default=600,
                    help="evenly spaced training samples kept for the polynomial fit (memory); validation keeps a third")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    d = load_split(args.data, args.seed)
    norm, N = d["norm"], d["Y"].shape[2]
    X, Y, Xv, Yv = (d[k].reshape(-1, N, w) for k, w in (("X", 11), ("Y", 1), ("Xv", 11), ("Yv", 1)))
    xm, xs = norm.x_mean.double().numpy(), norm.x_std.double().numpy()
    xs = np.where(xs > 1e-12, xs, 1.0)
    ym, ys = norm.y_mean.double().numpy()[:, 0], norm.y_std.double().numpy()[:, 0]
    Xn, Xvn = (X.double().numpy() - xm) / xs, (Xv.double().numpy() - xm) / xs
    Yn, Yvn = (Y[..., 0].double().numpy() - ym) / ys, (Yv[..., 0].double().numpy() - ym) / ys

    from cgsurrogate.simulate.microtubule import microtubule_topology

    topo = microtubule_topology()
    A = np.zeros((N, N))
    A[topo.bonds[:, 0], topo.bonds[:, 1]] = A[topo.bonds[:, 1], topo.bonds[:, 0]] = 1.0
    lap = A - np.diag(A.sum(1))
    ti = np.unique(np.linspace(0, len(Yn) - 1, min(len(Yn), args.max_samples)).astype(int))
    vi = np.unique(np.linspace(0, len(Yvn) - 1, min(len(Yvn), max(1, args.max_samples // 3))).astype(int))
    s, sv = X[:, 0, 6:11].double().numpy() / 57.0, Xv[:, 0, 6:11].double().numpy() / 57.0
    out = {"data": args.data, "train_samples": int(len(Yn)), "val_samples": int(len(Yvn)),
           "val_total_variance": float((Yvn ** 2).mean()),
           "node_modes_val_share_left": node_modes(Yn, Yvn),
           "poly_samples": [int(len(ti)), int(len(vi))],
           "shared_poly": shared_poly(Xn[ti, :, :6], Yn[ti], Xvn[vi, :, :6], Yvn[vi], s[ti], sv[vi], lap),
           "shared_poly_with_rest_position": shared_poly(Xn[ti, :, :6], Yn[ti], Xvn[vi, :, :6], Yvn[vi], s[ti], sv[vi],
                                                         lap, rest=topo.positions / 100.0),
           "wall_s": time.perf_counter() - t0}
    print(json.dumps(out, indent=1))
    if args.out:
        from cgsurrogate.core.atomic import write_json_atomic

        write_json_atomic(args.out, out, indent=1)
    return out


if __name__ == "__main__":
    main()
