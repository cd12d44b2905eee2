"""The simulator's step is the symbolic update the flows are derived from, and its
flow parameters are data: a new learning rate or weight decay compiles nothing new."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import nndyn
from nndyn.core import sgd
from nndyn.derive import activations, flows

PAIRS = (("erf", "erf"), ("relu", "erf"), ("linear", "quadratic"))
OPTIONS = list(itertools.product(PAIRS, ("1", "1/K", "1/sqrt(K)"), ("backprop", "alignment"), (False, True),
                                 (0.0, 0.3), (0.0, 0.4), (1, 3)))


def numpy_activation(name: str):
    """g and g' of a built-in activation, lambdified from its SymPy expression (not the kernels')."""
    expression = activations.get(name).expression
    x = activations.x
    return (sp.lambdify(x, expression, modules=["scipy", "numpy"]),
            sp.lambdify(x, sp.diff(expression, x), modules=["scipy", "numpy"]))


def symbolic_step(setting, W, v, W_star, v_star, b, x, xi):
    """The step of docs/conventions.md evaluated from nndyn.derive.flows with SymPy and NumPy:
    w_i ← w_i + (1/(√N B)) Σ_B F_i x − (λ/N) w_i, v_i ← v_i + (1/(N B)) Σ_B G_i − (λ_v/N) v_i
    (v only when trained), F, G = flows.updates with Δ = Σ_c a_c g_c(u_c) + σ ξ."""
    (g, g_prime), (g_star, _) = numpy_activation(setting.activation), numpy_activation(setting.teacher_activation)
    K, N = W.shape
    B = x.shape[0]
    kappa, kappa_star = setting.kappa, setting.kappa_star
    a = np.concatenate([-kappa * v, kappa_star * v_star])
    e = kappa * (v if b is None else b)
    symbols = {flows.lr: setting.lr, flows.lr_v: setting.lr_v, flows.sigma: setting.sigma, flows.kappa: kappa,
             flows.weight_decay: setting.weight_decay, flows.weight_decay_v: setting.weight_decay_v}
    F_i, G_i = (expression.subs(symbols) for expression in flows.updates(flows.i, flows.c))
    delta_symbol = sp.Symbol("Delta")
    F_i, G_i = (expression.subs(flows.error_signal(flows.c).subs(symbols), delta_symbol) for expression in (F_i, G_i))
    F = sp.lambdify((delta_symbol, flows.e[flows.i], flows.g_prime(flows.i)), F_i)
    G = sp.lambdify((delta_symbol, flows.g(flows.i)), G_i)
    lam, rho = x @ W.T / math.sqrt(N), x @ W_star.T / math.sqrt(N)
    delta = np.concatenate([g(lam), g_star(rho)], axis=1) @ a + setting.sigma * xi  # Σ_c a_c g_c(u_c) + σ ξ
    decay, decay_v = (float(flows.DECAYS[name].subs(symbols)) for name in ("w", "v"))
    F_values = F(delta[:, None], e[None, :], g_prime(lam) * np.ones_like(lam))
    W_new = W + (F_values.T @ x) / (math.sqrt(N) * B) - decay / N * W
    G_values = G(delta[:, None], g(lam)) * np.ones_like(lam)
    v_new = v + G_values.sum(axis=0) / (N * B) - decay_v / N * v if setting.train_second_layer else v
    return W_new, v_new


@pytest.mark.parametrize("pair, scaling, feedback, trained, decay, sigma, batch", OPTIONS)
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_the_simulators_step_is_the_symbolic_update(pair, scaling, feedback, trained, decay, sigma, batch):
    setting = nndyn.Setting(K=3, M=2, lr=0.7, lr_v=0.45, sigma=sigma, batch=batch, train_second_layer=trained,
                            activation=pair[0], teacher_activation=pair[1], output_scaling=scaling,
                            feedback=feedback, weight_decay=decay, weight_decay_v=1.5 * decay)
    rng = np.random.default_rng(hash((pair, scaling, feedback, trained, decay, sigma, batch)) % 2**32)
    N = 40
    W, W_star = rng.normal(size=(3, N)), rng.normal(size=(2, N))
    v, v_star = rng.normal(size=3), rng.normal(size=2)
    b = rng.normal(size=3) if feedback == "alignment" else None
    x, xi = rng.normal(size=(batch, N)), rng.normal(size=batch)
    first = {**sgd.flow_parameters_of(setting), "teacher": 0, "head": 0, "saves": 1, "threshold": -math.inf}
    row = {name: value[0] for name, value in sgd.phase_table(setting, [first], v_star[None]).items()}
    fields, v_new = sgd.sgd_step(setting.kernels, jnp.asarray(np.concatenate([W, W_star])), jnp.asarray(v),
                                 jnp.asarray(x), jnp.asarray(xi), sgd.step_parameters(setting, row), b)
    W_expected, v_expected = symbolic_step(setting, W, v, W_star, v_star, b, x, xi)
    np.testing.assert_allclose(np.asarray(fields[:3]), W_expected, rtol=0, atol=1e-12 * np.max(np.abs(W)))
    np.testing.assert_array_equal(np.asarray(fields[3:]), W_star)
    np.testing.assert_allclose(np.asarray(v_new), v_expected, rtol=0, atol=1e-12 * np.max(np.abs(v)))


def test_a_parameter_missing_from_the_step_is_seen():
    """The comparison above fails when the simulator drops a parameter the symbolic update has
    (here the weight decay, as a hand-written step could)."""
    setting = nndyn.Setting(K=3, M=2, lr=0.7, weight_decay=0.3)
    rng = np.random.default_rng(0)
    W, W_star, v_star = rng.normal(size=(3, 40)), rng.normal(size=(2, 40)), np.ones(2)
    x, xi = rng.normal(size=(1, 40)), rng.normal(size=1)
    row = {name: value[0] for name, value in sgd.phase_table(setting.replace(weight_decay=0.0), [
        {**sgd.flow_parameters_of(setting), "weight_decay": 0.0, "teacher": 0, "head": 0, "saves": 1,
         "threshold": -math.inf}], v_star[None]).items()}
    fields, _ = sgd.sgd_step(setting.kernels, jnp.asarray(np.concatenate([W, W_star])), jnp.ones(3),
                             jnp.asarray(x), jnp.asarray(xi), sgd.step_parameters(setting, row))
    W_expected, _ = symbolic_step(setting, W, np.ones(3), W_star, v_star, None, x, xi)
    assert np.max(np.abs(np.asarray(fields[:3]) - W_expected)) > 1e-3


_EVENTS: list[str] | None = None  # while counting: the tracing and compiling events seen


def _listener(event: str, duration: float, **_) -> None:
    if _EVENTS is not None and event in ("/jax/core/compile/jaxpr_trace_duration",
                                         "/jax/core/compile/backend_compile_duration"):
        _EVENTS.append(event)


def compilations(run) -> int:
    """The programs JAX traces or compiles (a jit cache miss; a persistent-cache hit still
    traces) while `run()` runs."""
    global _EVENTS
    if _listener not in jax._src.monitoring._event_duration_secs_listeners:
        jax.monitoring.register_event_duration_secs_listener(_listener)
    _EVENTS = []
    try:
        run()
        return len(_EVENTS)
    finally:
        _EVENTS = None


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_flow_parameters_are_data_for_simulate_and_integrate():
    """Eight learning rates and weight decays, one after another, compile nothing after the first
    (the flow parameters travel as traced values; only shapes and activations are static)."""
    base = nndyn.Setting(K=2, M=2, lr=0.5, train_second_layer=True)
    settings = [base.replace(lr=0.3 + 0.1 * j, weight_decay=0.01 * j, lr_v=0.2 + 0.05 * j) for j in range(8)]
    init = nndyn.OrderParameters.from_weights(np.eye(2, 20), np.eye(2, 20)[::-1] * 2, v=np.ones(2), v_star=np.ones(2))
    nndyn.simulate(settings[0], N=20, t_max=1, seeds=2)
    nndyn.integrate(settings[0], init, np.linspace(0, 2, 3))
    counts = [compilations(lambda s=s: (nndyn.simulate(s, N=20, t_max=1, seeds=2),
                                        nndyn.integrate(s, init, np.linspace(0, 2, 3)))) for s in settings[1:]]
    assert counts == [0] * 7
    assert compilations(lambda: nndyn.simulate(base.replace(K=3), N=20, t_max=1, seeds=2)) > 0  # a shape does
