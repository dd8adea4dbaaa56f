"""E(3) and permutation equivariance of EMMP, E-Pool, E-UnPool, EGNN and EGHN (float64, 1e-5),
property-based over random rotations/reflections/translations/permutations with hypothesis."""
from functools import lru_cache

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cgsurrogate.surrogate.equivariant.egnn import EGNN
from cgsurrogate.surrogate.equivariant.eghn import EGHN, EPool, EUnPool, coarsen_adjacency, connectivity_loss, pool_dense
from cgsurrogate.surrogate.equivariant.eghn_pooling import OffsetUnPool, cluster_offsets, local_degree
from cgsurrogate.surrogate.equivariant.emmp import EMMP
from cgsurrogate.surrogate.equivariant.testing import assert_equivariant, equivariance_errors, random_transform
from cgsurrogate.surrogate.equivariant.message_passing import aggregate, collate_graphs, fully_connected_edges
from cgsurrogate.surrogate.equivariant.mpnn import MPNN


HID, ATOL = 16, 1e-5
SETTINGS = settings(max_examples=8, deadline=None)


def make_batch(seed: int, sizes=(5, 7), in_node=2, edge_dim=2):
    rng = np.random.default_rng(seed)
    graphs = []
    for n in sizes:
        ei = fully_connected_edges(n).numpy()
        # local graph: a random symmetric subset (a chain plus extra pairs)
        pairs = {(i, i + 1) for i in range(n - 1)} | {tuple(sorted(rng.choice(n, 2, replace=False))) for _ in range(n)}
        lo = np.array([[a, b] for a, b in pairs] + [[b, a] for a, b in pairs]).T
        graphs.append(dict(pos=rng.normal(size=(n, 3)), vel=rng.normal(size=(n, 3)),
                           h=rng.normal(size=(n, in_node)), edge_index=ei,
                           edge_attr=rng.normal(size=(ei.shape[1], edge_dim)), local_edge_index=lo,
                           local_edge_attr=rng.normal(size=(lo.shape[1], edge_dim))))
    return collate_graphs(graphs)


@lru_cache(maxsize=None)
def modules():
    torch.manual_seed(0)
    mods = dict(
        emmp=EMMP(3, HID, edge_dim=2, n_translating=1),
        pool=EPool(3, HID, 2, n_clusters=3, n_layers=2),
        unpool=EUnPool(3, 3, HID),
        egnn=EGNN(2, 2, hidden=HID, n_layers=2),
        eghn=EGHN(2, 2, 2, hidden=HID, n_clusters=[3], layers_per_block=2, pool_layers=2, head="energy"),
        eghn2=EGHN(2, 2, 2, hidden=HID, n_clusters=[4, 2], layers_per_block=1, pool_layers=1),
        eghn_in=EGHN(2, 2, 2, hidden=HID, n_clusters=[3], layers_per_block=2, pool_layers=2, head="energy",
                     pool_design="input"),
        eghn2_in=EGHN(2, 2, 2, hidden=HID, n_clusters=[4, 2], layers_per_block=1, pool_layers=1, pool_design="input",
                      pool_degree=True),
        offset_unpool=OffsetUnPool(3, HID),
        mpnn=MPNN(2, 2, hidden=HID, n_layers=2),
    )
    for m in mods.values():
        m.double().eval()
    return mods


def _z(g):
    return torch.stack([g.pos, g.vel, g.vel * 0.5 + 0.1 * g.pos - 0.1 * g.pos], -1)


def _h(g):
    return torch.cat([g.h, g.h ** 2, torch.zeros(g.num_nodes, HID - 2 * g.h.shape[1], dtype=g.h.dtype)], -1)


def emmp_fn(g):
    Z, h = modules()["emmp"](_z(g), _h(g), g.edge_index, g.batch, g.num_graphs, g.edge_attr)
    return {"x": Z[..., 0], "vec": Z[..., 1:], "h": h}


def pool_fn(g):
    Zh, hh, S = modules()["pool"](_z(g), _h(g), g.local_edge_index, g.local_edge_attr, g.batch, g.num_graphs)
    A = coarsen_adjacency(S, g.local_edge_index, None, g.batch, g.num_graphs)
    return {"xh": Zh[..., 0], "vh": Zh[..., 1:], "hh": hh, "S": S, "A": A, "conn": connectivity_loss(A)}


def unpool_fn(g):
    Z, h = _z(g), _h(g)
    Zh, hh, S = modules()["pool"](Z, h, g.local_edge_index, g.local_edge_attr, g.batch, g.num_graphs)
    Zo, ho = modules()["unpool"](Z, h, Zh, hh, S, g.batch, g.num_graphs)
    return {"x": Zo[..., 0], "vec": Zo[..., 1:], "h": ho}


