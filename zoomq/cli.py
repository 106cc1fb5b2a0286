"""The `zoomq` command line: `zoomq server`, `zoomq shell`, and room for more subcommands.

Each subcommand is a pair `_add_<name>(subparsers)` / `_run_<name>(args) -> int` registered in
`SUBCOMMANDS`; later ones (`ensemble`, `admin`, `keys`, `bench`, `demo`) are added the same way. The
command lines below are a contract with users and scripts: only ever add to them.

Exit codes: 0 ok; 1 runtime failure (port in use, node gave up, shell command failed);
2 usage or configuration error; 130 interrupted before the node started.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoomq.protocol import Reconfig

EXIT_USAGE = 2
LOG_LEVELS = ("debug", "info", "warning", "error")


def _add_server(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "server",
        help="run one zoomq node (supervisor + actors) until SIGINT/SIGTERM",
        description="Run one zoomq node. Flags override the config file; without a file, a standalone "
        "node on 127.0.0.1:2181 with its data in ./zoomq-data.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML config file (fields of runtime.config.NodeConfig)")
    p.add_argument("--port", type=int, metavar="N", help="client port (default 2181)")
    p.add_argument(
        "--zk-port",
        type=int,
        metavar="N",
        help="also speak ZooKeeper's own protocol on this port (kazoo, zkCli.sh, ...)",
    )
    p.add_argument(
        "--zk-secure-port",
        type=int,
        metavar="N",
        help="ZooKeeper's protocol inside TLS on this port (needs zk_tls_cert / zk_tls_key in the config)",
    )
    p.add_argument(
        "--metrics-port", type=int, metavar="N", help="serve Prometheus' /metrics on this port (off without)"
    )
    p.add_argument(
        "--admin-port",
        type=int,
        metavar="N",
        help="serve ZooKeeper's AdminServer JSON (/commands) on this port (off without)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="data directory (default ./zoomq-data)")
    p.add_argument("--host", metavar="H", help="client address to bind (default 127.0.0.1)")
    p.add_argument("--sid", type=int, metavar="N", help="this node's server id (myid)")
    p.add_argument("--tick-ms", type=int, metavar="N", help="tick in milliseconds (default 2000)")
    p.add_argument("--log-level", choices=LOG_LEVELS, metavar="L", help="|".join(LOG_LEVELS))
    p.set_defaults(run=_run_server)


def _run_server(args: argparse.Namespace) -> int:
    from runtime.config import ConfigError, load
    from runtime.supervisor import Supervisor

    try:
        cfg = load(
            args.config,
            client_port=args.port,
            zk_port=args.zk_port,
            zk_secure_port=args.zk_secure_port,
            metrics_port=args.metrics_port,
            admin_port=args.admin_port,
            data_dir=args.data_dir,
            client_host=args.host,
            sid=args.sid,
            tick_ms=args.tick_ms,
            log_level=args.log_level,
        )
    except ConfigError as exc:
        print(f"zoomq server: {exc}", file=sys.stderr)
        return EXIT_USAGE
    where = f"{cfg.client_host}:{cfg.client_port}"
    for port in (cfg.client_port, cfg.zk_port, cfg.zk_secure_port):
        problem = port_problem(cfg.client_host, port) if port else None
        if problem is not None:
            print(f"zoomq server: cannot serve on {cfg.client_host}:{port}: {problem}", file=sys.stderr)
            return 1
    if cfg.zk_port:
        where += f", ZooKeeper protocol on {cfg.client_host}:{cfg.zk_port}"
    if cfg.zk_secure_port:
        where += f", ZooKeeper protocol with TLS on {cfg.client_host}:{cfg.zk_secure_port}"
    data_dir = Path(cfg.data_dir).resolve()
    print(f"zoomq node serving on {where} (data in {data_dir})", file=sys.stderr, flush=True)
    supervisor = Supervisor(cfg)
    code = supervisor.run()
    if code != 0:
        reason = supervisor.exit_reason or "the supervisor failed"
        print(f"zoomq server: node stopped with exit code {code}: {reason} (details in the log above)", file=sys.stderr)
    return code


def port_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be bound for listening right now, or None.

    SO_REUSEADDR as ZeroMQ sets it, so that connections in TIME_WAIT do not count.
    """
    bind_host = "0.0.0.0" if host in ("*", "") else host
    try:
        infos = socket.getaddrinfo(bind_host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r}: {exc.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return f"{exc.strerror or exc} (is another server using port {port}?)"
    return None


def _add_shell(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "shell",
        help="zkCli-like shell: ls, get, set, create, delete, stat, ...",
        description="Interactive shell on a zoomq ensemble, or one-shot with -c (commands separated by ';').",
    )
    p.add_argument("hosts", nargs="?", default="127.0.0.1:2181", metavar="HOST:PORT", help="host:port[,host:port...]")
    p.add_argument("-c", "--command", metavar="CMD", help='run CMD (e.g. "create /a x; get /a") and exit')
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="session timeout in seconds")
    p.add_argument("--connect-timeout", type=float, default=15.0, metavar="S", help="seconds to wait to connect")
    _add_curve_flags(p)
    p.set_defaults(run=_run_shell)


