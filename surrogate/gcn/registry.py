"""Registry of the paper's GCN-family models (table 2) behind one constructor.

``build_model(name, hierarchy=None, in_features=11, **config)`` builds any of

========== ===============================================================================
name        model (filters finest first; every GCN has the dense head 256, 32, 8, 1)
========== ===============================================================================
gcn         single GCN on ``L_mt``: 64, 64, 64
ensemble-2  GCNs on ``L_mt``: 64s + 32s
ensemble-3  GCNs on ``L_mt``: 64s + 32s + 16s
gpcn-2      GPCN: ``L_mt`` 32s, ``L_inter`` 64s, fixed P
gpcn-3      GPCN: ``L_mt`` 16s, ``L_inter`` 32s, ``L_coarse`` 64s, fixed P
a-gpcn-2    as gpcn-2 with trainable P (A-GPCN)
a-gpcn-3    as gpcn-3 with trainable P (A-GPCN)
ngcn-3      N-GCN, radii (1, 2, 4), 64s each
ngcn-5      N-GCN, radii (1, 2, 4, 8, 16), 64s each
diffpool-3  3-level GPCN with DiffPool assignments instead of P (sizes of the hierarchy)
========== ===============================================================================

Every model maps normalised node features ``x [B, N, F]`` to ``[B, N, 1]``. ``model.config``
is a dict of plain values such that ``build_model(hierarchy=h, **model.config)`` rebuilds
the same architecture (the hierarchy supplies structure matrices and initial P; trained
weights, including an A-GPCN's P, come from the state dict).
"""
from __future__ import annotations

import copy

from torch import nn

from cgsurrogate.core.errors import CGSurrogateError

from cgsurrogate.surrogate.gcn.diffpool import DiffPoolGPCN
from cgsurrogate.surrogate.gcn.layers import DEFAULT_DENSE, GCN, GCNEnsemble
from cgsurrogate.surrogate.gcn.gpcn import GPCN
from cgsurrogate.surrogate.gcn.ngcn import NGCN

F64, F32, F16 = (64, 64, 64), (32, 32, 32), (16, 16, 16)

#: Default configuration of each model name (filters finest level / first member first).
MODEL_DEFAULTS: dict[str, dict] = {
    "gcn": {"filters": [F64]},
    "ensemble-2": {"filters": [F64, F32]},
    "ensemble-3": {"filters": [F64, F32, F16]},
    "gpcn-2": {"filters": [F32, F64], "levels": 2, "adaptive": False},
    "gpcn-3": {"filters": [F16, F32, F64], "levels": 3, "adaptive": False},
    "a-gpcn-2": {"filters": [F32, F64], "levels": 2, "adaptive": True},
    "a-gpcn-3": {"filters": [F16, F32, F64], "levels": 3, "adaptive": True},
    "ngcn-3": {"filters": [F64], "radii": [1, 2, 4]},
    "ngcn-5": {"filters": [F64], "radii": [1, 2, 4, 8, 16]},
    "diffpool-3": {"filters": [F16, F32, F64], "levels": 3},
}
MODEL_NAMES = tuple(MODEL_DEFAULTS)
#: Display names used in tables (paper's table 3 wording).
DISPLAY_NAMES = {
    "gcn": "Single GCN", "ensemble-2": "Ensemble-2 GCNs", "ensemble-3": "Ensemble-3 GCNs",
    "gpcn-2": "2-level GPCN", "a-gpcn-2": "2-level A-GPCN", "gpcn-3": "3-level GPCN",
    "a-gpcn-3": "3-level A-GPCN", "ngcn-3": "N-GCN radii (1,2,4)", "ngcn-5": "N-GCN radii (1,2,4,8,16)",
    "diffpool-3": "DiffPool",
}


def _plain(v):
    if isinstance(v, (list, tuple)):
        return [_plain(u) for u in v]
    return v


