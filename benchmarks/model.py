"""Benchmark 6: what the model's features cost, as ratios to the plain model timed in the same
run: one vector-field evaluation (K = M = 4, two-layer) with output scaling and weight decay,
feedback alignment, and teacher and student activations apart; and an SGD sample (N = 784)
with all of them."""

from __future__ import annotations

import jax
import numpy as np

import nndyn
from benchmarks.timing import per_evaluation, repeat


def _field(setting: nndyn.Setting, evaluations: int, repeats: int):
    """Seconds per vector-field evaluation of `setting` inside one jitted loop."""
    K, M = setting.K, setting.M
    rng = np.random.default_rng(0)
    init = nndyn.OrderParameters.from_weights(rng.normal(size=(K, 60)), rng.normal(size=(M, 60)), v=rng.normal(size=K))
    b = rng.normal(size=K) if setting.feedback == "alignment" else None
    args, y = setting.ode_args(init.T, init.v_star, b), init.as_ode_state()
    return per_evaluation(setting.kernels.rhs, y, args, evaluations, repeats)


def _sgd(setting: nndyn.Setting, t_max: float, repeats: int):
    """Seconds per SGD sample of `setting` at N = 784, one seed."""
    nndyn.simulate(setting, N=784, t_max=1, seeds=1)
    timing = repeat(lambda: jax.block_until_ready(nndyn.simulate(setting, N=784, t_max=t_max, seeds=1).eg), repeats)
    return timing.scaled(1 / (t_max * 784))


def run(toy: bool) -> dict:
    evaluations, repeats, t_max = (20, 2, 2.0) if toy else (2000, 5, 64.0)
    plain = nndyn.Setting(K=4, M=4, lr=0.5, train_second_layer=True)
    variants = {
        "output scaling 1/K and weight decay": plain.replace(
            output_scaling="1/K", weight_decay=0.01, weight_decay_v=0.01
        ),
        "feedback alignment": plain.replace(feedback="alignment"),
        "ReLU student on an erf teacher (against ReLU on ReLU)": plain.replace(
            activation="relu", teacher_activation="erf"
        ),
    }
    base = _field(plain, evaluations, repeats)
    rows = [("plain erf: time per vector-field evaluation", str(base))]
    relu = _field(plain.replace(activation="relu", teacher_activation="relu"), evaluations, repeats)
    for label, setting in variants.items():
        timing = _field(setting, evaluations, repeats)
        reference = relu if "ReLU" in label else base
        rows.append((f"{label}: time per evaluation, ratio", f"{timing}, {timing.median / reference.median:.2f}×"))
    plain_sgd = _sgd(plain, t_max, repeats)
    every = plain.replace(feedback="alignment", output_scaling="1/K", weight_decay=0.01, weight_decay_v=0.01)
    rich_sgd = _sgd(every, t_max, repeats)
    rows.append(("SGD, plain: time per sample", str(plain_sgd)))
    rows.append(
        (
            "SGD, alignment + 1/K + decay: time per sample, ratio",
            f"{rich_sgd}, {rich_sgd.median / plain_sgd.median:.2f}×",
        )
    )
    return {"title": "6. The model's features: cost against the plain model (K = M = 4, two-layer)", "rows": rows}
