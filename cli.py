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