def offset_unpool_fn(g):
    """Pool the input x, v (authors' design), unpool the cluster means moved by a fixed vector field."""
    Z, h = _z(g), _h(g)
    Zh, hh, S = modules()["pool"](Z, h, g.local_edge_index, g.local_edge_attr, g.batch, g.num_graphs)
    XV = pool_dense(S, torch.stack([g.pos, g.vel], -1), g.batch, g.num_graphs)
    X, V = XV[..., 0], XV[..., 1]
    Zhigh = torch.stack([X + 0.3 * V, V - 0.2 * Zh[..., 1], 0.3 * V], -1)  # [X', V', X' - X]
    Zlow = torch.cat([cluster_offsets(S, g.pos, g.vel, X, V, g.batch, g.num_graphs), Z[..., 1:2]], -1)
    Zo, ho = modules()["offset_unpool"](Zlow, h, Zhigh, hh, S, g.batch, g.num_graphs)
    return {"x": Zo[..., 0], "vec": Zo[..., 1:], "h": ho, "X": X}


def eghn_fn(g, key="eghn"):
    x, aux = modules()[key](g)
    return {"x": x, "S": aux["scores"][0], "conn": aux["conn_loss"], "e": aux["node_energy"], "E": aux["energy"]}


def eghn2_fn(g, key="eghn2"):
    x, aux = modules()[key](g)
    return {"x": x, "S0": aux["scores"][0], "S1": aux["scores"][1], "conn": aux["conn_loss"]}


def force_fn(g):
    pos = g.pos.clone().requires_grad_(True)
    g2 = type(g)(**{**g.__dict__, "pos": pos})
    _, aux = modules()["eghn"](g2)
    (f,) = torch.autograd.grad(-aux["energy"].sum(), pos)
    return {"F": f, "E": aux["energy"]}


def egnn_fn(g):
    return {"x": modules()["egnn"](g)[0]}


transforms = st.tuples(st.integers(0, 2**31 - 1), st.sampled_from([None, True, False]))


def batch_and_transform(tr):
    """A random graph batch and a random rotation/reflection/translation/permutation of it."""
    seed, reflect = tr
    g = make_batch(seed)
    return g, random_transform(g, np.random.default_rng(seed + 1), reflect=reflect)


@SETTINGS
@given(transforms)
def test_emmp_equivariant(tr):
    g, T = batch_and_transform(tr)
    assert_equivariant(emmp_fn, g, T, {"x": "position", "vec": "vector", "h": "scalar"}, ATOL)


@SETTINGS
@given(transforms)
def test_epool_equivariant(tr):
    g, T = batch_and_transform(tr)
    errs = assert_equivariant(pool_fn, g, T, {"xh": "cluster_position", "vh": "cluster_vector", "hh": "invariant",
                                              "S": "scalar", "A": "invariant", "conn": "invariant"}, ATOL)
    assert set(errs) == {"xh", "vh", "hh", "S", "A", "conn"}


@SETTINGS
@given(transforms)
def test_eunpool_equivariant(tr):
    g, T = batch_and_transform(tr)
    assert_equivariant(unpool_fn, g, T, {"x": "position", "vec": "vector", "h": "scalar"}, ATOL)


@SETTINGS
@given(transforms)
def test_offset_unpool_equivariant(tr):
    g, T = batch_and_transform(tr)
    assert_equivariant(offset_unpool_fn, g, T, {"x": "position", "vec": "vector", "h": "scalar",
                                                "X": "cluster_position"}, ATOL)


@SETTINGS
@given(transforms, st.sampled_from(["hidden", "input"]))
def test_eghn_equivariant(tr, design):
    g, T = batch_and_transform(tr)
    sfx = "_in" if design == "input" else ""
    assert_equivariant(lambda g: eghn_fn(g, "eghn" + sfx), g, T, {"x": "position", "S": "scalar", "conn": "invariant",
                                                                  "e": "scalar", "E": "invariant"}, ATOL)
    assert_equivariant(lambda g: eghn2_fn(g, "eghn2" + sfx), g, T, {"x": "position", "S0": "scalar",
                                                                    "S1": "invariant", "conn": "invariant"}, ATOL)


@SETTINGS
@given(transforms)
def test_energy_head_forces_equivariant(tr):
    g, T = batch_and_transform(tr)
    errs = assert_equivariant(force_fn, g, T, {"F": "vector", "E": "invariant"}, ATOL)
    assert errs["F"] <= ATOL


@SETTINGS
@given(transforms)
def test_egnn_equivariant(tr):
    g, T = batch_and_transform(tr)
    assert_equivariant(egnn_fn, g, T, {"x": "position"}, ATOL)


