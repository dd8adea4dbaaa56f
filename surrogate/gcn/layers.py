"""Graph convolutional networks (Scott & Mjolsness 2021, sec. 2.3 and 4.5).

A GCN here is ``m`` graph-convolution layers ``X_l = ReLU(Z X_{l-1} W_l + b_l)`` with a
structure matrix ``Z`` (the graph Laplacian ``L = A - D`` in every experiment of the
paper), followed by node-wise dense layers (default 256, 32, 8, 1; sigmoid activations,
linear output) fed with the node-wise concatenation of the outputs of all graph
convolution layers. Every model maps normalised node features ``x [B, N, F]`` to the
normalised per-node energy ``[B, N, 1]``.

Structure matrices are applied sparsely (:class:`StructureMatrix`), so the cost scales
with the number of nonzeros ``|Z|`` (the paper's own implementation was dense).

FLOPs follow the paper's estimates (sec. 4.1): a graph convolution layer with ``n x n``
structure matrix, ``n x F`` input and ``F x C`` filter costs ``n F (|Z| + C)``; a
node-wise dense layer costs ``n F C``. Every module exposes ``flops()`` (forward cost of
one sample).
"""
from __future__ import annotations

from typing import Sequence

import warnings

import numpy as np
import torch
from torch import nn

from cgsurrogate.surrogate.gcn.flops import dense_flops, gcn_layer_flops

DEFAULT_FILTERS = (64, 64, 64)
DEFAULT_DENSE = (256, 32, 8, 1)


