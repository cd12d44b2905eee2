"""What a run will cost, estimated before it starts: a run that the machine cannot hold, or that
would take hours, is refused with the estimate (the `--yes` flag runs it anyway).

The estimates are rough (a factor of a few) but cheap, from the sizes alone, with constants
measured by benchmarks/ on the reference 2-core machine:

- SGD: each sample draws N float32 normals (3.3 ns each with nndyn.core.normals) and does two
  matrix-vector products over the K + M units (4 (K+M) N flops, at 2 GFLOP/s); memory holds the
  weights of every seed (S (K+M) N doubles, three copies), a block of inputs (256 B N floats)
  and the held-out set (P N doubles).
- ODE: one vector field evaluates the I4 term on K(K+1)/2 · (K+M)(K+M+1)/2 blocks at about
  45 ns each (47 ms at K = M = 32), and an adaptive solve takes at least a few hundred of them;
  the I4 term's memory is bounded by the chunked contraction (nndyn.core.blocks.CHUNK_ELEMENTS
  blocks), the I3 terms' is not: K (K+M)² blocks of BYTES_PER_I3_BLOCK each, which dominate for
  a wide teacher (K = 2, M = 5000: 50 million blocks), once per seed (the seeds' solves are one
  vmapped program).
- analyse: Newton's method from each start, each step a Jacobian of P = K(K+1)/2 + K M (+ K)
  coordinates by forward-mode autodiff (P vector fields), NEWTON_STEPS of them, plus one ODE.
- sweep: each grid point an adaptive solve.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nndyn.core import blocks

SECONDS_PER_NORMAL = 3.3e-9
SGD_FLOPS_PER_SECOND = 2e9
SECONDS_PER_I4_BLOCK = 45e-9
#: Bytes held per block of an unchunked I3 term while a vector field is evaluated (its entries,
#: the closed form's intermediates and the contraction; measured: 107 at K = 2, M = 2000, erf).
BYTES_PER_I3_BLOCK = 128
#: Newton steps a fixed point typically takes (`nndyn analyse` has up to three starts).
NEWTON_STEPS = 10
#: The fewest vector-field evaluations of an adaptive solve (a lower bound: a plateau takes more).
MIN_EVALUATIONS = 300
#: A run estimated to take longer than this is refused without --yes.
MAX_SECONDS = 3600.0
#: The share of the machine's memory a run may be estimated to use without --yes.
MEMORY_SHARE = 0.8


@dataclass(frozen=True)
class Estimate:
    """The estimated cost of a run: `seconds` and `bytes` (the largest at any moment)."""

    seconds: float
    bytes: float


def panel_cost(panel) -> Estimate:
    """The cost of simulating and integrating one `Panel`."""
    setting, simulation = panel.setting, panel.simulation
    K, M, N, S, B = setting.K, setting.M, simulation.N, simulation.seeds, setting.batch
    samples = round(simulation.t_max * N) * B * S
    sgd_seconds = samples * (N * SECONDS_PER_NORMAL + 4 * (K + M) * N / SGD_FLOPS_PER_SECOND)
    sgd_bytes = 8 * (3 * S * (K + M) * N + simulation.held_out * N) + 4 * 256 * B * N
    ode = field_cost(K, M)
    ode_bytes = S * ode.bytes + 8 * S * K * K * (K + M)  # the seeds' solves are vmapped
    return Estimate(sgd_seconds + S * MIN_EVALUATIONS * ode.seconds, max(sgd_bytes, ode_bytes))


def field_cost(K: int, M: int) -> Estimate:
    """One evaluation of the vector field at K students and M teacher units."""
    i4_blocks = K * (K + 1) / 2 * (K + M) * (K + M + 1) / 2
    i3_blocks = K * (K + M) ** 2
    return Estimate(i4_blocks * SECONDS_PER_I4_BLOCK,
                    8 * 16 * min(i4_blocks, blocks.CHUNK_ELEMENTS) + BYTES_PER_I3_BLOCK * i3_blocks + 8 * (K + M) ** 2)


def analysis_cost(panel) -> Estimate:
    """The cost of `nndyn analyse` on a `Panel`: its ODE to t_max and Newton's method (a Jacobian
    of P vector fields per step) from up to three starts."""
    setting = panel.setting
    K, M = setting.K, setting.M
    coordinates = K * (K + 1) // 2 + K * M + (K if setting.train_second_layer else 0)
    field = field_cost(K, M)
    seconds = (MIN_EVALUATIONS + 3 * NEWTON_STEPS * (coordinates + 1)) * field.seconds
    return Estimate(seconds, field.bytes * 2 + 8 * coordinates**2)


def sweep_cost(sweep) -> Estimate:
    """The cost of a `Sweep`: an adaptive solve per grid point."""
    costs = [field_cost(int(point["K"]), int(point["M"])) for point in sweep.points]
    seconds = sum(MIN_EVALUATIONS * cost.seconds for cost in costs)
    return Estimate(seconds, max(cost.bytes for cost in costs) * min(sweep.chunk, len(costs)))


def refuse_if_too_big(cost: Estimate, what: str = "this run") -> None:
    """Raise ValueError (one line, with the estimate) when `cost` needs more than MEMORY_SHARE of
    the machine's memory or more than MAX_SECONDS."""
    if cost.bytes > MEMORY_SHARE * machine_memory():
        raise ValueError(f"{what} needs about {cost.bytes / 2**30:.3g} GiB of memory and the machine has "
                         f"{machine_memory() / 2**30:.3g} GiB; reduce K, M, N or seeds, or pass --yes to try anyway")
    if cost.seconds > MAX_SECONDS:
        raise ValueError(f"{what} would take about {cost.seconds / 3600:.3g} hours or more (SGD and the ODE's I4 "
                         "term grow with N² t_max and K²(K+M)²); reduce the size, or pass --yes to run it anyway")


def machine_memory() -> float:
    """The machine's physical memory in bytes."""
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check(experiments) -> None:
    """Raise ValueError (one line, with the estimate) when the runs of `experiments`
    (`Experiment.runs`) would need more than MEMORY_SHARE of the machine's memory or more than
    MAX_SECONDS."""
    costs = [panel_cost(panel) for experiment in experiments for panel in experiment.runs()]
    refuse_if_too_big(Estimate(sum(cost.seconds for cost in costs), max(cost.bytes for cost in costs)))