def test_mpnn_is_not_rotation_equivariant():
    """Negative control: the checker does detect a non-equivariant model."""
    g = make_batch(3)
    T = random_transform(g, np.random.default_rng(4), reflect=False, permute=False)
    errs = equivariance_errors(lambda gg: {"x": modules()["mpnn"](gg)[0]}, g, T, {"x": "position"})
    assert errs["x"] > 1e-3
    with pytest.raises(AssertionError, match="equivariance violated"):
        assert_equivariant(lambda gg: {"x": modules()["mpnn"](gg)[0]}, g, T, {"x": "position"}, ATOL)


def test_energy_force_matches_finite_difference():
    g = make_batch(5)
    out = force_fn(g)
    k, c, eps = 3, 1, 1e-6
    def energy(p):
        g2 = type(g)(**{**g.__dict__, "pos": p})
        return float(modules()["eghn"](g2)[1]["energy"].sum().detach())
    p = g.pos.clone()
    p[k, c] += eps
    ep = energy(p)
    p[k, c] -= 2 * eps
    em = energy(p)
    assert abs(-(ep - em) / (2 * eps) - float(out["F"][k, c])) < 1e-6


def test_aggregate_methods_agree_and_mean():
    torch.manual_seed(0)
    msg = torch.randn(50, 4, dtype=torch.float64)
    idx = torch.randint(0, 7, (50,))
    ref = torch.zeros(7, 4, dtype=torch.float64)
    for e in range(50):
        ref[idx[e]] += msg[e]
    for method in ("index_add", "scatter_reduce"):
        assert torch.allclose(aggregate(msg, idx, 7, method=method), ref)
    counts = torch.bincount(idx, minlength=7).clamp_min(1).unsqueeze(1)
    assert torch.allclose(aggregate(msg, idx, 7, reduce="mean"), ref / counts)


def test_pool_rows_sum_to_one_and_translation_of_clusters():
    g = make_batch(11)
    out = pool_fn(g)
    assert torch.allclose(out["S"].sum(1), torch.ones(g.num_nodes, dtype=torch.float64))
    # connectivity loss is zero exactly for a block-diagonal (perfectly clustered) assignment
    A = torch.eye(3, dtype=torch.float64).expand(2, 3, 3) * 4.0
    assert float(connectivity_loss(A)) < 1e-12
    assert float(connectivity_loss(torch.ones(1, 3, 3, dtype=torch.float64))) > 1.0


def test_microtubule_energy_wrapper_invariant_total_and_equivariant_forces(topology):
    """EGHN energy head as a TrueEnergy-style function on the 624-node tube."""
    from cgsurrogate.data.microtubule import Normalizer
    from cgsurrogate.surrogate.equivariant.energy_head import EGHNMicrotubuleEnergy, MicrotubuleGraphs
    g = torch.Generator().manual_seed(0)
    pos0 = torch.as_tensor(topology.positions, dtype=torch.float64)
    X = torch.cat([pos0 + 0.05 * torch.randn(4, *pos0.shape, generator=g, dtype=torch.float64),
                   0.1 * torch.randn(4, 624, 3, generator=g, dtype=torch.float64),
                   torch.rand(4, 1, 5, generator=g, dtype=torch.float64).expand(4, 624, 5) * 50], -1)
    Y = torch.rand(4, 624, 1, generator=g, dtype=torch.float64)
    norm = Normalizer.fit(X, Y)
    torch.manual_seed(0)
    model = EGHN(6, 1, 1, hidden=8, n_clusters=[6], layers_per_block=1, pool_layers=1, head="energy").double().eval()
    f = EGHNMicrotubuleEnergy(model, MicrotubuleGraphs(topology.bonds, 624, norm))
    params = torch.tensor([[30.0, 9.0, 18.0, 48.0, 3.0]], dtype=torch.float64)
    pos = X[:1, :, :3].clone().requires_grad_(True)
    total, per_node = f(pos, params)
    assert per_node.shape == (1, 624) and torch.allclose(total, per_node.sum(1))
    (F,) = torch.autograd.grad(-total.sum(), pos)
    R = __import__("cgsurrogate.surrogate.equivariant.testing", fromlist=["random_orthogonal"]).random_orthogonal(
        np.random.default_rng(1), reflect=True)
    pos2 = (X[:1, :, :3] @ R.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)).requires_grad_(True)
    total2, _ = f(pos2, params)
    (F2,) = torch.autograd.grad(-total2.sum(), pos2)
    assert abs(float((total2 - total).detach())) < 1e-5 * max(1.0, abs(float(total.detach())))
    assert float((F2 - F @ R.T).abs().max()) < 1e-5


