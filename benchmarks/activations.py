"""Benchmark 9: activations beyond erf. One vector-field evaluation (two-layer) of ReLU (closed
forms with the Plackett orthant rule, whose share is timed apart) at K = M = 4 and 8, and of tanh
and the sigmoid (no closed form: the erf-mixture fallback, derived here into a temporary folder)
and a tanh student on an erf teacher (the mixtures of both) at K = M = 4, as ratios to erf timed
in the same run; one integration of each over t ∈ [0, 100]; and how long `nndyn.derive` takes
for the GELU-like set, each with its pair module against erf (softplus and SiLU by their
smoothed-ReLU mixtures, GELU in closed form), with GELU's vector field as a ratio to erf's, and a softplus student on a
ReLU teacher (derived with its pair module: softplus's smoothed-ReLU mixture summed in ReLU's
closed forms; its field, and the softplus student's on its own teacher, as ratios to erf's); and
a tanh student on a ReLU teacher and a ReLU student on a tanh teacher (ReLU's closed forms with
erf summed over tanh's erf mixture: derived, and their fields as ratios to erf's)."""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import nndyn
from benchmarks.model import _field
from benchmarks.wide import streaming
from nndyn.core.kernels import load
from nndyn.core.special import sign_quadruple
from nndyn.derive.special import PLACKETT_ORDER

#: Activations without a closed form, derived with an erf teacher (their own module and the pair's).
FALLBACK = {"tanh": "tanh(x)", "sigmoid": "1/(1 + exp(-x))"}
#: GELU-like activations whose derivation is timed: name -> expression.
GELU_LIKE = {"softplus": "log(1 + exp(x))", "silu": "x/(1 + exp(-x))", "gelu": "x*(1 + erf(x/sqrt(2)))/2"}
#: Mixed pairs outside the closed forms with a teacher other than erf: GELU-like student -> teacher.
MIXED_WITH = {"softplus": "relu"}
#: Pairs of ReLU with tanh (student, teacher): ReLU's closed forms with erf over tanh's mixture.
RELU_WITH_TANH = (("tanh", "relu"), ("relu", "tanh"))
#: The budget given to the GELU-like derivations (seconds): the target of two minutes.
BUDGET = 120


def _integration(setting: nndyn.Setting) -> tuple[float, float]:
    """(wall seconds, compilation included; final ε_g) of one integration over t ∈ [0, 100]."""
    rng = np.random.default_rng(1)
    start = nndyn.OrderParameters.from_weights(rng.normal(size=(setting.K, 500)) / np.sqrt(500),
                                               rng.normal(size=(setting.M, 500)), v=np.ones(setting.K))
    began = time.perf_counter()
    trajectory = nndyn.integrate(setting, start, np.linspace(0.0, 100.0, 51))
    return time.perf_counter() - began, float(trajectory.eg[-1])


