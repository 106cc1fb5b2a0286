"""One load-generating client process (`python -m bench.loadgen SPEC_JSON`), started by bench/run.py.

It opens a session with the target's client library (`zoomq.Client`, or kazoo's `KazooClient`
for Apache ZooKeeper: the same method names), prepares its znodes, and reports `ready` to the
harness over ZeroMQ (PUSH to the harness's PULL). The harness then writes one JSON line on its
stdin: `{"start": ns, "end": ns}` in CLOCK_MONOTONIC nanoseconds (one clock for every process of
the machine). The process loads the target at once (warm-up until `start`), counts only what
completes between `start` and `end`, stops issuing at `end`, waits for what is in flight, and
reports: op count, errors by exception kind, its own CPU seconds in the window, and a latency
histogram (bench/hist.py, µs).

Pipelined workloads keep `depth` requests in flight without a thread per request: each reply's
callback (`rawlink`, on the client's I/O or completion thread) records the latency and issues the
next request, so the load is closed-loop and latency is measured from the call of `*_async` to
the moment the client hands the result to the callback.

Workloads: create, set, get, exists, mixed:R (R % get, the rest set), churn (sessions open,
create `depth` sequential-ephemeral znodes, delete them, close), watch (this process is either
the one writer, whose values carry their send time, or a watcher measuring write -> watcher has
read the new value), lock (all processes contend on one Lock: acquisitions and wait time).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import zmq

from bench.hist import Histogram

ROOT = "/bench"
GO_TIMEOUT_S = 300.0  # the harness waits for every process's `ready` well within this
DRAIN_TIMEOUT_S = 60.0  # for the requests in flight at `end`
LOCK_TIMEOUT_S = 30.0


def make_client(target: str, hosts: str, timeout: float, client: str = "native") -> Any:
    """kazoo for ZooKeeper, and for zoomq through its ZooKeeper-protocol port when asked."""
    if target == "zookeeper" or client == "kazoo":
        from kazoo.client import KazooClient

        return KazooClient(hosts=hosts, timeout=timeout)
    from zoomq import Client

    return Client(hosts=hosts, timeout=timeout)


def stop_client(client: Any) -> None:
    try:
        client.stop()
    finally:
        client.close()


def _kind(exc: BaseException | None) -> str:
    return type(exc).__name__ if exc is not None else "None"


class Window:
    """The measurement window, and what completes inside it."""

    def __init__(self, start_ns: int, end_ns: int) -> None:
        self.start_ns, self.end_ns = start_ns, end_ns
        self.hist = Histogram()
        self.by_kind: dict[str, Histogram] = {}  # per operation, when a workload mixes them
        self.ops = 0
        self.errors: dict[str, int] = {}
        self.lock = threading.Lock()

    def done(self, sent_ns: int, now_ns: int, exc: BaseException | None, kind: str | None = None) -> None:
        """One operation finished at `now_ns` (sent at `sent_ns`). Callers hold self.lock."""
        if exc is not None:
            name = _kind(exc)
            self.errors[name] = self.errors.get(name, 0) + 1
            return
        if self.start_ns <= now_ns <= self.end_ns:
            us = (now_ns - sent_ns) // 1000
            self.ops += 1
            self.hist.record(us)
            if kind is not None:
                h = self.by_kind.get(kind)
                if h is None:
                    h = self.by_kind[kind] = Histogram()
                h.record(us)


class Pipeline:
    """Keeps `depth` async requests in flight until the window ends (see the module docstring).

    `issue(seq)` sends request number `seq` and returns (AsyncResult, kind)."""

    def __init__(self, window: Window, depth: int, issue: Callable[[int], tuple[Any, str | None]]) -> None:
        self.w = window
        self.depth = depth
        self.issue = issue
        self.seq = 0
        self.inflight = 0
        self.drained = threading.Event()
        self._tls = threading.local()

    def _launch(self) -> None:
        # A result that is ready at once (a stopped client fails every call on the spot) runs its
        # callback inside rawlink, which would launch again from there: a trampoline keeps such
        # launches in this loop instead of growing the stack.
        tls = self._tls
        if getattr(tls, "active", False):
            tls.pending += 1
            return
        tls.active, tls.pending = True, 1
        try:
            while tls.pending:
                tls.pending -= 1
                self._launch_one()
        finally:
            tls.active = False

    def _launch_one(self) -> None:
        with self.w.lock:
            seq = self.seq
            self.seq += 1
            self.inflight += 1
        sent = time.monotonic_ns()
        try:
            result, kind = self.issue(seq)
        except Exception as exc:  # noqa: BLE001 - refused before it was sent: counted, not fatal
            self._finish(sent, None, exc, None)
            return
        result.rawlink(lambda res, sent=sent, kind=kind: self._finish(sent, res, None, kind))

    def _finish(self, sent: int, result: Any, exc: BaseException | None, kind: str | None) -> None:
        # On the client's I/O / completion thread: never let an exception escape into it.
        try:
            now = time.monotonic_ns()
            if exc is None and result is not None:
                exc = result.exception
            with self.w.lock:
                self.w.done(sent, now, exc, kind)
                self.inflight -= 1
                more = now < self.w.end_ns
                idle = self.inflight == 0
            if more:
                if exc is not None:
                    time.sleep(0.001)  # a failing target: do not spin on errors
                self._launch()
            elif idle:
                self.drained.set()
        except Exception:  # noqa: BLE001
            traceback.print_exc()

    def run(self) -> None:
        for _ in range(self.depth):
            self._launch()
        wait_until(self.w.end_ns)
        if not self.drained.wait(DRAIN_TIMEOUT_S):
            with self.w.lock:
                self.w.errors["DrainTimeout"] = self.w.errors.get("DrainTimeout", 0) + self.inflight


def wait_until(t_ns: int) -> None:
    """Sleep until CLOCK_MONOTONIC reaches `t_ns` (the harness's schedule, not a synchronisation)."""
    while True:
        left = (t_ns - time.monotonic_ns()) / 1e9
        if left <= 0:
            return
        time.sleep(min(left, 0.5))


class CpuWindow(threading.Thread):
    """This process's CPU seconds (all threads) between `start` and `end`."""

    def __init__(self, start_ns: int, end_ns: int) -> None:
        super().__init__(daemon=True)
        self.start_ns, self.end_ns = start_ns, end_ns
        self.cpu_s = 0.0

    def run(self) -> None:
        wait_until(self.start_ns)
        t0 = time.process_time()
        wait_until(self.end_ns)
        self.cpu_s = time.process_time() - t0


# --- workloads ------------------------------------------------------------------------------------


def _ensure(zk: Any, path: str, value: bytes = b"") -> None:
    zk.ensure_path(os.path.dirname(path) or "/")
    if zk.exists(path) is None:
        try:
            zk.create(path, value)
        except Exception as exc:
            if _kind(exc) != "NodeExistsError":
                raise


class Workload:
    """Setup before `ready`, then the load in the window."""

    def __init__(self, spec: dict[str, Any], zk: Any) -> None:
        self.spec, self.zk = spec, zk
        self.id = int(spec["id"])
        self.depth = max(1, int(spec["depth"]))
        self.value = b"x" * int(spec["value_size"])
        self.extra: dict[str, Any] = {}

    def setup(self) -> None: ...

    def run(self, window: Window) -> None:
        raise NotImplementedError


def _then(zk: Any, first: Any, then: Callable[[], Any]) -> Any:
    """An async result for `then()` issued once `first` succeeded (its error otherwise)."""
    out = zk.handler.async_result() if hasattr(zk, "handler") else zk._new_result()

    def copy(result: Any) -> None:
        try:
            out.set(result.get())
        except Exception as exc:  # noqa: BLE001 - handed on as the request's outcome
            out.set_exception(exc)

    def step(result: Any) -> None:
        try:
            result.get()
        except Exception as exc:  # noqa: BLE001
            out.set_exception(exc)
            return
        then().rawlink(copy)

    first.rawlink(step)
    return out


class Pipelined(Workload):
    """create, set, get, exists, get-lin (zoomq's linearizable get), sync-get (sync, then get:
    what ZooKeeper offers for an up-to-date read) and mixed:R."""

    def setup(self) -> None:
        self.key = f"{ROOT}/data/w{self.id}"
        _ensure(self.zk, self.key, self.value)
        self.zk.ensure_path(f"{ROOT}/create")
        name = self.spec["workload"]
        self.read_pct = float(name.split(":", 1)[1]) if name.startswith("mixed") else None

    def run(self, window: Window) -> None:
        zk, key, value, name = self.zk, self.key, self.value, self.spec["workload"]
        prefix = f"{ROOT}/create/w{self.id}-"
        rng = random.Random(self.id)
        issue: Callable[[int], tuple[Any, str | None]]
        if name == "set":

            def issue(seq: int) -> tuple[Any, str | None]:
                return zk.set_async(key, value), None
        elif name == "get":

            def issue(seq: int) -> tuple[Any, str | None]:
                return zk.get_async(key), None
        elif name == "exists":

            def issue(seq: int) -> tuple[Any, str | None]:
                return zk.exists_async(key), None
        elif name == "get-lin":

            def issue(seq: int) -> tuple[Any, str | None]:
                return zk.get_async(key, linearizable=True), None
        elif name == "sync-get":

            def issue(seq: int) -> tuple[Any, str | None]:
                return _then(zk, zk.sync_async(key), lambda: zk.get_async(key)), None
        elif name == "create":

            def issue(seq: int) -> tuple[Any, str | None]:
                return zk.create_async(f"{prefix}{seq}", value), None
        else:
            read_pct = self.read_pct or 0.0

            def issue(seq: int) -> tuple[Any, str | None]:
                # Called by one thread at a time in practice (the client's callback thread, and
                # the main thread for the first `depth`); a race would only perturb the mix.
                if rng.random() * 100.0 < read_pct:
                    return zk.get_async(key), "read"
                return zk.set_async(key, value), "write"

        Pipeline(window, self.depth, issue).run()


class Churn(Workload):
    """Sessions that open, create `depth` sequential-ephemeral znodes, delete them, and close."""

    def setup(self) -> None:
        self.zk.ensure_path(f"{ROOT}/churn")

    def run(self, window: Window) -> None:
        spec = self.spec
        sessions = 0
        opened = Histogram()
        prefix = f"{ROOT}/churn/w{self.id}-"
        for _ in range(10_000_000):
            if time.monotonic_ns() >= window.end_ns:
                break
            t0 = time.monotonic_ns()
            zk = make_client(
                spec["target"], spec["hosts"], float(spec["session_timeout"]), spec.get("client", "native")
            )
            try:
                zk.start(timeout=30)
            except Exception as exc:  # noqa: BLE001 - counted; try again
                with window.lock:
                    window.done(t0, time.monotonic_ns(), exc)
                stop_client(zk)
                continue
            t1 = time.monotonic_ns()
            try:
                creates = [
                    lambda zk=zk: zk.create_async(prefix, self.value, ephemeral=True, sequence=True)
                ] * self.depth
                created = self._batch(window, creates, "create")
                self._batch(window, [(lambda p=p, zk=zk: zk.delete_async(p)) for p in created if p], "delete")
            finally:
                stop_client(zk)
            if window.start_ns <= t1 <= window.end_ns:
                sessions += 1
                opened.record((t1 - t0) // 1000)
        self.extra["sessions"] = sessions
        self.extra["session_open_hist"] = opened.to_dict()  # merged by the harness

    def _batch(self, window: Window, calls: list[Callable[[], Any]], kind: str) -> list[Any]:
        """Issue every call at once (pipelined), then wait for all; returns their values."""
        sent, results = [], []
        for call in calls:
            t = time.monotonic_ns()
            res = call()
            stamp: list[int] = []
            res.rawlink(lambda _r, stamp=stamp: stamp.append(time.monotonic_ns()))
            sent.append((t, res, stamp))
        for t, res, stamp in sent:
            try:
                value, exc = res.get(timeout=60), None
            except Exception as e:  # noqa: BLE001
                value, exc = None, e
            done = stamp[0] if stamp else time.monotonic_ns()
            with window.lock:
                window.done(t, done, exc, kind)
            results.append(value)
        return results


class Watch(Workload):
    """One writer (`spec["role"] == "writer"`) and watchers; see the module docstring."""

    PATH = f"{ROOT}/watch"

    def setup(self) -> None:
        _ensure(self.zk, self.PATH, (0).to_bytes(8, "big") + self.value[8:])
        self.notifications = 0
        self.armed = True
        if self.spec["role"] == "watcher":
            self.window: Window | None = None
            self.zk.get(self.PATH, watch=self._on_event)

    def _on_event(self, event: Any) -> None:
        # Watch callbacks run on the client's event thread; re-arm with a read of the new value.
        if not self.armed:
            return
        try:
            sent = time.monotonic_ns()
            self.zk.get_async(self.PATH, watch=self._on_event).rawlink(lambda res, sent=sent: self._on_data(res, sent))
        except Exception:  # noqa: BLE001
            traceback.print_exc()

    def _on_data(self, res: Any, sent: int) -> None:
        try:
            now = time.monotonic_ns()
            w = self.window
            if w is None:
                return
            exc = res.exception
            with w.lock:
                if exc is not None:
                    w.done(sent, now, exc)
                    return
                data = res.value[0]
                written = int.from_bytes(data[:8], "big")
                if written and w.start_ns <= now <= w.end_ns:
                    w.done(written, now, None)  # latency: the write's send -> this read's reply
            if exc is not None and now < w.end_ns:
                self._on_event(None)  # the failed read took the watch with it: arm another
        except Exception:  # noqa: BLE001
            traceback.print_exc()

    def run(self, window: Window) -> None:
        if self.spec["role"] == "watcher":
            self.window = window
            wait_until(window.end_ns)
            self.armed = False
            return
        # The writer: pipelined sets whose value starts with its send time.
        zk, pad = self.zk, self.value[8:]

        def issue(seq: int) -> tuple[Any, str | None]:
            return zk.set_async(self.PATH, time.monotonic_ns().to_bytes(8, "big") + pad), None

        writes = Window(window.start_ns, window.end_ns)
        Pipeline(writes, self.depth, issue).run()
        self.extra["writes"] = writes.ops
        self.extra["write_hist"] = writes.hist.to_dict()
        with window.lock:  # the writer's errors are the run's errors; its writes are not its ops
            for k, v in writes.errors.items():
                window.errors[k] = window.errors.get(k, 0) + v


class LockContention(Workload):
    """Every process acquires and releases one Lock in a loop; latency = time to acquire."""

    PATH = f"{ROOT}/lock"

    def setup(self) -> None:
        self.zk.ensure_path(self.PATH)
        self.lock = self.zk.Lock(self.PATH, f"w{self.id}")

    def run(self, window: Window) -> None:
        for _ in range(100_000_000):
            t0 = time.monotonic_ns()
            if t0 >= window.end_ns:
                break
            try:
                got = self.lock.acquire(timeout=LOCK_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001
                with window.lock:
                    window.done(t0, time.monotonic_ns(), exc)
                continue
            t1 = time.monotonic_ns()
            try:
                with window.lock:
                    window.done(t0, t1, None if got else TimeoutError("lock not acquired"))
            finally:
                if got:
                    self.lock.release()


def workload_for(spec: dict[str, Any], zk: Any) -> Workload:
    name = spec["workload"]
    if name in ("create", "set", "get", "exists", "get-lin", "sync-get") or name.startswith("mixed:"):
        return Pipelined(spec, zk)
    if name == "churn":
        return Churn(spec, zk)
    if name == "watch":
        return Watch(spec, zk)
    if name == "lock":
        return LockContention(spec, zk)
    raise ValueError(f"unknown workload {name!r}")


# --- the process ----------------------------------------------------------------------------------


def _read_go(timeout: float) -> dict[str, Any]:
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no start signal from the harness within {timeout:g} s")
    line = sys.stdin.readline()
    if not line:
        raise EOFError("the harness closed stdin before the start signal")
    return json.loads(line)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 5000)  # the last report must leave before exit
    push.connect(spec["endpoint"])
    zk = None
    try:
        zk = make_client(spec["target"], spec["hosts"], float(spec["session_timeout"]), spec.get("client", "native"))
        zk.start(timeout=30)
        work = workload_for(spec, zk)
        work.setup()
        push.send_json({"kind": "ready", "id": spec["id"]})
        go = _read_go(GO_TIMEOUT_S)
        window = Window(int(go["start"]), int(go["end"]))
        cpu = CpuWindow(window.start_ns, window.end_ns)
        cpu.start()
        work.run(window)
        cpu.join(max(0.0, (window.end_ns - time.monotonic_ns()) / 1e9) + 5.0)
        with window.lock:
            report = {
                "kind": "result",
                "id": spec["id"],
                "role": spec.get("role", "client"),
                "hosts": spec["hosts"],
                "ops": window.ops,
                "errors": dict(window.errors),
                "cpu_s": cpu.cpu_s,
                "hist": window.hist.to_dict(),
                "by_kind": {k: h.to_dict() for k, h in window.by_kind.items()},
                "extra": work.extra,
            }
        push.send_json(report)
        return 0
    except BaseException:  # noqa: BLE001 - told to the harness, which fails the run
        push.send_json({"kind": "failed", "id": spec.get("id"), "error": traceback.format_exc()})
        return 1
    finally:
        if zk is not None:
            with contextlib.suppress(Exception):
                stop_client(zk)
        push.close()
        ctx.term()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
