"""The `nndyn` command in the test's own process (`nndyn.app.cli.command`): the same parsing,
work, output and exit status as ``python -m nndyn``, without a fresh process's start-up and
compilation. Tests of what only a process shows (SIGTERM, two processes at once, the exit status
itself) start one (`in_subprocess`)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """What a command left: its exit status and its stdout and stderr (as `subprocess.run`'s)."""

    returncode: int
    stdout: str
    stderr: str


def in_process(*arguments, cwd=None) -> Result:
    """`nndyn ARGUMENTS` run by `nndyn.app.cli.command` in this process, in the folder `cwd`."""
    from nndyn.app.cli import command

    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = command([str(argument) for argument in arguments])
            except SystemExit as exit:  # argparse's errors and --help
                code = exit.code if isinstance(exit.code, int) else 1
    finally:
        os.chdir(previous)
    return Result(code, out.getvalue(), err.getvalue())


def in_subprocess(*arguments, cwd=None, env=None) -> subprocess.CompletedProcess:
    """`python -m nndyn ARGUMENTS` in a fresh process, with `env` added to the environment."""
    return subprocess.run([sys.executable, "-m", "nndyn", *map(str, arguments)], capture_output=True, text=True,
                          cwd=cwd, check=False, env={**os.environ, **(env or {})})
