"""DSGPM checkpoints: written with :func:`cgsurrogate.core.checkpoint_io.write_checkpoint`.

Kind ``"dsgpm"``, version 2; payload: ``config`` (:class:`DSGPM` keyword arguments),
``members`` (one ``state_dict`` per ensemble member), ``elements`` and ``bond_types``
(the vocabularies), ``info`` (training data, selection, metrics).

:func:`load_dsgpm` reads the same file without importing torch (``cgmap`` stays under 2 s
cold): :func:`read_checkpoint_numpy` unpickles the checkpoint's ``data.pkl`` with an
unpickler that knows only plain containers and torch's tensor-rebuild function (mapped to
numpy), so, as with ``weights_only=True``, no other code in a file can run. It applies the
same checks as :func:`cgsurrogate.core.checkpoint_io.read_checkpoint`; the tests compare the
two readers. :func:`load_dsgpm_torch` gives the torch modules (training, fine-tuning).
"""
from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

from cgsurrogate.core.errors import InputFileError
from cgsurrogate.data.molgraph import BOND_TYPES, ELEMENTS

__all__ = ["KIND", "VERSION", "PRETRAINED_PATH", "save_dsgpm", "read_checkpoint_numpy", "load_dsgpm",
           "load_dsgpm_torch", "load_pretrained"]

KIND = "dsgpm"
VERSION = 2
PRETRAINED_PATH = Path(__file__).resolve().parent.parent / "pretrained" / "dsgpm_ham.pt"

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64,
           "IntStorage": np.int32, "BoolStorage": np.bool_, "HalfStorage": np.float16,
           "ByteStorage": np.uint8, "CharStorage": np.int8, "ShortStorage": np.int16}


def save_dsgpm(path, models, info: dict | None = None) -> Path:
    """Save one DSGPM or an ensemble (list of DSGPM with one config) as a ``dsgpm`` checkpoint, atomically."""
    from cgsurrogate.core.checkpoint_io import write_checkpoint

    models = list(models) if isinstance(models, (list, tuple)) else [models]
    configs = {tuple(sorted(m.config.items())) for m in models}
    if len(configs) != 1:
        raise ValueError("ensemble members must share one configuration")
    members = [{k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()} for m in models]
    payload = {"config": dict(models[0].config), "members": members, "elements": list(ELEMENTS),
               "bond_types": list(BOND_TYPES), "info": info or {}}
    return write_checkpoint(path, KIND, payload, version=VERSION)


def _rebuild_tensor(storage, offset, size, stride, *_):
    if not size:
        return storage[offset:offset + 1].reshape(()).copy()
    item = storage.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride)).copy()


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, zf: zipfile.ZipFile, prefix: str):
        super().__init__(fh)
        self.zf, self.prefix = zf, prefix

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a checkpoint")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("unknown persistent id")
        dtype, key = pid[1], pid[2]
        raw = self.zf.read(f"{self.prefix}data/{key}")
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))


def read_checkpoint_numpy(path, kind: str, max_version: int) -> tuple[str, int, dict]:
    """Read a cgsurrogate checkpoint with numpy arrays in place of tensors; returns ``(kind, version, payload)``.

    Raises
    ------
    InputFileError
        Missing, corrupt or foreign file, another kind, or a newer version (one line naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such checkpoint file")
    try:
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            prefix = pkl[0][: -len("data.pkl")]
            if zf.read(prefix + "byteorder").strip() not in (b"little", b""):
                raise ValueError("big-endian checkpoint")
            with zf.open(pkl[0]) as fh:
                obj = _Unpickler(fh, zf, prefix).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, IndexError, KeyError, ValueError, EOFError, OSError,
            TypeError, AttributeError):
        raise InputFileError(f"{path}: corrupt or not a cgsurrogate file (cannot read it as a checkpoint)") from None
    if not isinstance(obj, dict) or obj.get("format") != "cgsurrogate" or "payload" not in obj:
        raise InputFileError(f"{path}: not a cgsurrogate checkpoint (no 'cgsurrogate' format tag)")
    if obj.get("kind") != kind:
        raise InputFileError(f"{path}: a '{obj.get('kind')}' checkpoint, expected '{kind}'")
    version = obj.get("version")
    if not isinstance(version, int) or version < 1:
        raise InputFileError(f"{path}: corrupt checkpoint (format version {version!r})")
    if version > max_version:
        raise InputFileError(f"{path}: format version {version} is newer than this cgsurrogate reads "
                             f"({max_version}); upgrade cgsurrogate")
    return obj["kind"], version, obj["payload"]


def _check_payload(path, payload) -> None:
    if not isinstance(payload, dict) or not {"config", "members"} <= set(payload) or not payload["members"]:
        raise InputFileError(f"{path}: corrupt DSGPM checkpoint (no config or members)")
    if list(payload.get("elements", [])) != list(ELEMENTS) or list(payload.get("bond_types", [])) != list(BOND_TYPES):
        raise InputFileError(f"{path}: checkpoint was trained with another element/bond vocabulary")


def load_dsgpm(path):
    """Load a DSGPM checkpoint for inference, without torch.

    Returns
    -------
    cgsurrogate.surrogate.cgmap.inference.Embedder
        All members (an ensemble averages their affinities); ``.info`` holds the training metadata.

    Raises
    ------
    InputFileError
        Missing, corrupt or foreign file; weights that do not fit the stored configuration.
    """
    from cgsurrogate.surrogate.cgmap.inference import Embedder

    _, _, payload = read_checkpoint_numpy(path, KIND, VERSION)
    _check_payload(path, payload)
    emb = Embedder(payload["config"], payload["members"], payload.get("info", {}))
    d, hid = emb.config.get("hidden", 0) + 2, emb.config.get("hidden", 0)
    for m in emb.members:
        if m.get("root.weight", np.zeros(0)).shape != (d, d) or m.get("input_fc.weight", np.zeros(0)).shape[0] != hid:
            raise InputFileError(f"{path}: weights do not fit the stored configuration")
    return emb


def load_dsgpm_torch(path) -> list:
    """Load a DSGPM checkpoint as torch modules (``weights_only=True``): list of DSGPM (eval mode)."""
    from cgsurrogate.core.checkpoint_io import read_checkpoint
    from cgsurrogate.surrogate.cgmap.network import DSGPM

    _, _, payload = read_checkpoint(path, KIND, max_version=VERSION)
    _check_payload(path, payload)
    out = []
    for sd in payload["members"]:
        m = DSGPM(**payload["config"])
        try:
            m.load_state_dict(sd)
        except RuntimeError:
            raise InputFileError(f"{path}: weights do not fit the stored configuration") from None
        m.info = payload.get("info", {})
        out.append(m.eval())
    return out


def load_pretrained():
    """The DSGPM shipped with the package (``surrogate/pretrained/dsgpm_ham.pt``) as an Embedder."""
    return load_dsgpm(PRETRAINED_PATH)
