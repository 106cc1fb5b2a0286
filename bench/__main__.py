"""`python -m bench ...`: the benchmark harness.

- `quick`: one client process against a node or an ensemble it starts (zoomq only, its flags
  unchanged).
- `run`: a multi-process load generator against zoomq or Apache ZooKeeper (bench/run.py).
- `compare`: the same workload against both, alternating rounds, medians and ratios
  (bench/compare.py).
- `failover`: writes-resumed time after SIGKILL of the leader, zoomq (bench/failover.py) or
  ZooKeeper (bench/failover_zk.py).
- `scale`: many znodes: memory per node, then recovery time after a restart (bench/scale.py).
- `kazoo-suite`: kazoo's own test suite against a zoomq ensemble and Apache ZooKeeper
  (bench/kazoo_suite.py); the table goes to docs/compatibility.md.
- `nemesis`: Jepsen-style faults (partitions, loss, kills, pauses, clock jumps) on an ensemble in
  network namespaces, with workloads checked at the end (bench/nemesis/).

Figures and their commands are in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys

from bench import compare, failover, failover_zk, kazoo_suite, quick, scale
from bench import run as run_cmd
from bench.nemesis import run as nemesis_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quick", help="one client process against a fresh standalone node it starts itself")
    quick.add_arguments(q)
    r = sub.add_parser("run", help="N client processes x D in flight against zoomq or Apache ZooKeeper")
    run_cmd.add_arguments(r)
    c = sub.add_parser("compare", help="the same workload against zoomq and Apache ZooKeeper, alternating rounds")
    compare.add_arguments(c)
    f = sub.add_parser("failover", help="writes-resumed time after SIGKILL of an ensemble's leader")
    failover.add_arguments(f)
    f.add_argument("--target", choices=("zoomq", "zookeeper"), default="zoomq")
    s = sub.add_parser("scale", help="many znodes: memory per node, recovery time after a restart")
    scale.add_arguments(s)
    n = sub.add_parser(
        "nemesis", help="faults on an ensemble in network namespaces; checks nothing acknowledged is lost"
    )
    nemesis_run.add_arguments(n)
    k = sub.add_parser(
        "kazoo-suite", help="kazoo's own test suite against zoomq and/or Apache ZooKeeper, per-file table"
    )
    kazoo_suite.add_arguments(k)
    args = parser.parse_args(argv)
    if args.cmd == "quick":
        return quick.run(args)
    if args.cmd == "run":
        return run_cmd.run(args)
    if args.cmd == "compare":
        return compare.run(args)
    if args.cmd == "failover":
        return failover_zk.run(args) if args.target == "zookeeper" else failover.run(args)
    if args.cmd == "scale":
        return scale.run(args)
    if args.cmd == "nemesis":
        return nemesis_run.run(args)
    if args.cmd == "kazoo-suite":
        return kazoo_suite.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
