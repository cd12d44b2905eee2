"""The application: the `nndyn` command (`.cli`), its config files (`.config`), the
blog's figures and user runs as experiments (`.experiments`), run folders (`.runs`)
and their plots (`.plots`). Built on `nndyn.core` and `nndyn.sweeps`."""
