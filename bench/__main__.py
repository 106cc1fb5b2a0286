"""`python -m bench quick ...` (a standalone node or an ensemble) and `python -m bench failover`
(see bench/RESULTS.md).

Later issues add `run` and `compare` (side by side with Apache ZooKeeper); the flags of `quick`
stay as they are.
"""

from __future__ import annotations

import argparse
import sys

from bench import failover, quick


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quick", help="one client process against a fresh standalone node it starts itself")
    quick.add_arguments(q)
    f = sub.add_parser("failover", help="writes-resumed time after SIGKILL of an ensemble's leader")
    failover.add_arguments(f)
    args = parser.parse_args(argv)
    if args.cmd == "quick":
        return quick.run(args)
    if args.cmd == "failover":
        return failover.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
