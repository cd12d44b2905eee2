"""The parameter schema: each parameter is declared once, as a field of a frozen dataclass
(`Setting`, `ODEOptions`, `Simulation`,
`Sweep`), with its type, default, range and one-line doc; every reader of
parameters (the Python API, `nndyn run` configs, `nndyn sweep` configs and grids, the CLI's
overrides) checks values with the same `Parameter`, so a bad value gets the same one-line
message wherever it was given.

Rules shared by every parameter: integers are Python or NumPy integers (never booleans, never
floats such as 2.5 or 2.0); numbers are integers or floats and must be finite (nan and inf are
refused); booleans are True or False only (never the string "false"); strings are strings.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The default of a parameter that must be given.
REQUIRED = dataclasses.MISSING

_KEY = "nndyn.parameter"


def parameter(default: Any = REQUIRED, *, doc: str, minimum: float | None = None, maximum: float | None = None,
              above: float | None = None, below: float | None = None, choices: tuple | None = None,
              identifier: bool = False, flow: bool = False, convert=None, accepts: str | None = None) -> Any:
    """Declare a dataclass field as a parameter.

    **Arguments:**

    - `default`: its value when not given (REQUIRED when it must be given; None for an optional
      parameter whose absence the doc explains).
    - `doc`: one line saying what it is.
    - `minimum`, `maximum`: inclusive bounds; `above`, `below`: exclusive bounds.
    - `choices`: the values allowed, for a string; `identifier`: a string must be a name made
      of letters, digits and _ (e.g. one that names a folder).
    - `flow`: whether the flows depend on it (it is then passed to the vector field in `args`
      under its name, and derive/flows.py may use it as a symbol).
    - `convert`: for a structured value (e.g. a tuple of pairs), the function that checks it
      and returns it converted, raising ValueError with one line "must be …, got …" (the
      parameter's name is put before it); `accepts`, what it accepts, in words.
    """
    rule = {"doc": doc, "minimum": minimum, "maximum": maximum, "above": above, "below": below,
            "choices": choices, "identifier": identifier, "flow": flow, "convert": convert,
            "accepts": accepts}
    return dataclasses.field(default=default, metadata={_KEY: rule})


class ParameterError(ValueError):
    """A value that a parameter does not accept; `name` is the parameter's name, and the message
    is one line that names it (for a value out of the declared rule: "<name> must be
    <requirement>, got <value>")."""

    def __init__(self, name: str, message: str):
        self.name = name
        super().__init__(message)


@dataclass(frozen=True)
class Parameter:
    """One declared parameter (see `parameter` for the fields' meaning); `kind` is int,
    float, bool or str, and `optional` says whether None is accepted."""

    name: str
    kind: type
    optional: bool
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple | None = None
    identifier: bool = False
    flow: bool = False
    convert: Any = None
    accepts: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def requirement(self) -> str:
        """What the parameter accepts, as words, e.g. "an integer >= 1"."""
        if self.accepts is not None:
            return self.accepts
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            if self.choices:
                return f"one of {', '.join(map(repr, self.choices))}"
            return "a name made of letters, digits and _" if self.identifier else "a string"
        noun = "an integer" if self.kind is int else "a finite number"
        low = f"[{self.minimum:g}" if self.minimum is not None else f"({self.above:g}" if self.above is not None else ""
        high = (
            f"{self.maximum:g}]" if self.maximum is not None else f"{self.below:g})" if self.below is not None else ""
        )
        if low and high:
            return f"{noun} in {low}, {high}"
        if low:
            return f"{noun} {'>=' if low[0] == '[' else '>'} {low[1:]}"
        if high:
            return f"{noun} {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
        return noun

    def error(self, value: Any) -> ParameterError:
        """The one-line error for a `value` the parameter refuses."""
        return ParameterError(self.name, f"{self.name} must be {self.requirement()}, got {_shown(value)}")

    def check(self, value: Any) -> Any:
        """`value` as the parameter's kind (e.g. a NumPy integer as an int, an int as a float);
        raises `ParameterError` when the parameter does not accept it."""
        if value is None and self.optional:
            return None
        if self.convert is not None:
            try:
                return self.convert(value)
            except ValueError as error:
                raise ParameterError(self.name, f"{self.name} {error}") from None
        converted = _as_kind(value, self.kind)
        if converted is None or not self._accepts(converted):
            raise self.error(value)
        return converted

    def _accepts(self, value: Any) -> bool:
        """Whether a value of the parameter's kind is in its range."""
        if self.kind is str:
            return (self.choices is None or value in self.choices) and (not self.identifier or value.isidentifier())
        if self.kind is bool:
            return True
        return (
            (self.kind is int or math.isfinite(value))
            and (self.minimum is None or value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
            and (self.above is None or value > self.above)
            and (self.below is None or value < self.below)
        )

    def replace(self, **changes) -> "Parameter":
        """The same rule with `changes`, e.g. another name (`init_N` for a simulation's `N`), a
        stricter `minimum` or another default."""
        return dataclasses.replace(self, **changes)


def _as_kind(value: Any, kind: type) -> Any:
    """`value` converted to `kind` when it is of that kind (NumPy scalars included, bool never
    an int or a number), else None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value) if kind is bool else None
    if kind is int:
        return int(value) if isinstance(value, (int, np.integer)) else None
    if kind is float:
        return float(value) if isinstance(value, (int, float, np.integer, np.floating)) else None
    if kind is str:
        return value if isinstance(value, str) else None
    return None


def _shown(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def parameters(cls: type) -> dict[str, Parameter]:
    """The declared parameters of the dataclass `cls`, by name, in declaration order (a new
    dict each call)."""
    return dict(_declared(cls))


@functools.cache
def _declared(cls: type) -> dict[str, Parameter]:
    hints = typing.get_type_hints(cls)
    declared = {}
    for field in dataclasses.fields(cls):
        if _KEY not in field.metadata:
            continue
        kind, optional = hints[field.name], False
        if isinstance(kind, types.UnionType):
            members = [member for member in typing.get_args(kind) if member is not type(None)]
            kind, optional = members[0], len(members) < len(typing.get_args(kind))
        declared[field.name] = Parameter(field.name, kind, optional, field.default, **field.metadata[_KEY])
    return declared


def validate(instance: Any) -> None:
    """Check every declared parameter of the frozen dataclass `instance` and store its value
    converted to the parameter's kind (so that, e.g., a NumPy integer K hashes as an int).
    Raises `ParameterError` for the first bad one."""
    for name, declared in parameters(type(instance)).items():
        object.__setattr__(instance, name, declared.check(getattr(instance, name)))


def read(declared: dict[str, Parameter], raw: dict, defaults: bool = True) -> tuple[dict, list[str]]:
    """Check the values `raw` (e.g. a TOML table) against the parameters `declared`.

    Returns the checked values (with the defaults of the parameters not given, unless
    `defaults` is False) and one line per problem: an unknown key, a missing required
    parameter, or a parameter's own message.
    """
    values, problems = {}, []
    for key in raw:
        if key not in declared:
            problems.append(f"unknown field '{key}' (known: {', '.join(declared)})")
    for name, rule in declared.items():
        if name not in raw:
            if rule.required:
                problems.append(f"missing field '{name}'")
            elif defaults:
                values[name] = rule.default
            continue
        try:
            values[name] = rule.check(raw[name])
        except ParameterError as error:
            problems.append(str(error))
    return values, problems
