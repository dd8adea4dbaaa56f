"""DSGPM (Li et al. 2020): the public names of the learned CG-mapping model in one place.

The model lives in modules by concern: features and batching (:mod:`.features`), the torch
network and losses (:mod:`.network`), numpy inference (:mod:`.inference`), partitioning
(:mod:`.partition`), training (:mod:`.training`), checkpoints (:mod:`.checkpoint`) and
nested cross-validation (:mod:`.nested_cv`). Importing this module does not import torch.
"""
from __future__ import annotations

from cgsurrogate.surrogate.cgmap.checkpoint import PRETRAINED_PATH, load_dsgpm, load_dsgpm_torch, load_pretrained, \
    save_dsgpm
from cgsurrogate.surrogate.cgmap.features import MolBatch, PreparedGraph, collate, prepare_graph
from cgsurrogate.surrogate.cgmap.inference import Embedder, adjacency_affinity, affinity_matrix, embed_graph, \
    model_affinity, predict_mapping
from cgsurrogate.surrogate.cgmap.partition import enforce_connectivity, metis_partition, spectral_partition
from cgsurrogate.surrogate.cgmap.training import train_dsgpm

__all__ = ["PreparedGraph", "MolBatch", "prepare_graph", "collate", "Embedder", "embed_graph", "affinity_matrix",
           "adjacency_affinity", "model_affinity", "spectral_partition", "metis_partition", "enforce_connectivity",
           "predict_mapping", "train_dsgpm", "save_dsgpm", "load_dsgpm", "load_dsgpm_torch", "load_pretrained",
           "PRETRAINED_PATH", "DSGPM", "cut_triplet_loss", "noncut_pair_loss", "dsgpm_loss"]


def __getattr__(name):  # torch-based names, imported on first use
    if name in ("DSGPM", "cut_triplet_loss", "noncut_pair_loss", "dsgpm_loss"):
        from cgsurrogate.surrogate.cgmap import network

        return getattr(network, name)
    raise AttributeError(name)
