"""The configs under examples/, which the docs include as they are: each is accepted, and each runs
end to end through the command it documents (at a tiny scale: N, times and seeds shrunk; in this
process, `command.in_process`)."""

import tomllib
from pathlib import Path

import pytest
from command import in_process

from nndyn.app.config import read_config, read_sweep

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))
#: The command each example documents.
COMMANDS = {"sweep.toml": "sweep", "plateau.toml": "analyse"}


def _tiny(text: str) -> str:
    """An example's config at a tiny scale: N = 200, 2 seeds, t_max 4 (or each phase 2), one
    learning rate and one seed in a sweep's grid."""
    config = tomllib.loads(text)
    lines = []
    for line in text.splitlines():
        key = line.split("=")[0].strip()
        if key == "N":
            line = "N = 200"
        elif key == "seeds":
            line = "seeds = 2"
        elif key == "t_max":
            line = "t_max = 4"
        elif key == "t" and "phases" in config:
            line = "t = 2"
        elif key == "saves":
            line = "saves = 5"
        elif key in ("lr", "seed") and "grid" in config and line.lstrip().startswith(f"{key} = ["):
            line = f"{key} = [{config['grid'][key][0]}]"
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_there_are_examples_and_each_is_documented():
    assert {path.name for path in EXAMPLES} >= {"run.toml", "continual.toml", "alignment.toml", "sweep.toml",
                                                 "plateau.toml"}
    docs = "".join(path.read_text() for path in (EXAMPLES[0].parents[1] / "docs").glob("*.md"))
    for path in EXAMPLES:
        assert f"examples/{path.name}" in docs, f"{path.name} is not in the docs"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_example_is_accepted(path):
    if COMMANDS.get(path.name) == "sweep":
        assert read_sweep(path).points
    else:
        assert read_config(path).panels


@pytest.mark.slow  # end to end
@pytest.mark.parametrize("path", [path for path in EXAMPLES if path.name != "plateau.toml"], ids=lambda path: path.name)
def test_every_example_runs(path, tmp_path):
    """plateau.toml's `nndyn analyse` runs in tests/test_cli.py."""
    config = tmp_path / path.name
    config.write_text(_tiny(path.read_text()))
    command = COMMANDS.get(path.name, "run")
    result = in_process(command, config, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out").is_dir()
