"""Foundations shared by every layer: the project's error class, atomic file writes and unit
constants. Nothing here imports torch or OpenMM."""
from cgsurrogate.core.atomic import atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic
from cgsurrogate.core.errors import CGSurrogateError, InputFileError, MissingExtraError, require_extra

__all__ = [
    "CGSurrogateError",
    "InputFileError",
    "MissingExtraError",
    "require_extra",
    "atomic_path",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_json_atomic",
]
