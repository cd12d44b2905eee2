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
  memory is bounded by the chunked contraction (nndyn.core.blocks.CHUNK_ELEMENTS blocks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nndyn.core import blocks

SECONDS_PER_NORMAL = 3.3e-9
SGD_FLOPS_PER_SECOND = 2e9
SECONDS_PER_I4_BLOCK = 45e-9
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
    blocks_per_evaluation = K * (K + 1) / 2 * (K + M) * (K + M + 1) / 2
    ode_seconds = S * MIN_EVALUATIONS * blocks_per_evaluation * SECONDS_PER_I4_BLOCK
    ode_bytes = 8 * (16 * min(blocks_per_evaluation, blocks.CHUNK_ELEMENTS) + S * K * K * (K + M))
    return Estimate(sgd_seconds + ode_seconds, max(sgd_bytes, ode_bytes))


def machine_memory() -> float:
    """The machine's physical memory in bytes."""
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check(experiments) -> None:
    """Raise ValueError (one line, with the estimate) when the panels of `experiments` would
    need more than MEMORY_SHARE of the machine's memory or more than MAX_SECONDS."""
    costs = [panel_cost(panel) for experiment in experiments for panel in experiment.panels]
    seconds, memory = sum(cost.seconds for cost in costs), max(cost.bytes for cost in costs)
    if memory > MEMORY_SHARE * machine_memory():
        raise ValueError(f"this run needs about {memory / 2**30:.3g} GiB of memory and the machine has "
                         f"{machine_memory() / 2**30:.3g} GiB; reduce K, M, N or seeds, or pass --yes to try anyway")
    if seconds > MAX_SECONDS:
        raise ValueError(f"this run would take about {seconds / 3600:.3g} hours or more (SGD and the ODE's I4 "
                         "term grow with N² t_max and K²(K+M)²); reduce the size, or pass --yes to run it anyway")