def distinct_sets(K: int, M: int) -> int:
    """Sets of four distinct units with at least two students: the blocks the sign quadruple runs
    on in the folded dQ term (students i < k, units c < d apart from them, one per set of units;
    nndyn.core.blocks.Split)."""
    def choose(n: int, k: int) -> int:
        return 0 if k > n else int(np.prod(range(n - k + 1, n + 1)) // np.prod(range(1, k + 1)))
    return choose(K + M, 4) - choose(M, 4) - K * choose(M, 3)


def _derive(folder: str, name: str, expression: str | None, *options: str) -> tuple[float, int, str]:
    """(seconds, exit code, the last line of its errors) of `python -m nndyn.derive` for a user's
    activation (`expression` None: `name` is a built-in student, and `options` name the user's teacher)."""
    began = time.perf_counter()
    given = () if expression is None else ("--expr", expression)
    command = [sys.executable, "-m", "nndyn.derive", "--name", name, *given, "--out", folder, *options]
    result = subprocess.run(command, capture_output=True, check=False, text=True)
    return time.perf_counter() - began, result.returncode, (result.stderr.strip().splitlines() or [""])[-1]


def run(toy: bool) -> dict:
    evaluations, repeats = (20, 2) if toy else (2000, 5)
    rows = []
    for K in (4,) if toy else (4, 8):
        plain = nndyn.Setting(K=K, M=K, lr=0.5, train_second_layer=True)
        scale = 1 if K == 4 else 10
        base = _field(plain, evaluations, repeats)
        rows.append((f"K = M = {K}, erf: time per vector-field evaluation", str(base)))
        relu = _field(plain.replace(activation="relu", teacher_activation="relu"), evaluations // scale, repeats)
        rows.append((f"K = M = {K}, ReLU: time per evaluation, ratio to erf",
                     f"{relu}, {relu.median / base.median:.1f}×"))
    quadruple, flops, transcendentals = streaming(functools.partial(sign_quadruple, order=PLACKETT_ORDER),
                                                  1 << 10, 2 if toy else 64, repeats)
    share = distinct_sets(4, 4) * quadruple.median
    rows.append((f"ReLU's sign quadruple ({PLACKETT_ORDER}-point Plackett rule): time per block in cache, FLOPs "
                 f"and transcendental calls per block; on the {distinct_sets(4, 4)} sets of distinct units at "
                 "K = M = 4",
                 f"{quadruple}, {flops:.0f}, {transcendentals:.0f}; {share * 1e6:.0f} µs"))
    plain = nndyn.Setting(K=4, M=4, lr=0.5, train_second_layer=True)
    base = _field(plain, evaluations, repeats)
    rows.append(("K = M = 4, erf again (the baseline of the rows below): time per evaluation", str(base)))
    with tempfile.TemporaryDirectory() as folder:
        for name, expression in ({} if toy else FALLBACK).items():  # toy size: deriving them takes minutes
            derived, _, _ = _derive(folder, name, expression, "--teacher-name", "erf")
            path = str(Path(folder) / f"{name}.py")
            module = load(path).module
            setting = plain.replace(activation=path, teacher_activation=path)
            timing = _field(setting, evaluations, repeats)
            rows.append((f"{name} (erf mixture of {len(module.MIXTURE)} terms): time per evaluation, ratio to erf; "
                         "nndyn.derive's time with its pair module with erf",
                         f"{timing}, {timing.median / base.median:.0f}×, {derived:.0f} s"))
            mixed = _field(plain.replace(activation=path, teacher_activation="erf"), evaluations, repeats)
            rows.append((f"a {name} student on an erf teacher (the mixtures of both): time per evaluation, ratio "
                         "to erf",
                         f"{mixed}, {mixed.median / base.median:.0f}×"))
            wall, eg = _integration(setting)
            rows.append((f"{name}, t ∈ [0, 100]: one integration (wall, compilation included), final ε_g",
                         f"{wall:.1f} s, {eg:.4g}"))
        for name, expression in ({} if toy else GELU_LIKE).items():
            outcomes = []
            for teacher in ((), ("--teacher-name", "erf")):
                seconds, code, _ = _derive(folder, name, expression, *teacher, "--budget", str(BUDGET))
                outcomes.append(f"{seconds:.0f} s, " + ("derived" if code == 0 else f"refused at --budget {BUDGET}"
                                                        if code == 2 else f"exit {code}"))
            rows.append((f"{name}, g = {expression}: nndyn.derive's time; with its pair module with erf",
                         "; ".join(outcomes)))
            if name == "gelu" and outcomes[0].endswith("derived"):
                gelu = str(Path(folder) / "gelu.py")
                timing = _field(plain.replace(activation=gelu, teacher_activation=gelu), evaluations, repeats)
                rows.append(("gelu (closed forms, its I4 through nested tilts): time per evaluation, ratio to erf",
                             f"{timing}, {timing.median / base.median:.0f}×"))
        for name, teacher in ({} if toy else MIXED_WITH).items():
            seconds, code, error = _derive(folder, name, GELU_LIKE[name], "--teacher-name", teacher, "--budget",
                                           str(BUDGET))
            outcome = "derived" if code == 0 else f"exit {code}: {error.removeprefix('python -m nndyn.derive: ')}"
            if code == 0:  # n⁴ of ReLU's I4 per block: ~0.1 s per evaluation, so a few
                student = str(Path(folder) / f"{name}.py")
                few = max(2, evaluations // 200)
                mixed = _field(plain.replace(activation=student, teacher_activation=teacher), few, repeats)
                own = _field(plain.replace(activation=student, teacher_activation=student), few, repeats)
                outcome += (f"; {mixed}, {mixed.median / base.median:.0f}×; the {name} student on its own teacher "
                            f"{own}, {own.median / base.median:.0f}×")
            rows.append((f"a {name} student on a {teacher} teacher: nndyn.derive's time with the pair module; time per "
                         "evaluation, ratio to erf", f"{seconds:.0f} s, {outcome}"))
        for student, teacher in () if toy else RELU_WITH_TANH:
            user = ("--teacher-name", "tanh", "--teacher-expr", "tanh(x)")
            seconds, code, error = (_derive(folder, "tanh", "tanh(x)", "--teacher-name", "relu") if student == "tanh"
                                    else _derive(folder, "relu", None, *user))
            outcome = "derived" if code == 0 else f"exit {code}: {error.removeprefix('python -m nndyn.derive: ')}"
            if code == 0:
                names = {"relu": "relu", "tanh": str(Path(folder) / "tanh.py")}
                mixed = _field(plain.replace(activation=names[student], teacher_activation=names[teacher]),
                               max(2, evaluations // 100), repeats)
                outcome += f"; {mixed}, {mixed.median / base.median:.0f}×"
            rows.append((f"a {student} student on a {teacher} teacher (ReLU's closed forms with erf over tanh's "
                         "mixture): nndyn.derive's time with the pair module; time per evaluation, ratio to erf",
                         f"{seconds:.0f} s, {outcome}"))
    if not toy:
        wall, eg = _integration(plain)
        rows.append(("erf, t ∈ [0, 100]: one integration (wall, compilation included), final ε_g",
                     f"{wall:.1f} s, {eg:.4g}"))
    title = "9. Activations beyond erf: ReLU, the fallbacks and mixed pairs against erf (two-layer)"
    return {"title": title, "rows": rows}
