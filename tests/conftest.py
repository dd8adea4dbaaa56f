"""Shared fixtures. Tests that need the workplace's real data (HAM, motion capture,
M-complex) use ``shared_data`` and are skipped when ``CGS_SHARED_DATA`` is not set;
CI sets it to ../shared/data."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = os.environ.get("CGS_SHARED_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("real data not available: set CGS_SHARED_DATA to the folder holding ham/, mocap/, mcomplex/")
    return Path(root)


@pytest.fixture(scope="session")
def topology():
    from simulate.microtubule import microtubule_topology

    return microtubule_topology()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# ---- tiny microtubule dataset and trained checkpoint (shared by the wrapper and relaxation tests) ----
#: Six runs of a very short bending protocol (800 steps, a frame every 100: 8 frames a run).
TINY_PARAM_SETS = (
    (30, 30, 30, 30, 30), (9, 9, 9, 9, 9), (57, 57, 57, 57, 57),
    (9, 30, 30, 30, 30), (30, 9, 57, 30, 30), (30, 30, 9, 57, 3),
)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A 6-run microtubule dataset folder written by ``simulate.sweep.run_sweep`` (about 15 s)."""
    import dataclasses

    from simulate.protocol import Protocol
    from simulate.sweep import run_sweep

    root = tmp_path_factory.mktemp("mt_tiny")
    proto = dataclasses.replace(Protocol.short(), ramp_steps=400, hold_steps=400, save_every=100, ramp_increments=4)
    res = run_sweep(root, param_sets=np.array(TINY_PARAM_SETS, dtype=np.float64), protocol=proto,
                    batch_size=len(TINY_PARAM_SETS), n_workers=1, progress=False)
    assert not res["pending"], res
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_dataset, tmp_path_factory) -> Path:
    """A 3-level GPCN trained through the CLI (``cli.py train``) for 3 short epochs on
    ``tiny_dataset``; path of its ``best.pt``."""
    import cli

    out = tmp_path_factory.mktemp("gpcn3")
    rc = cli.main(["train", "--data", str(tiny_dataset), "--model", "gpcn-3", "--epochs", "3",
                   "--batches-per-epoch", "5", "--out", str(out)])
    assert rc == 0 and (out / "best.pt").is_file()
    return out / "best.pt"
