"""Atomic writes, the error classes and the unit constants."""
import json
import math
import os
import stat

import pytest

from cgsurrogate.core import (CGSurrogateError, InputFileError, MissingExtraError, require_extra,
                              write_json_atomic, write_text_atomic, atomic_path)
from cgsurrogate.core import units


def test_atomic_write_replaces_and_sets_0644(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_text_atomic(tmp_path / "sub" / "a.txt", "one")
        write_text_atomic(p, "two")
    finally:
        os.umask(old)
    assert p.read_text() == "two"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert [q.name for q in p.parent.iterdir()] == ["a.txt"]


def test_interrupted_write_keeps_old_file(tmp_path):
    p = write_text_atomic(tmp_path / "a.txt", "keep")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert p.read_text() == "keep"
    assert [q.name for q in tmp_path.iterdir()] == ["a.txt"]


def test_errors_name_the_target_not_a_temporary(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(CGSurrogateError, match=r"file/sub/x\.json: cannot write, .* is a file"):
        write_json_atomic(f / "sub" / "x.json", {})
    with pytest.raises(CGSurrogateError, match="is a folder"):
        write_json_atomic(tmp_path, {})


def test_json_refuses_nan(tmp_path):
    with pytest.raises(CGSurrogateError, match="NaN"):
        write_json_atomic(tmp_path / "x.json", {"a": math.nan})
    assert not (tmp_path / "x.json").exists()
    write_json_atomic(tmp_path / "x.json", {"a": 1.5})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1.5}


def test_error_classes():
    assert issubclass(CGSurrogateError, ValueError)
    assert issubclass(InputFileError, FileNotFoundError)
    with pytest.raises(MissingExtraError, match=r"pip install 'cgsurrogate\[nope\]'"):
        require_extra("no_such_module_xyz", "nope", "testing")
    assert require_extra("json", "none", "testing") is json


def test_unit_constants_against_codata():
    # 1 eV = 96.485 kJ/mol (CODATA: e * N_A / 1000)
    assert units.KJ_PER_MOL_IN_EV == pytest.approx(1000 / (1.602176634e-19 * 6.02214076e23), rel=1e-6)
    assert units.KJ_PER_MOL_NM_IN_EV_PER_ANGSTROM == pytest.approx(units.KJ_PER_MOL_IN_EV / 10)
    assert units.ZJ_IN_KJ_PER_MOL == pytest.approx(0.602214076)


def test_checkpoint_io_round_trip_and_errors(tmp_path):
    import numpy as np
    import torch

    from cgsurrogate.core.checkpoint_io import read_checkpoint, write_checkpoint

    payload = {"state": {"w": torch.arange(3.0)}, "config": {"hidden": 8, "name": "x", "levels": [1, 2]}}
    p = write_checkpoint(tmp_path / "m.pt", "toy", payload)
    kind, version, got = read_checkpoint(p, "toy")
    assert (kind, version) == ("toy", 1)
    assert torch.equal(got["state"]["w"], payload["state"]["w"]) and got["config"] == payload["config"]
    with pytest.raises(InputFileError, match="a 'toy' checkpoint, expected 'other'"):
        read_checkpoint(p, "other")
    with pytest.raises(InputFileError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "none.pt", "toy")
    (tmp_path / "junk.pt").write_bytes(b"not a zip at all")
    with pytest.raises(InputFileError, match="corrupt or not a cgsurrogate file"):
        read_checkpoint(tmp_path / "junk.pt", "toy")
    torch.save({"w": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(InputFileError, match="not a cgsurrogate checkpoint"):
        read_checkpoint(tmp_path / "foreign.pt", "toy")
    write_checkpoint(tmp_path / "new.pt", "toy", payload, version=3)
    with pytest.raises(InputFileError, match="newer"):
        read_checkpoint(tmp_path / "new.pt", "toy", max_version=2)
    with pytest.raises(CGSurrogateError, match="numpy"):
        write_checkpoint(tmp_path / "bad.pt", "toy", {"a": np.zeros(2)})
    assert not (tmp_path / "bad.pt").exists()
