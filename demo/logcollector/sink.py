"""The sink: one output file per source, fed by collectors over ZeroMQ (tcp://127.0.0.1).

Collectors ship at least once: a batch is sent again until the sink acknowledges it, and a
collector that takes a source over resumes from the last checkpoint, which may be behind what its
predecessor had already shipped. The sink makes the output exactly once by line number: it keeps,
per source, the number of the next line it expects, appends only lines from that number on, and
drops those it already has (counted as `duplicates_dropped`). A batch that starts past the
expected number would leave a hole; it is refused, and the reply tells the collector where to
resume.

Fencing: every batch carries the collector's token for the source, the czxid of its ownership
znode. Tokens grow with every new owner, so once a newer owner has shipped, batches from an older
one (a collector that lost its session and has not noticed yet) are refused with `fenced`.

Requests and replies are JSON objects, one per message, over DEALER (collector, runner) / ROUTER
(sink); every request carries an `id` that its reply echoes:

    {"op": "ship", "src", "token", "collector", "first": n, "lines": [...]}
        -> {"ok": true, "next": n}  |  {"ok": false, "fenced": true}  |  {"ok": false, "next": n}
    {"op": "stats"} -> {"ok": true, "sources": {src: {"next", "duplicates_dropped", "fenced", ...}}}
    {"op": "ping"}  -> {"ok": true}

"Longest time uncollected": when new lines of a source arrive, the source has been waiting for
collection since the later of its previous delivery and the production time of the oldest line
that has just arrived; the sink keeps the longest such wait per source.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from demo.logcollector.common import ParentWatch, line_number, line_time, log

_SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # becomes a file name: no paths


class _SourceState:
    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / f"{name}.log"
        self.next = 1 + _last_number(self.path)  # a restarted sink carries on where its file ends
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.token = 0
        self.duplicates_dropped = 0
        self.fenced = 0
        self.gaps_refused = 0
        self.last_delivery = 0.0
        self.longest_uncollected = 0.0
        self.longest_uncollected_at = 0.0  # unix time the longest wait ended
        self.collector = ""  # who shipped the newest lines

    def stats(self) -> dict[str, Any]:
        return {
            "next": self.next,
            "duplicates_dropped": self.duplicates_dropped,
            "fenced": self.fenced,
            "gaps_refused": self.gaps_refused,
            "longest_uncollected_s": round(self.longest_uncollected, 3),
            "longest_uncollected_at": self.longest_uncollected_at,
            "collector": self.collector,
        }


def _last_number(path: Path) -> int:
    """The number of the last complete line of `path` (0 when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4096))
            tail = f.read()
    except OSError:
        return 0
    lines = [x for x in tail.split(b"\n")[:-1] if x]  # what follows the last newline is partial
    return line_number(lines[-1]) if lines else 0


class Sink:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sources: dict[str, _SourceState] = {}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "ship":
            return self.ship(request)
        if op == "stats":
            return {"ok": True, "sources": {name: s.stats() for name, s in sorted(self.sources.items())}}
        if op == "ping":
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def ship(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("src", ""))
        if not _SOURCE_NAME.match(name):
            return {"ok": False, "error": f"bad source name {name!r}"}
        state = self.sources.get(name)
        if state is None:
            state = self.sources[name] = _SourceState(self.directory, name)
        token = int(request["token"])
        if token < state.token:
            state.fenced += 1  # an older owner: a newer one has shipped since
            return {"ok": False, "fenced": True, "next": state.next}
        state.token = token
        first = int(request["first"])
        lines: list[str] = request["lines"]
        if first > state.next:
            state.gaps_refused += 1  # accepting it would leave lines first..next-1 out
            return {"ok": False, "next": state.next}
        skip = state.next - first  # lines the sink already has
        fresh = lines[skip:]
        state.duplicates_dropped += min(skip, len(lines))
        if fresh:
            for offset, line in enumerate(fresh):  # the numbers must run on without a gap
                if line_number(line) != state.next + offset:
                    return {"ok": False, "error": f"line {line[:8]!r} out of sequence at {state.next + offset}"}
            os.write(state.fd, "".join(fresh).encode())
            now = time.time()
            waited = now - max(state.last_delivery, line_time(fresh[0]))
            if waited > state.longest_uncollected:
                state.longest_uncollected, state.longest_uncollected_at = waited, now
            state.last_delivery = now
            state.next += len(fresh)
            state.collector = str(request.get("collector", ""))
        return {"ok": True, "next": state.next}

    def close(self) -> None:
        for state in self.sources.values():
            os.close(state.fd)


def serve(directory: Path, port: int) -> int:
    """Run the sink on tcp://127.0.0.1:`port` until SIGTERM / SIGINT or the runner is gone."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    parent = ParentWatch()
    sink = Sink(directory)
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(f"tcp://127.0.0.1:{port}")
    log("sink", f"serving on tcp://127.0.0.1:{port}, output in {directory}")
    try:
        while not stop.is_set() and not parent.orphaned():
            if not sock.poll(200):
                continue
            frames = sock.recv_multipart()
            try:
                request = json.loads(frames[-1])
                reply = sink.handle(request)
                reply["id"] = request.get("id")
            except (ValueError, KeyError, TypeError) as exc:
                reply = {"ok": False, "error": f"bad request: {exc}"}
            sock.send_multipart([*frames[:-1], json.dumps(reply).encode()])
    finally:
        sock.close(linger=0)
        sink.close()
    log("sink", "stopped")
    return 0


class SinkUnavailable(Exception):
    """The sink did not answer in time."""


class SinkClient:
    """Requests to the sink from one thread. A request that gets no answer within `timeout` is
    sent again on a new connection (that is the "at least once"), up to `attempts` times, or until
    `give_up()` says so."""

    _ids = itertools.count(1)

    def __init__(self, address: str, timeout: float = 2.0) -> None:
        self.address = address
        self.timeout = timeout
        self.sock: zmq.Socket | None = None

    def _connect(self) -> zmq.Socket:
        if self.sock is None:
            self.sock = zmq.Context.instance().socket(zmq.DEALER)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.connect(self.address)
        return self.sock

    def request(
        self, message: dict[str, Any], attempts: int = 5, give_up: Callable[[], bool] | None = None
    ) -> dict[str, Any]:
        request_id = next(self._ids)
        payload = json.dumps({**message, "id": request_id}).encode()
        for _ in range(attempts):
            sock = self._connect()
            sock.send(payload)
            deadline = time.monotonic() + self.timeout
            while (left := deadline - time.monotonic()) > 0:
                if sock.poll(int(left * 1000) + 1):
                    reply = json.loads(sock.recv())
                    if reply.get("id") == request_id:  # an answer to an earlier, resent try is stale
                        return reply
            self.close()  # no answer: start over on a fresh connection
            if give_up is not None and give_up():
                break
        raise SinkUnavailable(f"no answer from the sink at {self.address}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
