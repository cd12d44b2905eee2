"""Integrating the flows of a setting from order parameters (`integrate`): one batched solve
(`nndyn.core.solver`), and the tail near a stable fixed point re-integrated about it."""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from nndyn.core.errors import DivergenceError, Status
from nndyn.core.setting import Setting
from nndyn.core.solver import ORDER_PARAMETERS, ODEOptions, resolve_options, solve_many
from nndyn.core.state import OrderParameters
from nndyn.core.trajectory import Trajectory

#: ε_g below which a run's tail is re-integrated about its fixed point, and from where.
TAIL_TRIGGER, TAIL_START = 1e-7, 1e-4
#: The deviation from the fixed point (largest entry) below which a tail's re-integration
#: stops: ε_g is then ~1e-12, and the flows, sums of O(1) terms each rounded at ~1e-16, soon
#: stop resolving the deviation, which scaled by 1/deviation no step size can control.
TAIL_DEVIATION = 1e-6
#: The re-integrated tail's step budget (a few hundred steps suffice; a tail that needs more is
#: kept as the first solve gave it).
TAIL_MAX_STEPS = 100_000


def integrate(setting: Setting, init: OrderParameters, t: ArrayLike, *, dt: float | None = None,
              **options) -> Trajectory:
    """Integrate the flows of `setting` from `init` and return the trajectory at times `t`.

    **Arguments:**

    - `setting`: the `Setting`.
    - `init`: the `OrderParameters` at t[0]; leading dimensions (e.g. one
      state per seed, from `Trajectory.initial_state()`) are integrated in one vmapped call.
    - `t` (n,): increasing save times, t[0] the start.
    - `dt`: the step of method="euler" (e.g. 1/N for parity with SGD).
    - `options`: fields of `ODEOptions` (method, rtol, atol, max_steps,
      divergence_threshold).

    **Returns:** a `Trajectory`. Raises `DivergenceError` with the time and
    the order parameter when the solution blows up or goes non-finite, never returning NaNs;
    warns (`RuntimeWarning`) where ε_g goes negative, i.e. is round-off there.
    """
    init.validate()
    if (init.K, init.M) != (setting.K, setting.M):
        raise ValueError(
            f"init has K={init.K}, M={init.M} but the setting has K={setting.K}, M={setting.M}"
        )
    init.require_levels(setting.levels if setting.structured else None)
    ts = np.asarray(t, dtype=np.float64)
    if ts.ndim != 1 or ts.size < 2 or not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
        raise ValueError("t must be a 1-d increasing array of at least two finite times")
    options = resolve_options(ODEOptions(**options), ts, dt)
    args = setting.ode_args(init.T_levels if setting.structured else init.T, init.v_star, init.b)
    solution = solve_many(setting, init.as_ode_state(), args, ts, options, dt, leading=init.Q.ndim - 2)
    _raise_if_failed(np.asarray(solution.status), np.asarray(solution.failed_at), np.asarray(solution.bad), options)
    ys, eg = solution.ys, solution.eg
    if (options.method != "euler" and options.refine_tail and not setting.structured
            and np.min(np.asarray(eg)) < TAIL_TRIGGER):
        ys, eg = _refine_tail(setting, init, ts, ys, eg, options)
    _warn_if_unresolved(ts, np.asarray(eg))
    if setting.structured:
        return Trajectory(jax.device_put(ts), eg, jnp.sum(ys["Q"], axis=-3), jnp.sum(ys["R"], axis=-3), ys["v"], init.T,
                          init.v_star, b=init.b, Q_levels=ys["Q"], R_levels=ys["R"], T_levels=init.T_levels)
    return Trajectory(jax.device_put(ts), eg, ys["Q"], ys["R"], ys["v"], init.T, init.v_star, b=init.b)


