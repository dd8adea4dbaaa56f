"""DSGPM: deep supervised graph partitioning model for coarse-grained mappings (Li et al. 2020).

Pipeline (paper sec. 3): an atom-type embedding (a fully connected layer on the element
one-hot) concatenated with degree and cycle indicator, ``steps`` rounds of edge-conditioned
message passing (NNConv, eq. 1; the edge network maps the bond-type one-hot to a d x d
matrix) each followed by a GRU update (eq. 2), an output MLP, concatenation with element
one-hot, degree and cycle indicator (eq. 3) and L2 normalisation (eq. 4). Training uses the
cut triplet loss (eq. 6, margin ``alpha``) plus ``lambda`` x the non-cut pair loss (eq. 7).
Inference builds the Gaussian affinity on bonded pairs (eq. 5, sigma = 1), runs
scikit-learn's spectral clustering on it with the requested number of beads, and enforces
connected beads (sec. 3.5).

Speed: the bond type takes only four values, so the edge network is evaluated on the four
one-hot vectors once per forward pass (4 matrices [d, d]); messages are ``x @ W_type``
gathered per bond. Molecules are batched into one disjoint graph.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cgsurrogate.data.molgraph import BOND_TYPES, ELEMENTS, MolGraph

FORMAT = "cgsurrogate-dsgpm"
FORMAT_VERSION = 1
PRETRAINED_PATH = Path(__file__).resolve().parent.parent / "pretrained" / "dsgpm_ham.pt"

__all__ = ["PreparedGraph", "GraphBatch", "prepare_graph", "collate", "DSGPM", "cut_triplet_loss",
           "noncut_pair_loss", "dsgpm_loss", "embed_graph", "affinity_matrix", "adjacency_affinity",
           "spectral_partition", "metis_partition", "enforce_connectivity", "predict_mapping", "train_dsgpm",
           "save_dsgpm", "load_dsgpm", "load_pretrained", "PRETRAINED_PATH"]


# --------------------------------------------------------------------------- data

@dataclass
class PreparedGraph:
    """Numpy arrays of one molecule (and optionally one annotation) ready for batching.

    Attributes
    ----------
    n : int
        Number of atoms.
    atom_type : int64 [n]
        Index into :data:`cgsurrogate.data.molgraph.ELEMENTS`.
    extra : float32 [n, 2]
        Degree and cycle indicator.
    edges : int64 [E, 2]
        Bonds (i < j).
    edge_type : int64 [E]
        Index into :data:`cgsurrogate.data.molgraph.BOND_TYPES`.
    triplets : int64 [T, 3] or None
        (anchor, positive, negative): bonds a-p inside a bead and a-n across beads.
    pairs : int64 [S, 2] or None
        Non-cut bonds.
    """

    n: int
    atom_type: np.ndarray
    extra: np.ndarray
    edges: np.ndarray
    edge_type: np.ndarray
    triplets: np.ndarray | None = None
    pairs: np.ndarray | None = None


def _triplets_and_pairs(edges: np.ndarray, labels: np.ndarray, n: int):
    same = labels[edges[:, 0]] == labels[edges[:, 1]]
    pairs = edges[same]
    nbr_same: list[list[int]] = [[] for _ in range(n)]
    nbr_diff: list[list[int]] = [[] for _ in range(n)]
    for (i, j), s in zip(edges.tolist(), same.tolist()):
        (nbr_same if s else nbr_diff)[i].append(j)
        (nbr_same if s else nbr_diff)[j].append(i)
    trip = [(a, p, q) for a in range(n) for p in nbr_same[a] for q in nbr_diff[a]]
    return np.array(trip, dtype=np.int64).reshape(-1, 3), pairs.astype(np.int64).reshape(-1, 2)


def prepare_graph(graph: MolGraph, labels=None) -> PreparedGraph:
    """Arrays of a molecule (features, bonds) and, given a partition, its triplets and non-cut pairs.

    Parameters
    ----------
    graph : MolGraph
    labels : array-like of int, shape [n], optional
        Ground-truth bead of each atom (for training).
    """
    n = graph.num_atoms
    extra = np.stack([graph.degree(), graph.in_cycle()], axis=1).astype(np.float32)
    pg = PreparedGraph(n=n, atom_type=graph.atom_types(), extra=extra, edges=graph.edges.astype(np.int64),
                       edge_type=graph.bond_type_indices())
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != n:
            raise ValueError(f"{graph.name}: {len(labels)} labels for {n} atoms")
        pg.triplets, pg.pairs = _triplets_and_pairs(pg.edges, labels, n)
    return pg


@dataclass
class GraphBatch:
    """Several molecules as one disjoint graph (torch tensors).

    Attributes
    ----------
    atom_type : long [N]
    extra : float32 [N, 2]
    src, dst : long [2E]
        Directed message edges (both directions of each bond).
    edge_type : long [2E]
    sizes : list of int
        Atoms per molecule; molecule m owns rows ``offsets[m]:offsets[m]+sizes[m]``.
    offsets : list of int
    triplets : long [T, 3] or None
    pairs : long [S, 2] or None
    """

    atom_type: torch.Tensor
    extra: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor
    edge_type: torch.Tensor
    sizes: list
    offsets: list
    triplets: torch.Tensor | None = None
    pairs: torch.Tensor | None = None


def collate(prepared: list[PreparedGraph]) -> GraphBatch:
    """Stack prepared molecules into one disjoint graph with node-index offsets."""
    sizes = [p.n for p in prepared]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    edges = np.concatenate([p.edges + o for p, o in zip(prepared, offsets)]) if prepared else np.zeros((0, 2), np.int64)
    et = np.concatenate([p.edge_type for p in prepared])
    src = np.concatenate([edges[:, 0], edges[:, 1]])
    dst = np.concatenate([edges[:, 1], edges[:, 0]])
    batch = GraphBatch(
        atom_type=torch.from_numpy(np.concatenate([p.atom_type for p in prepared])),
        extra=torch.from_numpy(np.concatenate([p.extra for p in prepared])),
        src=torch.from_numpy(src), dst=torch.from_numpy(dst),
        edge_type=torch.from_numpy(np.concatenate([et, et])),
        sizes=sizes, offsets=offsets.tolist())
    if all(p.triplets is not None for p in prepared):
        batch.triplets = torch.from_numpy(np.concatenate([p.triplets + o for p, o in zip(prepared, offsets)]))
        batch.pairs = torch.from_numpy(np.concatenate([p.pairs + o for p, o in zip(prepared, offsets)]))
    return batch


# --------------------------------------------------------------------------- model

class DSGPM(nn.Module):
    """DSGPM atom-embedding network.

    Parameters
    ----------
    hidden : int
        Width of the atom-type embedding; the message-passing width is ``hidden + 2``
        (degree and cycle indicator appended).
    out_dim : int
        Width of the output MLP before the concatenation of eq. 3.
    steps : int
        Message-passing rounds T.
    edge_hidden : int
        Hidden width of the edge network (bond one-hot [4] -> matrix [d, d]). Four
        bond types need only 4 linearly independent hidden vectors, so a small width
        represents any four matrices and keeps the checkpoint small.
    n_atom_types : int
        Size of the element vocabulary.

    Forward
    -------
    batch : GraphBatch -> embeddings float32 [N, out_dim + n_atom_types + 2], unit L2 norm per row.
    """

    def __init__(self, hidden: int = 128, out_dim: int = 128, steps: int = 6, edge_hidden: int = 8,
                 n_atom_types: int = len(ELEMENTS)):
        super().__init__()
        self.config = dict(hidden=int(hidden), out_dim=int(out_dim), steps=int(steps),
                           edge_hidden=int(edge_hidden), n_atom_types=int(n_atom_types))
        d = hidden + 2
        self.d = d
        self.n_atom_types = n_atom_types
        self.steps = steps
        self.input_fc = nn.Linear(n_atom_types, hidden)
        self.edge_net = nn.Sequential(nn.Linear(len(BOND_TYPES), edge_hidden), nn.ReLU(),
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
        return self.config["out_dim"] + self.n_atom_types + 2

    def edge_matrices(self) -> torch.Tensor:
        """The edge network evaluated on the four bond one-hots: [4, d, d]."""
        eye = torch.eye(len(BOND_TYPES), dtype=self.root.weight.dtype, device=self.root.weight.device)
        return self.edge_net(eye).view(len(BOND_TYPES), self.d, self.d)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        onehot = F.one_hot(batch.atom_type, self.n_atom_types).to(self.root.weight.dtype)
        x = torch.cat([F.relu(self.input_fc(onehot)), batch.extra], dim=1)
        h = x
        w = self.edge_matrices()                                  # once per forward pass
        w_cat = w.permute(1, 0, 2).reshape(self.d, -1)            # [d, 4d]
        n = x.shape[0]
        for _ in range(self.steps):
            xw = (x @ w_cat).view(n, len(BOND_TYPES), self.d)     # x_v W_k for every type k
            msg = xw[batch.src, batch.edge_type]                  # [2E, d]
            agg = torch.zeros_like(x).index_add_(0, batch.dst, msg)
            m = F.relu(self.root(x) + agg)
            h = self.gru(m, h)
            x = h
        out = torch.cat([self.output_fc(x), onehot, batch.extra], dim=1)
        return F.normalize(out, dim=1)


# --------------------------------------------------------------------------- losses

def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(((a - b) ** 2).sum(-1) + 1e-12)


def cut_triplet_loss(emb: torch.Tensor, triplets: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Cut triplet loss (eq. 6): mean of max(|x_a - x_p| - |x_a - x_n| + margin, 0).

    Parameters
    ----------
    emb : float [N, q]
    triplets : long [T, 3]
        (anchor, positive, negative) node indices.
    margin : float
        alpha.

    Returns
    -------
    scalar tensor (0 when there is no triplet).
    """
    if triplets is None or len(triplets) == 0:
        return emb.sum() * 0.0
    a, p, n = emb[triplets[:, 0]], emb[triplets[:, 1]], emb[triplets[:, 2]]
    return F.relu(_dist(a, p) - _dist(a, n) + margin).mean()


