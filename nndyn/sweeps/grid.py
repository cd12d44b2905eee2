"""Sweeps as data: a `Sweep` is a list of grid points over the parameters in
`GRID_PARAMETERS`, with what is fixed over the sweep (time span, saves, activation, trained
second layer, solver options).

The grid parameters come from the schema: every numeric field of `Setting` (K, M,
lr, lr_v, sigma, batch, weight_decay, weight_decay_v, and any added later), its model choices
(teacher_activation, output_scaling, feedback), and the initial state's `init_scale` (the
students' weight scale), `init_N` (the input dimension the initial weights are drawn in) and
`seed` (the student's seed; the teacher's is 0). The Setting's other fields (activation,
train_second_layer) are fixed over a sweep.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field

from nndyn.core import schema
from nndyn.core.schema import Parameter, parameter
from nndyn.core.setting import Setting
from nndyn.core.simulate import Simulation
from nndyn.core.solver import ODEOptions

#: Defaults of the grid parameters that a Setting requires.
_GRID_DEFAULTS = {"K": 2, "M": 2, "lr": 0.5}
#: The Setting's non-numeric fields that a grid may vary (points of one value of each of
#: GROUPING share a compiled program; output_scaling is an argument of it).
MODEL_CHOICES = ("teacher_activation", "output_scaling", "feedback")
GROUPING = ("K", "M", "teacher_activation", "feedback")


def _grid_parameters() -> dict[str, Parameter]:
    setting = schema.parameters(Setting)
    simulation = schema.parameters(Simulation)
    numeric = {name: rule.replace(default=_GRID_DEFAULTS.get(name, rule.default))
               for name, rule in setting.items() if rule.kind in (int, float) or name in MODEL_CHOICES}
    return {
        **numeric,
        "init_scale": simulation["init_scale"],
        "init_N": simulation["N"].replace(name="init_N", default=1000,
                                          doc="input dimension of the initial weights' draw"),
        "seed": simulation["teacher_seed"].replace(name="seed", doc="seed of the student's initial weights"),
    }


#: The parameters a grid may vary, by name.
GRID_PARAMETERS = _grid_parameters()
#: Their defaults (lr_v None: equal to lr).
DEFAULTS = {name: rule.default for name, rule in GRID_PARAMETERS.items()}
#: The Setting's parameters that a sweep leaves at their defaults: a sweep integrates isotropic inputs.
NOT_SWEPT = ("input_spectrum", "teacher_spectrum")
#: The Setting's parameters that are fixed over a sweep (fields of `Sweep`).
SWEEP_WIDE = tuple(name for name in schema.parameters(Setting) if name not in GRID_PARAMETERS and name not in NOT_SWEPT)


def check_point(point: dict) -> dict:
    """`point` with every value checked by its grid parameter (and converted to its kind);
    raises ValueError for an unknown parameter or a bad value."""
    unknown = sorted(set(point) - set(GRID_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} (known: {', '.join(GRID_PARAMETERS)})")
    return {name: GRID_PARAMETERS[name].check(value) for name, value in point.items()}


@dataclass(frozen=True)
class Sweep:
    """A sweep.

    **Arguments:**

    - `name`: a label for the run folder.
    - `points`: the grid points, each a dict over `DEFAULTS` (see `grid`).
    - `t_max`, `saves`: integrate over [0, t_max], saving `saves` equally spaced times.
    - `activation`, `train_second_layer`: as in `Setting` (fixed over the sweep).
    - `chunk`: the most grid points integrated at once (rounded up to a multiple of the devices).
    - `options`: `ODEOptions` fields (rtol, atol, max_steps, divergence_threshold;
      the method is always adaptive).
    """

    name: str = parameter(doc="the sweep's name (its run folder is runs/<name>)", identifier=True)
    # required, like `name` (pyright takes schema.parameter() for a default and flags the order)
    points: tuple[dict, ...]  # pyright: ignore[reportGeneralTypeIssues]
    t_max: float = parameter(doc="integrate over [0, t_max]", above=0)
    saves: int = parameter(201, doc="equally spaced saved times", minimum=2)
    activation: str = Setting.activation
    train_second_layer: bool = Setting.train_second_layer
    chunk: int = parameter(64, doc="grid points per compiled call (bounds memory)", minimum=1)
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        schema.validate(self)
        if not self.points:
            raise ValueError("a sweep needs at least one grid point")
        object.__setattr__(self, "points", tuple(check_point(point) for point in self.points))
        if ODEOptions(**self.options).method != "adaptive":
            raise ValueError("method must be 'adaptive' in a sweep (a fixed-step Euler needs a step dt per point)")
        for point in self.points:
            self.setting(point)  # checks the point against the Setting (and the activation)

    def setting(self, point: dict) -> Setting:
        """The `Setting` of a grid point."""
        fixed = {name: getattr(self, name) for name in SWEEP_WIDE}
        return Setting(**{name: point[name] for name in point if name in schema.parameters(Setting)}, **fixed)

    def fingerprint(self) -> str:
        """A hash of everything that determines the results (a resumed sweep must match it): the
        sweep's config and the contents of the kernel modules its settings run
        (`Kernels.fingerprint`: a user's activation re-derived into the same path changes it)."""
        kernels = sorted({self.setting(point).kernels.fingerprint for point in self.points})
        text = json.dumps({"config": self.config(), "kernels": kernels}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def config(self) -> dict:
        return {**dataclasses.asdict(self), "points": [dict(point) for point in self.points]}

    def groups(self) -> dict[tuple, list[int]]:
        """The values of GROUPING (K, M, teacher_activation, feedback) -> indices of the points
        with them (one compiled program each), in grid order."""
        groups: dict[tuple, list[int]] = {}
        for index, point in enumerate(self.points):
            groups.setdefault(tuple(point[name] for name in GROUPING), []).append(index)
        return groups


def grid(defaults: dict | None = None, product: dict | None = None, points: list | None = None) -> tuple[dict, ...]:
    """Grid points: the Cartesian product of `product` (parameter -> list of values), or the
    explicit `points` (a list of dicts), each over `defaults` and then `DEFAULTS`."""
    base = {**DEFAULTS, **(defaults or {})}
    if product is not None and points is not None:
        raise ValueError("give either a Cartesian product or a list of points, not both")
    if points is None:
        names = list(product or {})
        points = [dict(zip(names, values)) for values in itertools.product(*(product or {}).values())]
    return tuple({**base, **point} for point in points)
