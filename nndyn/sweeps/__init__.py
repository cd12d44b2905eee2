"""Sweeps: ODE integrations over grids of settings, sharded over every JAX device, resumable,
with observables and phase diagrams.

- `.grid`: `Sweep` and `grid` (what a sweep is);
- `.execute`: `run_sweep` and `sweep` (running it, sharded and resumable);
- `.store`: its folder (sweep.json, chunks, results.csv);
- `.observables`: plateau, escape, specialisation of one trajectory;
- `.phase`: phase diagrams of the table.

Reading a sweep from TOML is the app's (`nndyn.read_sweep`).
"""

from nndyn.sweeps.execute import run_sweep, sweep
from nndyn.sweeps.grid import Sweep, grid

__all__ = ["Sweep", "grid", "run_sweep", "sweep"]
