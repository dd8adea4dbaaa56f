"""Every GPU figure of the project in one run (driven by ``bench/gpu_check.sh``), written as JSON.

Sections, each with its own time budget so the whole run stays under 8 minutes on one GPU:

* ``engine``: the microtubule protocol engine (OpenMM, one System of R replicas, the per-step
  ramp integrator) at 1, 128 and 16,807 replicas, or the largest that fits (halving on
  failure): atom-steps per second, and the projected time of the paper-grid sweep (16,807
  runs x the paper protocol's steps) and of the short protocol at that rate;
* ``train``: seconds per training batch (8 samples, forward + backward, MSE) of the 3-level
  A-GPCN (``bench/paper_table.time_models``);
* ``settle``: seconds per FIRE iteration of the settle stage at 128 and 16,807 replicas (or the
  largest that fits): on the device (:mod:`cgsurrogate.simulate.settle_torch`, FIRE and the exact
  field in torch) and, at 128 replicas, through the OpenMM Context's forces (the host loop);
* ``surrogate``: milliseconds per energy + forces call of a 3-level GPCN surrogate and of the
  exact field, batch 1 and 64, float32.

``--cpu`` runs the same code on the CPU at tiny sizes (1 and 2 replicas, a few steps), so a
test exercises it without a GPU. Every figure carries the device it was measured on.
"""
from __future__ import annotations

import argparse
import json
import platform as _platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def engine(replicas: list[int], steps: int, platform: str, budget_s: float = 1e9) -> dict:
    """Throughput at each size; a size whose System build (Python, about linear in R) would not fit
    in what is left of ``budget_s`` is cut to the largest power of two that does."""
    import numpy as np
    import openmm

    from cgsurrogate.simulate.integrator import ramp_integrator
    from cgsurrogate.simulate.openmm_system import (build_microtubule_system, get_platform, microtubule_positions,
                                                    platform_properties)
    from cgsurrogate.simulate.protocol import Protocol

    proto = Protocol.short()
    plat = get_platform(platform)
    rows, errors = [], []
    start, per_replica = time.perf_counter(), None
    for want in replicas:
        r = want
        if per_replica:
            left = budget_s - (time.perf_counter() - start)
            fit = int(0.5 * left / per_replica)
            while r > max(fit, 1):
                r //= 2
            if r != want:
                errors.append(f"{want} replicas: cut to {r} to fit the time budget ({per_replica:.3f} s per replica to build)")
        while r >= 1:
            try:
                t0 = time.perf_counter()
                params = np.random.default_rng(0).choice([3.0, 30.0, 57.0], size=(r, 5))
                system, info = build_microtubule_system(params, load_force=proto.load)
                integ = ramp_integrator(proto.timestep_ps, proto.temperature, proto.friction, 0,
                                        info.load_scale_param, 1)
                props = platform_properties(plat)
                if plat.getName() == "CPU":
                    props["Threads"] = "1"
                ctx = openmm.Context(system, integ, plat, props)
                ctx.setPositions(microtubule_positions(r))
                build = time.perf_counter() - t0
                if r >= 16:  # small Systems are all fixed cost
                    per_replica = max(per_replica or 0.0, build / r)
                integ.step(3)
                ctx.getState(getEnergy=True)
                t1 = time.perf_counter()
                integ.step(steps)
                ctx.getState(getEnergy=True)
                sec = time.perf_counter() - t1
                n = system.getNumParticles()
                rows.append({"replicas_requested": want, "replicas": r, "particles": n, "steps": steps,
                             "seconds": sec, "build_seconds": build, "atom_steps_per_s": n * steps / sec,
                             "platform": plat.getName()})
                del ctx, integ, system
                break
            except Exception as exc:  # out of memory on the device: try half as many
                errors.append(f"{r} replicas: {type(exc).__name__}: {str(exc)[:200]}")
                r //= 2
    best = max(rows, key=lambda x: x["atom_steps_per_s"]) if rows else None
    out = {"rows": rows, "errors": errors}
    if best:
        paper, short = Protocol.paper(), Protocol.short()
        work = 16807 * 624
        out["projected_grid_sweep_s"] = {
            "paper_protocol": work * paper.total_steps / best["atom_steps_per_s"],
            "short_protocol": work * short.total_steps / best["atom_steps_per_s"],
            "at_atom_steps_per_s": best["atom_steps_per_s"], "from_replicas": best["replicas"]}
    return out


