"""Argument checks shared by the commands: finite numbers, strength parameters, input files and
output paths checked before any computing. Errors are :class:`CGSurrogateError` (one line, exit 2)."""
from __future__ import annotations

from pathlib import Path
import argparse
import math
import os

from cgsurrogate.core.errors import CGSurrogateError, InputFileError

#: The CLI's user error is the project's one error class.
CLIError = CGSurrogateError


def finite_float(text: str) -> float:
    """argparse ``type``: a finite float (refuses nan and inf, which float() accepts)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def strength_params(text: str):
    """The five strength parameters from ``L1,L2,A1,A2,Q`` (zJ) as ndarray [5]; one-line error otherwise."""
    from cgsurrogate.simulate.microtubule import parse_params

    try:
        return parse_params(text)
    except CGSurrogateError:
        raise
    except ValueError as exc:  # parse_params reports malformed user text as ValueError
        raise CGSurrogateError(str(exc)) from None


def _writable_ancestor(path: Path, flag: str) -> None:
    existing = next((a for a in path.parents if a.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise CGSurrogateError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CGSurrogateError(f"{flag} {path}: folder {existing} is not writable")


def input_file(path, flag: str) -> Path:
    """An existing input file named by ``flag``; :class:`InputFileError` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{flag} {p}: no such file" + (" (it is a folder)" if p.is_dir() else ""))
    return p


def output_file(path, flag: str, *, inputs=()) -> Path:
    """Check, before any computing, that ``path`` can be written as a file.

    Refuses a folder, a path under a file (``FILE/sub/x``), an unwritable folder and a path
    that is one of ``inputs`` (would overwrite the user's data).
    """
    p = Path(path)
    if p.is_dir():
        raise CGSurrogateError(f"{flag} {p}: is a folder, expected a file name")
    for other in inputs:
        if other is not None and Path(other).exists() and p.exists() and p.resolve() == Path(other).resolve():
            raise CGSurrogateError(f"{flag} {p}: is the input file; refusing to overwrite it")
    _writable_ancestor(p, flag)
    return p


def output_dir(path, flag: str) -> Path:
    """Check, before any computing, that ``path`` is or can become a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CGSurrogateError(f"{flag} {p}: is a file, expected a folder")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise CGSurrogateError(f"{flag} {p}: folder is not writable")
        return p
    _writable_ancestor(p, flag)
    return p
