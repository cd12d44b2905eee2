"""Bad input gets a clear error naming the problem, never a silent NaN."""

import jax.numpy as jnp
import numpy as np
import pytest

import nndyn


def state(K=2, M=2, R=0.1):
    return nndyn.OrderParameters(0.5 * jnp.eye(K), jnp.full((K, M), R), jnp.eye(M), jnp.ones(K), jnp.ones(M))


@pytest.mark.parametrize("changes, message", [
    ({"K": 0}, "K must be an integer >= 1, got 0"),
    ({"M": -1}, "M must be an integer >= 1, got -1"),
    ({"batch": 0}, "batch must be an integer >= 1, got 0"),
    ({"sigma": -0.1}, "sigma must be a finite number >= 0, got -0.1"),
    ({"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
    ({"activation": "tanh"}, "activation: unknown activation 'tanh'"),
])
def test_invalid_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        nndyn.Setting(**{"K": 2, "M": 2, "lr": 0.5, **changes})


def test_non_psd_joint_covariance():
    with pytest.raises(ValueError, match="not positive semi-definite"):
        nndyn.integrate(nndyn.Setting(K=2, M=2, lr=0.5), state(R=2.0), np.linspace(0, 1, 3))


def test_shape_mismatches():
    bad = nndyn.OrderParameters(0.5 * jnp.eye(2), jnp.zeros((3, 2)), jnp.eye(2), jnp.ones(2), jnp.ones(2))
    with pytest.raises(ValueError, match=r"R has shape \(3, 2\); expected \(2, 2\)"):
        bad.validate()
    with pytest.raises(ValueError, match="init has K=2, M=2 but the setting has K=3, M=2"):
        nndyn.integrate(nndyn.Setting(K=3, M=2, lr=0.5), state(), np.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="must share N"):
        nndyn.OrderParameters.from_weights(np.ones((2, 10)), np.ones((2, 11)))


def test_non_finite_state():
    bad = nndyn.OrderParameters(
        jnp.array([[jnp.nan, 0.0], [0.0, 1.0]]), jnp.zeros((2, 2)), jnp.eye(2), jnp.ones(2), jnp.ones(2)
    )
    with pytest.raises(ValueError, match="Q has non-finite entries"):
        bad.validate()


def test_blow_up_is_reported_with_its_time_and_order_parameter():
    """A linear network with η > 2B/K is unstable: ε_g grows like exp((K²η²/B − 2Kη) t)."""
    setting = nndyn.Setting(K=2, M=2, lr=3.0, activation="linear")
    with pytest.raises(
        nndyn.DivergenceError, match=r"diverged at t = [0-9.]+: Q went non-finite or exceeded 1e\+06"
    ) as error:
        nndyn.integrate(setting, state(), np.linspace(0, 100, 11))
    rate = 2**2 * 3.0**2 - 2 * 2 * 3.0  # 24: |Q| reaches 1e6 after roughly log(1e6)/24
    assert 0 < error.value.time < 3 * np.log(1e6) / rate
    assert error.value.parameter == "Q"


def test_euler_needs_a_step_and_times_must_increase():
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    with pytest.raises(ValueError, match="method 'euler' needs a finite step dt > 0"):
        nndyn.integrate(setting, state(), np.linspace(0, 1, 3), method="euler")
    with pytest.raises(ValueError, match="t must be a 1-d increasing array of at least two finite times"):
        nndyn.integrate(setting, state(), np.array([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="method must be one of 'adaptive', 'implicit', 'euler', got 'rk4'"):
        nndyn.integrate(setting, state(), np.linspace(0, 1, 3), method="rk4")


def test_simulation_arguments():
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    with pytest.raises(ValueError, match="N must be an integer >= 1"):
        nndyn.simulate(setting, N=0, t_max=1)
    with pytest.raises(ValueError, match="shorter than one save interval"):
        nndyn.simulate(setting, N=100, t_max=0.001)
    with pytest.raises(ValueError, match=r"W0 has shape \(1, 3, 100\); expected \(1, 2, 100\)"):
        nndyn.simulate(setting, N=100, t_max=1, seeds=1, W0=np.ones((1, 3, 100)))


def test_non_finite_times_and_an_euler_step_longer_than_the_span():
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    with pytest.raises(ValueError, match="at least two finite times"):
        nndyn.integrate(setting, state(), np.array([0.0, 1.0, np.nan, 3.0]))
    with pytest.raises(ValueError, match="longer than the span of t"):
        nndyn.integrate(setting, state(), np.linspace(0, 1, 3), method="euler", dt=2.0)
    with pytest.raises(ValueError, match="t_max must be a finite number > 0, got inf"):
        nndyn.simulate(setting, N=100, t_max=np.inf)


def test_a_diverging_simulation_says_when_and_what():
    """A linear network with η far above 2B/K blows up; the simulator says so instead of
    returning huge numbers."""
    setting = nndyn.Setting(K=2, M=2, lr=8.0, activation="linear")
    with pytest.raises(nndyn.DivergenceError, match=r"the simulation diverged at t = [0-9.]+: Q went non-finite"):
        nndyn.simulate(setting, N=100, t_max=20, seeds=2)


def test_comparing_trajectories_of_different_shapes_is_one_clear_error():
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    a = nndyn.integrate(setting, state(), np.linspace(0, 1, 3))
    b = nndyn.integrate(nndyn.Setting(K=3, M=2, lr=0.5), state(K=3), np.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="different K or M"):
        nndyn.compare(a, b)
    with pytest.raises(ValueError, match="one ODE per seed"):
        nndyn.agreement(a, a)
