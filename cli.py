"""Command-line interface: parses arguments and calls library functions.

Run ``python cli.py --help`` (or the ``cgsurrogate`` console script) for the commands.
Each command lives in its own block below: ``add_<name>(subparsers)`` builds the parser
and sets ``func`` to a small handler that imports the library lazily (so ``--help``
is fast) and calls it.
"""
from __future__ import annotations

import argparse
import sys


class CLIError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""


# ---- BEGIN simulate ----
# ---- END simulate ----

# ---- BEGIN hierarchy ----
# ---- END hierarchy ----

# ---- BEGIN train ----
# ---- END train ----

# ---- BEGIN evaluate ----
# ---- END evaluate ----

# ---- BEGIN predict ----
def add_predict(sub):
    p = sub.add_parser(
        "predict",
        help="per-particle energies (and forces) of configurations with a trained surrogate",
        description="Read configurations (extended XYZ, or any trajectory MDAnalysis reads) and write "
        "per-particle energies in kJ/mol (and forces in kJ/mol/nm with --forces) to .npz, or to "
        "extended XYZ in eV and Angstrom.",
    )
    p.add_argument("--model", required=True,
                   help="checkpoint file, or 'reference' for the true microtubule force field")
    p.add_argument("--input", required=True, help="extended XYZ or MDAnalysis-readable file")
    p.add_argument("--topology", default=None, help="topology file for coordinate-only trajectories (DCD, XTC)")
    p.add_argument("--output", default=None,
                   help="output .npz, .xyz or .extxyz (default: <input stem>.pred.npz in the current folder)")
    p.add_argument("--params", default=None,
                   help="strength parameters LatAssoc,LongAssoc,LatAngle,LongAngle,QuadAngles in zJ "
                   "(default: each XYZ frame's params)")
    p.add_argument("--forces", action="store_true", help="also write forces (kJ/mol/nm)")
    p.add_argument("--batch-size", type=int, default=16, help="frames per model call (default 16)")
    p.add_argument("--no-velocities", action="store_true", help="ignore velocities stored in the input")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default cpu)")
    p.add_argument("--double", action="store_true", help="run the model in float64")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run_predict)


def _run_predict(args):
    from pathlib import Path

    import torch

    from simulate.microtubule import parse_params
    from surrogate.prediction import predict

    params = parse_params(args.params) if args.params else None
    output = args.output or f"{Path(args.input).stem}.pred.npz"
    result = predict(
        args.model, args.input, output, params=params, topology=args.topology, forces=args.forces,
        batch_size=args.batch_size, use_velocities=not args.no_velocities, device=args.device,
        dtype=torch.float64 if args.double else torch.float32, progress=not args.no_progress,
    )
    n = len(result["total"])
    print(f"wrote {output}: {n} frame(s), {result['energies'].shape[1]} particles, "
          f"mean total energy {result['total'].mean():.6g} kJ/mol")
    return 0
# ---- END predict ----

# ---- BEGIN relax ----
# ---- END relax ----

# ---- BEGIN cgmap ----
# ---- END cgmap ----

# ---- BEGIN eghn ----
# ---- END eghn ----


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cgsurrogate",
        description="Coarse-grained MD surrogates: simulate, train, evaluate, relax, predict.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, obj in list(globals().items()):
        if name.startswith("add_") and callable(obj):
            obj(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
