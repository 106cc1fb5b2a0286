"""A collector: registers itself, collects the sources the coordinator assigns to it, reports
progress on a heartbeat, and contends to be the coordinator (coordinator.py).

On start it creates its ephemeral sequential node collectors/c-<seq> (its name from then on), its
task list tasks/<name> and its status status/<name>, then watches its task list. For each task it
runs a `SourceWorker` thread:

1. take the source's ownership node owners/<src> (ephemeral; wait while another collector holds
   it: that one releases it when it sees its own task withdrawn, or its session expires);
2. resume from the newest checkpoint: its task node's, or any collector's status entry for the
   source (a predecessor's last heartbeat, or the final checkpoint it recorded on release);
3. tail the log file from that byte offset and ship complete lines to the sink in batches, each
   with the ownership node's czxid as fencing token; advance the checkpoint only on the sink's
   acknowledgement (at-least-once: what was shipped but not recorded is shipped again, and the sink
   drops it);
4. when the task is withdrawn, record the final checkpoint and delete the ownership node in one
   transaction.

The session decides everything: while the connection is down (SUSPENDED) the collector ships
nothing, since it cannot know whether it still owns its sources; when the session is lost it stops
its client at once (no new session, so nothing of it acts again) and exits with code 3. The runner
starts a replacement.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from demo.logcollector.common import (
    ALL_PATHS,
    COLLECTORS,
    OWNERS,
    STATUS,
    TASKS,
    ParentWatch,
    decode,
    encode,
    line_number,
    log,
)
from demo.logcollector.coordinator import Coordinator
from demo.logcollector.producer import produced_count
from demo.logcollector.sink import SinkClient, SinkUnavailable
from zoomq import Client, KazooState
from zoomq.exceptions import KazooException, NodeExistsError, NoNodeError, SessionExpiredError, ZookeeperStoppedError

BATCH_LINES = 200  # lines per shipment at most
POLL_S = 0.05  # how often a worker looks for new lines at the end of its file
EXIT_SESSION_LOST = 3


class Collector:
    def __init__(self, hosts: str, sink_address: str, session_timeout: float, heartbeat: float = 0.5) -> None:
        self.client = Client(hosts=hosts, timeout=session_timeout)
        self.sink_address = sink_address
        self.heartbeat = heartbeat
        self.name = f"collector[{os.getpid()}]"  # until registered
        self.session_id = 0
        self.stop_event = threading.Event()
        self.connected = threading.Event()  # cleared while the connection is down
        self.suspended = False
        self.session_lost = False
        self.closing = False  # our own client.stop(): the LOST that follows is no loss
        self.failed = False
        self.coordinator: Coordinator | None = None
        self.workers: dict[str, SourceWorker] = {}
        self.workers_lock = threading.Lock()
        # What the status znode says: the checkpoint of every source this collector has shipped
        # (kept after it gives a source up: a successor may resume from it), what it holds now,
        # and lines shipped since the last heartbeat (for lines/s).
        self.state_lock = threading.Lock()
        self.checkpoints: dict[str, dict[str, int]] = {}
        self.held: set[str] = set()
        self.finished: set[str] = set()
        self.shipped: dict[str, int] = {}
        self.rates: dict[str, float] = {}
        self.last_beat = time.monotonic()

    # --- lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        parent = ParentWatch()
        self.client.add_listener(self._on_state)  # first listener: runs before the recipes' own
        self.client.start(timeout=30)
        self.connected.set()
        for path in ALL_PATHS:
            self.client.ensure_path(path)
        node = self.client.create(f"{COLLECTORS}/c-", encode({"pid": os.getpid()}), ephemeral=True, sequence=True)
        self.name = node.rsplit("/", 1)[1]
        self.session_id = self.client.client_id[0] if self.client.client_id else 0
        with contextlib.suppress(NodeExistsError):
            self.client.create(f"{TASKS}/{self.name}", b"")
        with contextlib.suppress(NodeExistsError):
            self.client.create(f"{STATUS}/{self.name}", self._status_value())
        log(self.name, f"registered (pid {os.getpid()}, session {self.session_id:#x})")
        self.coordinator = Coordinator(self.client, self.name, self.stop_event)
        self.coordinator.start()
        self.client.ChildrenWatch(f"{TASKS}/{self.name}")(self._on_tasks)
        try:
            while not self.stop_event.wait(self.heartbeat):
                if parent.orphaned():
                    log(self.name, "the runner is gone: stopping")
                    break
                try:
                    self._beat()
                except KazooException as exc:  # the session ended under it: _on_state stops us
                    if not self.stop_event.is_set():
                        log(self.name, f"heartbeat failed: {type(exc).__name__}")
        finally:
            self._shut_down()
        if self.session_lost:
            return EXIT_SESSION_LOST
        return 1 if self.failed else 0

    def _shut_down(self) -> None:
        self.stop_event.set()
        with self.workers_lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.revoke()
        for worker in workers:
            worker.join(10.0)
        if self.coordinator is not None:
            self.coordinator.stop()
        if not self.session_lost:
            with contextlib.suppress(KazooException):
                self._beat()
        self.closing = True
        self.client.stop()
        log(self.name, "stopped" + (" (session lost)" if self.session_lost else ""))

    def fail(self, why: str) -> None:
        """A worker hit something it cannot handle: stop the whole collector (exit code 1)."""
        log(self.name, f"failing: {why}")
        self.failed = True
        self.stop_event.set()

    def _on_state(self, state: str) -> None:
        # The client's event thread, before any recipe listener.
        if self.closing:
            return
        if state == KazooState.LOST:
            if not self.stop_event.is_set():
                log(self.name, "session lost: stopping (its ownership nodes are gone with it)")
            self.session_lost = True
            self.connected.clear()
            self.stop_event.set()
            # Stop before the client opens a new session: nothing of this collector may act in one.
            self.client.stop()
        elif state == KazooState.SUSPENDED:
            log(self.name, "connection lost: shipping nothing until reconnected")
            self.suspended = True
            self.connected.clear()  # maybe no longer the owner: ship nothing until connected again
        elif state == KazooState.CONNECTED:
            if self.suspended:
                log(self.name, "reconnected, same session: resuming")
            self.suspended = False
            self.connected.set()

    # --- tasks --------------------------------------------------------------------------------

    def _on_tasks(self, children: list[str]) -> bool | None:
        """The task list changed: start a worker per new task, withdraw those no longer listed."""
        if self.stop_event.is_set():
            return False
        wanted = set(children)
        with self.workers_lock:
            for src, worker in list(self.workers.items()):
                if src not in wanted and not worker.revoked.is_set():
                    log(self.name, f"task {src} withdrawn")
                    worker.revoke()
            for src in sorted(wanted):
                worker = self.workers.get(src)
                if worker is None or worker.revoked.is_set():  # new, or back while the old one winds down
                    self.workers[src] = SourceWorker(self, src, previous=worker)
                    self.workers[src].start()
        return None

    # --- status -------------------------------------------------------------------------------

    def progress(self, src: str, line: int, offset: int, shipped: int) -> None:
        with self.state_lock:
            self.checkpoints[src] = {"line": line, "offset": offset}
            self.shipped[src] = self.shipped.get(src, 0) + shipped

    def set_held(self, src: str, held: bool) -> None:
        with self.state_lock:
            if held:
                self.held.add(src)
            else:
                self.held.discard(src)

    def set_finished(self, src: str) -> None:
        with self.state_lock:
            self.finished.add(src)

    def _status_value(self) -> bytes:
        with self.state_lock:
            held = sorted(self.held)
            value = {
                "pid": os.getpid(),
                "ts": time.time(),
                "coordinator": bool(self.coordinator and self.coordinator.leading),
                "held": held,
                "load": len(held),
                "offsets": dict(self.checkpoints),
                "rates": {src: round(self.rates.get(src, 0.0), 1) for src in held},
                "rate": round(sum(self.rates.get(src, 0.0) for src in held), 1),
                "finished": sorted(self.finished & set(held)),
            }
        return encode(value)

    def _beat(self) -> None:
        """Compute lines/s since the last heartbeat and write the status znode."""
        now = time.monotonic()
        with self.state_lock:
            elapsed = max(now - self.last_beat, 1e-3)
            self.rates = {src: n / elapsed for src, n in self.shipped.items()}
            self.shipped = {}
            self.last_beat = now
        self.client.set(f"{STATUS}/{self.name}", self._status_value())

    def release(self, src: str) -> bool:
        """Record `src`'s final checkpoint and delete its ownership node, in one transaction, if
        the node is this session's. False if it was not (or no longer) ours."""
        path = f"{OWNERS}/{src}"
        stat = self.client.exists(path)
        if stat is None or stat.ephemeralOwner != self.session_id:
            return False
        self.set_held(src, False)
        tx = self.client.transaction()
        tx.check(path, stat.version)
        tx.set_data(f"{STATUS}/{self.name}", self._status_value())
        tx.delete(path, stat.version)
        results = tx.commit()
        return not any(isinstance(r, Exception) for r in results)


