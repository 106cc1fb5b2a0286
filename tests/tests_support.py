"""Helpers shared by the integration and fault tests."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

from zoomq.testing import ZoomqServer, wait_for


def kill_actor(node: ZoomqServer, name: str, sig: int = signal.SIGKILL) -> int:
    """Kill one actor of `node` by its PID and wait until the supervisor has started a new one."""
    old = node.actor_pids()[name]
    os.kill(old, sig)
    return wait_for(
        lambda: (pid := node.actor_pids().get(name)) and pid != old and pid,
        timeout=30,
        what=f"{name} restarted",
    )


def background(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `target` on a daemon thread; the returned dict gets its 'result' or 'error'."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def joined(t: threading.Thread, out: dict[str, Any], timeout: float = 20.0) -> Any:
    """Wait (bounded) for a `background` thread; its result, or its exception raised here."""
    t.join(timeout)
    assert not t.is_alive(), "thread did not finish"
    if "error" in out:
        raise out["error"]
    return out.get("result")


class Blocking:
    """Drives a `zoomq.aio` object from synchronous test code: every method runs on the event
    loop's thread, coroutines are awaited there, and the caller gets the result. With it, one test
    body checks both faces of the client (threaded and asyncio)."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(attr, *args, **kwargs)

        return call

    def _run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from zoomq import aio

        async def on_loop() -> Any:
            outcome = func(*args, **kwargs)
            return await outcome if inspect.isawaitable(outcome) else outcome

        value = asyncio.run_coroutine_threadsafe(on_loop(), self._loop).result(60)
        if isinstance(value, aio.AsyncRecipe | aio.TransactionRequest):
            return Blocking(value, self._loop)
        return value

    def __enter__(self) -> Any:
        return self._run(self._target.__aenter__)

    def __exit__(self, *exc: object) -> None:
        self._run(self._target.__aexit__, *exc)


@contextlib.contextmanager
def asyncio_client(hosts: str, **kwargs: Any) -> Iterator[Blocking]:
    """A started `zoomq.aio.Client` on a loop running in its own thread, behind `Blocking`."""
    from zoomq import aio

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    try:
        client = Blocking(asyncio.run_coroutine_threadsafe(_make(aio.Client, hosts, kwargs), loop).result(30), loop)
        client.start()
        try:
            yield client
        finally:
            client.stop()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _make(cls: Any, hosts: str, kwargs: dict[str, Any]) -> Any:
    return cls(hosts, **kwargs)


