"""The DSGPM atom-embedding network (torch) and its metric-learning losses (Li et al. 2020).

Pipeline (paper sec. 3): a fully connected layer on the atom features concatenated with
degree and cycle indicator, ``steps`` rounds of edge-conditioned message passing (NNConv,
eq. 1; the edge network maps a bond-class vector to a d x d matrix) each followed by a GRU
update (eq. 2), an output MLP, concatenation with the atom features, degree and cycle
indicator (eq. 3) and L2 normalisation (eq. 4). Training: cut triplet loss (eq. 6, margin
``alpha``) plus ``lambda`` x the non-cut pair loss (eq. 7), with plain L2 distances as the
paper's text writes them (``distance="l2"``) or squared ones as the authors' code computes
them (``distance="squared"``: squared distances in the triplet, the mean squared component
difference for the pairs).

Speed: bond classes take few values (4 or 16), so the edge network is evaluated on the
class table once per forward pass; the bonds are grouped by class and each group's messages
are one product ``x_src @ W_class`` (2E d^2 flops per step instead of N K d^2).
:mod:`cgsurrogate.surrogate.cgmap.inference` evaluates the same network with numpy.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.cgmap.features import MolBatch, atom_feature_dim, bond_class_table

__all__ = ["DSGPM", "LOSS_FORMS", "check_loss_form", "cut_triplet_loss", "noncut_pair_loss", "dsgpm_loss"]


class DSGPM(nn.Module):
    """DSGPM atom-embedding network.

    Parameters
    ----------
    hidden : int
        Width of the atom embedding; the message-passing width is d = ``hidden + 2``.
    out_dim : int
        Width of the output MLP before the concatenation of eq. 3.
    steps : int
        Message-passing rounds T.
    edge_hidden : int
        Hidden width of the edge network (bond-class vector -> [d, d]).
    feature_set : {"paper", "rich"}
        Atom and bond features (:mod:`cgsurrogate.surrogate.cgmap.features`).

    Forward
    -------
    batch : MolBatch (torch tensors) -> float32 [N, out_dim + F + 2], unit L2 norm per row.
    """

    def __init__(self, hidden: int = 128, out_dim: int = 128, steps: int = 6, edge_hidden: int = 8,
                 feature_set: str = "paper"):
        super().__init__()
        self.config = dict(hidden=int(hidden), out_dim=int(out_dim), steps=int(steps),
                           edge_hidden=int(edge_hidden), feature_set=str(feature_set))
        d = hidden + 2
        self.d, self.steps = d, steps
        table = torch.from_numpy(bond_class_table(feature_set))
        self.register_buffer("class_table", table, persistent=False)
        self.input_fc = nn.Linear(atom_feature_dim(feature_set), hidden)
        self.edge_net = nn.Sequential(nn.Linear(table.shape[1], edge_hidden), nn.ReLU(),
                                      nn.Linear(edge_hidden, d * d))
        self.root = nn.Linear(d, d)
        self.gru = nn.GRUCell(d, d)
        self.output_fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, out_dim))
        with torch.no_grad():  # start the edge matrices small (as a d x d Glorot-scale map)
            self.edge_net[2].weight.mul_(1.0 / math.sqrt(d))
            self.edge_net[2].bias.mul_(1.0 / math.sqrt(d))

    @property
    def embedding_dim(self) -> int:
        """Width of the returned embedding."""
        return self.config["out_dim"] + self.input_fc.in_features + 2

    def edge_matrices(self) -> torch.Tensor:
        """The edge network on every bond class: [K, d, d]."""
        k = self.class_table.shape[0]
        return self.edge_net(self.class_table.to(self.root.weight.dtype)).view(k, self.d, self.d)

    def forward(self, batch: MolBatch) -> torch.Tensor:
        feats = batch.feats.to(self.root.weight.dtype)
        x = torch.cat([F.relu(self.input_fc(feats)), batch.extra], dim=1)
        h = x
        w = self.edge_matrices()
        # messages grouped by bond class: one [E_c, d] x [d, d] product per class present
        classes, counts = torch.unique(batch.edge_class, sorted=True, return_counts=True)
        order = torch.argsort(batch.edge_class, stable=True)
        src, dst = batch.src[order], batch.dst[order]
        splits, used = counts.tolist(), classes.tolist()
        for _ in range(self.steps):
            parts = x[src].split(splits)
            msg = torch.cat([p @ w[c] for p, c in zip(parts, used)])   # x_src W_class, [2E, d]
            agg = torch.zeros_like(x).index_add_(0, dst, msg)
            h = self.gru(F.relu(self.root(x) + agg), h)
            x = h
        out = torch.cat([self.output_fc(x), feats, batch.extra], dim=1)
        return F.normalize(out, dim=1)


LOSS_FORMS = ("l2", "squared")


def check_loss_form(distance: str) -> str:
    """Return ``distance`` if it is a known loss form ("l2" or "squared"), else raise CGSurrogateError."""
    if distance not in LOSS_FORMS:
        raise CGSurrogateError(f"unknown DSGPM loss form {distance!r}; choose 'l2' (the paper's eq. 6-7) "
                               f"or 'squared' (the authors' code)")
    return distance


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(((a - b) ** 2).sum(-1) + 1e-12)


def _sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).sum(-1)


def cut_triplet_loss(emb: torch.Tensor, triplets, margin: float = 1.0, distance: str = "l2") -> torch.Tensor:
    """Cut triplet loss (eq. 6).

    ``distance="l2"`` (the paper's text): mean of max(|x_a - x_p| - |x_a - x_n| + margin, 0);
    ``"squared"`` (the authors' code, ``TripletLoss``): mean of max(|x_a - x_p|^2 - |x_a - x_n|^2 + margin, 0).

    Parameters
    ----------
    emb : float [N, q]
    triplets : long [T, 3]  (anchor, positive, negative)
    margin : float  alpha
    distance : {"l2", "squared"}

    Returns
    -------
    scalar tensor (0 when there is no triplet).
    """
    d = _dist if check_loss_form(distance) == "l2" else _sqdist
    if triplets is None or len(triplets) == 0:
        return emb.sum() * 0.0
    a, p, n = emb[triplets[:, 0]], emb[triplets[:, 1]], emb[triplets[:, 2]]
    return F.relu(d(a, p) - d(a, n) + margin).mean()


def noncut_pair_loss(emb: torch.Tensor, pairs, distance: str = "l2") -> torch.Tensor:
    """Non-cut pair loss (eq. 7) over bonds inside a bead; pairs long [S, 2].

    ``distance="l2"`` (the paper's text): mean over pairs of |x_i - x_j|; ``"squared"`` (the
    authors' code, ``PosPairMSE``): mean over pairs and the q embedding components of
    (x_i - x_j)^2, i.e. mean |x_i - x_j|^2 / q.
    """
    check_loss_form(distance)
    if pairs is None or len(pairs) == 0:
        return emb.sum() * 0.0
    a, b = emb[pairs[:, 0]], emb[pairs[:, 1]]
    return _dist(a, b).mean() if distance == "l2" else ((a - b) ** 2).mean()


def dsgpm_loss(emb: torch.Tensor, batch: MolBatch, margin: float = 1.0, pair_weight: float = 0.1,
               distance: str = "l2"):
    """Total loss (eq. 8): L_triplet + lambda L_pair, both of form ``distance`` ("l2" or "squared").
    Returns (total, triplet, pair) scalars."""
    lt = cut_triplet_loss(emb, batch.triplets, margin, distance)
    lp = noncut_pair_loss(emb, batch.pairs, distance)
    return lt + pair_weight * lp, lt, lp