def build_model(name: str, hierarchy=None, in_features: int = 11, **config) -> nn.Module:
    """Build a model of the GCN family.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    hierarchy : Hierarchy-like, optional
        Object with ``laplacians`` (list of [n_i, n_i] structure matrices, finest first) and
        ``P`` (list of [n_i, n_{i+1}] prolongations); defaults to
        ``cgsurrogate.surrogate.graphs.hierarchy.microtubule_hierarchy()``.
    in_features : int
        Node feature width ``F`` (11 for the microtubule dataset).
    **config
        Overrides of :data:`MODEL_DEFAULTS` (``filters``, ``dense``, ``radii``, ``adaptive``,
        ``levels``, ``input_skip``). ``input_skip`` (default False, the paper's design and what
        checkpoints without the key were built with; the trainer turns it on) feeds the input
        features to each GCN's node-wise dense head too, so that features constant over the
        nodes (the five strengths) reach the output: ``L = A - D`` maps them to zero (issue 13).

    Returns
    -------
    nn.Module mapping [B, N, F] -> [B, N, 1], with attribute ``config`` (plain dict) and
    ``name``.
    """
    if name not in MODEL_DEFAULTS:
        raise CGSurrogateError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    cfg = copy.deepcopy(MODEL_DEFAULTS[name])
    unknown = set(config) - {"filters", "dense", "radii", "adaptive", "levels", "input_skip"}
    if unknown:
        raise CGSurrogateError(f"unknown option(s) for model {name!r}: {', '.join(sorted(unknown))}")
    cfg.update(config)
    cfg.setdefault("dense", list(DEFAULT_DENSE))
    cfg.setdefault("input_skip", False)
    skip = bool(cfg["input_skip"])
    if hierarchy is None:
        from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy

        hierarchy = microtubule_hierarchy(levels=max(3, int(cfg.get("levels", 1))))
    laps = list(hierarchy.laplacians)
    dense = tuple(cfg["dense"])
    filters = [tuple(f) for f in cfg["filters"]]
    if name == "gcn":
        model = GCN(laps[0], in_features, filters[0], dense, skip)
    elif name.startswith("ensemble"):
        model = GCNEnsemble(laps[0], in_features, filters, dense, skip)
    elif name.startswith("ngcn"):
        model = NGCN(laps[0], in_features, cfg["radii"], filters[0], dense, skip)
    elif name.startswith("diffpool"):
        k = int(cfg["levels"])
        if len(laps) < k:
            raise CGSurrogateError(f"model {name!r} needs a hierarchy with {k} levels, got {len(laps)}")
        sizes = [int(laps[i].shape[0]) for i in range(1, k)]
        model = DiffPoolGPCN(laps[0], sizes, in_features, filters, dense, skip)
    else:
        k = int(cfg["levels"])
        if len(laps) < k:
            raise CGSurrogateError(f"model {name!r} needs a hierarchy with {k} levels, got {len(laps)}")
        model = GPCN(laps[:k], list(hierarchy.P)[: k - 1], in_features, filters, dense,
                     adaptive=bool(cfg["adaptive"]), input_skip=skip)
    model.name = name
    model.config = {"name": name, "in_features": int(in_features), **{k: _plain(v) for k, v in cfg.items()}}
    return model


def model_levels(model: nn.Module) -> int:
    """Number of hierarchy levels a training schedule can address (1 for flat models)."""
    return int(getattr(model, "num_levels", 1)) if isinstance(model, GPCN) else 1


def flops_by_level(model: nn.Module) -> list[float]:
    """Forward FLOPs of one sample per level/member (paper's estimates), list of float."""
    if hasattr(model, "flops_by_level"):
        return list(model.flops_by_level())
    return [float(model.flops())]


__all__ = ["build_model", "MODEL_NAMES", "MODEL_DEFAULTS", "DISPLAY_NAMES", "model_levels", "flops_by_level"]
