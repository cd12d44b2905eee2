"""One parameter schema: every parameter of a setting, of the ODE options and of a simulation is
accepted, and rejected with the same one-line message, by the Python API, a run config and a
sweep config."""

import json
import math

import numpy as np
import pytest

import nndyn
from nndyn.app.config import ConfigError, read_config, read_sweep
from nndyn.core import schema
from nndyn.sweeps.grid import GRID_PARAMETERS, SWEEP_WIDE

#: A valid value of every required parameter.
REQUIRED = {"K": 2, "M": 2, "lr": 0.5, "N": 100, "t_max": 1.0}
#: What a parameter needs beside it: the teacher's spectrum needs the input's, of as many levels.
COMPANIONS = {"teacher_spectrum": {"input_spectrum": ((2.0, 0.5), (0.5, 0.5))}}
CLASSES = (nndyn.Setting, nndyn.ODEOptions, nndyn.Simulation)


def bad_values(rule: schema.Parameter) -> list:
    """Values the parameter must refuse: wrong kinds, non-finite numbers, out of range."""
    if rule.convert is not None:  # a structured value: a list of pairs or of numbers, one per level
        return ["1", True, math.nan, [[1.0, 0.5]], [[0.0, 1.0]], [[1.0, 0.5, 0.5]], [["1", 1.0]], [-1.0, 1.0],
                [0.0, 0.0]]
    if rule.kind is bool:
        return ["false", 1]
    if rule.kind is str:
        return [3, True] + (["nope"] if rule.choices else [])
    values = ["1", True]
    if rule.kind is int:
        values += [2.5, 2.0]
    else:
        values += [math.nan, math.inf, -math.inf]
    for bound, outside in ((rule.minimum, -1), (rule.above, 0), (rule.maximum, 1), (rule.below, 0)):
        if bound is not None:
            values.append(bound + outside)
    return values


def every_parameter():
    return [(cls, name, rule) for cls in CLASSES for name, rule in schema.parameters(cls).items()]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return json.dumps(value)


def run_config(tmp_path, name, value) -> list[str]:
    """The problems `nndyn run` reports for a valid config with `name` = `value` (the second
    layer trains where `name` is one of its own: a config refuses those for a fixed one)."""
    second_layer = {"train_second_layer": True} if name in ("lr_v", "weight_decay_v", "init_scale_v") else {}
    fields = {**REQUIRED, "seeds": 2, **second_layer, **COMPANIONS.get(name, {}), name: value}
    path = tmp_path / "run.toml"
    path.write_text("".join(f"{key} = {toml_value(item)}\n" for key, item in fields.items()))
    try:
        read_config(path)
    except ConfigError as error:
        return [problem.removeprefix(f"{path}: ") for problem in error.problems]
    return []


def sweep_config(tmp_path, cls, name, value) -> tuple[list[str], str] | None:
    """The problems `nndyn sweep` reports with `name` = `value` where a sweep takes it, and the
    prefix of that place; None where a sweep does not take the parameter."""
    if cls is nndyn.ODEOptions:
        text, prefix = f"t_max = 1.0\n[options]\n{name} = {toml_value(value)}\n", "[options] "
    elif cls is nndyn.Setting and name in SWEEP_WIDE:
        text, prefix = f"t_max = 1.0\n{name} = {toml_value(value)}\n", ""
    elif name in GRID_PARAMETERS:
        text, prefix = f"t_max = 1.0\n[grid]\n{name} = [{toml_value(value)}]\n", "[grid] "
    else:
        return None
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    try:
        read_sweep(path)
    except ConfigError as error:
        return [problem.removeprefix(f"{path}: ") for problem in error.problems], prefix
    return [], prefix


@pytest.mark.parametrize(
    "cls, name, rule", every_parameter(), ids=lambda item: getattr(item, "name", None) or str(item)
)
def test_every_parameter_is_refused_with_one_message_everywhere(tmp_path, cls, name, rule):
    for value in bad_values(rule):
        with pytest.raises(schema.ParameterError) as refused:
            cls(**{**{key: REQUIRED[key] for key in schema.parameters(cls) if key in REQUIRED},
                   **COMPANIONS.get(name, {}), name: value})
        message = str(refused.value)
        assert refused.value.name == name and message.startswith(f"{name} must be "), message
        assert "\n" not in message
        # a run config asks one thing more: two seeds at least, for the verdict's fluctuations
        expected = message.replace(">= 1", ">= 2") if name == "seeds" else message
        assert run_config(tmp_path, name, value) == [expected], value
        swept = sweep_config(tmp_path, cls, name, value)
        if swept is not None:
            problems, prefix = swept
            assert problems == [prefix + message], value


