"""Command line: ``python -m nndyn.derive [NAME ...] [--check] [--out DIR]``, and for a user's
own activation ``python -m nndyn.derive --name NAME --expr "SYMPY EXPRESSION IN x" --out DIR``.

Regenerates the kernel modules of the named built-in activations (all when none is named) into
generated/, or with ``--check`` compares them with what is there and exits 1 with a diff when
anything is stale, missing or orphaned. A user's activation is written to DIR/NAME.py only (load
it with ``Setting(activation="DIR/NAME.py")``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .activations import BUILTINS, from_expression
from .generate import check, generate, generate_user, write
from .paths import GENERATED_DIR
from .quadrature import QuadratureError
from .verify import VerificationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nndyn.derive", description=__doc__.split("\n\n")[1])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"built-in activations ({', '.join(sorted(BUILTINS))})")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    parser.add_argument("--out", type=Path, help=f"folder of the modules (default {GENERATED_DIR})")
    parser.add_argument("--name", help="name of a user's activation (a Python identifier); needs --expr and --out")
    parser.add_argument("--expr", help="the user's activation g as an expression in x, e.g. 'erf(2*x)' "
                        "(numbers, + - * / **, and functions such as erf, exp, log, tanh, Max)")
    options = parser.parse_args(argv)
    if options.name is not None or options.expr is not None:
        if options.names or options.name is None or options.expr is None or options.out is None:
            parser.error("a user's activation needs --name, --expr and --out, and no built-in names")
        try:
            sources = generate_user(from_expression(options.name, options.expr))
        except QuadratureError as error:
            parser.error(f"no closed form, and no accurate quadrature: {error}")
        except VerificationError as error:
            parser.error(f"a derived closed form failed its verification, so nothing was written: {error}")
        except ValueError as error:
            parser.error(str(error))
        known = {path.name for path in options.out.glob("*.py")} | set(sources)
    else:
        unknown = [name for name in options.names if name not in BUILTINS]
        if unknown:
            parser.error(f"unknown activation(s) {', '.join(unknown)}; built-ins: {', '.join(sorted(BUILTINS))}")
        sources = generate(options.names or None)
        known = None
    options.out = options.out or GENERATED_DIR
    if options.check:
        problems = check(sources, options.out, known)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{'stale' if problems else 'in sync'}: {options.out}")
        return 1 if problems else 0
    for path in write(sources, options.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
