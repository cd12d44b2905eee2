"""What a command is doing while it works, on stderr (`rich`): one line per panel with its stage
(simulating SGD, integrating the ODE, the verdict), a bar where the stage knows how far along it
is, and the time it has taken, redrawn several times a second so that a long compilation is
never a silent wait. Off a terminal, only the finished lines are printed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

#: Said the first time a stage runs in a process: that is when its programs are compiled.
COMPILING = "compiling on first use; later runs reuse the cached programs"


class Line:
    """The progress line of one panel: `stage(name)` starts a stage, `fraction(f)` moves its bar."""

    def __init__(self, progress, label: str, seen: set) -> None:
        self._progress, self._seen, self._name = progress, seen, ""
        self._task = progress.add_task(label, total=None, stage="")

    def stage(self, name: str, measured: bool = False) -> None:
        """Start the stage `name`; with `measured`, it reports fractions (a bar), else a spinner.
        The first time a stage runs in a process, its line says it is compiling."""
        first = name not in self._seen
        self._seen.add(name)
        self._name = name
        self._progress.update(self._task, total=1.0 if measured else None, completed=0,
                              stage=f"{name} ({COMPILING})" if first else name)

    def fraction(self, done: float) -> None:
        """The measured stage is `done` (0 to 1) along."""
        self._progress.update(self._task, completed=done)

    def finish(self) -> None:
        self._progress.update(self._task, total=1.0, completed=1.0, stage="done")


class Silent:
    """A report that shows nothing (`Line`'s methods)."""

    def stage(self, name: str, measured: bool = False) -> None:
        pass

    def fraction(self, done: float) -> None:
        pass

    def finish(self) -> None:
        pass


@contextlib.contextmanager
def panels() -> Iterator:
    """A context whose value makes a `Line` per label: `with panels() as line: line("K = 2")`."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    progress = Progress(SpinnerColumn(finished_text="✓"), TextColumn("{task.description:<28}"),
                        TextColumn("{task.fields[stage]}"), BarColumn(bar_width=24), TimeElapsedColumn(),
                        console=console, transient=False, refresh_per_second=4)
    seen: set[str] = set()
    with progress:
        yield lambda label: Line(progress, label, seen)
