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
  `integrate_protocol` (a `ContinualTrajectory`): continual learning, several
  teachers of controlled similarity trained on in phases, ODE beside SGD;
- `fixed_point` (a `FixedPoint`), `learning_rate_threshold`: fixed points of
  the flows, their eigenvalues and stability, and η_max; from a `SymmetricState`, those of
  Saad & Solla's symmetric reduction for any K (`nndyn.core.symmetric` integrates it);
- `sweep`, `grid`, `Sweep`, `run_sweep`, `read_sweep`: ODEs over
  grids of settings, sharded and resumable;
- `load_run`, `load_sweep` (`PanelData`, `SweepPoint`),
  `sweep_dataframe`, and `Trajectory.to_dataframe()`/`to_xarray()`: results read back from
  their folders as objects and tidy tables (pandas, xarray: optional).

The packages show the layers: `nndyn.core` (everything above but sweeps), `nndyn.sweeps`,
`nndyn.app` (the `nndyn` command, run configs, run folders, figures), and the derivation's
`nndyn.derive` → ``nndyn.templates`` → `nndyn.generated`. Parameters are declared
once (`nndyn.core.schema`); the conventions are in docs/conventions.md.

float64 is switched on at import (``jax_enable_x64``): the ODE path is float64 throughout.

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

import os

os.environ.setdefault("EQX_ON_ERROR", "nan")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from nndyn.core import cache  # noqa: E402

cache.enable_compilation_cache()

from nndyn.app.config import read_sweep  # noqa: E402
from nndyn.app.results import PanelData, SweepPoint, load_run, load_sweep, sweep_dataframe  # noqa: E402
from nndyn.core.compare import Agreement, Comparison, agreement, compare, verdict  # noqa: E402
from nndyn.core.continual import ContinualTrajectory, Phase, Protocol, Teachers, integrate_protocol, simulate_protocol  # noqa: E402
from nndyn.core.fixed_points import FixedPoint, fixed_point, learning_rate_threshold  # noqa: E402
from nndyn.core.integrate import DivergenceError, ODEOptions, Solution, Status, integrate, solve  # noqa: E402
from nndyn.core.setting import Setting  # noqa: E402
from nndyn.core.simulate import Simulation, simulate  # noqa: E402
from nndyn.core.state import OrderParameters  # noqa: E402
from nndyn.core.symmetric import SymmetricState  # noqa: E402
from nndyn.core.trajectory import Trajectory  # noqa: E402
from nndyn.sweeps import Sweep, grid, run_sweep, sweep  # noqa: E402

__all__ = [
    "Agreement",
    "Comparison",
    "ContinualTrajectory",
    "DivergenceError",
    "Phase",
    "Protocol",
    "Teachers",
    "integrate_protocol",
    "simulate_protocol",
    "FixedPoint",
    "ODEOptions",
    "OrderParameters",
    "Setting",
    "Simulation",
    "Solution",
    "Status",
    "Sweep",
    "SymmetricState",
    "Trajectory",
    "agreement",
    "compare",
    "fixed_point",
    "grid",
    "integrate",
    "learning_rate_threshold",
    "load_run",
    "load_sweep",
    "PanelData",
    "SweepPoint",
    "sweep_dataframe",
    "read_sweep",
    "run_sweep",
    "simulate",
    "solve",
    "sweep",
    "verdict",
]
