"""Registry of the equivariant family (Han et al. 2022) behind one constructor, as
:mod:`cgsurrogate.surrogate.gcn.registry` is for the GCN family.

``build_dynamics_model(name, in_node, edge_dim, ...)`` builds any of

======== ==============================================================================
name      model
======== ==============================================================================
linear    ``x + dt v`` with one fitted dt (closed form, no gradient training)
mpnn      message passing on invariant features (not equivariant)
egnn      EGNN (Satorras et al. 2021)
eghn      EGHN: EMMP blocks, E-Pool / E-UnPool (Han et al. 2022); ``head="energy"`` for the energy head
======== ==============================================================================

Every model maps a :class:`cgsurrogate.surrogate.equivariant.message_passing.GraphBatch` to
``(positions [N, 3], aux)``; ``model.config`` is a dict of plain values such that
:func:`rebuild_from_config` rebuilds the same architecture.
"""
from __future__ import annotations

import torch

MODEL_NAMES = ("linear", "mpnn", "egnn", "eghn")


def build_dynamics_model(name: str, in_node: int, edge_dim: int, local_edge_dim: int | None = None,
                         n_clusters=(3,), hidden: int = 64, n_layers: int = 4, **kw) -> torch.nn.Module:
    """Construct a model of the equivariant family by name.

    Parameters
    ----------
    name : {"linear", "mpnn", "egnn", "eghn"}
    in_node, edge_dim, local_edge_dim : int
        Feature widths of the graphs (see :class:`cgsurrogate.surrogate.equivariant.message_passing.GraphBatch`).
    n_clusters : list of int
        EGHN clusters per E-Pool.
    hidden : int
    n_layers : int
        Message-passing layers (MPNN/EGNN).
    **kw
        ``tanh`` (EGNN, EGHN) and every further keyword of
        :class:`cgsurrogate.surrogate.equivariant.eghn.EGHN` (``layers_per_block``, ``pool_layers``,
        ``head``, ``lambda_conn``, ``unpool_init``, ``conn_norm``, ...), passed through for EGHN.
    """
    from cgsurrogate.surrogate.equivariant.egnn import EGNN
    from cgsurrogate.surrogate.equivariant.eghn import EGHN
    from cgsurrogate.surrogate.equivariant.mpnn import MPNN, LinearDynamics

    if name == "linear":
        return LinearDynamics()
    if name == "mpnn":
        return MPNN(in_node, edge_dim, hidden, n_layers)
    if name == "egnn":
        return EGNN(in_node, edge_dim, hidden, n_layers, tanh=kw.get("tanh", False))
    if name == "eghn":
        return EGHN(in_node, edge_dim, local_edge_dim if local_edge_dim is not None else edge_dim, hidden,
                    list(n_clusters), **kw)
    raise ValueError(f"unknown model {name!r}; choose from {MODEL_NAMES}")


def rebuild_from_config(config: dict) -> torch.nn.Module:
    """Inverse of ``model.config``: the same architecture with fresh weights."""
    from cgsurrogate.surrogate.equivariant.egnn import EGNN
    from cgsurrogate.surrogate.equivariant.eghn import EGHN
    from cgsurrogate.surrogate.equivariant.mpnn import MPNN, LinearDynamics

    c = dict(config)
    name = c.pop("name", None)
    classes = {"linear": LinearDynamics, "mpnn": MPNN, "egnn": EGNN, "eghn": EGHN}
    if name not in classes:
        raise ValueError(f"unknown model {name!r} in checkpoint; choose from {MODEL_NAMES}")
    return classes[name](**c)


__all__ = ["MODEL_NAMES", "build_dynamics_model", "rebuild_from_config"]
