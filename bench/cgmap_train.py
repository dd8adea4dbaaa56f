"""Train the shipped DSGPM (``surrogate/pretrained/dsgpm_ham.pt``) on every HAM annotation.

The same selection procedure the nested cross-validation estimates
(:func:`cgsurrogate.surrogate.cgmap.nested_cv.dsgpm_fit`): inner splits of the molecules
choose each member's epoch; the feature set is given (``--features``; with two, member 0 is
trained with each and the better inner validation score decides). Writes the checkpoint
through ``core.checkpoint_io`` with the selection record, settings and machine load.

``--refit R`` then refits R networks (seeds ``seed ..``) on every annotation for the selected
number of epochs on the same schedule (:func:`cgsurrogate.surrogate.cgmap.nested_cv.dsgpm_refit`),
as the nested CV's ``--refit`` does per outer fold; ``--selection-from CKPT`` reuses the
selection record stored in an earlier checkpoint of this script with the same selection
settings instead of repeating the inner training.

    python bench/cgmap_train.py --ham /work/shared/data/ham   # 500 epochs, constant lr 1e-3, rich features
    python bench/cgmap_train.py --refit 1 --selection-from surrogate/pretrained/dsgpm_ham.pt --out new.pt
    python bench/cgmap_train.py --pretrain-epochs 50 --out new.pt   # masked-atom pretraining first

``--pretrain-epochs N``: every network (members and refits) starts from an encoder pretrained
for N epochs on masked-atom prediction over the HAM molecules
(:mod:`cgsurrogate.surrogate.cgmap.pretraining`), as the nested CV's ``--pretrain-epochs`` does
per outer fold on the training folds' molecules. ``--loss-form squared``: the authors' code's squared
distances in the triplet and pair losses (default ``l2``, the paper's text); ``--triplets per-cut-edge``:
the authors' code's one random triplet per cut bond (default ``all``); ``--sampling molecule`` (default): each
molecule is a sample with one random annotation per epoch, as the authors' code batches (``annotation``:
every annotation is a sample). Defaults: 500 epochs at a constant Adam 1e-3, validated every 25 epochs
(issue 14; before: ``--epochs 50 --eval-every 10 --lr-final 1e-5 --sampling annotation``).
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from cgsurrogate.data.ham import load_ham  # noqa: E402
from cgsurrogate.surrogate.cgmap.checkpoint import PRETRAINED_PATH, save_dsgpm  # noqa: E402
from cgsurrogate.surrogate.cgmap.nested_cv import dsgpm_fit, dsgpm_refit  # noqa: E402

SELECTION_SETTINGS = ("epochs", "eval_every", "members", "features", "seed", "lr_final", "augment",
                      "pretrain_epochs", "mask_fraction", "edge_hidden", "loss_form", "triplets", "sampling")
# values of the settings older checkpoints did not record
DEFAULTS = {"pretrain_epochs": 0, "mask_fraction": 0.15, "edge_hidden": 8, "loss_form": "l2", "triplets": "all", "sampling": "annotation"}


def stored_selection(path, args) -> dict:
    """The selection record of an earlier checkpoint written by this script with the same selection settings."""
    from cgsurrogate.surrogate.cgmap.checkpoint import load_dsgpm

    info = load_dsgpm(path).info
    diff = [k for k in SELECTION_SETTINGS if info.get("settings", {}).get(k, DEFAULTS.get(k)) != getattr(args, k)]
    if diff or "members" not in info:
        raise SystemExit(f"{path}: no selection record with these settings (differs in {diff}); rerun the selection")
    return dict(info["selection"], members=info["members"], selection_from=str(path),
                selection_seconds=info.get("selection_seconds", info.get("train_seconds")))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ham", default=None)
    p.add_argument("--out", default=str(PRETRAINED_PATH))
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--members", type=int, default=1)
    p.add_argument("--features", default="rich")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr-final", type=float, default=0.0,
                   help="0 (default): constant lr 1e-3 (the authors' code); else exponential decay to this")
    p.add_argument("--augment", default="none", choices=("none", "automorphisms"))
    p.add_argument("--refit", type=int, default=0,
                   help="refit this many networks on every annotation after selection (0: ship the selected ones)")
    p.add_argument("--selection-from", default=None, help="reuse the selection record of this earlier checkpoint")
    p.add_argument("--pretrain-epochs", type=int, default=0,
                   help="masked-atom pretraining epochs on the HAM molecules before selection (0: none)")
    p.add_argument("--mask-fraction", type=float, default=0.15, help="fraction of atoms masked in pretraining")
    p.add_argument("--edge-hidden", type=int, default=8,
                   help="hidden width of the edge network (bond class -> d x d matrix); the authors' code uses 128")
    p.add_argument("--loss-form", default="l2", choices=("l2", "squared"),
                   help="DSGPM loss: l2 = plain distances (the paper's eq. 6-7), squared = the authors' code")
    p.add_argument("--sampling", default="molecule", choices=("annotation", "molecule"),
                   help="training sample: each molecule with one random annotation per epoch (default, the "
                        "authors' code) or each annotation (the procedure shipped before issue 14's 500-epoch run)")
    p.add_argument("--triplets", default="all", choices=("all", "per-cut-edge"),
                   help="every (anchor, positive, negative) triplet (paper's text) or one per cut bond (authors' code)")
    args = p.parse_args(argv)
    if args.selection_from and not args.refit:
        raise SystemExit("--selection-from needs --refit R (R >= 1)")
    if args.selection_from and args.pretrain_epochs:
        raise SystemExit("--selection-from reuses no pretrained encoder; run the selection with --pretrain-epochs")
    pretrain = {"epochs": args.pretrain_epochs, "mask_fraction": args.mask_fraction} if args.pretrain_epochs else None
    torch.set_num_threads(1)
    load0 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    anns = load_ham(args.ham)
    t0 = time.perf_counter()
    if args.selection_from:
        record = stored_selection(args.selection_from, args)
    else:
        emb, record = dsgpm_fit(anns, members=args.members, epochs=args.epochs, eval_every=args.eval_every,
                                feature_sets=tuple(args.features.split(",")), seed=args.seed,
                                lr_final=args.lr_final, augment=args.augment, pretrain=pretrain,
                                model_config={"edge_hidden": args.edge_hidden},
                                refit=args.refit if pretrain else 0, progress=True, distance=args.loss_form,
                                triplets=args.triplets, sampling=args.sampling)  # refits start from the encoder
    selection_seconds = time.perf_counter() - t0
    from cgsurrogate.surrogate.cgmap.network import DSGPM

    models = []
    if args.refit and not pretrain:
        fitted = [dsgpm_refit(anns, record, r, epochs=args.epochs, lr_final=args.lr_final, seed=args.seed,
                              augment=args.augment, model_config={"edge_hidden": args.edge_hidden}, progress=True,
                              distance=args.loss_form, triplets=args.triplets, sampling=args.sampling)
                  for r in range(args.refit)]
        models = [m for m, _ in fitted]
        record = dict(record, refit=[i for _, i in fitted])
    else:
        for m in emb.members:
            net = DSGPM(**emb.config)
            net.load_state_dict({k: torch.from_numpy(v).float() for k, v in m.items() if not k.startswith("_")})
            models.append(net)
    seconds = time.perf_counter() - t0
    procedure = "nested_cv.dsgpm_fit on all annotations" + (
        f", then {args.refit} network(s) refitted on all annotations (nested_cv.dsgpm_refit)" if args.refit else "")
    info = dict(data=f"HAM subset ({len(anns)} annotations, {len({a.smiles for a in anns})} molecules)",
                procedure=procedure, settings=vars(args), selection_seconds=selection_seconds,
                selection={k: v for k, v in record.items() if k != "members"},
                members=[{k: v for k, v in m.items() if k != "history"} for m in record["members"]],
                train_seconds=seconds, load_before=load0,
                load_after=subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    save_dsgpm(args.out, models, info)
    print(f"wrote {args.out} ({seconds:.0f} s): {info['selection']}, members {info['members']}")


if __name__ == "__main__":
    main()
