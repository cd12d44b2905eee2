"""Loading the generated kernel module of an activation."""

from __future__ import annotations

import importlib
from types import ModuleType

from nndyn import generated


def load(activation: str) -> ModuleType:
    """The generated module `nndyn.generated.<activation>`; a clear error names the known ones."""
    if activation not in generated.MODULES:
        known = ", ".join(generated.MODULES)
        raise ValueError(
            f"unknown activation {activation!r}: generated kernels exist for {known} "
            "(add one to nndyn.derive.activations and run `python -m nndyn.derive`)"
        )
    return importlib.import_module(f"nndyn.generated.{activation}")
