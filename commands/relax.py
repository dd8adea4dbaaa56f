"""Command-line parser and handler of the ``relax`` command: coarse-to-fine relaxation."""
from __future__ import annotations

from cgsurrogate.commands.arguments import CLIError, finite_float, strength_params, input_file, output_dir


def add_relax(sub):
    p = sub.add_parser(
        "relax",
        help="relax the microtubule coarse-to-fine under a surrogate (or the true energy) with clamps and load",
        description="Relax the microtubule to a low-energy structure: coarse modes of the prolongation "
        "hierarchy first, then all fine coordinates (L-BFGS or FIRE, gradient-norm stopping), with the "
        "first two turns clamped and a constant load on the last two. Writes relaxed.xyz (extended XYZ with "
        "per-particle energies), stages.txt, relax.json and relaxed.png (beside the OpenMM minimum).",
    )
    p.add_argument("--model", default=None,
                   help="surrogate checkpoint; omit to relax the true energy function")
    p.add_argument("--params", default="30,30,30,30,30",
                   help="five strengths LatAssoc,LongAssoc,LatAngle,LongAngle,QuadAngles (zJ) [%(default)s]")
    p.add_argument("--load", type=finite_float, default=1.0,
                   help="load as a multiple of the protocol's full load, 9e-14 N = 0.0542 kJ/mol/nm per "
                   "monomer of the last two turns along -y; 0 for none [%(default)s]")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--schedule", default="default",
                   help="stages level[:max_evals[:tol]],... ; 'fine' for fine-only; default '2:600,0'")
    p.add_argument("--optimizer", choices=("lbfgs", "fire"), default="lbfgs")
    p.add_argument("--coarse-space", choices=("translate", "rigid"), default=None,
                   help="displacement fields of a coarse stage (default translate)")
    p.add_argument("--prolongation", choices=("spectral", "lgdd"), default=None,
                   help="prolongations from the hierarchy (default spectral)")
    p.add_argument("--tol", type=finite_float, default=None,
                   help="stop at this largest per-node gradient norm, kJ/mol/nm (default 1e-4)")
    p.add_argument("--max-evals", type=int, default=None, help="budget of fine energy+gradient evaluations")
    p.add_argument("--perturb", type=finite_float, default=0.0, help="Gaussian perturbation of the start, nm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-openmm", action="store_true", help="skip the OpenMM reference minimisation")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_relax)


def _run_relax(args):
    params = strength_params(args.params)
    if args.model is not None:
        from cgsurrogate.surrogate.pretrained import resolve_pretrained

        args.model = str(resolve_pretrained(args.model))  # shipped names, e.g. microtubule-invariant
        input_file(args.model, "--model")
    output_dir(args.out, "--out")
    if args.tol is not None and not args.tol > 0:
        raise CLIError(f"--tol {args.tol}: must be positive")
    if args.max_evals is not None and args.max_evals < 1:
        raise CLIError(f"--max-evals {args.max_evals}: must be at least 1")
    if args.perturb < 0:
        raise CLIError(f"--perturb {args.perturb}: must be non-negative")
    from cgsurrogate.optimize.microtubule_case import run_relax
    from cgsurrogate.optimize.report import stage_table
    from cgsurrogate.optimize.schedule import parse_schedule

    parse_schedule(args.schedule)
    out = run_relax(args.out, params, model=args.model, load=args.load, schedule=args.schedule,
                    optimizer=args.optimizer, coarse_space=args.coarse_space,
                    prolongation_kind=args.prolongation, tol=args.tol, max_evals=args.max_evals,
                    perturb=args.perturb, seed=args.seed, openmm_reference=not args.no_openmm,
                    progress=not args.no_progress)
    r = out["result"]
    print(stage_table(r))
    if out["true"] is not None:
        print(f"true energy of the relaxed structure: {out['true']['energy']:.8g} kJ/mol")
    if out["reference"] is not None:
        print(f"OpenMM minimum (true force field): {out['reference']['energy']:.8g} kJ/mol; "
              f"RMSD relaxed vs OpenMM {out['rmsd_nm']:.4g} nm")
    for k, v in out["paths"].items():
        print(f"{k}: {v}")
    return 0 if r.converged else 1
