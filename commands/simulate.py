"""Command-line parser and handler of the ``simulate`` command: microtubule bending sweeps in OpenMM into a dataset folder."""
from __future__ import annotations

from cgsurrogate.commands.arguments import CLIError


def add_simulate(sub):
    p = sub.add_parser(
        "simulate",
        help="run a microtubule bending sweep in OpenMM into a dataset folder",
        description="Run the microtubule bending protocol for a set of strength parameters "
        "(default: the embedded 8-run sweep with the short protocol) into a resumable dataset "
        "folder, then write an extended-XYZ trajectory and a PNG of the first run. Without "
        "--scheduler no Dask is needed: --workers 1 runs in this process, more in local processes.",
    )
    p.add_argument("--out", required=True, help="dataset folder (created; a rerun resumes)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--grid", help="values per parameter: a count 1-7 (3 -> 3,30,57; 7 -> full 16,807-run grid) "
                   "or a comma list of grid values")
    g.add_argument("--params", action="append", metavar="L1,L2,A1,A2,Q",
                   help="one parameter set (zJ), repeatable; e.g. --params 30,30,30,30,30")
    p.add_argument("--protocol", choices=["short", "paper"], default="short",
                   help="short: 28,800 steps of 0.36 ns; paper: 576,000 steps of 0.018 ns (default short)")
    p.add_argument("--batch-size", type=int, default=4, help="replicas per task / OpenMM System (default 4)")
    p.add_argument("--workers", type=int, default=2, help="local workers, at least 1 (default 2): processes, or threads with --engine numba")
    p.add_argument("--threads", type=int, default=1, help="OpenMM CPU threads per worker (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of an existing Dask scheduler (tcp://host:8786; needs the [sweep] extra)")
    p.add_argument("--platform", help="OpenMM platform: CUDA, OpenCL, CPU, Reference (default: fastest available)")
    p.add_argument("--engine", choices=["openmm", "numba"], default="openmm",
                   help="what integrates: openmm (default), or numba: compiled CPU kernels, same force field and "
                   "scheme, one thread per worker (needs the [fast] extra)")
    p.add_argument("--settle-tol", type=float, default=None, metavar="TOL",
                   help="rest criterion of the settle stage that ends every run: largest net force on a free "
                   "monomer over the load per monomer (default 1e-4); 0 skips the settle (the last frame is then "
                   "the last dynamic state)")
    p.add_argument("--seed", type=int, default=0, help="Langevin seed (default 0)")
    p.add_argument("--off-grid", action="store_true", help="allow --params values outside the paper's grid")
    p.add_argument("--no-extras", action="store_true", help="skip the trajectory and PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args):
    import numpy as np

    from cgsurrogate.simulate.microtubule import parse_params
    from cgsurrogate.simulate.protocol import Protocol
    from cgsurrogate.simulate.replicas import SimulationError
    from cgsurrogate.simulate.sweep import run_sweep, write_run_extras

    for name in ("batch_size", "workers", "threads"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    params = None
    if args.params:
        params = np.stack([parse_params(t, on_grid=not args.off_grid) for t in args.params])
    proto = Protocol.paper() if args.protocol == "paper" else Protocol.short()
    if args.settle_tol is not None:
        if not (args.settle_tol >= 0 and args.settle_tol < float("inf")):
            raise CLIError(f"--settle-tol {args.settle_tol}: must be a non-negative number")
        import dataclasses

        proto = dataclasses.replace(proto, settle_tol=float(args.settle_tol))
    try:
        res = run_sweep(
            args.out, param_sets=params, grid=args.grid, protocol=proto, batch_size=args.batch_size,
            scheduler=args.scheduler, n_workers=args.workers, threads_per_worker=args.threads,
            platform=args.platform, seed=args.seed, progress=not args.no_progress, on_grid=not args.off_grid,
            engine=args.engine,
        )
    except SimulationError as exc:
        raise CLIError(str(exc)) from None
    print(f"{res['out_dir']}: {res['num_runs'] - len(res['pending'])}/{res['num_runs']} runs complete "
          f"({res['already_done']} already on disk, {len(res['computed'])} computed now, {res['seconds']:.1f} s)")
    if res["results"]:
        d = [x for r in res["results"] for x in r["tip_deflection"]]
        print(f"tip deflection at the last frame of the runs computed now: {min(d):.1f} to {max(d):.1f} nm")
    rest = res["rest"]
    if rest["num_measured"]:
        c = rest["criterion"]
        print(f"at rest (largest net force on a free monomer at the last frame <= {c['residual_force']:g} of the "
              f"load per monomer): {rest['num_at_rest']}/{rest['num_measured']} runs; largest residual "
              f"{rest.get('max_residual_force') or float('nan'):.3g}")
    if not args.no_extras and 0 not in res["pending"]:
        ex = write_run_extras(args.out, 0)
        print(f"run 0: tip {ex['tip_deflection']:.1f} nm below the axis; wrote {ex['trajectory']} and {ex['png']}")
    return 1 if res["pending"] else 0
