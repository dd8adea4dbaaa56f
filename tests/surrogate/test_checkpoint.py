"""Surrogate checkpoints through the one checkpoint IO: the spec travels with them, bad files give
one line that never quotes PyTorch, files of the earlier format are refused with a clear message."""
import pytest
import torch

from cgsurrogate.core.errors import InputFileError
from cgsurrogate.surrogate.checkpoint import load_checkpoint, save_checkpoint
from cgsurrogate.surrogate.interfaces.energy_function import load_surrogate


def test_checkpoint_carries_the_microtubule_spec(tiny_checkpoint):
    from cgsurrogate.simulate.microtubule import microtubule_spec

    raw = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    assert raw["format"] == "cgsurrogate" and raw["kind"] == "gcn-surrogate" and raw["version"] == 1
    assert raw["payload"]["system_spec"] == microtubule_spec().to_dict()
    assert load_surrogate(tiny_checkpoint).system_spec == microtubule_spec()


def _one_line(exc):
    text = str(exc.value)
    assert "\n" not in text and "weights_only" not in text and "allow_pickle" not in text
    return text


def test_bad_files_give_one_line_errors(tiny_checkpoint, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(InputFileError, match="junk.pt: corrupt or not a cgsurrogate file") as err:
        load_surrogate(junk)
    _one_line(err)
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, pickled)  # needs unpickling: never done
    with pytest.raises(InputFileError, match="pickled.pt: corrupt or not a cgsurrogate file") as err:
        load_checkpoint(pickled)
    _one_line(err)
    with pytest.raises(InputFileError, match="missing.pt: no such checkpoint file"):
        load_surrogate(tmp_path / "missing.pt")
    old = tmp_path / "old.pt"
    raw = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    torch.save(dict(raw["payload"], format="cgsurrogate-gcn-checkpoint", format_version=1), old)
    with pytest.raises(InputFileError, match="old.pt: a checkpoint of an earlier cgsurrogate format.*retrain") as err:
        load_surrogate(old)
    _one_line(err)


def test_a_spec_that_does_not_fit_the_model_is_refused(tiny_checkpoint, tmp_path):
    from cgsurrogate.core.checkpoint_io import write_checkpoint
    from cgsurrogate.simulate.microtubule import tube_system_spec, tube_topology
    from cgsurrogate.simulate.tube import Tube

    raw = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    wrong = tube_system_spec(tube_topology(Tube(8, 5, 1)))
    bad = dict(raw["payload"], system_spec=wrong.to_dict())
    write_checkpoint(tmp_path / "wrong.pt", "gcn-surrogate", bad)
    with pytest.raises(InputFileError, match=r"wrong.pt: system spec .*40 particles.* does not fit the normaliser"):
        load_surrogate(tmp_path / "wrong.pt")
    del bad["system_spec"]
    write_checkpoint(tmp_path / "nospec.pt", "gcn-surrogate", bad)
    with pytest.raises(InputFileError, match="nospec.pt: corrupt checkpoint \\(lacks system_spec\\)"):
        load_surrogate(tmp_path / "nospec.pt")
    from cgsurrogate.core.errors import CGSurrogateError

    model, norm = torch.nn.Linear(2, 2), None
    with pytest.raises(CGSurrogateError, match="no build_model config"):
        save_checkpoint(tmp_path / "x.pt", model, norm, None, dataset_info={}, metrics={})
