"""GPCN / A-GPCN (eq. 2), the explicit input gradient (eq. 6), DiffPool."""
import numpy as np
import pytest
import torch

from cgsurrogate.simulate.tube import Tube
from cgsurrogate.surrogate.gcn.layers import GCN
from cgsurrogate.surrogate.gcn.gpcn import GPCN, input_gradient_eq6
from cgsurrogate.surrogate.graphs.hierarchy import Hierarchy
from cgsurrogate.surrogate.gcn.registry import build_model


def random_orthonormal(n, m, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, m)))
    return q


@pytest.fixture(scope="module")
def hier(pair_pool):
    return Hierarchy([Tube(8, 4, 1), Tube(4, 4, 0), Tube(2, 4, 0)], [random_orthonormal(32, 16, 0), pair_pool(4, 4)])


def test_gpcn_equals_eq2_with_dense_matrices(hier):
    torch.manual_seed(0)
    m = build_model("gpcn-3", hier, in_features=5, filters=[[6, 6], [5], [4, 4]], dense=[7, 1])
    x = torch.randn(2, 32, 5)
    ref = 0
    for i, g in enumerate(m.gcns):
        p1i = hier.prolongation(i).float()  # P_{1i} composed, identity for i = 0
        xi = torch.einsum("nk,bnf->bkf", p1i, x)  # P_{1i}^T X
        # GCN_i from scratch with dense Z_i
        z = hier.laplacians[i].to_dense().float()
        h, outs = xi, []
        for conv in g.convs:
            h = torch.relu(torch.einsum("ij,bjc->bic", z, h @ conv.weight) + conv.bias)
            outs.append(h)
        yi = g.head(torch.cat(outs, -1))
        ref = ref + torch.einsum("nk,bko->bno", p1i, yi)  # P_{1i} GCN_i
    assert torch.allclose(m(x), ref, atol=1e-5)


def test_gpcn_with_identity_prolongations_is_an_ensemble():
    tube = Tube(4, 3, 1)
    h = Hierarchy([tube, tube], [np.eye(12)])
    torch.manual_seed(0)
    m = build_model("gpcn-2", h, in_features=3)
    x = torch.randn(2, 12, 3)
    assert torch.allclose(m(x), m.gcns[0](x) + m.gcns[1](x), atol=1e-6)


@pytest.mark.parametrize("name", ["gcn", "ensemble-3", "gpcn-2", "gpcn-3", "a-gpcn-3"])
def test_eq6_input_gradient_equals_autograd(hier, name):
    torch.manual_seed(3)
    m = build_model(name, hier, in_features=11)
    if name.startswith("a-"):  # move P away from its initial value, as after training
        with torch.no_grad():
            for p in m.P:
                p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 32, 11, dtype=torch.float32)
    m = m.double()
    x = x.double().requires_grad_(True)
    (auto,) = torch.autograd.grad(m(x).sum(), x)
    explicit = input_gradient_eq6(m, x)
    assert explicit.shape == x.shape
    assert torch.allclose(explicit, auto, rtol=1e-9, atol=1e-10)


def test_eq6_gradient_matches_finite_differences(pair_pool):
    torch.manual_seed(4)
    h = Hierarchy([Tube(4, 3, 0), Tube(2, 3, 0)], [pair_pool(4, 3)])
    m = build_model("a-gpcn-2", h, in_features=2, filters=[[4], [3]], dense=[5, 1]).double()
    x = torch.randn(1, 12, 2, dtype=torch.float64)
    g = input_gradient_eq6(m, x)
    eps = 1e-6
    for (node, feat) in [(0, 0), (5, 1), (11, 0)]:
        xp, xm = x.clone(), x.clone()
        xp[0, node, feat] += eps
        xm[0, node, feat] -= eps
        with torch.no_grad():
            fd = (m(xp).sum() - m(xm).sum()) / (2 * eps)
        assert abs(float(fd) - float(g[0, node, feat])) < 1e-6


def test_adaptive_p_is_trained_static_p_is_not(hier):
    x, y = torch.randn(2, 32, 11), torch.randn(2, 32, 1)
    a = build_model("a-gpcn-3", hier)
    s = build_model("gpcn-3", hier)
    ((a(x) - y) ** 2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in a.P)
    assert torch.allclose(a.P[0].detach().double(), hier.P[0], atol=1e-6)  # initialised from the hierarchy
    assert not any(n.startswith("P") for n, _ in s.named_parameters())
    assert "P_0" in s.state_dict() and "P.0" in a.state_dict()


def test_active_levels_drop_members(hier):
    torch.manual_seed(0)
    m = build_model("gpcn-3", hier)
    x = torch.randn(1, 32, 11)
    full = m(x)
    m.active_levels = (2,)
    coarse = m(x)
    p13 = hier.prolongation(2).float()
    ref = torch.einsum("nk,bko->bno", p13, m.gcns[2](torch.einsum("nk,bnf->bkf", p13, x)))
    assert torch.allclose(coarse, ref, atol=1e-5)
    m.active_levels = (0, 1, 2)
    assert torch.allclose(m(x), full)


def test_diffpool_assignments_are_row_stochastic(hier):
    torch.manual_seed(0)
    m = build_model("diffpool-3", hier, in_features=11)
    x = torch.randn(2, 32, 11)
    s = torch.softmax(m.pools[0].preactivation(m.z0, x), -1)
    assert s.shape == (2, 32, 16)
    assert torch.allclose(s.sum(-1), torch.ones(2, 32))
    assert m(x).shape == (2, 32, 1)
    # a constant node signal pooled with row-stochastic S keeps total mass (S^T 1 sums to n)
    assert torch.isclose((s.transpose(1, 2) @ torch.ones(2, 32, 1)).sum(), torch.tensor(64.0))


def test_gpcn_rejects_mismatched_prolongation():
    tube, coarse = Tube(4, 3, 0), Tube(2, 3, 0)
    from cgsurrogate.surrogate.gcn.layers import laplacian_matrix

    with pytest.raises(ValueError, match="P_0,1"):
        GPCN([laplacian_matrix(tube.adjacency()), laplacian_matrix(coarse.adjacency())], [torch.zeros(12, 5)], 3,
             [[4], [4]])
    assert isinstance(build_model("gcn", Hierarchy([tube], [])), GCN)
