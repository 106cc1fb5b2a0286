"""A userspace TCP proxy for fault injection: delay with jitter, bandwidth limit, stall and reset.

The test kernel has no `tc netem`, so the nemesis harness puts one of these processes (inside a
network namespace) on every TCP link between cluster nodes. Each `--route LISTEN=TARGET` listens on
LISTEN and forwards every accepted connection to TARGET. A line-JSON control socket (a Unix *path*,
so it is reachable from any network namespace) changes how the links to a target host (a "peer",
"*" for all) behave:

    {"op": "set", "peer": "10.77.0.12", "delay_ms": 50, "jitter_ms": 10, "bandwidth_bps": 0, "stall": false}
    {"op": "clear"}    {"op": "reset", "peer": "*"}    {"op": "stats"}

Each chunk read from one side is stamped with a delivery time (read time + delay +- jitter, spaced by
the bandwidth limit, never before the previous chunk of that direction), so order is kept and nothing
is dropped: a stalled or slow direction keeps its bytes queued and stops reading from its source once
QUEUE_CAP bytes wait (backpressure). `control()` is the client the harness uses.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import json
import logging
import os
import random
import signal
import socket
import stat
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import NamedTuple

log = logging.getLogger("nemesis.proxy")

QUEUE_CAP = 4 * 1024 * 1024  # bytes one direction may queue before it stops reading its source
CHUNK = 64 * 1024
BURST_SECONDS = 0.05  # under a bandwidth limit, read at most this much transmission time at once
CONNECT_TIMEOUT = 1.0  # as the nodes' own peer connects (runtime/actor.py PEER_CONNECT_MS): the proxy hides nothing
MAX_REPLY = 1024 * 1024
LINK_FIELDS = {"delay_ms": float, "jitter_ms": float, "bandwidth_bps": float, "stall": bool}


class ProxyError(RuntimeError):
    """The proxy refused a control command, or did not answer it."""


@dataclass(frozen=True)
class Link:
    """How the links to one peer behave."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_bps: float = 0.0  # bytes per second; 0 = unlimited
    stall: bool = False


class Route(NamedTuple):
    listen: tuple[str, int]
    target: tuple[str, int]
    name: str  # the target, "HOST:PORT"
    peer: str  # the target host: what a fault applies to


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_route(text: str) -> Route:
    """`LISTEN_HOST:PORT=TARGET_HOST:PORT` as a Route."""
    listen, sep, target = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected LISTEN_HOST:PORT=TARGET_HOST:PORT, got {text!r}")
    host, port = _address(target)
    return Route(_address(listen), (host, port), f"{host}:{port}", host)