class SourceWorker(threading.Thread):
    """Collects one source for as long as it is this collector's task (see the module docstring)."""

    def __init__(self, collector: Collector, src: str, previous: SourceWorker | None) -> None:
        super().__init__(name=f"worker-{src}", daemon=True)
        self.collector = collector
        self.client = collector.client
        self.src = src
        self.previous = previous
        self.revoked = threading.Event()
        self.wake = threading.Event()  # an ownership-node watch fired, or revoke()
        self.fenced = False
        self.line = 0  # the last line the sink acknowledged
        self.offset = 0  # the byte offset just past it

    def revoke(self) -> None:
        self.revoked.set()
        self.wake.set()

    def _stopping(self) -> bool:
        return self.revoked.is_set() or self.collector.stop_event.is_set()

    def _wake(self, _event: Any) -> None:
        self.wake.set()

    def run(self) -> None:
        who = self.collector.name
        try:
            if self.previous is not None:
                self.previous.join()  # it still holds the ownership node: let it give it back first
            token = self._acquire()
            if token is None:
                return
            self.collector.set_held(self.src, True)
            try:
                self._collect(token)
            finally:
                self._release()
        except (ZookeeperStoppedError, SessionExpiredError, SinkUnavailable) as exc:
            if not self.collector.stop_event.is_set():
                self.collector.fail(f"{self.src}: {type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - report it, and let the runner replace this collector
            log(who, traceback.format_exc())
            self.collector.fail(f"{self.src}: unexpected error")
        finally:
            self.collector.set_held(self.src, False)

    # --- ownership ----------------------------------------------------------------------------

    def _acquire(self) -> int | None:
        """Create owners/<src>; its czxid is the fencing token. None if told to stop first."""
        path = f"{OWNERS}/{self.src}"
        waiting_for = None
        while not self._stopping():
            if not self.collector.connected.wait(0.5):
                continue
            try:
                _, stat = self.client.create(path, self.collector.name.encode(), ephemeral=True, include_data=True)
                return int(stat.czxid)
            except NodeExistsError:
                pass
            self.wake.clear()
            try:
                data, stat = self.client.get(path, watch=self._wake)
            except NoNodeError:
                continue  # just released: try again
            if stat.ephemeralOwner == self.collector.session_id:
                return int(stat.czxid)  # ours already: a create resent over a reconnect
            holder = data.decode(errors="replace")
            if holder != waiting_for:
                log(self.collector.name, f"{self.src}: waiting for {holder} to give it up")
                waiting_for = holder
            self.wake.wait(1.0)
        return None

    def _release(self) -> None:
        if self.collector.session_lost or self.fenced:
            return  # the ownership node went with the session; a newer owner has it now
        try:
            if self.collector.release(self.src):
                log(self.collector.name, f"{self.src}: released after line {self.line}")
        except KazooException as exc:
            log(
                self.collector.name,
                f"{self.src}: release failed ({type(exc).__name__}); the session's end will release it",
            )

    # --- collecting ---------------------------------------------------------------------------

    def _resume_point(self) -> tuple[str, int, int, str]:
        """(file, line, offset, from whom) to resume at: the newest checkpoint of the task node and
        of every collector's status."""
        task = decode(self.client.get(f"{TASKS}/{self.collector.name}/{self.src}")[0])
        line, offset, source = int(task.get("line", 0)), int(task.get("offset", 0)), "task"
        for name in self.client.get_children(STATUS):
            try:
                status = decode(self.client.get(f"{STATUS}/{name}")[0])
            except NoNodeError:
                continue
            entry = status.get("offsets", {}).get(self.src)
            if entry and int(entry["line"]) > line:
                line, offset, source = int(entry["line"]), int(entry["offset"]), f"status of {name}"
        return str(task["file"]), line, offset, source

    def _collect(self, token: int) -> None:
        me = self.collector.name
        try:
            log_file, self.line, self.offset, source = self._resume_point()
        except NoNodeError:
            return  # the task was withdrawn meanwhile
        log(me, f"{self.src}: collecting (token {token:#x}) after line {self.line} ({source})")
        self.collector.progress(self.src, self.line, self.offset, 0)
        sink = SinkClient(self.collector.sink_address)
        path = Path(log_file)
        try:
            while not path.exists():
                if self._stopping():
                    return
                self.revoked.wait(POLL_S)
            with open(path, "rb") as f:
                self._tail(f, path, sink, token)
        finally:
            sink.close()

    def _tail(self, f: Any, path: Path, sink: SinkClient, token: int) -> None:
        me = self.collector.name
        f.seek(self.offset)
        pending = b""  # read but not yet shipped (may end in a partial line)
        while not self._stopping():
            if not self.collector.connected.is_set():
                self.collector.connected.wait(0.2)  # the session may be gone: ship nothing meanwhile
                continue
            pending += f.read(1 << 18)
            end = pending.rfind(b"\n")
            if end < 0:
                total = produced_count(path)
                if total is not None and self.line >= total:
                    self.collector.set_finished(self.src)
                self.revoked.wait(POLL_S)  # at the end of the file: look again shortly
                continue
            lines = pending[: end + 1].splitlines(keepends=True)[:BATCH_LINES]
            first = line_number(lines[0])
            if first != self.line + 1:
                # The checkpoint's offset does not start the next line (should not happen): find it.
                log(me, f"{self.src}: expected line {self.line + 1} at offset {self.offset}, found {first}: rescanning")
                pending = b""
                self.offset = _offset_of_line(path, self.line + 1)
                f.seek(self.offset)
                continue
            reply = sink.request(
                {
                    "op": "ship",
                    "src": self.src,
                    "token": token,
                    "collector": me,
                    "first": first,
                    "lines": [x.decode() for x in lines],
                },
                attempts=1_000_000,
                give_up=self.collector.stop_event.is_set,
            )
            if reply.get("ok"):
                size = sum(len(x) for x in lines)
                pending = pending[size:]
                self.line += len(lines)
                self.offset += size
                self.collector.progress(self.src, self.line, self.offset, len(lines))
            elif reply.get("fenced"):
                log(me, f"{self.src}: fenced by the sink (a newer owner has shipped): giving it up")
                self.fenced = True
                return
            elif "next" in reply:
                # The sink has fewer lines than our checkpoint says (a lost sink file?): go back.
                log(me, f"{self.src}: the sink expects line {reply['next']}, not {first}: rewinding")
                self.line = int(reply["next"]) - 1
                self.offset = _offset_of_line(path, self.line + 1)
                pending = b""
                f.seek(self.offset)
            else:
                raise RuntimeError(f"the sink refused a batch of {self.src}: {reply.get('error')}")


def _offset_of_line(path: Path, number: int) -> int:
    """The byte offset at which line `number` (1-based) of `path` starts (or would start)."""
    offset = 0
    with open(path, "rb") as f:
        for seen, line in enumerate(f, start=1):
            if seen >= number or not line.endswith(b"\n"):
                break
            offset += len(line)
    return offset


def collect(hosts: str, sink_address: str, session_timeout: float, heartbeat: float) -> int:
    return Collector(hosts, sink_address, session_timeout, heartbeat).run()
