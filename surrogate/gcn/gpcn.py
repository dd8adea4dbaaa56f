"""Graph prolongation convolutional networks: GPCN and adaptive A-GPCN (paper eq. 2).

``GPCN(X) = sum_i P_{1i} GCN(Z_i, P_{1i}^T X)`` over the levels ``i = 1..k`` of a
hierarchy (level 1 = the fine graph, ``P_{11} = I``; ``P_{1i} = P_{12} P_{23} ... P_{i-1,i}``).
Restriction and prolongation are done one level at a time (``X_i = P_{i-1,i}^T X_{i-1}``),
which is the same product at lower cost. In a GPCN the ``P_{i,i+1}`` are constant (the
hierarchy's prolongations); in an A-GPCN they are trainable parameters initialised from them
(sec. 4.2).

Level indices in this package start at 0 (the fine graph). Table 2's filters: 2-level GPCN
``L_mt`` 32,32,32 and ``L_inter`` 64,64,64; 3-level GPCN ``L_mt`` 16,16,16, ``L_inter``
32,32,32 and ``L_coarse`` 64,64,64.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from cgsurrogate.surrogate.gcn.flops import matmul_flops
from cgsurrogate.surrogate.gcn.layers import DEFAULT_DENSE, GCN, GCNEnsemble, StructureMatrix


def _dense_p(p) -> torch.Tensor:
    p = torch.as_tensor(p) if not isinstance(p, torch.Tensor) else p
    if p.layout != torch.strided:
        p = p.to_dense()
    return p.detach().to(torch.float32).clone()


def node_matmul(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``m @ x`` for a matrix ``m`` [k, n] and a batched node signal ``x`` [B, n, F] -> [B, k, F],
    done as one ``[k, n] @ [n, B*F]`` product (a broadcast batched matmul is slower on CPU)."""
    b, n, f = x.shape
    out = m @ x.transpose(0, 1).reshape(n, b * f)
    return out.reshape(m.shape[0], b, f).transpose(0, 1)


