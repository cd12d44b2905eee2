"""The application: the `nndyn` command (:mod:`.cli`), its config files (:mod:`.config`), the
blog's figures and user runs as experiments (:mod:`.experiments`), run folders (:mod:`.runs`)
and their plots (:mod:`.plots`). Built on :mod:`nndyn.core` and :mod:`nndyn.sweeps`."""