def _add_curve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--curve-server-key", metavar="KEY", help="the node's CURVE public key (z85 or a .key file)")
    p.add_argument("--curve-secret-key", metavar="FILE", help="this client's CURVE key pair (.key_secret file)")


def _run_shell(args: argparse.Namespace) -> int:
    from zoomq import shell

    return shell.main(
        args.hosts,
        args.command,
        timeout=args.timeout,
        connect_timeout=args.connect_timeout,
        curve_server_key=args.curve_server_key,
        curve_secret_key=args.curve_secret_key,
    )


def _add_reconfig(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconfig",
        help="change the ensemble's membership (ZooKeeper's reconfig): add or remove servers, or give them all",
        description="Dynamic reconfiguration, as zkCli's reconfig: --add and/or --remove (incremental), or --members "
        "(the whole new membership). Prints the new /zookeeper/config. Needs the super user, or WRITE on "
        "/zookeeper/config (--auth). A server spec: server.<id>=<host>:<quorum port>:<election port>"
        "[:participant|observer];[<client host>:]<client port>.",
    )
    p.add_argument("hosts", metavar="HOST:PORT", help="host:port[,host:port...] of the ensemble")
    p.add_argument("--add", action="append", metavar="SPEC", help="server spec(s) to add, comma-separated (repeatable)")
    p.add_argument(
        "--remove", action="append", metavar="IDS", help="server id(s) to remove, comma-separated (repeatable)"
    )
    p.add_argument(
        "--members", metavar="SPECS", help="the whole new membership, comma-separated specs (not with --add / --remove)"
    )
    p.add_argument(
        "--from-config",
        metavar="VERSION",
        help="only if the config is still this version (hex, as the version= line of /zookeeper/config shows it)",
    )
    p.add_argument(
        "--auth",
        action="append",
        metavar="SCHEME:CREDENTIAL",
        help="authenticate the session first, e.g. digest:super:secret (repeatable)",
    )
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="session timeout in seconds")
    p.add_argument("--connect-timeout", type=float, default=15.0, metavar="S", help="seconds to wait to connect")
    _add_curve_flags(p)
    p.set_defaults(run=_run_reconfig)


def parse_auth(values: list[str] | None) -> list[tuple[str, str]]:
    """`--auth SCHEME:CREDENTIAL` values -> the client's auth_data: `digest:super:secret` is
    ("digest", "super:secret"). ValueError for one without a scheme."""
    pairs = []
    for value in values or ():
        scheme, sep, credential = value.partition(":")
        if not scheme or not sep:
            raise ValueError(f"--auth expects SCHEME:CREDENTIAL (e.g. digest:user:password), got {value!r}")
        pairs.append((scheme, credential))
    return pairs


def reconfig_request(args: argparse.Namespace) -> tuple[Reconfig, list[tuple[str, str]]]:
    """The parsed `zoomq reconfig` flags -> (the protocol.Reconfig to make, its xid still 0; the
    auth_data). ValueError (zoomq.shell.ShellUsageError is one) when they do not make a reconfig."""
    from zoomq.shell import reconfig_message

    request = reconfig_message(add=args.add, remove=args.remove, members=args.members, version=args.from_config)
    return request, parse_auth(args.auth)


