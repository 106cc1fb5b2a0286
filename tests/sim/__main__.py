"""`python -m tests.sim`: run simulated ensembles under random faults, seed after seed.

python -m tests.sim --seeds 1000 --nodes 5           # a soak: seeds 1..1000
python -m tests.sim --seed 4242 --nodes 3            # one seed (what a failure prints to reproduce it)
python -m tests.sim --seeds 500 --reconfigs          # client 1 also reconfigures under the faults
"""

from __future__ import annotations

import argparse
import sys

from tests.sim.runner import run_seeds
from tests.sim.world import SimConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=100, metavar="N", help="run seeds FIRST..FIRST+N-1 (default 100)")
    parser.add_argument("--first", type=int, default=1, metavar="FIRST")
    parser.add_argument("--seed", type=int, metavar="S", help="run this one seed")
    parser.add_argument("--nodes", type=int, default=3, metavar="N", help="participants (3 or 5)")
    parser.add_argument("--observers", type=int, default=0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument(
        "--reconfigs", action="store_true", help="client 1 also reconfigures (participant <-> observer)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=SimConfig.duration_s,
        metavar="S",
        help="virtual seconds of faults and load per seed",
    )
    args = parser.parse_args(argv)
    cfg = SimConfig(
        nodes=args.nodes,
        observers=args.observers,
        clients=args.clients,
        duration_s=args.duration,
        reconfigs=args.reconfigs,
    )
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)
    result = run_seeds(seeds, cfg)
    print(
        f"{result.seeds} seeds, {result.steps} steps, {result.ops} client operations checked, "
        f"{result.seconds:.1f} s ({result.steps_per_second:,.0f} steps/s)"
    )
    if result.failure:
        print(f"FAILED\n{result.failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
