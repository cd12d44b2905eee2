"""`nndyn run CONFIG.toml`: a user's own setting, validated field by field."""

from __future__ import annotations

import tomllib
from pathlib import Path

from nndyn.experiments import Experiment, Panel
from nndyn.kernels import load
from nndyn.setting import Setting

REQUIRED = object()

#: field -> (type, default, check, what the check requires)
FIELDS = {
    "name": (str, "run", lambda v: v.isidentifier(), "a name made of letters, digits and _"),
    "activation": (str, "erf", None, "a generated activation"),
    "N": (int, REQUIRED, lambda v: v >= 1, ">= 1"),
    "K": (int, REQUIRED, lambda v: v >= 1, ">= 1"),
    "M": (int, REQUIRED, lambda v: v >= 1, ">= 1"),
    "lr": (float, REQUIRED, lambda v: v > 0, "> 0"),
    "lr_v": (float, None, lambda v: v >= 0, ">= 0"),
    "sigma": (float, 0.0, lambda v: v >= 0, ">= 0"),
    "batch": (int, 1, lambda v: v >= 1, ">= 1"),
    "train_second_layer": (bool, False, None, ""),
    "init_scale": (float, 1.0, lambda v: v > 0, "> 0"),
    "t_max": (float, REQUIRED, lambda v: v > 0, "> 0"),
    "seeds": (int, 4, lambda v: v >= 2, ">= 2 (the agreement test estimates fluctuations from the seeds)"),
    "save_every": (int, None, lambda v: v >= 1, ">= 1"),
    "rtol": (float, 1e-8, lambda v: 0 < v < 1, "in (0, 1)"),
    "atol": (float, 1e-10, lambda v: 0 < v < 1, "in (0, 1)"),
}


class ConfigError(ValueError):
    """Every problem of a config, one line each."""

    def __init__(self, path: Path, problems: list[str]):
        self.problems = [f"{path}: {problem}" for problem in problems]
        super().__init__("\n".join(self.problems))


def _typed(name: str, value, kind):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise TypeError(f"field '{name}' must be {'a number' if kind is float else kind.__name__}, got {value!r}")
    return value


def read_config(path: Path) -> dict:
    """The validated fields of the TOML file `path` (defaults filled in); raises ConfigError."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(path, [f"cannot read: {error}"]) from None
    problems, values = [], {}
    for name in sorted(set(raw) - set(FIELDS)):
        problems.append(f"unknown field '{name}' (known: {', '.join(FIELDS)})")
    for name, (kind, default, check, requirement) in FIELDS.items():
        if name not in raw:
            if default is REQUIRED:
                problems.append(f"missing field '{name}'")
            else:
                values[name] = default
            continue
        try:
            value = _typed(name, raw[name], kind)
        except TypeError as error:
            problems.append(str(error))
            continue
        if check is not None and not check(value):
            problems.append(f"field '{name}' = {value!r} is out of range: must be {requirement}")
            continue
        values[name] = value
    if "activation" in values:
        try:
            load(values["activation"])
        except ValueError as error:
            problems.append(f"field 'activation': {error}")
    if problems:
        raise ConfigError(path, problems)
    return values


def experiment_from_config(values: dict) -> Experiment:
    """A one-panel experiment from validated config values."""
    setting = Setting(
        K=values["K"], M=values["M"], lr=values["lr"], lr_v=values["lr_v"], sigma=values["sigma"],
        batch=values["batch"], train_second_layer=values["train_second_layer"],
        activation=values["activation"],
    )
    panel = Panel(
        f"{values['activation']}, K = {values['K']}, M = {values['M']}", setting, values["N"],
        values["t_max"], values["seeds"], values["init_scale"], values["save_every"],
        values["rtol"], values["atol"],
    )
    rows = ("eg", "R", "Q", "v", "alignment") if values["train_second_layer"] else ("eg", "R", "Q")
    return Experiment(values["name"], f"{values['name']}: {panel.label}", (panel,), rows)
