"""The symbolic derivation: activations → Gaussian integrals and flows → KernelSpec → module.

SymPy only (no JAX). The stages, each a module:

- `.activations`: the registry of named activations g(x);
- `.gaussian`: closed-form Gaussian expectations (tilting, Stein, conditioning on deltas,
  Price's theorem);
- `.special`: the special functions of step-function closed forms (sign pair and quadruple);
- `.integrals`: I2, J2, I3, I4 on symbolic covariance blocks, with coincidence variants;
- `.quadrature`: the numerical fallback where no closed form exists;
- `.verify`: Price's identity, boundary values and Monte Carlo, before emission;
- `.flows`: the R/Q/v flows and ε_g as terms over those integrals;
- `.printing`: the JAX printer and CSE;
- `.spec`: the printed specs that leave the derivation (kernel module, flow table);
- `.lower`: derive, verify and print into specs; `.hashing`: their input hashes;
- `.render`: Jinja2 rendering; `.paths`: where inputs and outputs live;
- `.generate`: the built-in and user modules, and the check of generated/;
  `.__main__`: the command line.
"""

from .activations import BUILTINS, Activation
from .generate import check, generate, generate_user, write
from .paths import GENERATED_DIR

__all__ = ["BUILTINS", "GENERATED_DIR", "Activation", "check", "generate", "generate_user", "write"]
