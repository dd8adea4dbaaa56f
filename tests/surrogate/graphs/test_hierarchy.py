"""Hierarchy (contract C): structure, orthonormality, caching, save/load round trip, bad files."""
import numpy as np
import pytest
import torch

from cgsurrogate.core.checkpoint_io import write_checkpoint
from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.simulate.tube import Tube
from cgsurrogate.surrogate.graphs.weighted_graph import Grid, dense_laplacian, graph_from_dict, graph_to_dict, laplacian, parse_graph
from cgsurrogate.surrogate.graphs.hierarchy import Hierarchy, build_hierarchy, microtubule_hierarchy
from cgsurrogate.surrogate.graphs.lgdd import objective


@pytest.fixture(scope="module")
def mt_hierarchy(tmp_path_factory):
    return microtubule_hierarchy(cache_dir=tmp_path_factory.mktemp("hcache"))


def test_laplacian_sign_and_rows():
    t = Tube(6, 5, 2, seam_weight=2.0)
    L = laplacian(t.adjacency()).to_dense().numpy()
    A = t.adjacency().toarray()
    np.testing.assert_allclose(L, A - np.diag(A.sum(1)), atol=0)
    np.testing.assert_allclose(L.sum(1), 0, atol=1e-12)
    assert np.all(np.diag(L) <= 0) and np.linalg.eigvalsh(L).max() < 1e-10
    # seam weight 2 doubles the seam entries
    i, j = t.edges[t.edge_kind == 1][0]
    assert L[i, j] == 2.0


def test_grid_and_parse():
    g = Grid(3, 4)
    assert g.num_nodes == 12 and len(g.edges) == 3 * 3 + 2 * 4
    deg = np.asarray(g.adjacency().sum(1)).ravel()
    assert sorted(set(deg)) == [2, 3, 4]
    assert parse_graph("tube(24, 3, 0, w2)") == Tube(24, 3, 0, 2.0)
    assert parse_graph("Grid(5,13)") == Grid(5, 13)
    assert parse_graph("Cycle(5)").num_nodes == 5
    with pytest.raises(ValueError, match="cannot parse graph"):
        parse_graph("Torus(3)")
    for g in (Tube(5, 4, 1, 2.0), Grid(2, 3), parse_graph("Path(4)")):
        np.testing.assert_array_equal(dense_laplacian(graph_from_dict(graph_to_dict(g))), dense_laplacian(g))


def test_microtubule_hierarchy_structure(mt_hierarchy):
    h = mt_hierarchy
    assert h.sizes == [624, 312, 72] and h.num_levels == 3
    assert h.names == ["Tube(48,13,3)", "Tube(24,13,1)", "Tube(24,3,0)"]
    for i, p in enumerate(h.P):
        assert p.dtype == torch.float64 and tuple(p.shape) == (h.sizes[i], h.sizes[i + 1])
        assert (p.T @ p - torch.eye(p.shape[1], dtype=torch.float64)).abs().max() < 1e-8
    for i, lap in enumerate(h.laplacians):
        assert lap.is_sparse and lap.dtype == torch.float64
        np.testing.assert_array_equal(lap.to_dense().numpy(), dense_laplacian(h.graphs[i]))
    assert torch.equal(h.prolongation(0), torch.eye(624, dtype=torch.float64))
    torch.testing.assert_close(h.prolongation(2), h.P[0] @ h.P[1], rtol=0, atol=0)
    p = h.prolongation(2)
    assert (p.T @ p - torch.eye(72, dtype=torch.float64)).abs().max() < 1e-8
    # stored distances are the objective of the stored matrices (independent evaluation)
    for i, p in enumerate(h.P):
        d = objective(p.numpy(), dense_laplacian(h.graphs[i + 1]), dense_laplacian(h.graphs[i]), 1.0)
        assert d == pytest.approx(h.distances[i], rel=1e-9, abs=1e-12)


def test_cache_is_reused(tmp_path, monkeypatch):
    graphs = [Tube(8, 5, 1), Tube(4, 5, 0), Tube(4, 2, 0)]
    h1 = build_hierarchy(graphs, cache_dir=tmp_path)
    files = list(tmp_path.glob("hierarchy-*.pt"))
    assert len(files) == 1
    import cgsurrogate.surrogate.graphs.lgdd as lg

    def boom(*a, **k):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(lg, "lgdd", boom)
    h2 = build_hierarchy(graphs, cache_dir=tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(h1.P, h2.P))
    # a different graph list is a different cache entry
    monkeypatch.undo()
    build_hierarchy([Tube(8, 5, 1), Tube(4, 5, 1)], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("hierarchy-*.pt"))) == 2
    # env var is honoured
    monkeypatch.setenv("CGS_CACHE_DIR", str(tmp_path / "env"))
    build_hierarchy(graphs)
    assert len(list((tmp_path / "env").glob("hierarchy-*.pt"))) == 1


def test_save_load_roundtrip_exact(mt_hierarchy, tmp_path):
    path = mt_hierarchy.save(tmp_path / "h.pt")
    raw = torch.load(path, weights_only=True)  # one checkpoint format (core.checkpoint_io), kind "hierarchy"
    assert raw["format"] == "cgsurrogate" and raw["kind"] == "hierarchy"
    assert raw["payload"]["format"] == "cgsurrogate.hierarchy"
    h = Hierarchy.load(path)
    assert h.sizes == mt_hierarchy.sizes and h.names == mt_hierarchy.names
    assert h.distances == mt_hierarchy.distances and h.alpha == 1.0
    for a, b in zip(h.P, mt_hierarchy.P):
        assert torch.equal(a, b)
    for a, b in zip(h.laplacians, mt_hierarchy.laplacians):
        assert torch.equal(a.to_dense(), b.to_dense())
    h2 = Hierarchy.from_state_dict(mt_hierarchy.state_dict())
    assert torch.equal(h2.prolongation(2), mt_hierarchy.prolongation(2))


