"""Running many seeds: the soak command (`python -m tests.sim`) and the tests share this."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from tests.sim.world import Factories, SimConfig, SimFailure, World


@dataclass
class SoakResult:
    seeds: int
    steps: int
    ops: int
    seconds: float
    failure: str | None = None
    failed_seed: int | None = None

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0


def run_seeds(
    seeds: Iterable[int], cfg: SimConfig | None = None, factories: Factories | None = None, setup: object = None
) -> SoakResult:
    """Run each seed until one fails (its report in `failure`)."""
    started = time.perf_counter()
    steps = ops = count = 0
    for seed in seeds:
        world = World(seed, cfg, factories)
        if callable(setup):
            setup(world)
        count += 1
        try:
            world.run()
        except SimFailure as exc:
            return SoakResult(count, steps + world.steps, ops, time.perf_counter() - started, str(exc), seed)
        except Exception as exc:  # a core raised: that is a failure too, with the trace
            return SoakResult(
                count,
                steps + world.steps,
                ops,
                time.perf_counter() - started,
                world.report(f"{type(exc).__name__}: {exc}"),
                seed,
            )
        steps += world.steps
        ops += world.ops_checked
    return SoakResult(count, steps, ops, time.perf_counter() - started)