def _run_reconfig(args: argparse.Namespace) -> int:
    from zoomq import Client
    from zoomq.shell import format_data, format_error

    try:
        request, auth = reconfig_request(args)
    except ValueError as exc:
        print(f"zoomq reconfig: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        client = Client(
            hosts=args.hosts,
            timeout=args.timeout,
            auth_data=auth,
            curve_server_key=args.curve_server_key,
            curve_secret_key=args.curve_secret_key,
        )
    except Exception as exc:  # noqa: BLE001 - bad hosts or keys: said plainly
        print(f"zoomq reconfig: {format_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        try:
            client.start(timeout=args.connect_timeout)
        except Exception as exc:  # noqa: BLE001
            print(f"zoomq reconfig: cannot connect to {args.hosts}: {format_error(exc)}", file=sys.stderr)
            return 1
        try:
            data, _stat = client.reconfig(request.joining, request.leaving, request.new_members, request.from_config)
        except Exception as exc:  # noqa: BLE001 - reported by its kazoo name, not a traceback
            print(f"zoomq reconfig: {format_error(exc)}", file=sys.stderr)
            return 1
        print(format_data(data))
        return 0
    finally:
        with contextlib.suppress(Exception):
            client.stop()
        with contextlib.suppress(Exception):
            client.close()


def _add_ensemble(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble",
        help="run or inspect an ensemble on this machine",
        description="An ensemble of nodes on 127.0.0.1, each under its own supervisor.",
    )
    ens = p.add_subparsers(dest="ensemble_command", metavar="up|status")
    up = ens.add_parser("up", help="start N nodes and stop them all on Ctrl-C / SIGTERM")
    up.add_argument("-n", type=int, default=3, metavar="N", help="participants (default 3)")
    up.add_argument("--observers", type=int, default=0, metavar="K", help="observers (default 0)")
    up.add_argument(
        "--base-port",
        type=int,
        default=2181,
        metavar="P",
        help="client ports P..P+N+K-1; quorum ports P+707.., election ports P+1707.. (default 2181)",
    )
    up.add_argument("--quorum-base-port", type=int, metavar="Q", help="quorum ports Q..Q+N+K-1 (default P+707)")
    up.add_argument("--election-base-port", type=int, metavar="E", help="election ports E..E+N+K-1 (default P+1707)")
    up.add_argument(
        "--data-dir",
        default="zoomq-ensemble",
        metavar="DIR",
        help="node<id>/ data, configs and logs (default ./zoomq-ensemble)",
    )
    up.add_argument("--tick-ms", type=int, default=2000, metavar="N", help="tick in milliseconds (default 2000)")
    up.add_argument("--log-level", choices=LOG_LEVELS, metavar="L", help="|".join(LOG_LEVELS))
    up.add_argument(
        "--zk-base-port",
        type=int,
        metavar="Z",
        help="ZooKeeper-protocol ports Z..Z+N+K-1 (for kazoo, zkCli.sh); off without",
    )
    up.add_argument(
        "--zk-secure-base-port",
        type=int,
        metavar="S",
        help="ZooKeeper's protocol with TLS on S..S+N+K-1; a test CA and certificates in DIR/tls (client: tls/client.pem)",
    )
    up.add_argument(
        "--curve",
        action="store_true",
        help="CurveZMQ on every port; keys in DIR/keys (client key: keys/clients/client.key_secret)",
    )
    up.add_argument(
        "--read-only-mode",
        action="store_true",
        help="a node cut off from the quorum serves reads to read-only clients (ZooKeeper's readonlymode.enabled)",
    )
    up.set_defaults(run=_run_ensemble_up)
    st = ens.add_parser("status", help="each node's role, ports, pid, epoch, last zxid, sessions, actors")
    st.add_argument("--data-dir", default="zoomq-ensemble", metavar="DIR", help="as given to `up`")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(run=_run_ensemble_status)
    add = ens.add_parser("add", help="add a node to the running ensemble (a reconfig once it follows)")
    add.add_argument(
        "--data-dir", default="zoomq-ensemble", metavar="DIR", help="as given to `up` (which must be running)"
    )
    add.add_argument("--observer", action="store_true", help="add it as an observer (default: a participant)")
    add.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="seconds to wait for it to follow (default 60)"
    )
    add.set_defaults(run=_run_ensemble_add)
    rm = ens.add_parser("remove", help="remove a node from the running ensemble by a reconfig; `up` then stops it")
    rm.add_argument("id", type=int, metavar="ID", help="the server id to remove")
    rm.add_argument(
        "--data-dir", default="zoomq-ensemble", metavar="DIR", help="as given to `up` (which must be running)"
    )
    rm.set_defaults(run=_run_ensemble_remove)
    p.set_defaults(run=lambda args: (p.print_help(sys.stderr), EXIT_USAGE)[1])


