"""nndyn: analytical learning dynamics of teacher–student networks, checked against SGD."""

import jax

jax.config.update("jax_enable_x64", True)
