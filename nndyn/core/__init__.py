"""The core: settings and their parameter schema, order parameters and weights, the kernels
(generated closed forms bound to the flow table) and the blocks they are evaluated on, the ODE
integrator, the SGD simulator, trajectories and their comparison. It never imports
`nndyn.sweeps` or `nndyn.app`.

Importing it configures JAX for the runtime, once per process: float64 (``jax_enable_x64``),
the persistent compilation cache (`nndyn.core.cache`), and ``EQX_ON_ERROR=nan`` unless set
(see `nndyn`'s docstring)."""

import os

os.environ.setdefault("EQX_ON_ERROR", "nan")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from nndyn.core import cache  # noqa: E402

cache.enable_compilation_cache()