def _run_ensemble_up(args: argparse.Namespace) -> int:
    from zoomq import ensemble

    return ensemble.up(
        args.n,
        args.observers,
        args.base_port,
        Path(args.data_dir),
        args.tick_ms,
        args.log_level,
        curve=args.curve,
        zk_base_port=args.zk_base_port,
        zk_secure_base_port=args.zk_secure_base_port,
        quorum_base_port=args.quorum_base_port,
        election_base_port=args.election_base_port,
        read_only_mode=args.read_only_mode,
    )


def _run_ensemble_add(args: argparse.Namespace) -> int:
    from zoomq import ensemble

    return _reconfigure("add", lambda: ensemble.add(Path(args.data_dir), observer=args.observer, timeout=args.timeout))


def _run_ensemble_remove(args: argparse.Namespace) -> int:
    from zoomq import ensemble

    return _reconfigure("remove", lambda: ensemble.remove(Path(args.data_dir), args.id))


def _reconfigure(what: str, action: Callable[[], str]) -> int:
    from zoomq.shell import format_error

    try:
        print(action())
    except Exception as exc:  # noqa: BLE001 - said as one line with its kazoo name, not a traceback
        print(f"zoomq ensemble {what}: {format_error(exc)}", file=sys.stderr)
        return 1
    return 0


def _run_ensemble_status(args: argparse.Namespace) -> int:
    import json

    from zoomq import ensemble

    rows = ensemble.status(Path(args.data_dir))
    if not rows:
        print(f"zoomq ensemble status: no node directories under {args.data_dir}", file=sys.stderr)
        return 1
    print(json.dumps(rows, indent=2) if args.json else ensemble.format_status(rows))
    return 0


def _add_admin(sub: argparse._SubParsersAction) -> None:
    from zoomq.admin import WORDS

    p = sub.add_parser(
        "admin",
        help="ask a node a four-letter word (ruok, srvr, stat, mntr, cons, wchs, conf, ...)",
        description="ZooKeeper's admin commands over the client port: " + ", ".join(WORDS),
    )
    p.add_argument("address", metavar="HOST:PORT")
    p.add_argument("word", metavar="CMD", help="|".join(WORDS))
    p.add_argument("--timeout", type=float, default=5.0, metavar="S")
    _add_curve_flags(p)
    p.set_defaults(run=_run_admin)


def _run_admin(args: argparse.Namespace) -> int:
    from zoomq.admin import AdminError, ask

    host, _, port = args.address.rpartition(":")
    if not host or not port.isdigit():
        print(f"zoomq admin: expected HOST:PORT, got {args.address!r}", file=sys.stderr)
        return EXIT_USAGE
    try:
        text = ask(
            host,
            int(port),
            args.word,
            timeout=args.timeout,
            curve_server_key=args.curve_server_key,
            curve_secret_key=args.curve_secret_key,
        )
    except AdminError as exc:
        print(f"zoomq admin: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _add_keys(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keys",
        help="CurveZMQ key pairs for nodes and clients",
        description="Write CurveZMQ key pairs: NAME.key (public, to hand out) and NAME.key_secret (keep private).",
    )
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION")
    gen = keys.add_parser("generate", help="write key pairs NAME.key / NAME.key_secret into a directory")
    gen.add_argument("names", nargs="+", metavar="NAME", help="one pair per name (e.g. node1 node2 node3 app)")
    gen.add_argument("--dir", default="zoomq-keys", metavar="DIR", help="where to write them (default ./zoomq-keys)")
    gen.set_defaults(run=_run_keys_generate)
    show = keys.add_parser("show", help="print the public key (z85) of a .key or .key_secret file")
    show.add_argument("file", metavar="FILE")
    show.set_defaults(run=_run_keys_show)


def _run_keys_generate(args: argparse.Namespace) -> int:
    from runtime import curve

    for name in args.names:
        if not name or "/" in name or name.startswith("."):
            print(f"zoomq keys: bad name {name!r}", file=sys.stderr)
            return EXIT_USAGE
    for name in args.names:
        public_file, secret_file = curve.generate(args.dir, name)
        print(f"{name}\t{curve.public_key(str(public_file)).decode()}\t{public_file}\t{secret_file}")
    return 0