@pytest.mark.parametrize(
    "cls, name, rule", every_parameter(), ids=lambda item: getattr(item, "name", None) or str(item)
)
def test_every_parameter_is_accepted_everywhere(tmp_path, cls, name, rule):
    value = REQUIRED.get(name, rule.default)
    if value is None and rule.convert is not None:  # the input spectrum (two levels), the teacher's
        value = ((2.0, 0.5), (0.5, 0.5)) if name == "input_spectrum" else (3.0, 0.1)
    elif value is None:  # an optional parameter: a valid value instead of its absence
        value = (
            "relu" if rule.kind is str else rule.minimum + 1 if rule.minimum is not None else (rule.above or 0) + 0.5
        )
    instance = cls(**{**{key: REQUIRED[key] for key in schema.parameters(cls) if key in REQUIRED},
                      **COMPANIONS.get(name, {}), name: value})
    assert getattr(instance, name) == value
    assert run_config(tmp_path, name, value) == []
    swept = sweep_config(tmp_path, cls, name, value)
    assert swept is None or swept[0] == []


def test_numpy_numbers_are_numbers_and_strings_are_not_booleans():
    setting = nndyn.Setting(K=np.int64(2), M=np.int32(3), lr=np.float32(0.5), batch=np.int64(4))
    assert setting == nndyn.Setting(K=2, M=3, lr=0.5, batch=4) and type(setting.K) is int
    assert hash(setting) == hash(nndyn.Setting(K=2, M=3, lr=0.5, batch=4))
    with pytest.raises(ValueError, match="train_second_layer must be true or false, got 'false'"):
        nndyn.Setting(K=2, M=2, lr=0.5, train_second_layer="false")
    with pytest.raises(ValueError, match="K must be an integer >= 1, got 2.0"):
        nndyn.Setting(K=2.0, M=2, lr=0.5)


def test_flow_parameters_are_the_generated_flows_parameters():
    """The vector field receives exactly the Setting's flow parameters, by name, and the output
    scalings κ, κ* (derived from output_scaling); the flows use all of them but κ*, which enters
    through the readout a; and the level weight ρ_ℓ f_ℓ of structured inputs (from the spectrum,
    per level; 1 for isotropic inputs)."""
    from nndyn.generated import flows

    declared = tuple(name for name, rule in schema.parameters(nndyn.Setting).items() if rule.flow)
    assert set(flows.PARAMETERS) == {*declared, "kappa", "level_weight"}
    args = nndyn.Setting(K=2, M=2, lr=0.5).ode_args(np.eye(2), np.ones(2))
    assert set(args) == {"T", "v_star", "train_v", "kappa", "kappa_star", *declared}


def test_a_sweep_refuses_a_grid_and_points_together_and_the_euler_method(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text("t_max = 1.0\n[grid]\nlr = [0.1]\n[[points]]\nlr = 0.2\n")
    with pytest.raises(ConfigError, match="give either a \\[grid\\] table or \\[\\[points\\]\\] tables, not both"):
        read_sweep(path)
    path.write_text('t_max = 1.0\n[options]\nmethod = "euler"\n')
    with pytest.raises(ConfigError, match="method must be 'adaptive' in a sweep"):
        read_sweep(path)


@pytest.mark.parametrize("extra, message", [
    ("lr_v = 0.3\n", "lr_v is given but the second layer does not train"),
    ("init_scale_v = 0.3\n", "init_scale_v is given but the second layer does not train"),
    ('method = "euler"\n[teachers]\ncount = 2\n[[phases]]\nteacher = 0\nt = 2\n',
     "method = 'euler' is not available for a protocol"),
    ("[teachers]\ncount = 2\n[[phases]]\nteacher = 0\nt = 2\nanneal = 1e-310\n", "anneal must be"),
])
def test_settings_the_model_would_ignore_are_refused(tmp_path, extra, message):
    from nndyn.app.config import ConfigError, read_config

    (tmp_path / "c.toml").write_text('name = "c"\nN = 100\nK = 2\nM = 2\nlr = 0.5\n' + extra)
    with pytest.raises(ConfigError) as info:
        read_config(tmp_path / "c.toml")
    assert any(message in problem for problem in info.value.problems), info.value.problems
