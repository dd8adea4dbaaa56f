"""DSGPM loss options: the margin (alpha) and pair weight (lambda) given to ``train_dsgpm`` reach the loss
in both loss forms (eq. 6-8 and the authors' squared form, checked against a numpy loss on the numpy
embedder's output), bad values give one clear error, and a wider edge network (``edge_hidden``, the
authors' 128) evaluates the same in torch and in numpy."""
import numpy as np
import pytest
import torch

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.surrogate.cgmap.inference import Embedder
from cgsurrogate.surrogate.cgmap.network import DSGPM
from cgsurrogate.surrogate.cgmap.training import torch_embedder, train_dsgpm

CFG = dict(hidden=16, out_dim=8, steps=2, feature_set="rich")


def reference_losses(embedder, anns, margin, distance="l2"):
    """Eq. 6 and 7 by hand: every (anchor, in-bead neighbour, cross-bead neighbour) triplet and every
    in-bead bond of every annotation, pooled over the batch; plain L2 distances (``"l2"``, the paper's
    text) or the authors' code (``"squared"``: squared distances, pairs as mean squared component)."""
    if distance == "l2":
        dist, pdist = (lambda u: np.linalg.norm(u)), (lambda u: np.linalg.norm(u))
    else:
        dist, pdist = (lambda u: np.sum(u ** 2)), (lambda u: np.mean(u ** 2))
    trip, pair = [], []
    for a in anns:
        x = embedder.embed(a.graph)[0]
        lab = a.labels
        nbrs = {i: set() for i in range(len(lab))}
        for i, j in a.graph.edges:
            nbrs[int(i)].add(int(j))
            nbrs[int(j)].add(int(i))
            if lab[i] == lab[j]:
                pair.append(pdist(x[i] - x[j]))
        for i in nbrs:
            for p in nbrs[i]:
                for q in nbrs[i]:
                    if lab[p] == lab[i] and lab[q] != lab[i]:
                        trip.append(max(dist(x[i] - x[p]) - dist(x[i] - x[q]) + margin, 0.0))
    return float(np.mean(trip)), float(np.mean(pair))


@pytest.mark.parametrize("margin,pair_weight,distance", [(1.0, 0.1, "l2"), (0.3, 2.0, "l2"),
                                                       (1.0, 0.1, "squared")])
def test_margin_and_pair_weight_reach_the_loss(anns, margin, pair_weight, distance):
    torch.set_num_threads(1)
    # one batch and a vanishing rate: epoch 0's recorded loss is the loss of the initial network
    _, hist = train_dsgpm(anns, None, epochs=1, batch_size=len(anns), lr=1e-12, margin=margin,
                          pair_weight=pair_weight, seed=3, model_config=CFG, distance=distance)
    torch.manual_seed(3)
    init = torch_embedder(DSGPM(**CFG))           # same seed, same initial weights; numpy evaluation
    lt, lp = reference_losses(init, anns, margin, distance)
    assert hist[0]["triplet"] == pytest.approx(lt, rel=1e-4)
    assert hist[0]["pair"] == pytest.approx(lp, rel=1e-4)
    assert hist[0]["loss"] == pytest.approx(lt + pair_weight * lp, rel=1e-4)


@pytest.mark.parametrize("kw", [dict(margin=0.0), dict(margin=-1.0), dict(margin=float("nan")),
                                dict(pair_weight=-0.1), dict(pair_weight=float("inf"))])
def test_bad_loss_weights_raise(anns, kw):
    with pytest.raises(CGSurrogateError, match="margin|pair_weight"):
        train_dsgpm(anns, None, epochs=1, model_config=CFG, **kw)


def test_edge_hidden_width_reaches_the_network(anns):
    torch.manual_seed(0)
    net = DSGPM(**dict(CFG, edge_hidden=128)).eval()
    assert net.edge_net[0].out_features == 128 and net.config["edge_hidden"] == 128
    emb = Embedder(net.config, [{k: v.detach().double().numpy() for k, v in net.state_dict().items()}])
    from cgsurrogate.surrogate.cgmap.features import collate, prepare_graph

    g = anns[6].graph
    with torch.no_grad():
        x_torch = net(collate([prepare_graph(g, feature_set="rich")]).torch()).double().numpy()
    np.testing.assert_allclose(emb.embed(g)[0], x_torch, atol=1e-5)
