"""Sweeps: on an existing 2-worker Dask LocalCluster (by address), in local processes and in
this process without Dask, kill-and-resume, bad input, the CLI with the short protocol (the
all-30 tip against the exact static equilibrium, the rest criterion of a soft run), and the
trajectory / PNG outputs."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from cgsurrogate.core.errors import CGSurrogateError
from cgsurrogate.data.microtubule import MicrotubuleDataset, load_run
from cgsurrogate.simulate.microtubule import GRID_VALUES
from cgsurrogate.simulate.protocol import Protocol
from cgsurrogate.simulate.sweep import grid_param_sets, grid_values, run_path, run_sweep

REPO = Path(__file__).resolve().parents[2]
#: The sweep mechanics (scheduling, resume, refusal) on a short protocol without the settle stage, which
#: test_settle.py and the CLI test below exercise (in-process and on a numba sweep).
TINY = Protocol(ramp_steps=1000, hold_steps=1000, save_every=500, timestep_ps=360.0, friction=1.5e-6, settle_tol=0.0)
#: Tip deflection (nm) of the exact static equilibrium with every strength 30 under the full load.
ALL30_STATIC_TIP_NM = 41.61
PARAMS = grid_param_sets(3)[[0, 40, 80, 121, 160, 242]]  # six runs from soft to stiff


def _dataset_arrays(root, n):
    return [load_run(run_path(root, i)) for i in range(n)]


def test_grid_specs():
    assert grid_values(3) == [3.0, 30.0, 57.0]
    assert grid_values("7") == list(GRID_VALUES)
    assert grid_values("57,3") == [3.0, 57.0]
    p = grid_param_sets(3)
    assert p.shape == (243, 5) and len(np.unique(p, axis=0)) == 243
    with pytest.raises(ValueError, match="outside 1..7"):
        grid_values(8)
    with pytest.raises(ValueError, match="outside the grid"):
        grid_values("3,31")


@pytest.fixture(scope="module")
def reference_sweep(tmp_path_factory):
    """The uninterrupted sweep, sent to an existing 2-worker LocalCluster on loopback by address."""
    from distributed import LocalCluster

    out = tmp_path_factory.mktemp("sweep") / "full"
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0",
                      processes=True, silence_logs=40) as cluster:
        res = run_sweep(out, param_sets=PARAMS, protocol=TINY, batch_size=1, scheduler=cluster.scheduler_address,
                        platform="CPU", progress=False)
    return out, res


def test_sweep_on_two_worker_cluster_writes_the_dataset(reference_sweep):
    out, res = reference_sweep
    assert res["computed"] == list(range(6)) and res["pending"] == []
    ds = MicrotubuleDataset(out)
    assert len(ds) == 6 * 4 and ds.metadata["topology"] == "Tube(48,13,3)"
    assert ds.metadata["units"]["positions"] == "nm" and "openmm" in ds.metadata["software"]
    runs = _dataset_arrays(out, 6)
    for p, r in zip(PARAMS, runs):
        assert np.array_equal(r["params"], p)
    from cgsurrogate.simulate.replicas import tip_deflection

    d = [float(tip_deflection(r["positions"][-1])) for r in runs]
    # the stiffest run (all 57) bends less than the softest (all 3)
    assert d[-1] < d[0]
    # a rerun finds everything done and computes nothing
    again = run_sweep(out, param_sets=PARAMS, protocol=TINY, batch_size=1, progress=False)
    assert again["computed"] == [] and again["already_done"] == 6


def test_kill_and_resume_gives_the_same_dataset(reference_sweep, tmp_path):
    ref, _ = reference_sweep
    out = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import numpy as np
        from cgsurrogate.simulate.protocol import Protocol
        from cgsurrogate.simulate.sweep import run_sweep
        if __name__ == "__main__":
            run_sweep({str(out)!r}, param_sets=np.array({PARAMS.tolist()}), protocol=Protocol(**{TINY.__dict__!r}),
                      batch_size=1, n_workers=1, platform="CPU", progress=False, processes=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not run_path(out, 0).exists():
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its Dask worker processes
        proc.wait()
    done = [i for i in range(6) if run_path(out, i).exists()]
    assert 1 <= len(done) < 6, done
    for i in done:  # whatever was written is complete
        load_run(run_path(out, i))
    mtimes = {i: run_path(out, i).stat().st_mtime_ns for i in done}
    res = run_sweep(out, param_sets=PARAMS, protocol=TINY, batch_size=1, platform="CPU", progress=False,
                    n_workers=1, processes=False)
    assert sorted(res["computed"]) == [i for i in range(6) if i not in done]
    assert all(run_path(out, i).stat().st_mtime_ns == mtimes[i] for i in done)
    for a, b in zip(_dataset_arrays(ref, 6), _dataset_arrays(out, 6)):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-9, err_msg=k)


def test_sweep_bad_inputs(tmp_path, reference_sweep):
    for kw in ({"n_workers": 0}, {"threads_per_worker": 0}, {"batch_size": 0}, {"n_workers": 1.5}):
        with pytest.raises(CGSurrogateError, match="at least 1"):
            run_sweep(tmp_path / "w", param_sets=PARAMS[:1], protocol=TINY, **kw)
    assert not (tmp_path / "w").exists()  # refused before anything was written
    with pytest.raises(ValueError, match="outside the grid"):
        run_sweep(tmp_path / "x", param_sets=[[30, 30, 30, 30, 31]], protocol=TINY)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises((PermissionError, ValueError), match="output folder"):
        run_sweep(blocker / "sub", param_sets=PARAMS[:1], protocol=TINY)
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(PermissionError, match="not writable"):
            run_sweep(ro, param_sets=PARAMS[:1], protocol=TINY)
    # a different sweep in an existing folder
    ref, _ = reference_sweep
    with pytest.raises(ValueError, match="different sweep"):
        run_sweep(ref, param_sets=PARAMS[:2], protocol=TINY, batch_size=1)
    # a corrupt shard is named, not silently recomputed or loaded
    out = tmp_path / "c"
    run_sweep(out, param_sets=PARAMS[:2], protocol=TINY, batch_size=1, max_batches=0)
    run_path(out, 1).write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=r"run_00001\.npz: corrupt run file"):
        run_sweep(out, param_sets=PARAMS[:2], protocol=TINY, batch_size=1, max_batches=0)


def _cli(capsys, *args):
    from cgsurrogate import cli

    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--params", "30,30,30,30,31"], "outside the grid"),
        (["--grid", "9"], "outside 1..7"),
        (["--params", "30,30"], "need 5 comma-separated values"),
        (["--workers", "0"], "--workers 0: must be at least 1"),
        (["--threads", "0"], "--threads 0: must be at least 1"),
        (["--batch-size", "-2"], "--batch-size -2: must be at least 1"),
        (["--settle-tol", "-1"], "--settle-tol -1.0: must be a non-negative number"),
        (["--settle-tol", "nan"], "--settle-tol nan: must be a non-negative number"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, args, message):
    code, _, err = _cli(capsys, "simulate", "--out", str(tmp_path / "o"), *args)
    assert code == 2
    err = err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_cli_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("")
    code, _, err = _cli(capsys, "simulate", "--out", str(blocker / "out"), "--params", "30,30,30,30,30")
    assert code == 2 and err.startswith("error: output folder") and len(err.strip().splitlines()) == 1


def test_cli_short_protocol_tip_rest_trajectory_and_png(tmp_path, capsys):
    """The short protocol with all strengths 30 ends within 0.3 nm of the exact static
    equilibrium; the softest run (all 3), in the same batch, is at rest by the stated criterion
    (residual force), and the value reached is recorded in its run file and the metadata; the XYZ
    reads back in ASE with the per-particle energies."""
    import json

    import ase.io

    from cgsurrogate.simulate.protocol import REST_CRITERION
    from cgsurrogate.simulate.replicas import tip_deflection

    out = tmp_path / "demo"
    code, _, err = _cli(capsys, "simulate", "--out", str(out), "--params", "30,30,30,30,30",
                        "--params", "3,3,3,3,3", "--workers", "1", "--no-progress")
    assert code == 0, err
    runs = _dataset_arrays(out, 2)
    d30 = float(tip_deflection(runs[0]["positions"][-1]))
    assert abs(d30 - ALL30_STATIC_TIP_NM) < 0.3
    # the soft run: criterion met and recorded; the recorded residual is that of its last frame's forces
    meta = json.loads((out / "metadata.json").read_text())
    crit = REST_CRITERION["residual_force"]
    assert meta["rest"]["criterion"] == REST_CRITERION and meta["protocol"]["rest_criterion"] == REST_CRITERION
    assert tip_deflection(runs[1]["positions"][-1]) > 150.0  # soft: bent far more than the all-30 run
    net = runs[1]["forces"][-1].copy()
    net[-26:, 1] -= Protocol.short().load
    resid = np.linalg.norm(net[26:], axis=-1).max() / Protocol.short().load
    assert resid <= crit and meta["rest"]["residual_force"][1] == pytest.approx(resid, rel=1e-9)
    assert meta["rest"]["at_rest"] == [True, True]
    with np.load(run_path(out, 1)) as z:
        assert float(z["residual_force"]) == meta["rest"]["residual_force"][1] and bool(z["at_rest"])
    frames = ase.io.read(out / "trajectory_run_00000.xyz", ":")
    assert len(frames) == 12 and len(frames[-1]) == 624
    e_ev = frames[-1].calc.results["energies"]
    np.testing.assert_allclose(e_ev * 96.48533212331, runs[0]["energies"][-1], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(frames[-1].get_positions() / 10, runs[0]["positions"][-1], atol=1e-6)
    png = (out / "tube_run_00000.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000


def test_sweep_without_dask_in_process_and_local_processes(tmp_path, reference_sweep):
    """Without a scheduler no Dask module is imported (here: made unimportable); one worker runs in
    this process, two in local processes; both give the reference dataset. A scheduler address
    without the [sweep] extra is one clear error naming the extra."""
    ref, _ = reference_sweep
    script = textwrap.dedent(f"""
        import sys
        sys.modules["distributed"] = None  # as if the [sweep] extra were not installed
        sys.modules["dask"] = None
        import numpy as np
        from cgsurrogate.core.errors import MissingExtraError
        from cgsurrogate.simulate.protocol import Protocol
        from cgsurrogate.simulate.sweep import run_sweep
        if __name__ == "__main__":
            P = np.array({PARAMS.tolist()})
            proto = Protocol(**{TINY.__dict__!r})
            a = run_sweep({str(tmp_path / "inproc")!r}, param_sets=P, protocol=proto, batch_size=1,
                          n_workers=1, platform="CPU", progress=False)
            b = run_sweep({str(tmp_path / "procs")!r}, param_sets=P, protocol=proto, batch_size=2,
                          n_workers=2, platform="CPU", progress=False)
            assert a["pending"] == [] and b["pending"] == [], (a, b)
            try:
                run_sweep({str(tmp_path / "dask")!r}, param_sets=P[:1], protocol=proto, scheduler="tcp://127.0.0.1:1")
            except MissingExtraError as exc:
                print("MISSING:", exc)
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "MISSING:" in r.stdout and "'sweep' extra" in r.stdout
    for a, b in zip(_dataset_arrays(ref, 6), _dataset_arrays(tmp_path / "inproc", 6)):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-9, err_msg=k)
    procs = _dataset_arrays(tmp_path / "procs", 6)  # other batches (other seeds): same physics
    for a, b in zip(_dataset_arrays(ref, 6), procs):
        np.testing.assert_allclose(a["positions"], b["positions"], atol=0.2)


def test_numba_sweep_on_two_threads_equals_one_worker(tmp_path):
    """The numba engine's local pool runs batches on threads (its kernels release the GIL): two workers
    write run files identical, array for array, to one worker in this process with the same batches."""
    pytest.importorskip("numba")
    P = PARAMS[:4]
    a = run_sweep(tmp_path / "one", param_sets=P, protocol=TINY, batch_size=2, n_workers=1, progress=False,
                  engine="numba")
    b = run_sweep(tmp_path / "two", param_sets=P, protocol=TINY, batch_size=2, n_workers=2, progress=False,
                  engine="numba")
    assert a["pending"] == b["pending"] == [] and len(b["results"]) == 2
    for x, y in zip(_dataset_arrays(tmp_path / "one", 4), _dataset_arrays(tmp_path / "two", 4)):
        for k in x:
            assert np.array_equal(x[k], y[k]), k
