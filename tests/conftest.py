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
