"""GCN layers, structure matrices, FLOP counts and the model registry."""
import numpy as np
import pytest
import torch

from cgsurrogate.simulate.tube import Tube
from cgsurrogate.surrogate.gcn.flops import training_step_flops
from cgsurrogate.surrogate.gcn.layers import GCN, GCNEnsemble, StructureMatrix, laplacian_matrix
from cgsurrogate.surrogate.graphs.hierarchy import Hierarchy
from cgsurrogate.surrogate.gcn.registry import MODEL_NAMES, build_model
from cgsurrogate.surrogate.gcn.ngcn import scaled_power


@pytest.mark.parametrize("mode", ["csr", "edges", "dense"])
def test_structure_matrix_matches_dense_product_and_gradient(mode):
    lap = laplacian_matrix(Tube(6, 5, 2).adjacency())
    dense = lap.to_dense().float()
    z = StructureMatrix(lap, mode=mode)
    x = torch.randn(3, 30, 7, requires_grad=True)
    out = z(x)
    ref = torch.einsum("ij,bjc->bic", dense, x)
    assert torch.allclose(out, ref, atol=1e-5)
    w = torch.randn_like(out)
    (g,) = torch.autograd.grad((out * w).sum(), x)
    assert torch.allclose(g, torch.einsum("ji,bjc->bic", dense, w), atol=1e-5)


def test_laplacian_sign_and_rows():
    lap = laplacian_matrix(Tube(4, 3, 0).adjacency()).to_dense()
    assert torch.allclose(lap.sum(1), torch.zeros(12, dtype=lap.dtype))
    assert (torch.diagonal(lap) < 0).all()  # L = A - D
    assert torch.linalg.eigvalsh(lap).max() < 1e-9


def test_gcn_flops_match_hand_count():
    # Tube(4, 3, 0): 12 nodes; lateral 4*2 = 8, seam 4, longitudinal 3*3 = 9 edges -> 21 edges.
    # |L| = 12 diagonal + 2*21 off-diagonal = 54 nonzeros.
    lap = laplacian_matrix(Tube(4, 3, 0).adjacency())
    g = GCN(lap, in_features=2, filters=(4, 4), dense=(5, 1))
    assert g.z.nnz == 54
    # conv 1: n F (|Z| + C) = 12*2*(54+4) = 1392 ; conv 2: 12*4*(54+4) = 2784
    # dense on the concatenation (8 wide): 12*8*5 = 480 ; 12*5*1 = 60
    assert g.flops() == 1392 + 2784 + 480 + 60
    ens = GCNEnsemble(lap, 2, [(4, 4), (3,)], dense=(5, 1))
    # second member: conv 12*2*(54+3) = 1368, dense 12*3*5 + 12*5*1 = 240
    assert ens.flops_by_level() == [4716.0, 1368.0 + 240.0]


def test_gpcn_flops_match_hand_count(pair_pool):
    h = Hierarchy([Tube(4, 3, 0), Tube(2, 3, 0)], [pair_pool(4, 3)])
    m = build_model("gpcn-2", h, in_features=2, filters=[[4], [3]], dense=[1])
    # level 0: Tube(4,3,0), |L| = 54: conv 12*2*(54+4) = 1392, dense 12*4*1 = 48
    # level 1: Tube(2,3,0): 6 nodes, edges 2*2 + 2 + 3 = 9, |L| = 6 + 18 = 24:
    #   conv 6*2*(24+3) = 324, dense 6*3*1 = 18, restriction P^T X (6x12 by 12x2) = 144,
    #   prolongation P y (12x6 by 6x1) = 72
    assert m.flops_by_level() == [1440.0, 324.0 + 18.0 + 144.0 + 72.0]
    # one training step, batch 8, all levels forward, only level 1 trained: 8 * (1998 + 2*558)
    assert training_step_flops(m.flops_by_level(), 8, [0, 1], [1]) == 8 * (1998 + 2 * 558)


def test_gcn_is_permutation_equivariant():
    torch.manual_seed(0)
    tube = Tube(5, 4, 1)
    a = tube.adjacency().toarray()
    perm = np.random.default_rng(0).permutation(20)
    g = GCN(laplacian_matrix(a), 6, (8, 8))
    gp = GCN(laplacian_matrix(a[np.ix_(perm, perm)]), 6, (8, 8))
    gp.load_state_dict(g.state_dict())
    x = torch.randn(2, 20, 6)
    assert torch.allclose(g(x)[:, perm], gp(x[:, perm]), atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_maps_bnf_to_bn1_and_rebuilds_from_config(name, small_hierarchy):
    h = small_hierarchy
    torch.manual_seed(1)
    m = build_model(name, h, in_features=11)
    x = torch.randn(3, 32, 11)
    y = m(x)
    assert y.shape == (3, 32, 1) and torch.isfinite(y).all()
    cfg = dict(m.config)
    m2 = build_model(cfg.pop("name"), h, **cfg)
    m2.load_state_dict(m.state_dict())
    assert torch.allclose(m2(x), y, atol=1e-6)
    assert m.flops() > 0


def test_every_model_on_the_microtubule_hierarchy():
    from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy

    h = microtubule_hierarchy(3)
    x = torch.randn(2, 624, 11)
    for name in MODEL_NAMES:
        y = build_model(name, h)(x)
        assert y.shape == (2, 624, 1), name


def test_unknown_model_and_option_are_clear_errors(small_hierarchy):
    h = small_hierarchy
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", h)
    with pytest.raises(ValueError, match="unknown option"):
        build_model("gcn", h, widht=3)


def test_ngcn_powers_keep_radius_one_and_spectral_radius():
    lap = laplacian_matrix(Tube(6, 4, 1).adjacency())
    d = lap.to_dense()
    assert torch.allclose(scaled_power(lap, 1), d, atol=1e-10)
    z4 = scaled_power(lap, 4)
    rho = torch.linalg.eigvalsh(d).abs().max()
    assert torch.allclose(z4, d @ d @ d @ d / rho ** 3, atol=1e-8)
    assert torch.isclose(torch.linalg.eigvalsh(z4).abs().max(), rho, rtol=1e-8)
