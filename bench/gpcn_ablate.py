"""Short training ablations of the single GCN (issue 13, hypotheses 2-3): which change lets it fit?

Every variant trains with the project's trainer (``gcn_trainer.train``: Adam, batch 8, epochs of 20
batches, the same split and batches for every variant: seed 0) for ``--epochs`` epochs on one
dataset, and reports the best validation NMSE, the training loss at the end and the wall time.
Variants (deviations from the paper are marked):

* ``gcn``: the trained model (paper's layers, input skip on).
* ``head-only``: the node-wise dense head alone on the input features (no graph convolution): a
  node-wise MLP of the normalised node features.
* ``gcn-lr3e-4``, ``gcn-lr3e-3``: other Adam learning rates (paper: the default 1e-3).
* ``gcn-Lscaled`` (deviation): ``L / rho(L)`` (spectral radius 1) instead of ``L = A - D``.
* ``gcn-relu-head`` (deviation): ReLU instead of sigmoid in the dense head.
* ``gcn-nodepos``, ``head-only-nodepos`` (deviation): three more input columns, the node's resting
  position (nm) standardised over the 624 nodes, the same in every sample: tells the model where on
  the tube a node is, which per-node normalisation removes from the positions.

    python bench/gpcn_ablate.py --data runs/gpcn_g7s240_f3e-5 --epochs 60 --variants gcn head-only
"""
from __future__ import annotations

import argparse
import json
import time
import types
from pathlib import Path

import torch

VARIANTS = ("gcn", "head-only", "gcn-lr3e-4", "gcn-lr3e-3", "gcn-Lscaled", "gcn-relu-head", "gcn-nodepos",
            "head-only-nodepos")


def build(variant: str, hier, in_features: int):
    from cgsurrogate.surrogate.gcn.layers import spectral_radius
    from cgsurrogate.surrogate.train.gcn_trainer import build_training_model

    if variant == "head-only":
        model = build_training_model("gcn", hier, in_features, {"filters": [[]]})

        def fwp(x, _m=model):
            return _m.head(x), x

        model.forward_with_preactivation = fwp
        return model
    if variant == "gcn-Lscaled":
        lap = hier.laplacians[0]
        scaled = types.SimpleNamespace(laplacians=[lap / spectral_radius(lap)], P=[])
        return build_training_model("gcn", scaled, in_features)
    model = build_training_model("gcn", hier, in_features)
    if variant == "gcn-relu-head":
        head = model.head

        def forward(h, _head=head):
            for i, lin in enumerate(_head.layers):
                h = lin(h)
                if i < len(_head.layers) - 1:
                    h = torch.relu(h)
            return h

        head.forward = forward
    return model


def main(argv=None) -> dict:
    from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy
    from cgsurrogate.surrogate.train.gcn_trainer import TrainConfig, load_normalised_dataset, train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--max-val-samples", type=int, default=120)
    ap.add_argument("--out", default=None, help="JSON file (results are merged into it)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = load_normalised_dataset(args.data, 0.2, 0, args.max_val_samples)
    hier = microtubule_hierarchy(3)
    out = Path(args.out) if args.out else None
    res = json.loads(out.read_text()) if out and out.is_file() else {}
    from cgsurrogate.simulate.microtubule import microtubule_topology

    rest = torch.as_tensor(microtubule_topology().positions, dtype=torch.float32)
    rest = (rest - rest.mean(0)) / rest.std(0)  # [624, 3]

    def with_nodepos(X):
        return torch.cat([X, rest.expand(X.shape[0], -1, -1)], -1)

    for v in args.variants:
        torch.manual_seed(0)
        Xt, Xv = data["X_train"], data["X_val"]
        if v.endswith("-nodepos"):
            Xt, Xv = with_nodepos(Xt), with_nodepos(Xv)
        model = build(v.replace("-nodepos", ""), hier, Xt.shape[-1])
        lr = {"gcn-lr3e-4": 3e-4, "gcn-lr3e-3": 3e-3}.get(v, 1e-3)
        cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=20, batch_size=8, lr=lr, seed=0)
        t0 = time.perf_counter()
        r = train(model, Xt, data["Y_train"], Xv, data["Y_val"], cfg, None, progress=False)
        hist = r["history"]
        res[f"{args.data}|{v}|{args.epochs}"] = {
            "data": args.data, "variant": v, "epochs": args.epochs, "best_val_nmse": r["best_val_nmse"],
            "best_epoch": r["best_epoch"], "train_loss_last10": sum(h["train_loss"] for h in hist[-10:]) / min(10, len(hist)),
            "wall_s": time.perf_counter() - t0}
        print(json.dumps(res[f"{args.data}|{v}|{args.epochs}"]), flush=True)
        if out:
            from cgsurrogate.core.atomic import write_json_atomic

            write_json_atomic(out, res)
    return res


if __name__ == "__main__":
    main()