def settle(replicas: list[int], iters: int, device: str, platform: str, context_replicas: int) -> dict:
    """Seconds per settle iteration (``iters`` FIRE evaluations from a bent, jittered tube; the tolerance
    is never met, so every replica stays active): torch on ``device``, and the OpenMM Context's forces on
    ``platform`` at ``context_replicas``."""
    import numpy as np
    import torch

    from cgsurrogate.simulate.microtubule import microtubule_topology
    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.settle import fire_settle
    from cgsurrogate.simulate.settle_torch import exact_net_forces, fire_settle_torch

    topo, proto = microtubule_topology(), Protocol.short()
    clamp, load = topo.ring_nodes([0, 1]), topo.ring_nodes([-2, -1])
    free = np.setdiff1d(np.arange(topo.num_nodes), clamp)

    def start(r):
        x = np.repeat(topo.positions[None], r, 0)
        x[:, :, 1] -= 1e-3 * (x[:, :, 2] - x[:, :, 2].min()) ** 2
        x[:, free] += 0.02 * np.random.default_rng(0).standard_normal((r, len(free), 3))
        return x, np.random.default_rng(1).choice([3.0, 30.0, 57.0], size=(r, 5))

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows, errors = [], []
    for want in replicas:
        r = want
        while r >= 1:
            try:
                x, p = start(r)
                net = exact_net_forces(p, load, proto.load, topo, device)
                xt = torch.as_tensor(x, device=device)
                fire_settle_torch(xt, net, free, proto.load, 1e-12, 2)
                sync()
                t = time.perf_counter()
                fire_settle_torch(xt, net, free, proto.load, 1e-12, iters)
                sync()
                sec = (time.perf_counter() - t) / iters
                rows.append({"replicas_requested": want, "replicas": r, "backend": f"torch {device} float64",
                             "s_per_iteration": sec, "iterations": iters})
                del net, xt
                break
            except (RuntimeError, MemoryError) as exc:  # out of device memory: half as many
                errors.append(f"{r} replicas: {type(exc).__name__}: {str(exc)[:200]}")
                r //= 2
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
    import openmm
    from openmm import unit

    from cgsurrogate.simulate.openmm_system import build_microtubule_system, get_platform, platform_properties

    r = context_replicas
    x, p = start(r)
    system, info = build_microtubule_system(p, topo, load_force=proto.load)
    plat = get_platform(platform)
    props = platform_properties(plat)
    if plat.getName() == "CPU":
        props["Threads"] = "1"
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), plat, props)
    ctx.setParameter(info.load_scale_param, 1.0)
    off = info.offsets[:, None]
    fu = unit.kilojoule_per_mole / unit.nanometer

    def net_forces(xr, active):
        ctx.setPositions((xr + off).reshape(-1, 3))
        return ctx.getState(getForces=True).getForces(asNumpy=True).value_in_unit(fu).reshape(xr.shape)

    n = max(2, iters // 4)
    t = time.perf_counter()
    fire_settle(x, net_forces, free, proto.load, 1e-12, n)
    rows.append({"replicas_requested": r, "replicas": r, "backend": f"OpenMM Context forces ({plat.getName()}) + numpy",
                 "s_per_iteration": (time.perf_counter() - t) / n, "iterations": n})
    return {"rows": rows, "errors": errors,
            "note": "a settle takes ~2,000-5,500 iterations (the slowest replica of a batch sets the count)"}


def train(device: str, reps: int) -> dict:
    from paper_table import time_models

    return time_models(["a-gpcn-3"], reps=reps, threads=1, device=device)


def surrogate(device: str, repeats: int, batches: list[int]) -> dict:
    import torch

    from cgsurrogate.simulate.energy import TrueEnergy
    from energy_speed import build_energy

    energy, label = build_energy(None, "gpcn-3")
    rows = []
    for name, mod in ((label, energy), ("exact field (TrueEnergy)", TrueEnergy())):
        mod = mod.to(device)
        base = torch.as_tensor(TrueEnergy().topology.positions, dtype=torch.float32, device=device)
        for b in batches:
            x = (base[None] + 0.05 * torch.randn(b, 624, 3, device=device)).requires_grad_(True)
            p = torch.full((b, 5), 30.0, device=device)
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

            def call():
                e, _ = mod(x, p)
                (g,) = torch.autograd.grad(e.sum(), x)
                return g

            for _ in range(3):
                call()
            sync()
            t = time.perf_counter()
            for _ in range(repeats):
                call()
            sync()
            ms = (time.perf_counter() - t) / repeats * 1e3
            rows.append({"model": name, "batch": b, "ms_per_call": ms, "device": device, "dtype": "float32"})
    return {"rows": rows}


def _section(name, fn, res, *a):
    t = time.perf_counter()
    try:
        res[name] = fn(*a)
    except Exception as exc:  # report and go on: one section must not cost the others
        res[name] = {"error": f"{type(exc).__name__}: {exc}"}
    res[name + "_wall_s"] = time.perf_counter() - t
    print(f"{name}: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (for the test)")
    ap.add_argument("--out", default=str(HERE / "results" / "gpu_check.json"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda and not args.cpu:
        print("no CUDA device: rerun with --cpu for the tiny CPU check", file=sys.stderr)
        return 2
    dev = "cuda" if cuda else "cpu"
    res = {"device": torch.cuda.get_device_name(0) if cuda else f"CPU ({_platform.processor() or _platform.machine()})",
           "mode": "gpu" if cuda else "cpu-tiny", "torch": torch.__version__, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                                       time.gmtime())}
    try:
        import openmm

        res["openmm"] = openmm.__version__
    except ImportError:
        pass
    if cuda:
        _section("engine", engine, res, [1, 128, 16807], 2000, "CUDA", 270.0)
        _section("settle", settle, res, [128, 16807], 20, "cuda", "CUDA", 128)
        _section("train", train, res, "cuda", 30)
        _section("surrogate", surrogate, res, "cuda", 50, [1, 64])
    else:
        _section("engine", engine, res, [1, 2], 20, "CPU")
        _section("settle", settle, res, [1, 2], 3, "cpu", "CPU", 2)
        _section("train", train, res, "cpu", 2)
        _section("surrogate", surrogate, res, "cpu", 2, [1, 2])
    try:
        res["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                            "--format=csv,noheader"], capture_output=True, text=True,
                                           timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        res["nvidia_smi"] = None
    from cgsurrogate.core.atomic import write_json_atomic

    write_json_atomic(args.out, res, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k.endswith("_wall_s") or k in ("device", "mode")}))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
