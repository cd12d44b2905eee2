"""nndyn: analytical learning dynamics of teacher–student networks, checked against SGD.

The public API:

- `Setting`: activation, K, M, η, η_v, σ, B, trained second layer or not;
- `OrderParameters`: Q, R, T, v, v* (``from_weights`` measures them);
- `integrate` (options `ODEOptions`): the N → ∞ ODEs from generated kernels, with
  Diffrax; `solve`, its pure, vmappable core (a `Solution` with a `Status`);
- `simulate` (scale `Simulation`): online SGD of a real student at finite N,
  several seeds at once;
- `compare`, `agreement`, `verdict`: errors and alignments between
  simulations and ODEs, a t-test of whole trajectories, and the verdict (the ODE restarted at
  every recorded state of the simulation) that has power at a few seeds;
- `Teachers`, `Phase`, `Protocol`, `simulate_protocol`,
  `integrate_protocol`: continual learning, several teachers of controlled similarity trained
  on in phases, ODE beside SGD (a `Trajectory` whose phases are data; `ContinualTrajectory`,
  its former type, is a deprecated name of it);
- `fixed_point` (a `FixedPoint`), `learning_rate_threshold`: fixed points of
  the flows, their eigenvalues and stability, and η_max; from a `SymmetricState`, those of
  Saad & Solla's symmetric reduction for any K (`nndyn.core.symmetric` integrates it);
- `fluctuations`, `stationary_fluctuations`, `diffusion_matrix` (`Fluctuations`): SGD's
  spread about the ODE at finite N, the linear-noise prediction along a trajectory and at a
  stable fixed point, from the diffusion matrix of one step (`initial_covariance`: random
  students' initial spread), and `spread_verdict`, whether SGD's
  seeds spread so; `sample_paths`, the SDE of SGD at
  finite N beyond the linear noise (through a plateau), and `escape_times`;
- `plateaus`, `plateau_threshold`: the two unspecialised plateaus (identical and distinct
  students), their unstable directions and escape rates, and η_c, above which learning stays
  unspecialised;
- `sweep`, `grid`, `Sweep`, `run_sweep`, `read_sweep`: ODEs over
  grids of settings, sharded and resumable;
- `load_run`, `load_sweep` (`PanelData`, `SweepPoint`),
  `sweep_dataframe`, and `Trajectory.to_dataframe()`/`to_xarray()`: results read back from
  their folders as objects and tidy tables (pandas, xarray: optional).

The packages show the layers: `nndyn.core` (everything above but sweeps), `nndyn.sweeps`,
`nndyn.app` (the `nndyn` command, run configs, run folders, figures), and the derivation's
`nndyn.derive` → ``nndyn.templates`` → `nndyn.generated`. Parameters are declared
once (`nndyn.core.schema`); the conventions are in docs/conventions.md.

Importing `nndyn` is cheap and changes nothing: the names above are imported on first use.
The runtime (`nndyn.core`, imported by any of them) switches float64 on in JAX
(``jax_enable_x64``): the ODE path is float64 throughout. `nndyn.derive` imports no JAX.

Compiled programs are kept in JAX's persistent compilation cache, by default in
``~/.cache/nndyn/jax`` (``$XDG_CACHE_HOME/nndyn/jax`` when set), so a fresh process skips most
compilation, and `integrate`'s traced solves are kept there too (``exported/``, see
`nndyn.core.cache`), so it skips tracing; set ``NNDYN_COMPILATION_CACHE`` to another folder, or
to ``off`` to opt out. A cache folder already configured for JAX is left alone. Programs
containing host callbacks are not cached by JAX, and Equinox's run-time checks inside Diffrax's
solve are host callbacks unless ``EQX_ON_ERROR=nan``; nndyn sets that default before Equinox is
imported (its solves use ``throw=False`` and read Diffrax's result codes, so no check is lost);
set ``EQX_ON_ERROR`` yourself (e.g. ``raise``) to keep Equinox's default.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: Where each public name lives.
_HOMES = {
    "read_sweep": "nndyn.app.config",
    **dict.fromkeys(("PanelData", "SweepPoint", "load_run", "load_sweep", "sweep_dataframe"), "nndyn.app.results"),
    **dict.fromkeys(("Agreement", "Comparison", "agreement", "compare", "verdict"), "nndyn.core.compare"),
    **dict.fromkeys(("ContinualTrajectory", "Phase", "Protocol", "Teachers", "integrate_protocol",
                     "simulate_protocol"), "nndyn.core.continual"),
    **dict.fromkeys(("FixedPoint", "fixed_point", "learning_rate_threshold"), "nndyn.core.fixed_points"),
    "diffusion_matrix": "nndyn.core.diffusion",
    **dict.fromkeys(("Fluctuations", "fluctuations", "initial_covariance", "spread_verdict", "stationary_fluctuations"),
                    "nndyn.core.fluctuations"),
    **dict.fromkeys(("escape_times", "sample_paths"), "nndyn.core.sde"),
    **dict.fromkeys(("DivergenceError", "Status"), "nndyn.core.errors"),
    "integrate": "nndyn.core.integrate",
    **dict.fromkeys(("ODEOptions", "Solution", "solve"), "nndyn.core.solver"),
    **dict.fromkeys(("plateau_threshold", "plateaus"), "nndyn.core.plateaus"),
    "Setting": "nndyn.core.setting",
    **dict.fromkeys(("Simulation", "simulate"), "nndyn.core.simulate"),
    "OrderParameters": "nndyn.core.state",
    "SymmetricState": "nndyn.core.symmetric",
    "Trajectory": "nndyn.core.trajectory",
    **dict.fromkeys(("Sweep", "grid", "run_sweep", "sweep"), "nndyn.sweeps"),
}

#: Former names, kept with a DeprecationWarning (not in __all__).
_DEPRECATED = {"ContinualTrajectory"}

__all__ = [
    "Agreement",
    "Comparison",
    "DivergenceError",
    "FixedPoint",
    "Fluctuations",
    "ODEOptions",
    "OrderParameters",
    "PanelData",
    "Phase",
    "Protocol",
    "Setting",
    "Simulation",
    "Solution",
    "Status",
    "Sweep",
    "SweepPoint",
    "SymmetricState",
    "Teachers",
    "Trajectory",
    "agreement",
    "compare",
    "diffusion_matrix",
    "escape_times",
    "fixed_point",
    "fluctuations",
    "grid",
    "initial_covariance",
    "integrate",
    "integrate_protocol",
    "learning_rate_threshold",
    "load_run",
    "load_sweep",
    "plateau_threshold",
    "plateaus",
    "read_sweep",
    "run_sweep",
    "sample_paths",
    "simulate",
    "simulate_protocol",
    "solve",
    "spread_verdict",
    "stationary_fluctuations",
    "sweep",
    "sweep_dataframe",
    "verdict",
]


def __getattr__(name: str):
    """Import a public name from its module on first use (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'nndyn' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    if name not in _DEPRECATED:  # a deprecated name warns at every use
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


if TYPE_CHECKING:  # for type checkers and editors: the names as if imported here
    from nndyn.app.config import read_sweep
    from nndyn.app.results import PanelData, SweepPoint, load_run, load_sweep, sweep_dataframe
    from nndyn.core.compare import Agreement, Comparison, agreement, compare, verdict
    from nndyn.core.continual import Phase, Protocol, Teachers, integrate_protocol, simulate_protocol
    from nndyn.core.diffusion import diffusion_matrix
    from nndyn.core.errors import DivergenceError, Status
    from nndyn.core.fixed_points import FixedPoint, fixed_point, learning_rate_threshold
    from nndyn.core.fluctuations import (
        Fluctuations,
        fluctuations,
        initial_covariance,
        spread_verdict,
        stationary_fluctuations,
    )
    from nndyn.core.integrate import integrate
    from nndyn.core.plateaus import plateau_threshold, plateaus
    from nndyn.core.sde import escape_times, sample_paths
    from nndyn.core.setting import Setting
    from nndyn.core.simulate import Simulation, simulate
    from nndyn.core.solver import ODEOptions, Solution, solve
    from nndyn.core.state import OrderParameters
    from nndyn.core.symmetric import SymmetricState
    from nndyn.core.trajectory import Trajectory
    from nndyn.sweeps import Sweep, grid, run_sweep, sweep