def node_with_super(tmp_path_factory: Any, name: str, password: str) -> Iterator[ZoomqServer]:
    """A started standalone node whose super user authenticates as `digest super:<password>`
    (for module-scoped fixtures); stopped afterwards."""
    from zoomq.security import make_digest_acl_credential

    server = ZoomqServer(
        data_dir=tmp_path_factory.mktemp(name) / "data", super_digest=make_digest_acl_credential("super", password)
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


class JuteConnection:
    """A bare ZooKeeper-protocol connection (for opcodes kazoo does not send): frames built by
    hand with struct, replies read back as (xid, zxid, err, body bytes). Works against zoomq's
    gateway and Apache ZooKeeper alike."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        import socket

        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.xid = 0
        self.events: list[tuple[int, int, str]] = []  # (type, state, path) of notifications seen
        body = struct.pack(">iqiq", 0, 0, 10_000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        reply = self._frame()
        self.session_id = struct.unpack(">q", reply[8:16])[0]
        assert struct.unpack(">i", reply[4:8])[0] > 0, "session refused"

    @staticmethod
    def string(value: str | None) -> bytes:
        if value is None:
            return struct.pack(">i", -1)
        raw = value.encode()
        return struct.pack(">i", len(raw)) + raw

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by the server")
            out += chunk
        return out

    def _frame(self) -> bytes:
        (length,) = struct.unpack(">i", self._read(4))
        return self._read(length)

    def call(self, opcode: int, body: bytes = b"", xid: int | None = None) -> tuple[int, int, int, bytes]:
        """Send one request; its reply (notifications on the way are kept in `events`)."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        payload = struct.pack(">ii", xid, opcode) + body
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        for _ in range(10_000):
            frame = self._frame()
            rxid, zxid, err = struct.unpack(">iqi", frame[:16])
            if rxid == -1:  # a watch notification: WatcherEvent{type, state, path}
                etype, state, n = struct.unpack(">iii", frame[16:28])
                self.events.append((etype, state, frame[28 : 28 + n].decode()))
                continue
            return rxid, zxid, err, frame[16:]
        raise AssertionError("no reply")

    def close(self) -> None:
        self.sock.close()


def jute_strings(body: bytes, at: int = 0) -> tuple[list[str], int]:
    """A jute vector<ustring> at `at`: (strings, offset after it)."""
    (count,) = struct.unpack(">i", body[at : at + 4])
    at += 4
    out = []
    for _ in range(max(count, 0)):
        (n,) = struct.unpack(">i", body[at : at + 4])
        out.append(body[at + 4 : at + 4 + n].decode())
        at += 4 + n
    return out, at


class Writer:
    """A load for fault tests: one client creating sequential nodes `<parent>/n-` whose data is a
    counter, `depth` requests in flight. It records the counters that were acknowledged (and when),
    and the errors. A failed create is not retried by the Writer (the client already re-sends what
    a dropped connection left unanswered); its counter may or may not be in the tree, which
    `check_writes` allows, but an acknowledged counter must be there exactly once."""

    def __init__(self, client: Any, parent: str = "/w", depth: int = 1) -> None:
        from zoomq.exceptions import KazooException

        self._errors_caught = KazooException
        self.zk = client
        self.parent = parent
        self.depth = depth
        client.ensure_path(parent)
        self.acked: list[int] = []
        self.times: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="writer")
        self.thread.start()

    def _run(self) -> None:
        import time

        counter = 0
        while not self.stop.is_set() and counter < 10_000_000:
            batch = []
            for _ in range(self.depth):
                batch.append((counter, self.zk.create_async(f"{self.parent}/n-", str(counter).encode(), sequence=True)))
                counter += 1
            for value, result in batch:
                try:
                    result.get(timeout=60)
                except self._errors_caught as exc:
                    self.errors.append(type(exc).__name__)
                    self.stop.wait(0.05)
                    continue
                self.acked.append(value)
                self.times.append(time.monotonic())

    def wait_more(self, n: int, timeout: float = 60.0) -> None:
        target = len(self.acked) + n
        wait_for(lambda: len(self.acked) >= target, timeout, f"{n} more acknowledged writes")

    def longest_gap(self) -> float:
        """The longest time without an acknowledgement (what a fault cost the writer)."""
        t = self.times
        return max((b - a for a, b in zip(t, t[1:], strict=False)), default=0.0)

    def finish(self) -> list[int]:
        self.stop.set()
        self.thread.join(90)
        assert not self.thread.is_alive(), "the writer did not stop"
        return list(self.acked)


def check_writes(client: Any, acked: list[int], parent: str = "/w") -> tuple[list[str], list[int]]:
    """Through `client` (synced first): every acknowledged counter is under `parent` exactly once,
    the Writer's counters are in sequence order (other clients write negative values), and no
    counter appears twice (a write applied twice). Returns (names, values) for comparing nodes."""
    client.sync(parent)
    names = sorted(client.get_children(parent))
    values = [int(client.get(f"{parent}/{name}")[0]) for name in names]
    assert len(values) == len(set(values)), "a write was applied twice"
    ours = [v for v in values if v >= 0]
    assert ours == sorted(ours), "sequential nodes out of order"
    missing = set(acked) - set(values)
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:10]}"
    return names, values


def check_every_node(ens: Any, acked: list[int]) -> None:
    """Every running node has every acked value once, in sequence order, and the same data."""
    seen = None
    for node in ens.nodes:
        if not node.running:
            continue
        zk = ens.client(hosts=node.hosts)
        try:
            state = check_writes(zk, acked)
        except AssertionError as exc:
            raise AssertionError(f"{node.hosts}: {exc}") from None
        if seen is None:
            seen = state
        if state != seen:
            only_here, only_there = set(state[1]) - set(seen[1]), set(seen[1]) - set(state[1])
            raise AssertionError(
                f"{node.hosts} differs from another node: {len(state[0])} vs {len(seen[0])} children, "
                f"values only here {sorted(only_here)[:10]}, only there {sorted(only_there)[:10]}"
            )
        zk.stop()


def writer_on(ens: Any, prefer: Any = None) -> Writer:
    """A Writer connected to `prefer` first, able to move to any other node."""
    order = [prefer] if prefer is not None else []
    order += [n for n in ens.nodes if n is not prefer]
    return Writer(ens.client(hosts=",".join(n.hosts for n in order), timeout=15.0, randomize_hosts=prefer is None))
