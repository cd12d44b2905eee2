"""Command line: ``python -m nndyn.derive [NAME ...] [--check] [--out DIR]``.

Regenerates the kernel modules of the named built-in activations (all when none is named) into
generated/, or with ``--check`` compares them with what is there and exits 1 with a diff when
anything is stale, missing or orphaned.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .activations import BUILTINS
from .generate import GENERATED_DIR, check, generate, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nndyn.derive", description=__doc__.split("\n\n")[1])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"built-in activations ({', '.join(sorted(BUILTINS))})")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    parser.add_argument("--out", type=Path, default=GENERATED_DIR, help=f"folder of the modules (default {GENERATED_DIR})")
    options = parser.parse_args(argv)
    unknown = [name for name in options.names if name not in BUILTINS]
    if unknown:
        parser.error(f"unknown activation(s) {', '.join(unknown)}; built-ins: {', '.join(sorted(BUILTINS))}")
    sources = generate(options.names or None)
    if options.check:
        problems = check(sources, options.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{'stale' if problems else 'in sync'}: {options.out}")
        return 1 if problems else 0
    for path in write(sources, options.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
