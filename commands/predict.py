"""Command-line parser and handler of the ``predict`` command: energies and forces of configurations in a file."""
from __future__ import annotations

from cgsurrogate.commands.arguments import CLIError, strength_params, input_file, output_file


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

    from cgsurrogate.surrogate.interfaces.prediction import predict

    params = strength_params(args.params) if args.params else None
    if args.batch_size < 1:
        raise CLIError(f"--batch-size {args.batch_size}: must be at least 1")
    input_file(args.input, "--input")
    if args.topology is not None:
        input_file(args.topology, "--topology")
    if args.model != "reference":
        from cgsurrogate.surrogate.pretrained import resolve_pretrained

        args.model = str(resolve_pretrained(args.model))  # shipped names, e.g. microtubule-invariant
        input_file(args.model, "--model")
    output = args.output or f"{Path(args.input).stem}.pred.npz"
    output_file(output, "--output", inputs=[args.input, args.topology, None if args.model == "reference" else args.model])
    if Path(output).suffix.lower() not in (".npz", ".xyz", ".extxyz"):
        raise CLIError(f"--output {output}: must end in .npz, .xyz or .extxyz")
    result = predict(
        args.model, args.input, output, params=params, topology=args.topology, forces=args.forces,
        batch_size=args.batch_size, use_velocities=not args.no_velocities, device=args.device,
        dtype=torch.float64 if args.double else torch.float32, progress=not args.no_progress,
    )
    n = len(result["total"])
    print(f"wrote {output}: {n} frame(s), {result['energies'].shape[1]} particles, "
          f"mean total energy {result['total'].mean():.6g} kJ/mol")
    return 0
