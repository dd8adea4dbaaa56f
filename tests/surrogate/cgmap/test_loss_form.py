"""DSGPM loss form: ``distance="l2"`` (the paper's eq. 6-7, plain distances) and ``"squared"`` (the authors'
code: squared distances in the triplet, mean squared component difference for the pairs) against values
worked out by hand on a tiny embedding, and an unknown form is one clear CGSurrogateError."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.cgmap.network import cut_triplet_loss, dsgpm_loss, noncut_pair_loss
from cgsurrogate.surrogate.cgmap.training import train_dsgpm

CFG = dict(hidden=16, out_dim=8, steps=2, feature_set="rich")

# four unit vectors in 3D (q = 3)
EMB = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.8, 0.0]])
TRIPLETS = np.array([[0, 3, 1], [1, 3, 2], [3, 0, 2]])
PAIRS = np.array([[0, 3], [1, 2]])


def test_tiny_embedding_by_hand():
    # squared distances: |0-3|^2 = 0.16+0.64 = 0.8, |0-1|^2 = 2, |1-3|^2 = 0.36+0.04 = 0.4,
    # |1-2|^2 = 2, |3-2|^2 = 0.36+0.64+1 = 2
    # l2 triplets: max(sqrt(.8)-sqrt(2)+1, 0), max(sqrt(.4)-sqrt(2)+1, 0), max(sqrt(.8)-sqrt(2)+1, 0)
    l2_trip = (2 * (np.sqrt(0.8) - np.sqrt(2) + 1) + (np.sqrt(0.4) - np.sqrt(2) + 1)) / 3
    # squared triplets: max(0.8-2+1, 0) = 0, max(0.4-2+1, 0) = 0, max(0.8-2+1, 0) = 0; with margin 1.5:
    # 0.3, max(-0.1, 0) = 0, 0.3
    sq_trip_m1, sq_trip_m15 = 0.0, (0.3 + 0.0 + 0.3) / 3
    l2_pair = (np.sqrt(0.8) + np.sqrt(2)) / 2
    sq_pair = (0.8 / 3 + 2 / 3) / 2          # mean over pairs and the 3 components
    emb = torch.tensor(EMB, dtype=torch.float64)
    t, p = torch.tensor(TRIPLETS), torch.tensor(PAIRS)
    assert cut_triplet_loss(emb, t, 1.0).item() == pytest.approx(l2_trip, rel=1e-9)
    assert cut_triplet_loss(emb, t, 1.0, "squared").item() == pytest.approx(sq_trip_m1, abs=1e-12)
    assert cut_triplet_loss(emb, t, 1.5, "squared").item() == pytest.approx(sq_trip_m15, rel=1e-9)
    assert noncut_pair_loss(emb, p).item() == pytest.approx(l2_pair, rel=1e-9)
    assert noncut_pair_loss(emb, p, "squared").item() == pytest.approx(sq_pair, rel=1e-9)
    batch = SimpleNamespace(triplets=t, pairs=p)
    total, lt, lp = dsgpm_loss(emb, batch, 1.5, 0.1, "squared")
    assert (lt.item(), lp.item()) == pytest.approx((sq_trip_m15, sq_pair), rel=1e-9)
    assert total.item() == pytest.approx(sq_trip_m15 + 0.1 * sq_pair, rel=1e-9)
    total, lt, lp = dsgpm_loss(emb, batch, 1.0, 0.1)          # default: the paper's plain distances
    assert total.item() == pytest.approx(l2_trip + 0.1 * l2_pair, rel=1e-9)


def test_unknown_loss_form_is_one_clear_error(anns):
    with pytest.raises(CGSurrogateError, match="unknown DSGPM loss form 'cosine'"):
        train_dsgpm(anns, None, epochs=1, model_config=CFG, distance="cosine")
    emb = torch.tensor(EMB)
    with pytest.raises(CGSurrogateError, match="loss form"):
        dsgpm_loss(emb, SimpleNamespace(triplets=torch.tensor(TRIPLETS), pairs=torch.tensor(PAIRS)), distance="L1")


def test_nested_cv_selection_records_the_form(anns):
    from cgsurrogate.surrogate.cgmap.nested_cv import dsgpm_fit

    torch.set_num_threads(1)
    _, record = dsgpm_fit(anns, epochs=1, eval_every=1, model_config=CFG, distance="squared")
    assert record["loss_form"] == "squared"
    with pytest.raises(CGSurrogateError, match="loss form"):
        dsgpm_fit(anns, epochs=1, eval_every=1, model_config=CFG, distance="l1")
