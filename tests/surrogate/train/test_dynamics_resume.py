"""EGHN-family dynamics training resumes only with the same settings (issue 11: a different
--hidden ended in an uncaught RuntimeError from load_state_dict)."""
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.train.dynamics_trainer import TrainConfig, build_dynamics_model, train_dynamics


def test_resume_refuses_changed_settings(shared_data, tmp_path):
    from cgsurrogate.data.mcomplex import MComplexDataset

    p = shared_data / "mcomplex" / "mcomplex_3x3.npz"
    tr = MComplexDataset(p, "train", max_samples=20).graphs
    va = MComplexDataset(p, "valid", max_samples=10).graphs
    ck = tmp_path / "egnn.pt"

    def run(hidden=8, epochs=1, lr=1e-3):
        torch.manual_seed(0)
        m = build_dynamics_model("egnn", 1, 2, hidden=hidden, n_layers=1)
        return train_dynamics(m, tr, va, None, TrainConfig(epochs=epochs, batch_size=10, lr=lr), checkpoint=ck,
                              progress=False)

    run()
    assert len(run(epochs=2)["history"]) == 2  # more epochs: resumes
    with pytest.raises(CGSurrogateError, match="hidden"):
        run(hidden=16, epochs=3)
    with pytest.raises(CGSurrogateError, match="lr"):
        run(epochs=3, lr=5e-4)