def _refine_tail(setting: Setting, init: OrderParameters, ts, ys: dict, eg, options: ODEOptions):
    """ys, eg with the convergent tail of each element re-integrated about its fixed point.

    The adaptive controller keeps errors below rtol relative to |Q|, |R|, |v| = O(1), while in the
    tail ε_g = O(δ²) for a deviation δ from the fixed point it approaches: its relative error
    grows like 1/δ (10 % at ε_g = 1e-8, 9× at 1e-10 for K = M = 2). Here, where ε_g falls below
    TAIL_TRIGGER, Newton's method finds the fixed point y* from the last state; if it is stable
    and the run ends within 1e-3 of it, the run is integrated again from where ε_g < TAIL_START
    in w = (y − y*)/s, s the final deviation or TAIL_DEVIATION if larger, with rtol/10 and atol
    rtol/100: the control is then relative to the deviation (tests/test_tail.py holds ε_g to 1e-3
    relative down to 1e-10). That solve stops where the deviation falls below s/2; saves after
    it (ε_g ≲ 1e-12, where the flows are round-off) keep the first solve's values.
    Elements that do not qualify (no stable fixed point nearby, e.g. an overparameterised
    student's manifold of them) are kept as they are.
    """
    from nndyn.core.fixed_points import FixedPointError, fixed_point  # only for runs with a tail

    ys = {name: np.array(value) for name, value in ys.items()}
    eg = np.array(eg)
    tail_options = dataclasses.replace(options, rtol=0.1 * options.rtol, atol=0.01 * options.rtol,
                                       max_steps=TAIL_MAX_STEPS)
    for index in np.ndindex(*eg.shape[:-1]):
        if not np.min(eg[index]) < TAIL_TRIGGER:
            continue
        T, v_star, b = (
            np.asarray(init.T)[index],
            np.asarray(init.v_star)[index],
            None if init.b is None else np.asarray(init.b)[index],
        )
        end = OrderParameters(ys["Q"][index][-1], ys["R"][index][-1], T, ys["v"][index][-1], v_star, b)
        try:
            point = fixed_point(setting, end)
        except (FixedPointError, ValueError):
            continue
        center = {"Q": np.asarray(point.state.Q), "R": np.asarray(point.state.R), "v": np.asarray(point.state.v)}
        first = int(np.argmax(eg[index] < TAIL_START))
        scale = max(TAIL_DEVIATION, *(float(np.max(np.abs(ys[name][index][-1] - center[name]))) for name in center))
        if point.kind != "stable" or not scale < 1e-3:
            continue
        tail = solve_many(setting, {name: ys[name][index][first] for name in ys}, setting.ode_args(T, v_star, b),
                          np.maximum(ts, ts[first]), tail_options, leading=0, center=center, scale=scale)
        if int(tail.status) != Status.ok:
            continue
        done = (np.arange(len(ts)) >= first) & (ts <= float(tail.failed_at))  # saves it re-integrated
        for name in ys:
            ys[name][index][done] = np.asarray(tail.ys[name])[done]
        eg[index][done] = np.asarray(tail.eg)[done]
    return jax.device_put(ys), jax.device_put(eg)  # not jnp.asarray: it compiles a program per shape


def _warn_if_unresolved(ts: np.ndarray, eg: np.ndarray) -> None:
    """A `RuntimeWarning` where ε_g (..., n) goes negative: it is a sum of O(1) terms, and where
    round-off outweighs it (ReLU's tail near perfect learning, whose kinks no re-integration can
    resolve: from ε_g ~ 1e-9 on, docs/api.md) its values are not the dynamics."""
    negative = np.any(eg < 0, axis=tuple(range(eg.ndim - 1)))
    if np.any(negative):
        warnings.warn(f"ε_g goes negative from t = {ts[np.argmax(negative)]:g} (down to {np.min(eg):.1g}): values "
                      f"of that size are below what the solve resolves (its tolerances, and the round-off of the "
                      f"O(1) terms ε_g sums), not the dynamics", RuntimeWarning,
                      stacklevel=3)


def _raise_if_failed(status, failed_at, bad, options: ODEOptions) -> None:
    failed = status != Status.ok
    if not np.any(failed):
        return
    index = np.unravel_index(np.argmax(failed), failed.shape)
    where = f" (element {tuple(int(i) for i in index)})" if failed.ndim else ""
    if status[index] == Status.diverged:
        parameter = ORDER_PARAMETERS[int(np.argmax(bad[index]))]
        reason = f"went non-finite or exceeded {options.divergence_threshold:g} in magnitude{where}"
    else:
        parameter = None
        reason = f"the solver used up its {options.max_steps} steps{where} (raise max_steps, or loosen rtol/atol)"
    raise DivergenceError(float(failed_at[index]), parameter, reason)
