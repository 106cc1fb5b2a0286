"""`zoomq console`: the argparse side (wired into zoomq/cli.py's SUBCOMMANDS as "console").

Importing this module needs neither Starlette nor uvicorn: without the `console` extra the
command says how to install it and exits 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from typing import Any

EXIT_USAGE = 2
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "console",
        help="a web console: browse, edit and watch znodes; the ensemble's roles and live throughput",
        description="Serve a small web console for a zoomq ensemble (needs the 'console' extra: "
        "pip install 'zoomq[console]'). It is a zoomq client like any other: ACLs apply with the "
        "credentials given here (--auth) and those a browser session adds through its login form. "
        "Bound to 127.0.0.1 by default.",
    )
    p.add_argument("--hosts", required=True, metavar="H", help="the ensemble: host:port[,host:port...][/chroot]")
    p.add_argument("--port", type=int, default=8080, metavar="N", help="HTTP port (default 8080)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to bind (default 127.0.0.1; the console has no TLS: keep it on loopback or behind a TLS proxy)",
    )
    p.add_argument(
        "--auth",
        action="append",
        metavar="SCHEME:CREDENTIAL",
        help="credentials every browser session's client starts with, e.g. digest:user:secret (repeatable)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept requests whose Host header names NAME (e.g. the name a proxy uses; repeatable)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=900.0,
        metavar="S",
        help="close a browser session's zoomq client after S seconds without requests (default 900)",
    )
    p.add_argument(
        "--session-timeout", type=float, default=10.0, metavar="S", help="zoomq session timeout (default 10)"
    )
    p.add_argument(
        "--connect-timeout", type=float, default=15.0, metavar="S", help="seconds to wait to connect (default 15)"
    )
    p.add_argument(
        "--curve-server-key",
        action="append",
        metavar="KEY",
        help="the nodes' CURVE public key (z85 or a .key file), or HOST:PORT=KEY per node (repeatable)",
    )
    p.add_argument("--curve-secret-key", metavar="FILE", help="this client's CURVE key pair (.key_secret file)")
    p.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        metavar="L",
        help="uvicorn's log level (default warning)",
    )
    p.set_defaults(run=run)


def curve_server_keys(values: list[str] | None) -> Any:
    """--curve-server-key values -> what zoomq.Client takes: one key, or {"host:port": key}."""
    if not values:
        return None
    per_host = {}
    single = None
    for value in values:
        left, sep, right = value.partition("=")
        if sep and ":" in left and left.rsplit(":", 1)[-1].isdigit():
            per_host[left] = right
        elif single is None:
            single = value
        else:
            raise ValueError("give one --curve-server-key for every node, or HOST:PORT=KEY per node")
    if per_host and single is not None:
        per_host["*"] = single
    return per_host or single


def allowed_names(bind: str, extra: list[str]) -> list[str]:
    """The Host names the console answers to: the loopback names when bound to loopback, the
    bound address and this machine's names when bound elsewhere, and --allow-host."""
    names = list(LOOPBACK_NAMES)
    if bind not in ("127.0.0.1", "localhost", "::1"):
        if bind in ("0.0.0.0", "::", ""):
            names += [socket.gethostname(), socket.getfqdn()]
        else:
            names.append(f"[{bind}]" if _is_ipv6(bind) else bind)
    return names + list(extra)


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def _is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from zoomq.console import MissingExtraError, require_extra

    try:
        require_extra()
    except MissingExtraError as exc:
        print(f"zoomq console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from zoomq.cli import parse_auth, port_problem

    try:
        auth = parse_auth(args.auth)
        server_keys = curve_server_keys(args.curve_server_key)
    except ValueError as exc:
        print(f"zoomq console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if (server_keys is None) != (args.curve_secret_key is None):
        print("zoomq console: CURVE needs both --curve-server-key and --curve-secret-key", file=sys.stderr)
        return EXIT_USAGE
    problem = port_problem(args.host, args.port)
    if problem is not None:
        print(f"zoomq console: cannot serve on {args.host}:{args.port}: {problem}", file=sys.stderr)
        return 1

    import uvicorn

    from zoomq.console.app import ConsoleConfig, create_app
    from zoomq.console.monitor import parse_hosts

    try:
        parse_hosts(args.hosts)
    except ValueError as exc:
        print(f"zoomq console: bad --hosts: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = ConsoleConfig(
        hosts=args.hosts,
        auth=auth,
        curve_server_key=server_keys,
        curve_secret_key=args.curve_secret_key,
        allowed_hosts=allowed_names(args.host, args.allow_host),
        idle_s=args.idle_timeout,
        session_timeout=args.session_timeout,
        connect_timeout=args.connect_timeout,
    )
    try:
        app = create_app(config, port=args.port)
    except Exception as exc:  # noqa: BLE001 - bad keys and the like, said plainly
        print(f"zoomq console: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    shown = f"[{args.host}]" if _is_ipv6(args.host) else args.host
    print(
        f"zoomq console on http://{shown}:{args.port}/ for {args.hosts} (Ctrl-C stops it)", file=sys.stderr, flush=True
    )
    if not _is_loopback(args.host):
        print(
            "zoomq console: warning: bound beyond loopback without TLS; anyone who reaches this port can use "
            "the credentials given with --auth",
            file=sys.stderr,
        )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=3,
            server_header=False,
        )
    )
    server.run()
    return 0
