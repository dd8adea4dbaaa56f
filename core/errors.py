"""The project's error classes.

:class:`CGSurrogateError` is what the library raises for input a user can fix (a bad file,
a wrong particle count, NaN positions, an unusable option). It subclasses ``ValueError``,
so code that caught ``ValueError`` keeps working; the command line turns exactly this class
into one ``error:`` line and exit status 2, while any other exception keeps its traceback
(it is a bug). Messages name the file or argument and the problem, in one line.
"""
from __future__ import annotations

import importlib


class CGSurrogateError(ValueError):
    """An error the user can fix; the message names the input and the problem."""


class InputFileError(CGSurrogateError, FileNotFoundError):
    """A named input file is missing, unreadable, corrupt or not of the expected kind.

    Also a ``FileNotFoundError``, so ``except FileNotFoundError`` catches a missing file.
    """


class MissingExtraError(CGSurrogateError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require_extra(module: str, extra: str, purpose: str):
    """Import and return ``module``, or raise :class:`MissingExtraError` naming ``extra``.

    Parameters
    ----------
    module : str
        Import name, e.g. ``"rdkit.Chem"``.
    extra : str
        The ``pyproject.toml`` extra that installs it, e.g. ``"cgmap"``.
    purpose : str
        What needs it, for the message ("SMILES input").
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{purpose} needs the '{extra}' extra ({module} is not installed): "
            f"pip install 'cgsurrogate[{extra}]'"
        ) from exc