def _to_coo(matrix) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(indices [2, nnz] int64, values [nnz] float64, n) of a square matrix given as a
    torch sparse/dense tensor, a scipy sparse matrix or a numpy array."""
    if isinstance(matrix, torch.Tensor):
        if matrix.is_sparse or matrix.layout in (torch.sparse_csr, torch.sparse_csc):
            m = matrix.to_sparse_coo().coalesce() if matrix.layout != torch.sparse_coo else matrix.coalesce()
            idx, val = m.indices(), m.values().double()
        else:
            d = matrix.double()
            idx = d.nonzero().T
            val = d[idx[0], idx[1]]
        n = int(matrix.shape[0])
    else:
        import scipy.sparse as sp

        m = sp.coo_matrix(matrix)
        m.sum_duplicates()
        idx = torch.as_tensor(np.stack([m.row, m.col]).astype(np.int64))
        val = torch.as_tensor(m.data, dtype=torch.float64)
        n = int(m.shape[0])
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"structure matrix must be square, got shape {tuple(matrix.shape)}")
    keep = val != 0
    return idx[:, keep].contiguous(), val[keep].contiguous(), n


class _CSRMatmul(torch.autograd.Function):
    """``Z @ X`` with a constant CSR ``Z``; the backward uses a precomputed CSR ``Z^T``
    (``torch.sparse.mm``'s own backward re-converts the transpose to CSR on every call)."""

    @staticmethod
    def forward(ctx, x, csr, csr_t):
        ctx.csr_t = csr_t
        return torch.sparse.mm(csr, x)

    @staticmethod
    def backward(ctx, grad):
        return torch.sparse.mm(ctx.csr_t, grad.contiguous()), None, None


class StructureMatrix(nn.Module):
    """A fixed ``n x n`` structure matrix ``Z`` applied to batched node signals.

    Parameters
    ----------
    matrix : torch sparse/dense tensor, scipy sparse matrix or ndarray, shape [n, n]
    mode : {"auto", "csr", "edges", "dense"}
        ``"csr"``: ``torch.sparse.mm`` with a CSR matrix on the ``[n, B*F]`` reshaped
        signal; ``"edges"``: gather + ``index_add_`` over the nonzeros; ``"dense"``: a dense
        matmul (used when the matrix is more than 25 % full, e.g. high Laplacian powers).
        ``"auto"`` picks dense above 25 % fill and CSR otherwise (CSR measured faster than
        index_add on the microtubule Laplacian for ``B*F`` >= 88 columns, see
        ``bench/paper_table.py --sparse-only``).

    Attributes
    ----------
    n : int
        Number of nodes.
    nnz : int
        Number of nonzeros ``|Z|`` (used in FLOP counts).
    """

    def __init__(self, matrix, mode: str = "auto"):
        super().__init__()
        idx, val, n = _to_coo(matrix)
        self.n = n
        self.nnz = int(val.numel())
        if mode == "auto":
            mode = "dense" if self.nnz > 0.25 * n * n else "csr"
        if mode not in ("csr", "edges", "dense"):
            raise ValueError(f"unknown structure-matrix mode {mode!r}")
        self.mode = mode
        coo = torch.sparse_coo_tensor(idx, val.float(), (n, n), check_invariants=True).coalesce()
        self.register_buffer("row", coo.indices()[0].clone(), persistent=False)
        self.register_buffer("col", coo.indices()[1].clone(), persistent=False)
        self.register_buffer("val", coo.values().clone(), persistent=False)
        if mode == "csr":
            with warnings.catch_warnings():  # "sparse CSR support is in beta state"
                warnings.simplefilter("ignore", UserWarning)
                csr = coo.to_sparse_csr()
                csr_t = coo.t().coalesce().to_sparse_csr()
            self.register_buffer("csr", csr, persistent=False)
            self.register_buffer("csr_t", csr_t, persistent=False)
        elif mode == "dense":
            self.register_buffer("dense", coo.to_dense(), persistent=False)

    def to_dense(self) -> torch.Tensor:
        """The matrix as a dense float32 tensor [n, n]."""
        return torch.sparse_coo_tensor(
            torch.stack([self.row, self.col]), self.val, (self.n, self.n), check_invariants=True
        ).to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Z x`` for ``x`` of shape [B, n, C] (or [n, C]); returns the same shape."""
        squeeze = x.dim() == 2
        if squeeze:
            x = x.unsqueeze(0)
        b, n, c = x.shape
        if n != self.n:
            raise ValueError(f"signal has {n} nodes, structure matrix has {self.n}")
        if self.mode == "dense":
            out = torch.matmul(self.dense.to(x.dtype), x)
        elif self.mode == "csr":
            flat = x.transpose(0, 1).reshape(n, b * c)
            out = _CSRMatmul.apply(flat, self.csr, self.csr_t).reshape(n, b, c).transpose(0, 1)
        else:
            msg = x[:, self.col, :] * self.val.to(x.dtype)[None, :, None]
            out = torch.zeros_like(x).index_add_(1, self.row, msg)
        return out.squeeze(0) if squeeze else out


class GraphConv(nn.Module):
    """One graph convolution layer ``g(Z X W + b)`` (sec. 2.3).

    Parameters
    ----------
    in_features, out_features : int
        ``F`` and ``C``.
    activation : bool
        Apply ReLU (all GCN layers of the paper do).
    """

    def __init__(self, in_features: int, out_features: int, activation: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.activation = activation
        nn.init.xavier_uniform_(self.weight)  # Glorot, the TensorFlow/Keras default

    def preactivation(self, z, x: torch.Tensor) -> torch.Tensor:
        """``A = Z X W + b`` for ``x`` [B, n, F] -> [B, n, C]; ``z`` is a callable applying Z
        (a :class:`StructureMatrix`) or a dense tensor [B, n, n] / [n, n]."""
        xw = x @ self.weight
        zxw = z(xw) if callable(z) else torch.matmul(z, xw)
        return zxw + self.bias

    def forward(self, z, x: torch.Tensor) -> torch.Tensor:
        """``ReLU(Z X W + b)``: [B, n, F] -> [B, n, C]."""
        a = self.preactivation(z, x)
        return torch.relu(a) if self.activation else a

    def flops(self, n: int, nnz: int) -> float:
        """Paper's estimate ``n F (|Z| + C)`` for one sample."""
        return gcn_layer_flops(n, self.in_features, nnz, self.out_features)


class NodeDense(nn.Module):
    """Node-wise dense head: layers ``dense`` (e.g. 256, 32, 8, 1), sigmoid activations,
    linear output. Maps [B, n, F] -> [B, n, dense[-1]]."""

    def __init__(self, in_features: int, dense: Sequence[int] = DEFAULT_DENSE):
        super().__init__()
        sizes = [in_features, *dense]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for lin in self.layers:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, lin in enumerate(self.layers):
            h = lin(h)
            if i < len(self.layers) - 1:
                h = torch.sigmoid(h)
        return h

    def flops(self, n: int) -> float:
        """Paper's estimate ``n F C`` summed over the dense layers, one sample."""
        return float(sum(dense_flops(n, lin.in_features, lin.out_features) for lin in self.layers))


class GCN(nn.Module):
    """One GCN: graph convolutions on ``Z`` then the node-wise dense head (sec. 4.5).

    Parameters
    ----------
    structure : StructureMatrix or anything :class:`StructureMatrix` accepts, [n, n]
    in_features : int
        ``F`` of the input signal.
    filters : sequence of int
        Output channels of the graph convolution layers (table 2: 64, 64, 64 etc.).
    dense : sequence of int
        Node-wise dense layers' sizes; the last is the output width (1).
    input_skip : bool
        Also feed the input ``x`` to the node-wise dense head (next to the graph convolution
        outputs). Needed for features that are constant over the nodes (the strengths): the
        Laplacian ``L = A - D`` has zero row sums, so ``Z X W`` maps such columns to zero and a
        GCN of only such layers never sees them (issue 13). The paper's design is ``False``.

    Notes
    -----
    ``forward(x)``: ``x [B, n, F]`` -> ``[B, n, dense[-1]]``.
    """

    def __init__(self, structure, in_features: int, filters: Sequence[int] = DEFAULT_FILTERS,
                 dense: Sequence[int] = DEFAULT_DENSE, input_skip: bool = False):
        super().__init__()
        self.z = structure if isinstance(structure, StructureMatrix) else StructureMatrix(structure)
        self.n = self.z.n
        sizes = [in_features, *filters]
        self.convs = nn.ModuleList(GraphConv(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.input_skip = bool(input_skip)
        self.head = NodeDense(sum(filters) + (in_features if self.input_skip else 0), dense)

    def forward_with_preactivation(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output [B, n, out] and the first layer's pre-activation ``A_1 = Z X W_1 + b_1``
        [B, n, filters[0]] (needed by the explicit input gradient of eq. 6)."""
        outs = []
        a1 = self.convs[0].preactivation(self.z, x)
        h = torch.relu(a1)
        outs.append(h)
        for conv in self.convs[1:]:
            h = conv(self.z, h)
            outs.append(h)
        if self.input_skip:
            outs.append(x)
        return self.head(torch.cat(outs, dim=-1)), a1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, n, F] -> [B, n, out]."""
        return self.forward_with_preactivation(x)[0]

    def flops(self) -> float:
        """Forward FLOPs of one sample (paper's estimates)."""
        return sum(c.flops(self.n, self.z.nnz) for c in self.convs) + self.head.flops(self.n)


class _MemberSum(nn.Module):
    """Base of the GCN ensembles: the output is the sum of ``self.members`` (an ``nn.ModuleList``
    of :class:`GCN`, set by the subclass); member ``i`` is "level" ``i`` for FLOP accounting."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x)
        for m in self.members[1:]:
            out = out + m(x)
        return out

    def flops_by_level(self) -> list[float]:
        """Forward FLOPs of one sample, per member."""
        return [m.flops() for m in self.members]

    def flops(self) -> float:
        """Forward FLOPs of one sample (sum over members)."""
        return float(sum(self.flops_by_level()))


class GCNEnsemble(_MemberSum):
    """Sum of several GCNs on the same structure matrix (table 2: 2- and 3-GCN ensembles).

    Parameters
    ----------
    structure : [n, n] structure matrix (shared, stored once)
    in_features : int
    filters : sequence of sequences of int, one per member (e.g. ((64,)*3, (32,)*3))
    dense : sequence of int

    Notes
    -----
    ``forward(x)``: ``x [B, n, F]`` -> ``[B, n, 1]``; member ``i`` is "level" ``i`` for
    FLOP accounting.
    """

    def __init__(self, structure, in_features: int, filters, dense: Sequence[int] = DEFAULT_DENSE,
                 input_skip: bool = False):
        super().__init__()
        z = structure if isinstance(structure, StructureMatrix) else StructureMatrix(structure)
        self.members = nn.ModuleList(GCN(z, in_features, f, dense, input_skip) for f in filters)


def laplacian_matrix(adjacency) -> torch.Tensor:
    """Graph Laplacian with the paper's sign, ``L = A - D``, as a torch sparse COO float64
    tensor [n, n], from a (weighted, symmetric) adjacency (scipy sparse or ndarray); the project's
    one builder, :func:`cgsurrogate.surrogate.graphs.weighted_graph.laplacian`."""
    from cgsurrogate.surrogate.graphs.weighted_graph import laplacian

    return laplacian(adjacency)


def spectral_radius(matrix) -> float:
    """Largest absolute eigenvalue of a symmetric structure matrix [n, n] (float)."""
    idx, val, n = _to_coo(matrix)
    dense = torch.sparse_coo_tensor(idx, val, (n, n), check_invariants=True).to_dense()
    ev = torch.linalg.eigvalsh(0.5 * (dense + dense.T))
    return float(ev.abs().max())


__all__ = [
    "StructureMatrix",
    "GraphConv",
    "NodeDense",
    "GCN",
    "GCNEnsemble",
    "laplacian_matrix",
    "spectral_radius",
    "DEFAULT_FILTERS",
    "DEFAULT_DENSE",
]