def _run_keys_show(args: argparse.Namespace) -> int:
    from runtime import curve

    try:
        print(curve.public_key(args.file).decode())
    except curve.CurveError as exc:
        print(f"zoomq keys: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_tls(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tls",
        help="a test CA and certificates for the ZooKeeper-protocol TLS port (zk_secure_port)",
        description="Make a self-signed CA (DIR/ca.pem, reused if present) and, per NAME, NAME.pem / NAME.key "
        "signed by it, for servers and clients alike (a client certificate authenticates as x509:CN=NAME).",
    )
    tls = p.add_subparsers(dest="tls_command", metavar="ACTION")
    gen = tls.add_parser("generate", help="write ca.pem and NAME.pem / NAME.key into a directory")
    gen.add_argument("names", nargs="+", metavar="NAME", help="one certificate per name (e.g. node1 node2 node3 app)")
    gen.add_argument("--dir", default="zoomq-tls", metavar="DIR", help="where to write them (default ./zoomq-tls)")
    gen.add_argument(
        "--host",
        action="append",
        metavar="H",
        help="subjectAltName (host name or IP; repeatable; default 127.0.0.1 and localhost)",
    )
    gen.add_argument("--days", type=int, default=365, metavar="N", help="validity (default 365)")
    gen.set_defaults(run=_run_tls_generate)
    p.set_defaults(run=lambda args: (p.print_help(sys.stderr), EXIT_USAGE)[1])


def _run_tls_generate(args: argparse.Namespace) -> int:
    from zoomq.tlsgen import TlsGenError, generate

    for name in args.names:
        if not name or "/" in name or name.startswith(".") or name == "ca":
            print(f"zoomq tls: bad name {name!r}", file=sys.stderr)
            return EXIT_USAGE
    try:
        paths = generate(Path(args.dir), args.names, args.host or ["127.0.0.1", "localhost"], args.days)
    except TlsGenError as exc:
        print(f"zoomq tls: {exc}", file=sys.stderr)
        return 1
    print(f"CA	{paths['ca']}")
    for name in args.names:
        print(f"{name}	{paths[name]}	{paths[name].with_suffix('.key')}")
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="the benchmark harness (same as python -m bench): run, compare, failover, scale, quick",
        add_help=False,
    )
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from bench.__main__ import main as bench_main

    return bench_main(args.bench_args or ["--help"])


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="demonstrations on a local ensemble: logcollector (same as python -m demo.logcollector)",
        add_help=False,
    )
    p.add_argument("demo_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=_run_demo)


DEMOS = ("logcollector",)


def _run_demo(args: argparse.Namespace) -> int:
    demo_args = list(args.demo_args)
    usage = f"usage: zoomq demo {{{','.join(DEMOS)}}} COMMAND ...   (e.g. zoomq demo logcollector run --help)"
    if demo_args[:1] in (["-h"], ["--help"]):
        print(usage)
        return 0
    if not demo_args or demo_args[0] not in DEMOS:
        print(usage, file=sys.stderr)
        return EXIT_USAGE
    try:
        from demo.logcollector.__main__ import main as demo_main
    except ModuleNotFoundError as exc:
        if exc.name != "demo":
            raise
        # An editable install made before demo/ existed does not map it: it sits next to zoomq/.
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from demo.logcollector.__main__ import main as demo_main
    return demo_main(demo_args[1:], prog=f"zoomq demo {demo_args[0]}")


# name -> how to add it.
SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "server": _add_server,
    "shell": _add_shell,
    "reconfig": _add_reconfig,
    "ensemble": _add_ensemble,
    "admin": _add_admin,
    "keys": _add_keys,
    "tls": _add_tls,
    "bench": _add_bench,
    "demo": _add_demo,
    "console": lambda sub: __import__("zoomq.console.cli", fromlist=["add_parser"]).add_parser(
        sub
    ),  # web console (extra `console`)
    "backup": lambda sub, name="backup": __import__("zoomq.datatools", fromlist=["add"]).add(sub, name),  # data tools
    "restore": lambda sub, name="restore": __import__("zoomq.datatools", fromlist=["add"]).add(sub, name),  # data tools
    "export": lambda sub, name="export": __import__("zoomq.datatools", fromlist=["add"]).add(sub, name),  # data tools
    "import": lambda sub, name="import": __import__("zoomq.datatools", fromlist=["add"]).add(sub, name),  # data tools
    "log": lambda sub, name="log": __import__("zoomq.datatools", fromlist=["add"]).add(sub, name),  # data tools
    "snapshot": lambda sub, name="snapshot": __import__("zoomq.datatools", fromlist=["add"]).add(
        sub, name
    ),  # data tools
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoomq",
        description="zoomq: a replicated coordination service in the spirit of ZooKeeper.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the harness parses its own flags
        return _run_bench(argparse.Namespace(bench_args=argv[1:]))
    if argv[:1] == ["demo"]:  # so do the demos
        return _run_demo(argparse.Namespace(demo_args=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
