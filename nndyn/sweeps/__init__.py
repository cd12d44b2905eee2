"""Sweeps: ODE integrations over grids of settings, sharded over every JAX device, resumable,
with observables and phase diagrams.

- :mod:`.grid`: :class:`Sweep` and :func:`grid` (what a sweep is);
- :mod:`.execute`: :func:`run_sweep` and :func:`sweep` (running it, sharded and resumable);
- :mod:`.store`: its folder (sweep.json, chunks, results.csv);
- :mod:`.observables`: plateau, escape, specialisation of one trajectory;
- :mod:`.phase`: phase diagrams of the table.

Reading a sweep from TOML is the app's (:func:`nndyn.read_sweep`).
"""

from nndyn.sweeps.execute import run_sweep, sweep
from nndyn.sweeps.grid import Sweep, grid

__all__ = ["Sweep", "grid", "run_sweep", "sweep"]
