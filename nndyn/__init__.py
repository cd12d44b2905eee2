"""nndyn: analytical learning dynamics of teacher–student networks, checked against SGD.

The public API:

- :class:`Setting`: activation, K, M, η, η_v, σ, B, trained second layer or not;
- :class:`OrderParameters`: Q, R, T, v, v* (``from_weights`` measures them);
- :func:`integrate`: the N → ∞ ODEs from generated kernels, with Diffrax;
- :func:`simulate`: online SGD of a real student at finite N, several seeds at once;
- :func:`compare`: ε_g and order-parameter errors and alignments between two trajectories.

float64 is switched on at import (``jax_enable_x64``): the ODE path is float64 throughout.
"""

import jax

jax.config.update("jax_enable_x64", True)

from nndyn.compare import Agreement, Comparison, agreement, compare  # noqa: E402
from nndyn.integrate import DivergenceError, ODEOptions, integrate, solve  # noqa: E402
from nndyn.setting import Setting  # noqa: E402
from nndyn.simulate import simulate  # noqa: E402
from nndyn.state import OrderParameters  # noqa: E402
from nndyn.trajectory import Trajectory  # noqa: E402

__all__ = [
    "Agreement", "Comparison", "DivergenceError", "ODEOptions", "OrderParameters", "Setting", "Trajectory",
    "agreement", "compare", "integrate", "simulate", "solve",
]
