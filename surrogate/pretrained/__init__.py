"""Trained model files shipped with the package.

``dsgpm_ham.pt``: DSGPM trained on the HAM subset. ``microtubule_invariant.pt``: the invariant
microtubule potential (:mod:`cgsurrogate.surrogate.gcn.potential`), loadable by name:
``load_surrogate("microtubule-invariant")``.
"""
from __future__ import annotations

import os
from pathlib import Path

#: Shipped energy models by name -> file in this folder.
PRETRAINED = {"microtubule-invariant": "microtubule_invariant.pt"}


def resolve_pretrained(path_or_name):
    """The file of a shipped model name (see :data:`PRETRAINED`); any other value unchanged."""
    key = os.fspath(path_or_name) if isinstance(path_or_name, (str, os.PathLike)) else path_or_name
    if isinstance(key, str) and key in PRETRAINED and not Path(key).exists():
        return Path(__file__).resolve().parent / PRETRAINED[key]
    return path_or_name


__all__ = ["PRETRAINED", "resolve_pretrained"]