def noncut_pair_loss(emb: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Non-cut pair loss (eq. 7): mean L2 distance over bonds inside a bead.

    Parameters
    ----------
    emb : float [N, q]
    pairs : long [S, 2]
    """
    if pairs is None or len(pairs) == 0:
        return emb.sum() * 0.0
    return _dist(emb[pairs[:, 0]], emb[pairs[:, 1]]).mean()


def dsgpm_loss(emb: torch.Tensor, batch: GraphBatch, margin: float = 1.0, pair_weight: float = 0.1):
    """Total loss (eq. 8): L_triplet + lambda L_pair. Returns (total, triplet, pair) scalars."""
    lt = cut_triplet_loss(emb, batch.triplets, margin)
    lp = noncut_pair_loss(emb, batch.pairs)
    return lt + pair_weight * lp, lt, lp


# --------------------------------------------------------------------------- inference

def embed_graph(model: DSGPM, graph: MolGraph) -> np.ndarray:
    """Atom embeddings of one molecule, float64 [n, q] (no gradient)."""
    model.eval()
    with torch.no_grad():
        return model(collate([prepare_graph(graph)])).double().numpy()


def affinity_matrix(emb: np.ndarray, edges: np.ndarray, n: int, sigma: float = 1.0) -> np.ndarray:
    """Gaussian affinity on bonded pairs (eq. 5): A_ij = exp(-|x_i - x_j|^2 / (2 sigma^2)) E_ij.

    Parameters
    ----------
    emb : float [n, q]
    edges : int [E, 2]
    n : int
    sigma : float

    Returns
    -------
    ndarray float64 [n, n], symmetric, zero off the bonds.
    """
    emb = np.asarray(emb, dtype=np.float64)
    a = np.zeros((n, n))
    if len(edges):
        d2 = ((emb[edges[:, 0]] - emb[edges[:, 1]]) ** 2).sum(1)
        w = np.exp(-d2 / (2.0 * sigma ** 2))
        a[edges[:, 0], edges[:, 1]] = w
        a[edges[:, 1], edges[:, 0]] = w
    return a


def adjacency_affinity(graph: MolGraph) -> np.ndarray:
    """The plain 0/1 adjacency used as affinity by the spectral-clustering baseline, [n, n]."""
    return graph.adjacency()


def spectral_partition(affinity: np.ndarray, n_beads: int, seed: int = 0) -> np.ndarray:
    """Spectral clustering (scikit-learn, precomputed affinity) into ``n_beads`` clusters.

    Parameters
    ----------
    affinity : float [n, n]
    n_beads : int
    seed : int
        Random state of the k-means label assignment.

    Returns
    -------
    int64 [n] cluster labels (not yet connected; see :func:`enforce_connectivity`).
    """
    from sklearn.cluster import spectral_clustering

    n = affinity.shape[0]
    _check_beads(n_beads, n)
    if n_beads == 1:
        return np.zeros(n, dtype=np.int64)
    if n_beads == n:
        return np.arange(n, dtype=np.int64)
    aff = affinity + np.eye(n) * 1e-9  # keeps isolated atoms from giving a zero degree
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = spectral_clustering(aff, n_clusters=n_beads, random_state=seed, assign_labels="kmeans")
    return np.asarray(labels, dtype=np.int64)


def _check_beads(n_beads, n):
    if not isinstance(n_beads, (int, np.integer)) or n_beads < 1:
        raise ValueError(f"number of beads must be a positive integer, got {n_beads!r}")
    if n_beads > n:
        raise ValueError(f"cannot map {n} atoms to {n_beads} beads: the bead count exceeds the atom count")


def _components(nodes: list[int], adj: list[set]) -> list[list[int]]:
    nodes_set = set(nodes)
    seen: set[int] = set()
    comps = []
    for s in nodes:
        if s in seen:
            continue
        stack, comp = [s], []
        seen.add(s)
        while stack:
            u = stack.pop()
            comp.append(u)
            for v in adj[u]:
                if v in nodes_set and v not in seen:
                    seen.add(v)
                    stack.append(v)
        comps.append(sorted(comp))
    return comps


def enforce_connectivity(labels, edges: np.ndarray, n_beads: int | None = None,
                         affinity: np.ndarray | None = None) -> np.ndarray:
    """Make every bead a connected set of atoms (paper sec. 3.5), optionally with exactly ``n_beads`` beads.

    First each cluster that falls into several connected pieces is split into one bead
    per piece (the paper's post-processing). If ``n_beads`` is given, the count is then
    brought back to it: while there are too many beads, the smallest bead is merged into
    the bonded neighbour bead with the largest summed affinity across their bonds (bond
    count when no affinity is given); while there are too few, the largest bead is split
    by removing its weakest internal bonds until it falls into two connected pieces.

    Parameters
    ----------
    labels : int [n]
    edges : int [E, 2]
    n_beads : int, optional
    affinity : float [n, n], optional

    Returns
    -------
    int64 [n] bead labels 0..k-1 (k = ``n_beads`` when given), every bead connected.

    Raises
    ------
    ValueError
        When ``n_beads`` connected beads are impossible (more molecular fragments than beads,
        or more beads than atoms).
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    adj: list[set] = [set() for _ in range(n)]
    for i, j in edges.tolist():
        adj[i].add(j)
        adj[j].add(i)
    w = (lambda i, j: affinity[i, j]) if affinity is not None else (lambda i, j: 1.0)
    beads: list[list[int]] = []
    for c in np.unique(labels):
        beads.extend(_components(np.flatnonzero(labels == c).tolist(), adj))
    if n_beads is not None:
        _check_beads(n_beads, n)
        n_frag = len(_components(list(range(n)), adj))
        if n_frag > n_beads:
            raise ValueError(f"the molecule has {n_frag} disconnected fragments: it cannot be mapped "
                             f"to {n_beads} connected beads")
        while len(beads) > n_beads:
            owner = np.empty(n, dtype=np.int64)
            for b, members in enumerate(beads):
                owner[members] = b
            order = sorted(range(len(beads)), key=lambda b: (len(beads[b]), b))
            for b in order:
                score: dict[int, float] = {}
                for u in beads[b]:
                    for v in adj[u]:
                        if owner[v] != b:
                            score[int(owner[v])] = score.get(int(owner[v]), 0.0) + float(w(u, v))
                if score:
                    target = max(score, key=lambda c: (score[c], -c))
                    beads[target] = sorted(beads[target] + beads[b])
                    del beads[b]
                    break
        while len(beads) < n_beads:
            b = max(range(len(beads)), key=lambda c: (len(beads[c]), -c))
            members = beads[b]
            ms = set(members)
            inner = sorted((float(w(u, v)), u, v) for u in members for v in adj[u] if v in ms and u < v)
            sub = [set(v for v in adj[u] if v in ms) if u in ms else set() for u in range(n)]
            for _, u, v in inner:
                sub[u].discard(v)
                sub[v].discard(u)
                comps = _components(members, sub)
                if len(comps) == 2:
                    beads[b:b + 1] = comps
                    break
    out = np.empty(n, dtype=np.int64)
    beads.sort(key=lambda m: m[0])
    for k, members in enumerate(beads):
        out[members] = k
    return out


def predict_mapping(model: DSGPM | None, graph: MolGraph, n_beads: int, seed: int = 0,
                    exact: bool = True) -> np.ndarray:
    """CG mapping of a molecule into ``n_beads`` connected beads.

    Parameters
    ----------
    model : DSGPM or None
        None gives the spectral-clustering baseline on the plain adjacency.
    graph : MolGraph
    n_beads : int
    seed : int
    exact : bool
        True: exactly ``n_beads`` connected beads; False: the paper's post-processing only
        (split disconnected clusters, which can add beads).

    Returns
    -------
    int64 [n] bead index of each atom.
    """
    _check_beads(n_beads, graph.num_atoms)
    if model is None:
        aff = adjacency_affinity(graph)
    else:
        aff = affinity_matrix(embed_graph(model, graph), graph.edges, graph.num_atoms)
    labels = spectral_partition(aff, n_beads, seed=seed)
    return enforce_connectivity(labels, graph.edges, n_beads if exact else None, affinity=aff)


def metis_partition(graph, n_beads: int, seed: int = 0) -> np.ndarray:
    """METIS k-way partition (``pymetis``) of the bond graph into ``n_beads`` parts, int64 [n]."""
    import pymetis

    n = graph.num_atoms
    if n_beads == 1:
        return np.zeros(n, dtype=np.int64)
    if n_beads >= n:
        return np.arange(n, dtype=np.int64)
    adj = [[] for _ in range(n)]
    for i, j in graph.edges.tolist():
        adj[i].append(j)
        adj[j].append(i)
    opts = pymetis.Options(seed=seed) if hasattr(pymetis, "Options") else None
    _, parts = pymetis.part_graph(n_beads, adjacency=adj, options=opts) if opts else pymetis.part_graph(n_beads, adjacency=adj)
    return np.asarray(parts, dtype=np.int64)


# --------------------------------------------------------------------------- training

def train_dsgpm(train, val=None, *, epochs: int = 30, batch_size: int = 16, lr: float = 1e-3,
                margin: float = 1.0, pair_weight: float = 0.1, seed: int = 0, eval_every: int = 1,
                model_config: dict | None = None, progress: bool = True, evaluate=None):
    """Train DSGPM on annotations; select the epoch on a validation set.

    Parameters
    ----------
    train : list of HAMAnnotation
    val : list of HAMAnnotation, optional
        Validation annotations (never the test fold). When given, the returned model is
        the state with the best validation score.
    epochs, batch_size, lr, margin, pair_weight, seed : training settings (Adam; margin alpha;
        pair_weight lambda).
    eval_every : int
        Validate every this many epochs.
    model_config : dict, optional
        Keyword arguments of :class:`DSGPM`.
    progress : bool
        Show a tqdm bar.
    evaluate : callable, optional
        ``evaluate(model, val) -> dict`` with key ``score`` (higher is better); default:
        strict-protocol mean of AMI and cut F1 (:func:`cgsurrogate.surrogate.cgmap.metrics.evaluate_strict`).

    Returns
    -------
    model : DSGPM (eval mode; best validation state if ``val`` given, else the last)
    history : list of dict per epoch: epoch, loss, triplet, pair, seconds, and validation metrics.
    """
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = DSGPM(**(model_config or {}))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    prepared = [prepare_graph(a.graph, a.labels) for a in train]
    if evaluate is None and val:
        from cgsurrogate.surrogate.cgmap.metrics import evaluate_strict

        def evaluate(m, v):
            r = evaluate_strict(v, lambda g, k: predict_mapping(m, g, k))
            r["score"] = 0.5 * (r["ami"] + r["cut_f1"])
            return r
    history = []
    best_score, best_state, best_epoch = -np.inf, None, 0
    bar = tqdm(range(1, epochs + 1), desc="DSGPM", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        t0 = time.perf_counter()
        order = rng.permutation(len(prepared))
        tot = trip = pair = 0.0
        nb = 0
        for s in range(0, len(order), batch_size):
            batch = collate([prepared[i] for i in order[s:s + batch_size]])
            emb = model(batch)
            loss, lt, lp = dsgpm_loss(emb, batch, margin, pair_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item()
            trip += lt.item()
            pair += lp.item()
            nb += 1
        rec = dict(epoch=epoch, loss=tot / nb, triplet=trip / nb, pair=pair / nb,
                   seconds=time.perf_counter() - t0)
        if val and (epoch % eval_every == 0 or epoch == epochs):
            r = evaluate(model, val)
            rec.update({f"val_{k}": v for k, v in r.items()})
            if r["score"] > best_score:
                best_score, best_epoch = r["score"], epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.3f}", **({"val": f"{best_score:.3f}"} if val else {}))
    if best_state is not None:
        model.load_state_dict(best_state)
        for rec in history:
            rec["selected"] = rec["epoch"] == best_epoch
    model.eval()
    return model, history


# --------------------------------------------------------------------------- checkpoints

def save_dsgpm(path, model: DSGPM, info: dict | None = None) -> Path:
    """Save a DSGPM checkpoint (tensors and plain Python only), atomically.

    Parameters
    ----------
    path : str or Path
    model : DSGPM
    info : dict, optional
        Plain-Python metadata (training data, epochs, metrics).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": dict(model.config),
               "elements": list(ELEMENTS), "bond_types": list(BOND_TYPES),
               "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
               "info": info or {}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_dsgpm(path) -> DSGPM:
    """Load a DSGPM checkpoint written by :func:`save_dsgpm` (``weights_only=True``).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unreadable, foreign or incompatible checkpoint (message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such DSGPM checkpoint")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from exc
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{path}: not a DSGPM checkpoint")
    if ck.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: DSGPM checkpoint version {ck.get('format_version')} (expected {FORMAT_VERSION})")
    if list(ck.get("elements", [])) != list(ELEMENTS) or list(ck.get("bond_types", [])) != list(BOND_TYPES):
        raise ValueError(f"{path}: checkpoint was trained with another element/bond vocabulary")
    model = DSGPM(**ck["config"])
    try:
        model.load_state_dict(ck["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit the stored configuration") from exc
    model.info = ck.get("info", {})
    model.eval()
    return model


def load_pretrained() -> DSGPM:
    """The DSGPM trained on the HAM subset that ships with the package (``surrogate/pretrained/dsgpm_ham.pt``)."""
    return load_dsgpm(PRETRAINED_PATH)
