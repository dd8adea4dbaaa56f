"""Speed of the surrogate as an energy function, an ASE calculator and an OpenMM force.

Targets (issue 5): one 624-node configuration, 3-level GPCN: energy < 1 ms and
energy + forces < 3 ms on 2 CPU cores; ASE MD with the calculator > 300 steps/s.

Usage::

    python bench/energy_speed.py --model runs/gpcn3/best.pt --out runs/bench/energy_speed.json
    python bench/energy_speed.py            # an untrained gpcn-3 (speed does not depend on weights)

Prints a table (median wall time per call after warm-up) and writes the JSON atomically.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path


import numpy as np  # noqa: E402
import torch  # noqa: E402


def _median_ms(fn, repeats: int, warmup: int = 5, sync=None) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def build_energy(model_path, model_name: str):
    """SurrogateEnergy from a checkpoint, or an untrained model with unit normalisation."""
    from cgsurrogate.surrogate.interfaces.energy_function import SurrogateEnergy, load_surrogate

    if model_path:
        return load_surrogate(model_path), f"checkpoint {model_path}"
    from cgsurrogate.surrogate.graphs.hierarchy import microtubule_hierarchy
    from cgsurrogate.surrogate.gcn.registry import build_model

    torch.manual_seed(0)
    model = build_model(model_name, hierarchy=microtubule_hierarchy(levels=3))
    n = 624
    energy = SurrogateEnergy(model, torch.zeros(n, 11), torch.ones(n, 11), torch.zeros(n, 1), torch.ones(n, 1))
    return energy, f"untrained {model_name}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: an untrained --model-name)")
    ap.add_argument("--model-name", default="gpcn-3")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--md-steps", type=int, default=300)
    ap.add_argument("--threads", default="1,2", help="torch thread counts to measure")
    ap.add_argument("--out", default="runs/bench/energy_speed.json")
    args = ap.parse_args(argv)

    from cgsurrogate.simulate.energy import TrueEnergy
    from cgsurrogate.simulate.microtubule import microtubule_topology
    from cgsurrogate.surrogate.interfaces.energy_function import energy_and_forces

    energy, label = build_energy(args.model, args.model_name)
    topo = microtubule_topology()
    rng = np.random.default_rng(0)
    x64 = torch.tensor(topo.positions + 0.05 * rng.normal(size=topo.positions.shape))[None]
    p64 = torch.full((1, 5), 30.0, dtype=torch.float64)
    rows = []

    def bench_module(name, mod, dtype, device="cpu", threads=None):
        x, p = x64.to(device), p64.to(device)
        sync = torch.cuda.synchronize if device == "cuda" else None

        def e_only():
            with torch.inference_mode():
                mod(x, p)

        def e_f():
            energy_and_forces(mod, x, p)

        rows.append({
            "model": name, "dtype": str(dtype).replace("torch.", ""), "device": device, "threads": threads,
            "energy_ms": _median_ms(e_only, args.repeats, sync=sync),
            "energy_forces_ms": _median_ms(e_f, args.repeats, sync=sync),
        })

    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.float64):
            bench_module(label, energy.to(dtype=dtype), dtype, threads=threads)
        bench_module("reference TrueEnergy", TrueEnergy(), torch.float64, threads=threads)
    energy = energy.to(dtype=torch.float32)
    if torch.cuda.is_available():
        bench_module(label, energy.to("cuda"), torch.float32, device="cuda")
        bench_module(label, energy.to("cuda").double(), torch.float64, device="cuda")
        energy = energy.to("cpu").float()

    md = {}
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from cgsurrogate.surrogate.interfaces.ase_calculator import SurrogateCalculator, microtubule_atoms

    import openmm

    from cgsurrogate.surrogate.interfaces.openmm_force import surrogate_system

    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, mod in ((label, energy), ("reference TrueEnergy", TrueEnergy())):
            atoms = microtubule_atoms()
            atoms.positions = x64[0].numpy() * 10.0
            atoms.calc = SurrogateCalculator(mod)
            dyn = VelocityVerlet(atoms, timestep=18 * 1000 * units.fs)
            dyn.run(10)
            t = time.perf_counter()
            dyn.run(args.md_steps)
            key = f"{name} ({threads} thread{'s' if threads > 1 else ''})"
            md[key] = {"ase_md_steps_per_s": args.md_steps / (time.perf_counter() - t)}

            system = surrogate_system(mod, params=(30, 30, 30, 30, 30))
            integ = openmm.VerletIntegrator(18.0)
            ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("CPU"))
            ctx.setPositions(x64[0].numpy())
            integ.step(10)
            t = time.perf_counter()
            integ.step(args.md_steps)
            md[key]["openmm_pythonforce_steps_per_s"] = args.md_steps / (time.perf_counter() - t)
            del ctx, integ

    print(f"{'model':32s} {'dtype':8s} {'device':6s} {'thr':>3s} {'energy ms':>10s} {'E+F ms':>10s}")
    for r in rows:
        print(f"{r['model'][:32]:32s} {r['dtype']:8s} {r['device']:6s} {str(r['threads'] or '-'):>3s} "
              f"{r['energy_ms']:10.3f} {r['energy_forces_ms']:10.3f}")
    print(f"\n{'model':44s} {'ASE MD steps/s':>15s} {'OpenMM steps/s':>15s}")
    for name, m in md.items():
        print(f"{name[:44]:44s} {m['ase_md_steps_per_s']:15.1f} {m['openmm_pythonforce_steps_per_s']:15.1f}")

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = {
        "targets": {"energy_ms": 1.0, "energy_forces_ms": 3.0, "ase_md_steps_per_s": 300.0},
        "model": label, "single_call": rows, "md": md,
        "machine": {"cpus": os.cpu_count(), "load_average": load, "platform": platform.platform(),
                    "torch": torch.__version__, "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    print(f"\nwrote {out} (load average {load})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