def test_connectivity_loss_forms():
    """Eq. 16: plain Frobenius norm of rownorm(A) - I (default), or its square."""
    A = torch.tensor([[[2.0, 1.0], [0.0, 3.0]]], dtype=torch.float64)
    rn = A / A.norm(dim=-1, keepdim=True)
    want_sq = float(((rn - torch.eye(2, dtype=torch.float64)) ** 2).sum())
    assert float(connectivity_loss(A, norm="squared")) == pytest.approx(want_sq, rel=1e-8)
    assert float(connectivity_loss(A)) == pytest.approx(want_sq ** 0.5, rel=1e-6)
    # finite gradient at an exact identity
    eye = torch.eye(3, dtype=torch.float64).unsqueeze(0).requires_grad_(True)
    connectivity_loss(eye).backward()
    assert torch.isfinite(eye.grad).all()
    with pytest.raises(ValueError, match="norm"):
        connectivity_loss(A, norm="l1")


def test_eunpool_initialisations():
    """``standard`` is PyTorch's default init; ``identity`` starts H at [I; -I] with small weights."""
    torch.manual_seed(0)
    std = EUnPool(3, 3, 8)
    torch.manual_seed(0)
    ref = torch.nn.Linear(8, 18)
    # same RNG stream: the mixing layer is the 2nd Linear created, so compare statistics instead
    assert float(std.mix.bias.abs().max()) <= 1 / 8 ** 0.5 + 1e-12
    assert float(std.mix.weight.abs().max()) <= 1 / 8 ** 0.5 + 1e-12
    ident = EUnPool(3, 3, 8, init="identity")
    b = ident.mix.bias.detach().view(6, 3)
    assert torch.equal(b, torch.cat([torch.eye(3), -torch.eye(3)]))
    assert float(ident.mix.weight.abs().max()) <= 0.1 / 8 ** 0.5 + 1e-12
    assert ref.weight.shape == std.mix.weight.shape
    with pytest.raises(ValueError, match="init"):
        EUnPool(3, 3, 8, init="zeros")


def test_offset_unpool_moves_nodes_rigidly_with_their_cluster():
    """With the mixing H = 0, the authors' E-UnPool returns ``S X' + (x - S X)``: a node keeps its
    offset from its cluster, so a common cluster shift d moves every node by exactly d."""
    g = make_batch(7)
    torch.manual_seed(1)
    up = OffsetUnPool(2, HID).double()
    with torch.no_grad():
        up.mix.weight.zero_()
        up.mix.bias.zero_()
    S = torch.softmax(torch.randn(g.num_nodes, 3, dtype=torch.float64), -1)
    XV = pool_dense(S, torch.stack([g.pos, g.vel], -1), g.batch, g.num_graphs)
    # the pooled positions are the S-weighted means (eq. 9), computed independently here
    b0 = g.batch == 0
    assert torch.allclose(XV[0, :, 0], (S[b0, :1] * g.pos[b0]).sum(0) / S[b0, 0].sum())
    d = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    Zhigh = torch.stack([XV[..., 0] + d, XV[..., 1], d.expand_as(XV[..., 0])], -1)
    off = cluster_offsets(S, g.pos, g.vel, XV[..., 0], XV[..., 1], g.batch, g.num_graphs)
    Zo, _ = up(off, _h(g), Zhigh, torch.zeros(2 * 3, HID, dtype=torch.float64), S, g.batch, g.num_graphs)
    assert torch.allclose(Zo[..., 0], g.pos + d, atol=1e-12)
    assert torch.allclose(Zo[..., 1], g.vel, atol=1e-12)


def test_eghn_pool_design_option():
    m = EGHN(2, 2, 2, hidden=8, n_clusters=[3], pool_design="input")
    assert m.config["pool_design"] == "input" and isinstance(m.unpools[0], OffsetUnPool)
    assert isinstance(EGHN(2, 2, 2, hidden=8).unpools[0], EUnPool)
    with pytest.raises(ValueError, match="pool_design"):
        EGHN(2, 2, 2, hidden=8, pool_design="latent")


def test_local_degree_counts_weighted_neighbours():
    ei = torch.tensor([[0, 1, 1, 2, 0, 2], [1, 0, 2, 1, 2, 0]])  # a triangle
    assert torch.allclose(local_degree(ei, None, 4, torch.float64).squeeze(1),
                          torch.log1p(torch.tensor([2.0, 2.0, 2.0, 0.0], dtype=torch.float64)))
    w = torch.tensor([0.5, 0.5, 1.0, 1.0, 2.0, 2.0])
    assert torch.allclose(local_degree(ei, w, 3).squeeze(1), torch.log1p(torch.tensor([2.5, 1.5, 3.0])))