class GPCN(nn.Module):
    """Multilevel ensemble of GCNs coupled by prolongation matrices (eq. 2).

    Parameters
    ----------
    laplacians : sequence of [n_i, n_i] structure matrices, finest first
    prolongations : sequence of [n_i, n_{i+1}] matrices ``P_{i,i+1}`` (len = levels - 1)
    in_features : int
    filters : sequence (one per level, finest first) of sequences of int
    dense : sequence of int
        Node-wise dense head of every level's GCN.
    adaptive : bool
        Train the ``P_{i,i+1}`` (A-GPCN) instead of keeping them fixed (GPCN).

    Attributes
    ----------
    active_levels : tuple of int
        Levels included in the forward sum (all by default; coarse-to-fine training
        switches levels on one by one).

    Notes
    -----
    ``forward(x)``: ``x [B, n_0, F]`` -> ``[B, n_0, 1]``.
    """

    def __init__(self, laplacians: Sequence, prolongations: Sequence, in_features: int,
                 filters: Sequence[Sequence[int]], dense: Sequence[int] = DEFAULT_DENSE,
                 adaptive: bool = False, input_skip: bool = False):
        super().__init__()
        if len(laplacians) != len(filters):
            raise ValueError(f"{len(laplacians)} structure matrices but {len(filters)} filter lists")
        if len(prolongations) != len(laplacians) - 1:
            raise ValueError(f"{len(laplacians)} levels need {len(laplacians) - 1} prolongations, got {len(prolongations)}")
        self.adaptive = adaptive
        self.num_levels = len(laplacians)
        self.gcns = nn.ModuleList(GCN(StructureMatrix(z), in_features, f, dense, input_skip) for z, f in zip(laplacians, filters))
        ps = [_dense_p(p) for p in prolongations]
        for i, p in enumerate(ps):
            if p.shape != (self.gcns[i].n, self.gcns[i + 1].n):
                raise ValueError(f"P_{i},{i + 1} has shape {tuple(p.shape)}, expected {(self.gcns[i].n, self.gcns[i + 1].n)}")
        if adaptive:
            self.P = nn.ParameterList(nn.Parameter(p) for p in ps)
        else:
            for i, p in enumerate(ps):
                self.register_buffer(f"P_{i}", p)
        self.active_levels = tuple(range(self.num_levels))

    def prolongation(self, i: int) -> torch.Tensor:
        """``P_{i,i+1}`` [n_i, n_{i+1}] (a parameter for A-GPCN, a buffer for GPCN)."""
        return self.P[i] if self.adaptive else getattr(self, f"P_{i}")

    def level_parameters(self, level: int) -> list[nn.Parameter]:
        """Trainable parameters owned by ``level``: its GCN and, for an A-GPCN, the
        prolongation ``P_{level-1,level}`` that feeds it."""
        params = list(self.gcns[level].parameters())
        if self.adaptive and level > 0:
            params.append(self.P[level - 1])
        return params

    def restrict(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Inputs of every level, ``X_i = P_{1i}^T X`` (list of [B, n_i, F])."""
        xs = [x]
        for i in range(self.num_levels - 1):
            xs.append(node_matmul(self.prolongation(i).T, xs[-1]))
        return xs

    def forward_members(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Per-level pieces: the inputs ``X_i`` [B, n_i, F], the level outputs on the level's
        own graph [B, n_i, 1] and their first pre-activations ``A_1^{(i)}`` (only active levels
        are evaluated; inactive ones are ``None``)."""
        top = max(self.active_levels)
        xs = [x]
        for i in range(top):
            xs.append(node_matmul(self.prolongation(i).T, xs[-1]))
        ys, a1s = [None] * self.num_levels, [None] * self.num_levels
        for i in self.active_levels:
            ys[i], a1s[i] = self.gcns[i].forward_with_preactivation(xs[i])
        return xs, ys, a1s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, n_0, F] -> [B, n_0, 1]: ``sum_i P_{1i} GCN_i(P_{1i}^T X)``."""
        _, ys, _ = self.forward_members(x)
        acc = None
        for i in range(self.num_levels - 1, -1, -1):  # prolong coarse-to-fine, adding on the way
            if ys[i] is not None:
                acc = ys[i] if acc is None else acc + ys[i]
            if i > 0 and acc is not None:
                acc = node_matmul(self.prolongation(i - 1), acc)
        return acc

    def flops_by_level(self) -> list[float]:
        """Forward FLOPs of one sample charged to each level: its GCN plus, for level
        ``i > 0``, the restriction ``P_{i-1,i}^T X_{i-1}`` (``n_i n_{i-1} F``) and the
        prolongation of its output (``n_{i-1} n_i``) (paper: a product n x k by k x m costs nmk)."""
        out = []
        for i, g in enumerate(self.gcns):
            f = g.flops()
            if i > 0:
                n_prev, n_i = self.gcns[i - 1].n, g.n
                f_in = g.convs[0].in_features
                f += matmul_flops(n_i, n_prev, f_in) + matmul_flops(n_prev, n_i, 1)
            out.append(float(f))
        return out

    def flops(self) -> float:
        """Forward FLOPs of one sample with all levels active."""
        return float(sum(self.flops_by_level()))


def input_gradient_eq6(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Gradient of the total predicted energy ``E = sum(model(x))`` w.r.t. the input ``x``
    by the paper's explicit rule (sec. 5.1.1).

    For each GCN member ``i``: ``dE_i/dX_i = Z_i^T (dE/dA_1^{(i)}) W_1^{(i)T}`` (eq. 6),
    where ``dE/dA_1`` (the pre-activation gradient backpropagation computes anyway) is taken
    from autograd; then ``dE/dX = sum_i P_{1i} dE_i/dX_i``.

    Parameters
    ----------
    model : GCN, GCNEnsemble or GPCN
    x : [B, n_0, F]

    Returns
    -------
    [B, n_0, F] tensor.
    """
    x = x.detach()
    if isinstance(model, GPCN):
        xs, ys, a1s = model.forward_members(x)
        gcns = model.gcns
        # members' energies: E_i = sum over fine nodes of P_{1i} y_i = sum of (1^T P_{1i}) y_i
        energies = []
        for i in model.active_levels:
            yi = ys[i]
            for j in range(i - 1, -1, -1):
                yi = torch.matmul(model.prolongation(j), yi)
            energies.append((i, yi.sum()))
    elif isinstance(model, GCNEnsemble):
        gcns = list(model.members)
        energies, a1s = [], []
        for i, m in enumerate(gcns):
            y, a1 = m.forward_with_preactivation(x)
            a1s.append(a1)
            energies.append((i, y.sum()))
    elif isinstance(model, GCN):
        gcns = [model]
        y, a1 = model.forward_with_preactivation(x)
        a1s = [a1]
        energies = [(0, y.sum())]
    else:
        raise ValueError(f"eq. 6 gradient is defined for GCN/GCNEnsemble/GPCN, not {type(model).__name__}")
    total = None
    for i, e in energies:
        (g_a1,) = torch.autograd.grad(e, a1s[i], retain_graph=True)
        w1 = gcns[i].convs[0].weight
        zt = gcns[i].z.to_dense().T
        gi = torch.matmul(zt, g_a1) @ w1.T  # eq. 6, [B, n_i, F]
        if isinstance(model, GPCN):
            for j in range(i - 1, -1, -1):  # P_{1i} dE_i/dX_i
                gi = torch.matmul(model.prolongation(j), gi)
        total = gi if total is None else total + gi
    return total.detach()


__all__ = ["GPCN", "input_gradient_eq6"]
