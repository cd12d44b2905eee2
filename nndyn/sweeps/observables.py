"""Summaries of one trajectory for phase diagrams: final error, plateau, escape, specialisation.

Definitions (all on the saved times t_0 < … < t_{n-1} of an ODE solution):

- **Rate**: r_j = |log ε_g(t_{j+1}) − log ε_g(t_j)| / (η (t_{j+1} − t_j)), the decay rate of the
  error per unit of ηt (for small η the dynamics are functions of ηt, so one threshold serves
  every learning rate).
- **Plateau**: the first maximal run of consecutive intervals with r_j < PLATEAU_RATE (and ε_g
  above EG_FLOOR at both ends: below it the analytical ε_g, a difference of O(1) terms, is
  round-off, and a converged run is not on a plateau) that is
  followed by an *escape*: a later time at which ε_g falls below its height / ESCAPE_DROP. Its
  `plateau_start` and `plateau_length` are the times where the run starts and its length, its
  `plateau_height` the geometric mean of ε_g over the run, `escape_time` the first time after it
  with ε_g < height / ESCAPE_DROP. A flat run that lasts to the end without such a drop is
  reported with escaped = False and plateau_length the (censored) length up to t_{n-1}: an
  unescaped plateau and a final floor (σ > 0, K < M) cannot be told apart by ε_g alone. With no
  flat run at all the plateau fields are 0 / NaN.
- **Specialisation** of R at the final time: with the cosine overlaps c_in = |R_in| / √(Q_ii T_nn),
  the mean over teacher units n of (c_(1)n − c_(2)n) / c_(1)n, c_(1) ≥ c_(2) the two largest over
  student units i (c_(2) = 0 when K = 1): 0 on the symmetric plateau, → 1 when each teacher
  unit is learnt by one student unit.
"""

from __future__ import annotations

import numpy as np

#: Largest decay rate of log ε_g per unit ηt that counts as flat.
PLATEAU_RATE = 0.02
#: ε_g below this counts as converged (the round-off of the analytical ε_g is ~1e-10).
EG_FLOOR = 1e-8
#: The factor by which ε_g must fall below the plateau's height to have escaped.
ESCAPE_DROP = 2.0
#: Observables of `summarise`, in table order.
FIELDS = ("final_eg", "plateau_start", "plateau_length", "plateau_height", "escape_time", "escaped",
          "specialisation")


def plateau(t: np.ndarray, eg: np.ndarray, lr: float) -> dict:
    """The plateau fields of the module docstring for one run: t (n,), eg (n,)."""
    log = np.log(np.clip(eg, 1e-300, None))
    flat = (np.abs(np.diff(log)) / (lr * np.diff(t)) < PLATEAU_RATE) & (eg[:-1] > EG_FLOOR) & (eg[1:] > EG_FLOOR)
    none = {"plateau_start": np.nan, "plateau_length": 0.0, "plateau_height": np.nan,
            "escape_time": np.nan, "escaped": False}
    j = 0
    while j < len(flat):
        if not flat[j]:
            j += 1
            continue
        end = j
        while end < len(flat) and flat[end]:
            end += 1
        height = float(np.exp(log[j:end + 1].mean()))
        below = np.flatnonzero(eg[end:] < height / ESCAPE_DROP)
        if below.size:
            return {"plateau_start": float(t[j]), "plateau_length": float(t[end] - t[j]),
                    "plateau_height": height, "escape_time": float(t[end + below[0]]), "escaped": True}
        if end == len(flat):
            return {**none, "plateau_start": float(t[j]), "plateau_length": float(t[end] - t[j]),
                    "plateau_height": height}
        j = end
    return none


def specialisation(Q: np.ndarray, R: np.ndarray, T: np.ndarray) -> float:
    """The specialisation of R (K, M) given Q (K, K) and T (M, M); see the module docstring."""
    cosine = np.abs(R) / np.sqrt(np.outer(np.diag(Q), np.diag(T)))
    ordered = -np.sort(-cosine, axis=0)
    second = ordered[1] if len(ordered) > 1 else np.zeros(ordered.shape[1])
    return float(np.mean((ordered[0] - second) / ordered[0]))


def summarise(t, eg, Q, R, T, lr) -> dict:
    """Every observable of one run: t (n,), eg (n,), final Q (K, K), R (K, M), T (M, M)."""
    return {"final_eg": float(eg[-1]), **plateau(np.asarray(t), np.asarray(eg), lr),
            "specialisation": specialisation(np.asarray(Q), np.asarray(R), np.asarray(T))}
