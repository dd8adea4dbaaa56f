"""Public names imported on first use (PEP 562), for package ``__init__`` modules.

A package lists ``name -> defining module`` and gets a module ``__getattr__`` that imports the
module when the name is first read (and caches the value in the package), and a ``__dir__``
that lists the names before they are imported. Used where importing the package must stay
cheap: ``import cgsurrogate`` (the CLI's start-up) and ``cgsurrogate.simulate`` (a numba sweep
worker must not import torch).
"""
from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(namespace: dict, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``(__getattr__, __dir__)`` pair of a package whose public names load on first use.

    Parameters
    ----------
    namespace : dict
        The package's ``globals()``; imported values are stored in it.
    exports : dict[str, str]
        Public name -> fully qualified module that defines it.

    Returns
    -------
    (getattr, dir): assign them to the package's ``__getattr__`` and ``__dir__``.
    """
    package = namespace["__name__"]

    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
