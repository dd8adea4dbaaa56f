"""AdK graphs with the EGHN authors' settings: forward-difference velocities and the 8 A A_global
cutoff, checked against positions read independently with MDAnalysis and a brute-force distance
matrix."""
import warnings

import numpy as np
import pytest

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.data.protein import load_protein_trajectory, mdanalysis_test_adk, protein_graph, protein_splits

import MDAnalysisTests  # noqa: E402,F401  (in the [test] extra: a missing install must fail, not skip)


@pytest.fixture(scope="module")
def adk():
    return load_protein_trajectory(mdanalysis_test_adk())


def _backbone_frames(source, frames):
    """Backbone positions (nm) of the given frames, read directly with MDAnalysis."""
    import MDAnalysis as mda
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(*source)
    sel = u.select_atoms("backbone")
    out = []
    for f in frames:
        u.trajectory[f]
        out.append(sel.positions.astype(np.float64) / 10.0)
    return out


def test_forward_velocity_is_next_frame_minus_this(adk):
    src = mdanalysis_test_adk()
    sp = protein_splits(adk, span=15, cutoff_nm=0.8, velocity="forward")
    assert sum(len(v) for v in sp.values()) == 252  # same count as backward: F - 1 - 15 per DCD
    # pair 0 is frame 0 of the first DCD; the first pair of the second DCD is its frame 0 too
    x0, x1, x15 = _backbone_frames(src[0], [0, 1, 15])
    g = sp["train"][0]
    assert np.allclose(g["pos"].numpy(), x0, atol=1e-6)
    assert np.allclose(g["vel"].numpy(), x1 - x0, atol=1e-6)
    assert np.allclose(g["target"].numpy(), x15, atol=1e-6)
    assert np.allclose(g["h"][:, 0].numpy(), np.linalg.norm(x1 - x0, axis=1), atol=1e-6)
    n0 = 98 - 1 - 15  # pairs of the first DCD
    y0, y1 = _backbone_frames(src[1], [0, 1])
    g2 = sp["train"][n0]
    assert np.allclose(g2["pos"].numpy(), y0, atol=1e-6) and np.allclose(g2["vel"].numpy(), y1 - y0, atol=1e-6)
    # the last pair of the last DCD (100 frames) uses input frame 83, velocity from frame 84, target 98
    z83, z84, z98 = _backbone_frames(src[2], [83, 84, 98])
    g3 = sp["test"][-1]
    assert np.allclose(g3["vel"].numpy(), z84 - z83, atol=1e-6) and np.allclose(g3["target"].numpy(), z98, atol=1e-6)


def test_backward_velocity_unchanged_and_differs_from_forward(adk):
    gb = protein_graph(adk, 0, 5, 15, 0.8)
    gf = protein_graph(adk, 0, 5, 15, 0.8, velocity="forward")
    x = adk.positions[0]
    assert np.allclose(gb["vel"].numpy(), x[5] - x[4]) and np.allclose(gf["vel"].numpy(), x[6] - x[5])
    assert not np.allclose(gb["vel"].numpy(), gf["vel"].numpy())
    assert np.array_equal(gb["edge_index"].numpy(), gf["edge_index"].numpy())  # same input frame, same graph


def test_cutoff_edges_under_cutoff_symmetric_and_complete(adk):
    g = protein_graph(adk, 1, 40, 15, 0.8, velocity="forward")
    pos = g["pos"].numpy().astype(np.float64)
    ei = g["edge_index"].numpy()
    d = np.linalg.norm(pos[ei[0]] - pos[ei[1]], axis=1)
    assert d.max() < 0.8 and (ei[0] != ei[1]).all()
    pairs = set(map(tuple, ei.T.tolist()))
    assert pairs == {(j, i) for i, j in pairs} and len(pairs) == ei.shape[1]
    full = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    want = int((full < 0.8).sum() - len(pos))
    assert ei.shape[1] == want
    # bonds (A_local) are all A_global edges at 8 A and flagged as such
    is_bond = g["edge_attr"][:, 0].numpy() == 1
    assert is_bond.sum() == 2 * len(adk.bonds)


def test_bad_velocity_and_frame_are_clear_errors(adk):
    with pytest.raises(CGSurrogateError, match="velocity must be one of"):
        protein_splits(adk, span=15, velocity="central")
    with pytest.raises(CGSurrogateError, match="velocity must be one of"):
        protein_graph(adk, 0, 5, 15, 0.8, velocity="central")
    with pytest.raises(CGSurrogateError, match="needs frames"):
        protein_graph(adk, 0, 0, 15, 0.8)  # backward velocity at frame 0
    with pytest.raises(CGSurrogateError, match="needs frames"):
        protein_graph(adk, 0, 90, 15, 0.8, velocity="forward")  # target beyond frame 97


def test_eghn_train_velocity_option_reaches_the_graphs(adk):
    """`eghn-train --velocity forward` threads through load_benchmark to the protein graphs (the first training
    pair's velocity is frame 1 - frame 0), backward stays the default, and a bad choice is a usage error."""
    import cli
    from cgsurrogate.surrogate.train.dynamics_trainer import load_benchmark

    fwd = load_benchmark("protein", span=15, cutoff_nm=0.8, velocity="forward")[0][0]
    bwd = load_benchmark("protein", span=15, cutoff_nm=0.8)[0][0]
    x = adk.positions[0]
    assert np.allclose(fwd["vel"].numpy(), x[1] - x[0])
    assert np.allclose(fwd["pos"].numpy(), x[0]) and np.allclose(bwd["pos"].numpy(), x[1])  # backward starts one later
    assert np.allclose(bwd["vel"].numpy(), x[1] - x[0])
    with pytest.raises(SystemExit) as e:
        cli.main(["eghn-train", "--task", "protein", "--velocity", "sideways", "--out", "x.pt"])
    assert e.value.code == 2
