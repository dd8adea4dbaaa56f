"""Command-line interface: parses arguments and calls library functions.

Run ``python cli.py --help`` (or the ``cgsurrogate`` console script) for the commands.
Each command lives in its own module of :mod:`cgsurrogate.commands`: ``add_<name>(subparsers)``
builds the parser and sets ``func`` to a small handler that imports the library lazily (so
``--help`` is fast) and calls it. :data:`COMMANDS` lists the ``add_`` functions in the order
``--help`` shows them; a new command adds its function there.

Errors: :class:`cgsurrogate.core.errors.CGSurrogateError` (input a user can fix) is printed
as one ``error: ...`` line on stderr with exit status 2; any other exception is a bug and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys

from cgsurrogate.commands.arguments import (CLIError, finite_float, input_file, output_dir, output_file,  # noqa: F401
                                           strength_params)
from cgsurrogate.commands.simulate import add_simulate
from cgsurrogate.commands.hierarchy import add_hierarchy
from cgsurrogate.commands.train import add_train
from cgsurrogate.commands.evaluate import add_evaluate
from cgsurrogate.commands.sample import add_sample
from cgsurrogate.commands.predict import add_predict
from cgsurrogate.commands.relax import add_relax
from cgsurrogate.commands.cgmap import add_cgmap
from cgsurrogate.commands.eghn import add_mcomplex, add_eghn_train, add_protein_md
from cgsurrogate.commands.active_learn import add_active_learn
from cgsurrogate.core.errors import CGSurrogateError


#: The commands, in the order ``--help`` lists them: each entry adds one subcommand.
COMMANDS = (
    add_simulate,
    add_hierarchy,
    add_train,
    add_evaluate,
    add_sample,
    add_active_learn,
    add_predict,
    add_relax,
    add_cgmap,
    add_mcomplex,
    add_eghn_train,
    add_protein_md,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="cgsurrogate",
        description="Coarse-grained MD surrogates: simulate, train, evaluate, relax, predict.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (2 for a user error, printed as one line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except CGSurrogateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
