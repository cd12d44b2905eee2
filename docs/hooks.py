"""MkDocs hook: the configuration and command-line reference, generated from the parameter
schema (nndyn.core.schema) and the command's parser, so that it is never written twice.

A page asks for a table with a line ``<!-- nndyn:parameters NAME -->`` (NAME: Setting,
Simulation, ODEOptions, Teachers, Phase, Sweep, grid, inputs or run: a run config's own keys)
and for the commands' help with ``<!-- nndyn:cli -->``.
"""

from __future__ import annotations

import re

MARKER = re.compile(r"<!-- nndyn:(parameters|cli)\s*(\w*)\s*-->")


def _declared(name: str) -> dict:
    import nndyn
    from nndyn.core import schema
    from nndyn.core.continual import Phase, Teachers
    from nndyn.sweeps.grid import GRID_PARAMETERS

    if name == "grid":
        return GRID_PARAMETERS
    if name == "inputs":
        from nndyn.app.config import INPUTS

        return INPUTS
    if name == "run":
        from nndyn.app.config import BAND, RUN_NAME

        return {"name": RUN_NAME, "band": BAND}
    classes = {"Setting": nndyn.Setting, "Simulation": nndyn.Simulation, "ODEOptions": nndyn.ODEOptions,
               "Teachers": Teachers, "Phase": Phase, "Sweep": nndyn.Sweep}
    return schema.parameters(classes[name])


def _toml(value) -> str:
    """A default as it is written in a config file."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def parameters_table(name: str) -> str:
    """A Markdown table of the parameters of `name`: key, kind, default, accepted values, doc."""
    from nndyn.core.schema import REQUIRED

    lines = ["| key | kind | default | accepts | meaning |", "|---|---|---|---|---|"]
    for key, rule in _declared(name).items():
        default = "required" if rule.default is REQUIRED else f"`{_toml(rule.default)}`"
        kind = rule.kind.__name__ + (" or none" if rule.optional else "")
        lines.append(f"| `{key}` | {kind} | {_cell(default)} | {_cell(rule.requirement())} | {_cell(rule.doc)} |")
    return "\n".join(lines)


def cli_reference() -> str:
    """The help of `nndyn` and of each of its commands, as code blocks."""
    import argparse

    from nndyn.app.cli import build_parser

    parser = build_parser()
    blocks = [("nndyn", parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            blocks += [(f"nndyn {name}", command.format_help()) for name, command in action.choices.items()
                       if name != "derive"]
    from nndyn.derive.__main__ import build_parser as derive_parser  # its own parser: `nndyn derive` passes through

    blocks.append(("nndyn derive", derive_parser("nndyn derive").format_help()))
    return "\n\n".join(f"### `{title}`\n\n```text\n{text.rstrip()}\n```" for title, text in blocks)


def on_page_markdown(markdown: str, **_) -> str:
    def expand(match: re.Match) -> str:
        return parameters_table(match.group(2)) if match.group(1) == "parameters" else cli_reference()

    return MARKER.sub(expand, markdown)
