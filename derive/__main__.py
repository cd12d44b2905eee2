"""Command line: ``python -m nndyn.derive [NAME ...] [--check [--full]] [--out DIR]``, and for a
user's own activation ``python -m nndyn.derive --name NAME --expr "SYMPY EXPRESSION IN x" --out
DIR``, with a teacher activation apart ``... --teacher-name TNAME [--teacher-expr EXPR]``.

Regenerates the kernel modules of the named built-in activations (all when none is named) and
their pair modules into generated/, or with ``--check`` compares them with what is there and
exits 1 when anything is stale, edited, missing or orphaned: by their input hashes and seals
(seconds), or with ``--check --full`` (or named activations) by deriving them again (a diff).
A user's activation is written to DIR/NAME.py (load it with
``Setting(activation="DIR/NAME.py")``); with a teacher, also DIR/TNAME.py (unless a built-in)
and the pair module DIR/NAME__TNAME.py (a student or teacher without --expr/--teacher-expr is
the built-in of that name).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from . import budget
from .activations import BUILTINS, from_expression, get
from .generate import check, check_hashes, generate, generate_user, write
from .paths import GENERATED_DIR
from .quadrature import QuadratureError
from .verify import VerificationError


def build_parser(prog: str = "python -m nndyn.derive") -> argparse.ArgumentParser:
    """The command line's parser (`prog` names it: `nndyn derive` is the same command)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[1])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"built-in activations ({', '.join(sorted(BUILTINS))})")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference "
                        "(input hashes and seals, in seconds; with --full, or with NAMEs, the full derivation)")
    parser.add_argument("--full", action="store_true", help="with --check: derive everything again and compare")
    parser.add_argument("--out", type=Path, help=f"folder of the modules (default {GENERATED_DIR})")
    parser.add_argument("--name", help="name of a user's activation (a Python identifier); needs --expr (or, with "
                        "a teacher, names a built-in) and --out")
    parser.add_argument("--expr", help="the user's activation g as an expression in x, e.g. 'erf(2*x)' "
                        "(numbers, + - * / **, and functions such as erf, exp, log, tanh, Max)")
    parser.add_argument("--teacher-name", help="name of the teacher's activation, apart from the student's")
    parser.add_argument("--teacher-expr", help="the teacher's activation g* as an expression in x (without it, "
                        "--teacher-name names a built-in)")
    parser.add_argument("--budget", type=float, default=BUDGET, metavar="SECONDS",
                        help=f"for a user's activation: stop, writing nothing, after this long (default {BUDGET:g}; "
                        "0: no limit)")
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m nndyn.derive") -> int:
    parser = build_parser(prog)
    options = parser.parse_args(argv)
    user = (options.name, options.expr, options.teacher_name, options.teacher_expr)
    if any(value is not None for value in user):
        if options.names or options.name is None or options.out is None:
            parser.error("a user's activation needs --name and --out, and no built-in names")
        if options.teacher_expr is not None and options.teacher_name is None:
            parser.error("--teacher-expr needs --teacher-name")
        try:
            student = _activation(options.name, options.expr, options.teacher_name is not None, "--expr")
            teacher = (None if options.teacher_name is None else
                       _activation(options.teacher_name, options.teacher_expr, True, "--teacher-expr"))
            if teacher is not None and teacher.name == student.name:
                raise ValueError("the teacher's activation needs a name apart from the student's")
            if options.budget < 0 or not math.isfinite(options.budget):
                raise ValueError(f"--budget must be a number of seconds >= 0 (0: no limit), not {options.budget:g}")
            limit = f"at most {options.budget:g} s" if options.budget else "no time limit"
            print(f"deriving {student.name}{'' if teacher is None else ' with ' + teacher.name}: every integral in "
                  f"closed form, as an erf or smoothed-ReLU mixture or by quadrature, each verified ({limit})",
                  file=sys.stderr)
            results = []
            start = time.perf_counter()

            def report(kind: str, text: str) -> None:
                if kind == "result":
                    results.append(text)
                print(f"  [{time.perf_counter() - start:4.0f} s] {text}", file=sys.stderr, flush=True)

            with budget.limited(options.budget):
                sources = generate_user(student, teacher, report)
            print("accuracy each integral reached:", *(f"  {line}" for line in results), sep="\n", file=sys.stderr)
        except budget.BudgetExceeded as error:
            parser.error(f"cannot derive {options.name} within --budget {error.seconds:g} s, so nothing was "
                         f"written: {error.stage} was still running; {_suggestion(error.stage)}")
        except QuadratureError as error:
            parser.error(f"no closed form, and no accurate quadrature: {error}")
        except VerificationError as error:
            parser.error(f"a derived closed form failed its verification, so nothing was written: {error}")
        except ValueError as error:
            parser.error(str(error))
        except (TypeError, ArithmeticError) as error:  # SymPy or mpmath on an expression they cannot handle
            parser.error(f"cannot derive the activation ({type(error).__name__}: {error})")
        known = {path.name for path in options.out.glob("*.py")} | set(sources)
    else:
        unknown = [name for name in options.names if name not in BUILTINS]
        if unknown:
            parser.error(f"unknown activation(s) {', '.join(unknown)}; built-ins: {', '.join(sorted(BUILTINS))}")
        if options.check and not options.full and not options.names:
            folder = options.out or GENERATED_DIR
            problems = check_hashes(folder)
            for problem in problems:
                print(problem, file=sys.stderr)
            print(f"{'stale' if problems else 'in sync'} (input hashes and seals): {folder}")
            return 1 if problems else 0
        start = time.perf_counter()
        print(f"deriving and verifying the modules over {os.cpu_count() or 1} processes (minutes; ReLU's pairs "
              "take longest)", file=sys.stderr)

        def report(done: int, total: int, name: str) -> None:
            print(f"  [{done}/{total}] {name} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)

        sources = generate(options.names or None, report)
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


#: Seconds a user's activation may take to derive (`--budget`).
BUDGET = 300.0


def _suggestion(stage: str) -> str:
    """What to try when the derivation ran past its budget in `stage`."""
    if stage.endswith("the closed-form rules"):
        return ("its Gaussian integrals expand into more terms than the rules reduce in that time (products of x, "
                "exponentials and erf, e.g. x*erf(x)); an activation that is bounded and odd about g(0) (tanh, the "
                "sigmoid, erf(b*x)) takes the erf mixture in under a minute, one that vanishes at -inf and rises "
                "linearly (softplus) the smoothed-ReLU mixture, or allow more with --budget SECONDS "
                "(0: no limit)")
    return "allow more with --budget SECONDS (0: no limit)"


def _activation(name: str, expression: str | None, builtin_allowed: bool, flag: str):
    """The user's activation `name` of `expression`, or without one the built-in `name`."""
    if "__" in name:  # STUDENT__TEACHER names the pair modules
        raise ValueError(f"the activation name {name!r} has '__', which names pair modules (STUDENT__TEACHER.py): "
                         "choose another name")
    if expression is not None:
        return from_expression(name, expression)
    if not builtin_allowed:
        raise ValueError(f"a user's activation needs {flag}")
    try:
        return get(name)
    except KeyError as error:
        raise ValueError(f"{error.args[0]} (or give {flag})") from None


if __name__ == "__main__":
    sys.exit(main())
