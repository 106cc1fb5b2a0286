"""`python -m demo.logcollector` (also `zoomq demo logcollector`).

run        the whole demo: ensemble, sink, collectors, producers, kills, check, summary
producer   one log source        (started by `run`)
collector  one collector         (started by `run`)
sink       the sink              (started by `run`)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from demo.logcollector.common import parse_duration


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog: str = "python -m demo.logcollector") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A distributed log collector coordinated through zoomq: sources, collectors with an elected "
        "coordinator, collector kills, and a check that every line reached the sink exactly once.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run the whole demo and check the result (exit code 0: nothing lost or duplicated)"
    )
    run.add_argument(
        "--sources", type=int, default=6, metavar="N", help="log sources, one producer process each (default 6)"
    )
    run.add_argument("--collectors", type=int, default=3, metavar="N", help="collector processes (default 3)")
    run.add_argument(
        "--duration",
        type=_duration,
        default=30.0,
        metavar="T",
        help="how long the sources produce, e.g. 30s (default 30s)",
    )
    run.add_argument("--rate", type=float, default=50.0, metavar="R", help="lines per second per source (default 50)")
    run.add_argument(
        "--kill-every",
        type=_duration,
        default=5.0,
        metavar="T",
        help="SIGKILL a collector holding sources this often, and start a replacement; 0: never (default 5s)",
    )
    run.add_argument(
        "--kills", type=int, metavar="N", help="kill at most N collectors (default: as many as the duration allows)"
    )
    run.add_argument(
        "--freeze-every",
        type=_duration,
        default=0.0,
        metavar="T",
        help="SIGSTOP a collector holding sources this often, past its session timeout, then SIGCONT it: "
        "it must stop (default 0: never)",
    )
    run.add_argument(
        "--session-timeout",
        type=_duration,
        default=2.0,
        metavar="T",
        help="collectors' session timeout: how soon a killed collector's sources move (default 2s)",
    )
    run.add_argument(
        "--heartbeat", type=_duration, default=0.5, metavar="T", help="status heartbeat period (default 0.5s)"
    )
    run.add_argument(
        "--drain-timeout",
        type=_duration,
        default=30.0,
        metavar="T",
        help="after the sources are done, wait at most this long for the sink to have everything (default 30s)",
    )
    run.add_argument(
        "--hosts",
        metavar="HOSTS",
        help="use this running ensemble (host:port,...) instead of starting one; its /logcollector tree is replaced",
    )
    run.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="logs, sink output and process logs here (kept); "
        "default: a temporary directory, removed after a successful run",
    )
    run.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    run.add_argument("--json", type=Path, metavar="FILE", help="write the summary as JSON to FILE")
    run.add_argument("--seed", type=int, metavar="N", help="seed for the choice of collectors to kill")

    producer = sub.add_parser("producer", help="one log source (started by run)")
    producer.add_argument("--name", required=True)
    producer.add_argument("--file", type=Path, required=True)
    producer.add_argument("--count", type=int, required=True)
    producer.add_argument("--rate", type=float, required=True)

    collector = sub.add_parser("collector", help="one collector (started by run)")
    collector.add_argument("--hosts", required=True)
    collector.add_argument("--sink", required=True, metavar="ADDRESS", help="tcp://127.0.0.1:PORT")
    collector.add_argument("--session-timeout", type=float, default=2.0, metavar="S")
    collector.add_argument("--heartbeat", type=float, default=0.5, metavar="S")

    sink = sub.add_parser("sink", help="the sink (started by run)")
    sink.add_argument("--dir", type=Path, required=True)
    sink.add_argument("--port", type=int, required=True)
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m demo.logcollector") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "run":
        from demo.logcollector.runner import Options, run

        if args.sources < 1 or args.collectors < 1 or args.rate <= 0 or args.duration <= 0:
            parser.error("--sources, --collectors, --rate and --duration must be positive")
        return run(
            Options(
                sources=args.sources,
                collectors=args.collectors,
                duration=args.duration,
                rate=args.rate,
                kill_every=args.kill_every,
                kills=args.kills,
                freeze_every=args.freeze_every,
                session_timeout=args.session_timeout,
                heartbeat=args.heartbeat,
                drain_timeout=args.drain_timeout,
                hosts=args.hosts,
                workdir=args.workdir,
                keep=args.keep,
                json_path=args.json,
                seed=args.seed,
            )
        )
    if args.command == "producer":
        from demo.logcollector.producer import produce

        return produce(args.name, args.file, args.count, args.rate)
    if args.command == "collector":
        from demo.logcollector.collector import collect

        return collect(args.hosts, args.sink, args.session_timeout, args.heartbeat)
    if args.command == "sink":
        from demo.logcollector.sink import serve

        return serve(args.dir, args.port)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
