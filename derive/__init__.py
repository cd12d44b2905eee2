"""The symbolic derivation: activations → Gaussian integrals and flows → KernelSpec → module.

SymPy only (no JAX). The stages, each a module:

- :mod:`.activations`: the registry of named activations g(x);
- :mod:`.gaussian`: closed-form Gaussian expectations (tilting, Stein, conditioning on deltas,
  Price's theorem);
- :mod:`.special`: the special functions of step-function closed forms (sign pair and quadruple);
- :mod:`.integrals`: I2, J2, I3, I4 on symbolic covariance blocks, with coincidence variants;
- :mod:`.quadrature`: the numerical fallback where no closed form exists;
- :mod:`.verify`: Price's identity, boundary values and Monte Carlo, before emission;
- :mod:`.flows`: the R/Q/v flows and ε_g as terms over those integrals;
- :mod:`.printing`: the JAX printer and CSE;
- :mod:`.spec`: the printed specs that leave the derivation (kernel module, flow table);
- :mod:`.lower`: derive, verify and print into specs; :mod:`.hashing`: their input hashes;
- :mod:`.render`: Jinja2 rendering; :mod:`.paths`: where inputs and outputs live;
- :mod:`.generate`: the built-in and user modules, and the check of generated/;
  :mod:`.__main__`: the command line.
"""

from .activations import BUILTINS, Activation
from .generate import check, generate, generate_user, write
from .paths import GENERATED_DIR

__all__ = ["BUILTINS", "GENERATED_DIR", "Activation", "check", "generate", "generate_user", "write"]
