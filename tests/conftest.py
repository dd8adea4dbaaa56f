"""Shared fixtures. Tests that need the workplace's real data (HAM, motion capture,
M-complex) use ``shared_data`` and are skipped when ``CGS_SHARED_DATA`` is not set;
CI sets it to ../shared/data."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

# One torch thread for the whole suite: the tensors are small, so on the shared 2-core machines
# two threads only add OpenMP contention (much slower under load), and on an idle machine one
# thread is as fast.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = os.environ.get("CGS_SHARED_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("real data not available: set CGS_SHARED_DATA to the folder holding ham/, mocap/, mcomplex/")
    return Path(root)


@pytest.fixture(scope="session")
def topology():
    from cgsurrogate.simulate.microtubule import microtubule_topology

    return microtubule_topology()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def _pair_pool(n, k):
    """Orthonormal P [n k, n/2 k]: each coarse node averages two consecutive turns."""
    P = np.zeros((n * k, (n // 2) * k))
    for r in range(n):
        for j in range(k):
            P[r * k + j, (r // 2) * k + j] = 2 ** -0.5
    return P


@pytest.fixture(scope="session")
def pair_pool():
    """``pair_pool(n, k)``: the turn-pair pooling prolongation of a ``Tube(n, k, .)`` (GCN-family tests)."""
    return _pair_pool


@pytest.fixture
def small_hierarchy(pair_pool):
    """A fresh 3-level hierarchy Tube(8,4,1) -> Tube(4,4,0) -> Tube(2,4,0) of turn-pair poolings."""
    from cgsurrogate.simulate.tube import Tube
    from cgsurrogate.surrogate.graphs.hierarchy import Hierarchy

    return Hierarchy([Tube(8, 4, 1), Tube(4, 4, 0), Tube(2, 4, 0)], [pair_pool(8, 4), pair_pool(4, 4)])


# ---- tiny microtubule dataset and trained checkpoint (shared by the wrapper and relaxation tests) ----
#: Six runs of a very short bending protocol (800 steps, a frame every 100: 8 frames a run).
TINY_PARAM_SETS = (
    (30, 30, 30, 30, 30), (9, 9, 9, 9, 9), (57, 57, 57, 57, 57),
    (9, 30, 30, 30, 30), (30, 9, 57, 30, 30), (30, 30, 9, 57, 3),
)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A 6-run microtubule dataset folder written by ``cgsurrogate.simulate.sweep.run_sweep`` (about 15 s)."""
    import dataclasses

    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.sweep import run_sweep

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
    from cgsurrogate import cli

    out = tmp_path_factory.mktemp("gpcn3")
    rc = cli.main(["train", "--data", str(tiny_dataset), "--model", "gpcn-3", "--epochs", "3",
                   "--batches-per-epoch", "5", "--out", str(out)])
    assert rc == 0 and (out / "best.pt").is_file()
    return out / "best.pt"