def _small():
    return build_hierarchy([Tube(6, 4, 1), Tube(3, 4, 0)], use_cache=False)


def test_bad_files_get_clear_errors(tmp_path):
    h = _small()
    with pytest.raises(FileNotFoundError, match="no such"):
        Hierarchy.load(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a torch file")
    with pytest.raises(CGSurrogateError, match="junk.pt: corrupt or not a cgsurrogate file"):
        Hierarchy.load(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CGSurrogateError, match="foreign.pt: not a cgsurrogate checkpoint"):
        Hierarchy.load(foreign)
    other = write_checkpoint(tmp_path / "other.pt", "gcn-surrogate", {"x": 1})
    with pytest.raises(CGSurrogateError, match="other.pt: a 'gcn-surrogate' checkpoint, expected 'hierarchy'"):
        Hierarchy.load(other)
    with pytest.raises(CGSurrogateError, match="not a cgsurrogate hierarchy"):
        Hierarchy.from_state_dict({"weights": torch.zeros(3)})
    cases = {
        "old": (lambda d: d.update(format_version=0), "format version"),
        "shape": (lambda d: d["P"].__setitem__(0, d["P"][0][:, :-1]), "expected a tensor of shape"),
        "graph": (lambda d: d["graphs"].__setitem__(1, {"kind": "tube", "n": 3, "k": 4, "p": 1}), "does not match"),
        "missing": (lambda d: d.pop("P"), "missing 'P'"),
        "ortho": (lambda d: d["P"].__setitem__(0, d["P"][0] * 2), "not orthonormal"),
        "kind": (lambda d: d["graphs"].__setitem__(0, {"kind": "torus"}), "unknown graph kind"),
        "sizes": (lambda d: d.__setitem__("sizes", [1, 2]), "do not match the graphs"),
    }
    for name, (mutate, msg) in cases.items():
        d = h.state_dict()
        mutate(d)
        path = write_checkpoint(tmp_path / f"{name}.pt", "hierarchy", d)
        with pytest.raises(CGSurrogateError, match=msg) as exc:
            Hierarchy.load(path)
        assert str(path) in str(exc.value)


def test_bad_cache_entry_is_recomputed(tmp_path):
    graphs = [Tube(6, 4, 1), Tube(3, 4, 0)]
    build_hierarchy(graphs, cache_dir=tmp_path)
    (f,) = tmp_path.glob("hierarchy-*.pt")
    f.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="ignoring unusable cache entry"):
        h = build_hierarchy(graphs, cache_dir=tmp_path)
    assert h.sizes == [24, 12]
    assert Hierarchy.load(f).sizes == [24, 12]


def test_build_rejects_wrong_order():
    with pytest.raises(ValueError, match="finest first"):
        build_hierarchy([Tube(3, 4, 0), Tube(6, 4, 1)], use_cache=False)
    with pytest.raises(ValueError, match="1..3 levels"):
        microtubule_hierarchy(levels=4)


def test_cli_hierarchy(tmp_path, capsys):
    from cgsurrogate import cli

    out = tmp_path / "h.pt"
    rc = cli.main(["hierarchy", "Tube(6,4,1)", "Tube(3,4,0)", "Path(4)", "--cache-dir", str(tmp_path / "c"),
                   "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Tube(3,4,0)" in text and "D(opt)" in text
    h = Hierarchy.load(out)
    assert h.sizes == [24, 12, 4]
    assert cli.main(["hierarchy", "--load", str(out), "--no-optimal-alpha"]) == 0
    assert cli.main(["hierarchy", "Torus(3)"]) == 2
    assert "cannot parse graph" in capsys.readouterr().err
    assert cli.main(["hierarchy", "--load", str(tmp_path / "missing.pt")]) == 2


def test_report_distances_match_lgdd():
    from cgsurrogate.surrogate.graphs.hierarchy import hierarchy_report
    from cgsurrogate.surrogate.graphs.lgdd import lgdd

    h = build_hierarchy([Tube(6, 4, 1), Tube(3, 4, 0)], use_cache=False)
    rows = hierarchy_report(h)
    assert rows[1]["distance"] == pytest.approx(lgdd(Tube(3, 4, 0), Tube(6, 4, 1), 1.0).distance, rel=1e-12)
    assert rows[1]["distance_opt"] <= rows[1]["distance"] + 1e-12


def test_one_laplacian_builder_everywhere():
    """Every Laplacian in the project is laplacian_csr's: compare each view with L = A - D built by hand."""
    from cgsurrogate.surrogate.gcn.layers import laplacian_matrix
    from cgsurrogate.surrogate.graphs.lgdd import _as_laplacian
    from cgsurrogate.surrogate.graphs.weighted_graph import WeightedGraph, laplacian_csr

    g = WeightedGraph(4, [[0, 1], [1, 2], [2, 3], [0, 3]], [1.0, 2.0, 0.5, 3.0])
    expect = np.zeros((4, 4))
    for (i, j), w in zip(g.edges, g.weights):
        expect[i, j] = expect[j, i] = w
    expect -= np.diag(expect.sum(1))
    assert expect[0, 0] == -4.0 and expect[1, 2] == 2.0
    adj = g.adjacency()
    for L in (laplacian_csr(g).toarray(), dense_laplacian(g), laplacian(g).to_dense().numpy(),
              laplacian_matrix(adj).to_dense().numpy(), _as_laplacian(g).toarray(),
              Hierarchy([g], []).laplacian_dense(0).numpy()):
        assert np.array_equal(L, expect)