def _setsockopt(writer: asyncio.StreamWriter, level: int, option: int, value: int | bytes) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, value)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a RST (SO_LINGER 0) rather than a FIN."""
    _setsockopt(writer, socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Pipe:
    """One direction of one connection: reads chunks, stamps their delivery time, writes them when due."""

    def __init__(self, proxy: Proxy, route: Route, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        self.proxy, self.route, self.src, self.dst = proxy, route, src, dst
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()  # (due, data); b"" = EOF
        self.queued = 0
        self.last_due = 0.0
        self.wake = asyncio.Event()  # something queued, or the link settings changed
        self.room = asyncio.Event()  # the queue fell back under QUEUE_CAP

    def link(self) -> Link:
        return self.proxy.link(self.route.peer)

    def _chunk_size(self) -> int:
        bps = self.link().bandwidth_bps
        return CHUNK if not bps else max(1, min(CHUNK, int(bps * BURST_SECONDS)))

    def _due(self, now: float, size: int) -> float:
        link = self.link()
        jitter = self.proxy.rng.uniform(-link.jitter_ms, link.jitter_ms) if link.jitter_ms else 0.0
        spacing = size / link.bandwidth_bps if link.bandwidth_bps else 0.0
        self.last_due = max(now + max(0.0, link.delay_ms + jitter) / 1000, self.last_due) + spacing
        return self.last_due

    def flush(self, now: float) -> None:
        """Make everything queued due now, keeping its order (after `clear` or a stall release)."""
        self.queue = collections.deque((now, data) for _, data in self.queue)
        self.last_due = now
        self.wake.set()

    async def read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await self.src.read(self._chunk_size())
            self.queue.append((self._due(loop.time(), len(data)), data))
            self.queued += len(data)
            self.wake.set()
            if not data:
                return
            while self.queued > QUEUE_CAP:
                self.room.clear()
                await self.room.wait()

    async def deliver_loop(self) -> None:
        while True:
            await self._wait_due()
            _, data = self.queue.popleft()
            self.queued -= len(data)
            if self.queued <= QUEUE_CAP:
                self.room.set()
            if not data:
                if self.dst.can_write_eof():
                    self.dst.write_eof()
                return
            self.dst.write(data)
            self.proxy.bytes[self.route.name] += len(data)
            await self.dst.drain()

    async def _wait_due(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.wake.clear()
            timeout: float | None = None
            if self.queue and not self.link().stall:
                timeout = self.queue[0][0] - loop.time()
                if timeout <= 0:
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)


class Connection:
    """An accepted connection and its connection to the target: two pipes, closed together."""

    def __init__(self, proxy: Proxy, route: Route, client: tuple, target: tuple) -> None:
        (client_r, client_w), (target_r, target_w) = client, target
        self.route = route
        self.writers: tuple[asyncio.StreamWriter, ...] = (client_w, target_w)
        self.pipes = (Pipe(proxy, route, client_r, target_w), Pipe(proxy, route, target_r, client_w))
        self.task = asyncio.current_task()

    async def run(self) -> None:
        clean = False
        try:
            async with asyncio.TaskGroup() as group:
                for pipe in self.pipes:
                    group.create_task(pipe.read_loop())
                    group.create_task(pipe.deliver_loop())
            clean = True
        except* OSError as errors:  # a reset or broken pipe on one side: reset both
            log.info("connection to %s failed: %s", self.route.name, errors.exceptions[0])
        finally:
            self.close(abort=not clean)

    def close(self, abort: bool) -> None:
        for writer in self.writers:
            if abort:
                _abort(writer)
            else:
                writer.close()

    def reset(self) -> None:
        self.close(abort=True)
        if self.task is not None:
            self.task.cancel()


class Proxy:
    """The link settings, the live connections, and the control commands that change them."""

    def __init__(self, routes: list[Route], seed: int) -> None:
        self.rng = random.Random(seed)
        self.links: dict[str, Link] = {"*": Link()}
        self.connections: set[Connection] = set()
        self.bytes: dict[str, int] = {route.name: 0 for route in routes}

    def link(self, peer: str) -> Link:
        return self.links.get(peer, self.links["*"])

    def _pipes(self, peer: str) -> Iterator[Pipe]:
        for conn in self.connections:
            if peer in ("*", conn.route.peer):
                yield from conn.pipes

    async def accept(self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _setsockopt(writer, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            target = await asyncio.wait_for(asyncio.open_connection(*route.target), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            log.warning("cannot connect to %s: %s", route.name, exc or "timeout")
            writer.close()
            return
        _setsockopt(target[1], socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(self, route, (reader, writer), target)
        self.connections.add(conn)
        try:
            await conn.run()
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - a bug: log it in one line, keep serving the others
            log.error("connection to %s crashed: %r", route.name, exc)
        finally:
            self.connections.discard(conn)

    async def control_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if line.strip():
                    writer.write(self._reply(line))
                    await writer.drain()
        except (OSError, ValueError) as exc:
            log.warning("control connection failed: %s", exc)
        finally:
            writer.close()

    def _reply(self, line: bytes) -> bytes:
        try:
            reply = self.handle(json.loads(line))
        except (ValueError, TypeError) as exc:
            reply = {"ok": False, "error": str(exc)}
        return json.dumps(reply).encode() + b"\n"

    def handle(self, cmd: object) -> dict:
        if not isinstance(cmd, dict):
            raise TypeError("a command is a JSON object")
        op = cmd.get("op")
        if op == "set":
            self._set(_peer(cmd), _link_changes(cmd))
        elif op == "clear":
            self._clear()
        elif op == "reset":
            return {"ok": True, "reset": self.reset(_peer(cmd))}
        elif op == "stats":
            return {"ok": True, "connections": len(self.connections), "bytes": dict(self.bytes)}
        else:
            raise ValueError(f"unknown op {op!r}")
        return {"ok": True}

    def _set(self, peer: str, changes: dict) -> None:
        stalled = {pipe for pipe in self._pipes(peer) if pipe.link().stall}
        for key in list(self.links) if peer == "*" else [peer]:  # "*" also changes every peer's own setting
            self.links[key] = replace(self.link(key), **changes)
        now = asyncio.get_running_loop().time()
        for pipe in self._pipes(peer):
            if pipe in stalled and not pipe.link().stall:
                pipe.flush(now)
            pipe.wake.set()

    def _clear(self) -> None:
        self.links = {"*": Link()}
        now = asyncio.get_running_loop().time()
        for pipe in self._pipes("*"):
            pipe.flush(now)

    def reset(self, peer: str) -> int:
        doomed = [conn for conn in self.connections if peer in ("*", conn.route.peer)]
        for conn in doomed:
            self.connections.discard(conn)
            conn.reset()
        return len(doomed)


def _peer(cmd: dict) -> str:
    peer = cmd.get("peer")
    if not isinstance(peer, str) or not peer:
        raise ValueError('"peer" must be a host or "*"')
    return peer


def _link_changes(cmd: dict) -> dict:
    changes = {}
    for key, value in cmd.items():
        if key in ("op", "peer"):
            continue
        kind = LINK_FIELDS.get(key)
        if kind is None:
            raise ValueError(f"unknown field {key!r}")
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if (kind is bool and not isinstance(value, bool)) or (kind is float and not (numeric and value >= 0)):
            raise ValueError(f"bad {key}: {value!r}")
        changes[key] = value
    return changes


def _remove_stale_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)


async def serve(control_path: str, routes: list[Route], seed: int) -> None:
    proxy = Proxy(routes, seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    _remove_stale_socket(control_path)
    servers = [await asyncio.start_unix_server(proxy.control_client, path=control_path)]
    try:
        for route in routes:
            servers.append(await asyncio.start_server(functools.partial(proxy.accept, route), *route.listen))
        print("ready", flush=True)
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        proxy.reset("*")
        _remove_stale_socket(control_path)


def control(path: str, command: dict, timeout: float = 5.0) -> dict:
    """Send one command to the proxy whose control socket is `path`; return its reply.

    Raises ProxyError if the proxy answers {"ok": false}, or does not answer (`timeout` applies to each step)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps(command).encode() + b"\n")
            with sock.makefile("rb") as stream:
                reply = json.loads(stream.readline(MAX_REPLY))
    except (OSError, ValueError) as exc:
        raise ProxyError(f"no answer from the proxy at {path}: {exc}") from exc
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        error = reply.get("error") if isinstance(reply, dict) else reply
        raise ProxyError(f"proxy refused {command!r}: {error}")
    return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nemesis.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--control", required=True, help="path of the Unix control socket")
    parser.add_argument("--route", type=parse_route, action="append", required=True, help="LISTEN=TARGET (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the jitter's random.Random")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="nemesis-proxy %(levelname)s %(message)s")
    try:
        asyncio.run(serve(args.control, args.route, args.seed))
    except OSError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
