"""bench/gpu_check.sh, the one-call GPU measurement, runs end to end on the CPU at tiny sizes
(``--cpu``) and writes every section's figures as JSON."""
import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_cpu_mode_writes_every_figure(tmp_path):
    out = tmp_path / "gpu_check.json"
    r = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--cpu", "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["mode"] == "cpu-tiny" and res["device"].startswith("CPU")
    rows = res["engine"]["rows"]
    assert [x["replicas"] for x in rows] == [1, 2] and all(x["platform"] == "CPU" for x in rows)
    for x in rows:  # the rate is the work over the time it took
        assert x["particles"] == 624 * x["replicas"]
        assert abs(x["atom_steps_per_s"] - x["particles"] * x["steps"] / x["seconds"]) < 1e-6 * x["atom_steps_per_s"]
    proj = res["engine"]["projected_grid_sweep_s"]
    assert abs(proj["paper_protocol"] / proj["short_protocol"] - 576_000 / 28_800) < 1e-9
    t = res["train"]["a-gpcn-3"]
    assert 0 < t["min_s"] <= t["median_s"]
    models = {x["model"] for x in res["surrogate"]["rows"]}
    assert len(models) == 2 and all(x["ms_per_call"] > 0 for x in res["surrogate"]["rows"])
    st = res["settle"]["rows"]
    assert [x["replicas"] for x in st] == [1, 2, 2] and all(x["s_per_iteration"] > 0 for x in st)
    assert st[-1]["backend"].startswith("OpenMM Context")
    assert all("error" not in res[k] for k in ("engine", "settle", "train", "surrogate"))
