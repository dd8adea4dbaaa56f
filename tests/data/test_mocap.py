"""Motion capture loader (CMU subject 9 run): split sizes, 2-hop graph, velocities, and EGHN's
equivariance about the vertical axis on real skeleton graphs."""
import networkx as nx
import numpy as np
import pytest
import torch

from cgsurrogate.data.mocap import HEIGHT_AXIS, MocapDataset, two_hop_edges
from cgsurrogate.surrogate.equivariant.eghn import EGHN
from cgsurrogate.surrogate.equivariant.testing import Transform, assert_equivariant, random_permutation_within_graphs
from cgsurrogate.surrogate.equivariant.message_passing import collate_graphs


def test_two_hop_edges_match_networkx(rng):
    G = nx.random_labeled_tree(12, seed=3)
    bonds = np.array(G.edges())
    ei, is_bond = two_hop_edges(bonds, 12)
    d = dict(nx.all_pairs_shortest_path_length(G))
    want = {(i, j) for i in range(12) for j in range(12) if i != j and d[i][j] <= 2}
    assert set(map(tuple, ei.T.tolist())) == want
    assert all((d[i][j] == 1) == bool(b) for (i, j), b in zip(ei.T.tolist(), is_bond))


def test_splits_and_samples(shared_data):
    p = shared_data / "mocap" / "cmu_subject09_run.npz"
    sizes = {s: len(MocapDataset(p, s)) for s in ("train", "valid", "test")}
    assert sizes == {"train": 400, "valid": 240, "test": 240}
    ds = MocapDataset(p, "train")
    raw = np.load(p)
    s0 = int(raw["split_train_trial_01"][0])
    x = raw["trial_01"]
    g = ds[0]
    assert np.allclose(g["pos"].numpy(), x[s0], atol=1e-5)
    assert np.allclose(g["vel"].numpy(), x[s0 + 1] - x[s0], atol=1e-5)
    assert np.allclose(g["target"].numpy(), x[s0 + 30], atol=1e-5)
    # height feature: divided by the largest |height| over the training trials (1, 2, 5, 6, 10)
    scale = max(np.abs(raw[f"trial_{i:02d}"][..., HEIGHT_AXIS]).max() for i in (1, 2, 5, 6, 10))
    assert ds.height_scale == pytest.approx(scale)
    assert np.allclose(g["h"][:, 1].numpy(), x[s0][:, HEIGHT_AXIS] / scale, atol=1e-6)
    assert float(g["h"][:, 1].abs().max()) <= 1.0
    # validation samples use the training scale; the raw feature stays available
    assert MocapDataset(p, "valid").height_scale == ds.height_scale
    g_raw = MocapDataset(p, "train", normalise_height=False)[0]
    assert np.allclose(g_raw["h"][:, 1].numpy(), x[s0][:, HEIGHT_AXIS], atol=1e-5)
    assert g["local_edge_index"].shape[1] == 60


def test_missing_file_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="motion-capture file not found"):
        MocapDataset(tmp_path / "x.npz")


def test_eghn_equivariant_about_vertical_axis(shared_data):
    ds = MocapDataset(shared_data / "mocap" / "cmu_subject09_run.npz", "valid")
    g = collate_graphs(ds.graphs[:3])
    g = g.to(torch.float64)
    torch.manual_seed(0)
    model = EGHN(2, 1, 1, hidden=16, n_clusters=[5], layers_per_block=1, pool_layers=1).double().eval()
    rng = np.random.default_rng(0)
    for reflect in (False, True):
        a = rng.uniform(0, 2 * np.pi)
        R = np.eye(3)
        c, s = np.cos(a), np.sin(a)
        R[0, 0], R[0, 2], R[2, 0], R[2, 2] = c, -s, s, c  # rotation about axis 1 (height)
        if reflect:
            R[:, 0] *= -1
        t = np.array([rng.normal(), 0.0, rng.normal()])  # horizontal translation keeps heights
        T = Transform(torch.as_tensor(R), torch.as_tensor(t), random_permutation_within_graphs(g.batch, rng))
        assert_equivariant(lambda gg: {"x": model(gg)[0]}, g, T, {"x": "position"}, 1e-5)
