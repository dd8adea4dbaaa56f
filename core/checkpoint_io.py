"""One checkpoint file format for every kind of file the project saves with torch.

A checkpoint is ``torch.save`` of ``{"format": "cgsurrogate", "kind": KIND, "version": V,
"payload": {...}}`` where the payload holds only what ``torch.load(weights_only=True)`` reads
back: tensors, numbers, strings, bools, None, and lists, tuples and dicts of them. Files are
written atomically (:func:`cgsurrogate.core.atomic.atomic_path`) and always read with
``weights_only=True``: a file a user hands us is never unpickled.

Kinds in use name what the payload is, e.g. ``"gcn-surrogate"``, ``"eghn-energy"``,
``"eghn-dynamics"``, ``"dsgpm"``, ``"hierarchy"``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from cgsurrogate.core.atomic import atomic_path
from cgsurrogate.core.errors import CGSurrogateError, InputFileError

FORMAT_TAG = "cgsurrogate"


def write_checkpoint(path, kind: str, payload: dict, version: int = 1) -> Path:
    """Write ``payload`` as a checkpoint of ``kind`` (format ``version``) to ``path`` atomically.

    Raises
    ------
    CGSurrogateError
        The payload holds something ``weights_only`` loading could not read back, or the
        path cannot be written (message names ``path``).
    """
    import torch

    _check_payload(payload, f"{path}: payload")
    obj = {"format": FORMAT_TAG, "kind": str(kind), "version": int(version), "payload": payload}
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def read_checkpoint(path, kind: str | Iterable[str], max_version: int = 1,
                    map_location="cpu") -> tuple[str, int, dict]:
    """Read a checkpoint of one of the kinds in ``kind``; returns ``(kind, version, payload)``.

    Parameters
    ----------
    path : str or Path
    kind : str or iterable of str
        Accepted kinds.
    max_version : int
        Newest format version this reader understands.
    map_location : torch map_location (default ``"cpu"``)

    Raises
    ------
    InputFileError
        Missing file; a file that is corrupt or not a cgsurrogate checkpoint; another kind;
        a newer format version. One line naming the file.
    """
    import pickle
    import struct
    import zipfile

    import torch

    path = Path(path)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if not path.is_file():
        raise InputFileError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError,
            AttributeError, TypeError, KeyError, IndexError, struct.error):
        raise InputFileError(f"{path}: corrupt or not a cgsurrogate file (cannot read it as a checkpoint)") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_TAG or "payload" not in obj:
        raise InputFileError(f"{path}: not a cgsurrogate checkpoint (no '{FORMAT_TAG}' format tag)")
    got, version = obj.get("kind"), obj.get("version")
    if got not in kinds:
        raise InputFileError(f"{path}: a '{got}' checkpoint, expected {' or '.join(repr(k) for k in kinds)}")
    if not isinstance(version, int) or version < 1:
        raise InputFileError(f"{path}: corrupt checkpoint (format version {version!r})")
    if version > max_version:
        raise InputFileError(f"{path}: format version {version} is newer than this cgsurrogate reads "
                             f"({max_version}); upgrade cgsurrogate")
    if not isinstance(obj["payload"], dict):
        raise InputFileError(f"{path}: corrupt checkpoint (payload is not a dict)")
    return got, version, obj["payload"]


_SCALARS = (str, int, float, bool, type(None))


def _check_payload(obj, where: str) -> None:
    import torch

    if isinstance(obj, (_SCALARS, torch.Tensor, torch.dtype, torch.device)):
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_payload(v, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise CGSurrogateError(f"{where}: key {k!r} is not a str or int")
            _check_payload(v, f"{where}[{k!r}]")
        return
    raise CGSurrogateError(f"{where}: {type(obj).__name__} cannot be stored (weights_only checkpoints hold "
                           "tensors, numbers, strings and lists/dicts of them; convert numpy arrays to tensors)")
