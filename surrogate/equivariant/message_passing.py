"""Scatter-based message aggregation and batched graph bookkeeping for the EGNN/EGHN family.

Graphs of a mini-batch are stored *flat*: node tensors are concatenated to ``[N_total, ...]``,
``batch[i]`` names the graph of node ``i`` and ``edge_index`` ``[2, E]`` holds global node ids
(row = receiver ``i``, col = sender ``j``). Aggregation uses torch's native scatter kernels
(no torch-scatter). ``bench/scatter.py`` measures ``index_add_`` against ``scatter_reduce_``
at one and two threads; :data:`DEFAULT_METHOD` is the one chosen from those figures.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

#: aggregation kernel used by all layers unless told otherwise ("scatter_reduce" or "index_add").
#: scatter_reduce_ was chosen: at two threads index_add_ degrades badly when many edges land
#: on few rows (see bench/scatter.py), while scatter_reduce_ stays flat.
DEFAULT_METHOD = "scatter_reduce"


def aggregate(messages: torch.Tensor, index: torch.Tensor, num_nodes: int, reduce: str = "sum",
              method: str | None = None) -> torch.Tensor:
    """Sum or average edge messages onto their receiving nodes.

    Parameters
    ----------
    messages : Tensor [E, *F]
        One message per edge (any trailing shape).
    index : LongTensor [E]
        Receiving node of each edge, in ``[0, num_nodes)``.
    num_nodes : int
        Number of output rows.
    reduce : {"sum", "mean"}
        ``mean`` divides by the number of incoming edges (nodes with none get zeros).
    method : {"scatter_reduce", "index_add"}, optional
        Kernel; defaults to :data:`DEFAULT_METHOD`.

    Returns
    -------
    Tensor [num_nodes, *F]
    """
    method = method or DEFAULT_METHOD
    if reduce not in ("sum", "mean"):
        raise ValueError(f"aggregate: reduce must be 'sum' or 'mean', got {reduce!r}")
    trailing = messages.shape[1:]
    flat = messages.reshape(messages.shape[0], -1)
    out = flat.new_zeros((num_nodes, flat.shape[1]))
    if method == "index_add":
        out = out.index_add(0, index, flat)
    elif method == "scatter_reduce":
        idx = index.view(-1, 1).expand_as(flat)
        out = out.scatter_reduce(0, idx, flat, reduce="sum", include_self=True)
    else:
        raise ValueError(f"aggregate: unknown method {method!r}")
    if reduce == "mean":
        count = torch.zeros(num_nodes, dtype=flat.dtype, device=flat.device)
        count = count.scatter_add(0, index, torch.ones_like(index, dtype=flat.dtype))
        out = out / count.clamp_min(1.0).unsqueeze(1)
    return out.reshape((num_nodes,) + tuple(trailing))


def graph_mean(values: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Per-graph mean of node values.

    Parameters
    ----------
    values : Tensor [N, *F]
    batch : LongTensor [N]
        Graph id of each node.
    num_graphs : int

    Returns
    -------
    Tensor [num_graphs, *F]
    """
    return aggregate(values, batch, num_graphs, reduce="mean")


@dataclass
class GraphBatch:
    """A mini-batch of geometric graphs stored flat.

    Attributes
    ----------
    pos : Tensor [N, 3]
        Positions (any length unit; nm inside this toolkit's own data).
    vel : Tensor [N, 3]
        Velocities (or frame differences), same length unit per time unit.
    h : Tensor [N, F]
        Invariant node features.
    edge_index : LongTensor [2, E]
        A_global message graph (row = receiver, col = sender), global node ids.
    edge_attr : Tensor [E, D]
        Invariant edge features of A_global.
    local_edge_index : LongTensor [2, E_l]
        A_local connectivity graph (bonds, same-complex pairs).
    local_edge_attr : Tensor [E_l, D]
        Invariant edge features of A_local.
    batch : LongTensor [N]
        Graph id of every node.
    num_graphs : int
    target : Tensor [N, 3], optional
        Positions to predict (dynamics task).
    """

    pos: torch.Tensor
    vel: torch.Tensor
    h: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    local_edge_index: torch.Tensor
    local_edge_attr: torch.Tensor
    batch: torch.Tensor
    num_graphs: int
    target: torch.Tensor | None = None

    @property
    def num_nodes(self) -> int:
        return int(self.pos.shape[0])

    def to(self, *args, **kwargs) -> "GraphBatch":
        """Move/cast float tensors (index tensors keep their integer dtype)."""
        def conv(t):
            if t is None:
                return None
            if t.is_floating_point():
                return t.to(*args, **kwargs)
            dev = [a for a in args if isinstance(a, (str, torch.device))]
            return t.to(dev[0]) if dev else t
        return replace(self, **{k: conv(getattr(self, k)) for k in
                                ("pos", "vel", "h", "edge_index", "edge_attr", "local_edge_index",
                                 "local_edge_attr", "batch", "target")})


def collate_graphs(graphs: list[dict]) -> GraphBatch:
    """Concatenate single graphs into a :class:`GraphBatch`, offsetting edge indices.

    Parameters
    ----------
    graphs : list of dict
        Each with ``pos`` [n,3], ``vel`` [n,3], ``h`` [n,F], ``edge_index`` [2,e],
        ``edge_attr`` [e,D], ``local_edge_index`` [2,e_l], ``local_edge_attr`` [e_l,D] and
        optionally ``target`` [n,3] (tensors or numpy arrays).

    Returns
    -------
    GraphBatch
    """
    keys = ("pos", "vel", "h", "edge_attr", "local_edge_attr")
    out = {k: [] for k in keys}
    ei, lei, batch, tgt = [], [], [], []
    offset = 0
    for b, g in enumerate(graphs):
        n = int(len(g["pos"]))
        for k in keys:
            out[k].append(torch.as_tensor(g[k]))
        ei.append(torch.as_tensor(g["edge_index"], dtype=torch.long) + offset)
        lei.append(torch.as_tensor(g["local_edge_index"], dtype=torch.long) + offset)
        batch.append(torch.full((n,), b, dtype=torch.long))
        if g.get("target") is not None:
            tgt.append(torch.as_tensor(g["target"]))
        offset += n
    return GraphBatch(
        pos=torch.cat(out["pos"]), vel=torch.cat(out["vel"]), h=torch.cat(out["h"]),
        edge_index=torch.cat(ei, 1), edge_attr=torch.cat(out["edge_attr"]),
        local_edge_index=torch.cat(lei, 1), local_edge_attr=torch.cat(out["local_edge_attr"]),
        batch=torch.cat(batch), num_graphs=len(graphs),
        target=torch.cat(tgt) if len(tgt) == len(graphs) else None,
    )


def fully_connected_edges(n: int) -> torch.Tensor:
    """All ordered pairs (i, j), i != j, of ``n`` nodes.

    Returns
    -------
    LongTensor [2, n (n - 1)]
    """
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = i != j
    return torch.stack([i[keep], j[keep]])


def mlp(sizes: list[int], act: type[torch.nn.Module] = torch.nn.SiLU, last_act: bool = False) -> torch.nn.Sequential:
    """A plain multi-layer perceptron ``Linear-act-...-Linear``.

    Parameters
    ----------
    sizes : list of int
        Layer widths, input first.
    act : nn.Module class
        Activation between layers.
    last_act : bool
        Also apply the activation after the last layer.
    """
    layers: list[torch.nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2 or last_act:
            layers.append(act())
    return torch.nn.Sequential(*layers)
