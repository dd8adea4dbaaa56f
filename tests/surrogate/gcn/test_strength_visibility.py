"""Issue 13: after per-node normalisation the strength columns are constant over the nodes and
``L = A - D`` maps them to zero, so a GCN of only ``Z X W`` layers never sees them. With
``input_skip`` (what the trainer builds) a GCN's output depends on the strengths."""
import pytest
import torch

from cgsurrogate.surrogate.gcn.registry import build_model


def _inputs(hier, seed=0):
    n = hier.sizes[0]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, n, 11, generator=g)
    y = x.clone()
    x[..., 6:] = 0.3  # strengths constant over the nodes (as after per-node normalisation)
    y[..., 6:] = -1.2
    return x, y


@pytest.mark.parametrize("name", ["gcn", "ensemble-2", "ngcn-3", "gpcn-3", "a-gpcn-3"])
def test_gcn_output_depends_on_the_strengths(name, small_hierarchy):
    torch.manual_seed(0)
    model = build_model(name, small_hierarchy, in_features=11, input_skip=True)
    x, y = _inputs(small_hierarchy)
    assert float((model(x) - model(y)).abs().max()) > 1e-4


def test_paper_gcn_is_blind_to_constant_strengths(small_hierarchy):
    """The defect itself (kept reachable as the paper's design, input_skip=False)."""
    torch.manual_seed(0)
    model = build_model("gcn", small_hierarchy, in_features=11)
    x, y = _inputs(small_hierarchy)
    assert torch.allclose(model(x), model(y), atol=1e-6)


def test_trainer_builds_models_with_the_skip(tiny_dataset, tmp_path):
    from cgsurrogate.surrogate.checkpoint import load_checkpoint
    from cgsurrogate.surrogate.train.gcn_trainer import train_from_dataset

    train_from_dataset(tiny_dataset, "gcn", tmp_path, epochs=1, batches_per_epoch=1, batch_size=2, progress=False)
    assert load_checkpoint(tmp_path / "best.pt")["model_config"]["input_skip"] is True


def test_paper_table_bench_builds_the_trainers_model(small_hierarchy):
    """bench/paper_table.py once built its models with build_model's default (no skip), so its
    GCNs never saw the strengths; it now goes through the trainer's builder."""
    from cgsurrogate.surrogate.train.gcn_trainer import build_training_model

    torch.manual_seed(0)
    model = build_training_model("gcn", small_hierarchy, 11)
    assert model.config["input_skip"] is True
    x, y = _inputs(small_hierarchy)
    assert float((model(x) - model(y)).abs().max()) > 1e-4
    paper = build_training_model("gcn", small_hierarchy, 11, {"input_skip": False})
    assert torch.allclose(paper(x), paper(y), atol=1e-6)
    import ast
    from pathlib import Path

    src = (Path(__file__).resolve().parents[3] / "bench" / "paper_table.py").read_text()
    calls = {n.func.id for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "build_training_model" in calls and "build_model" not in calls
