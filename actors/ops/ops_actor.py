"""The ops actor: a node's HTTP faces for operators, started when `metrics_port` or `admin_port`
is set (off by default).

- `metrics_port`: Prometheus' /metrics (prometheus_client's own server and exposition), with
  ZooKeeper's metric names where one exists (znode_count, watch_count, ephemerals_count,
  num_alive_connections, outstanding_requests, packets_received / packets_sent,
  approximate_data_size, avg / min / max_latency, learners, synced_followers, pending_syncs, the
  quota gauges...) and zoomq's own under `zoomq_`: request latency histograms per operation, ZAB
  proposals / commits / commit rounds, each learner's lag, txns applied, each actor's CPU, RSS and
  restarts.
- `admin_port`: ZooKeeper's AdminServer, `GET /commands` and `GET /commands/<name>` (a command
  or its four-letter alias) answering JSON with ZooKeeper's field names.

Both listen on `client_host`. A scrape or a command is answered from the session actor (asked
over the node's bus: AdminQuery -> AdminAnswer), the supervisor's status.json (actors, role,
leader) and config.json (the membership in force). The HTTP servers run on threads; only the
actor's loop touches the bus: a request is queued, the loop is woken through an inproc pair, and
the answer wakes the waiting thread. Nothing here is on a client's path.
"""

from __future__ import annotations

import http.server
import itertools
import json
import queue
import threading
from pathlib import Path
from typing import Any

import msgspec
import zmq

from actors.protocol.internal import AdminAnswer, AdminQuery, LogStats
from actors.session import admin
from runtime.actor import Actor
from runtime.config import from_json
from runtime.latency import BUCKETS_MS

ASK_TIMEOUT_S = 5.0


class OpsActor(Actor):
    name = "ops"

    def on_start(self, now: float) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, list[bytes]]] = {}
        self._asks: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        address = f"inproc://ops-wake-{id(self)}"
        self._wake = self.ctx.socket(zmq.PAIR)
        self._wake.bind(address)
        self._wake_sender = self.ctx.socket(zmq.PAIR)
        self._wake_sender.connect(address)
        self._wake_lock = threading.Lock()
        self.add_socket(self._wake, self._on_wake, copy=True)
        self._servers: list[Any] = []
        self.fsyncs: dict[str, Any] = {}  # the log actor's latest LogStats
        self.log_queued: dict[str, int] = {}
        host = self.cfg.client_host
        if self.cfg.metrics_port:
            from prometheus_client import CollectorRegistry, start_http_server

            registry = CollectorRegistry(auto_describe=False)
            registry.register(NodeCollector(self))
            server, _thread = start_http_server(self.cfg.metrics_port, addr=host, registry=registry)
            self._servers.append(server)
            self.log.info("metrics_listening", address=f"{host}:{self.cfg.metrics_port}")
        if self.cfg.admin_port:
            server = AdminServer((host, self.cfg.admin_port), self)
            threading.Thread(target=server.serve_forever, name="admin-server", daemon=True).start()
            self._servers.append(server)
            self.log.info("admin_server_listening", address=f"{host}:{self.cfg.admin_port}")

    def on_stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._wake_sender.close(linger=0)

    # --- asking the session actor (any thread) ------------------------------------------------

    def ask(self, command: str, timeout: float = ASK_TIMEOUT_S) -> Any:
        """The session actor's JSON answer to `command`, decoded; TimeoutError if none comes."""
        ident = next(self._ids)
        done = threading.Event()
        box: list[bytes] = []
        with self._lock:
            self._waiting[ident] = (done, box)
        self._asks.put((ident, command))
        with self._wake_lock:
            self._wake_sender.send(b"", zmq.NOBLOCK)
        try:
            if not done.wait(timeout):
                raise TimeoutError(f"the session actor did not answer {command!r} within {timeout:g}s")
        finally:
            with self._lock:
                self._waiting.pop(ident, None)
        return json.loads(box[0])

    def _on_wake(self, frames: list[Any], now: float) -> None:
        while True:
            try:
                ident, command = self._asks.get_nowait()
            except queue.Empty:
                return
            self.tell("session", AdminQuery(ident, command, self.name))

    def on_message(self, msg: Any, now: float) -> None:
        if isinstance(msg, AdminAnswer):
            with self._lock:
                waiter = self._waiting.get(msg.id)
            if waiter is not None:
                waiter[1].append(msg.text)
                waiter[0].set()
        elif isinstance(msg, LogStats):
            self.fsyncs = json.loads(msg.fsync)
            self.log_queued = dict(msg.queued)
        else:
            self.log.warning("unexpected_message", type=type(msg).__name__)

    # --- what the supervisor writes -----------------------------------------------------------

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((Path(self.run_dir) / "status.json").read_bytes())
        except (OSError, ValueError):
            return {}

    def membership(self) -> list[Any]:
        """The membership in force (config.json: the supervisor rewrites it after a reconfig)."""
        try:
            return from_json((Path(self.run_dir) / "config.json").read_bytes()).servers
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return list(self.cfg.servers)

    def command(self, name: str) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON) of the AdminServer command `name` (or its alias)."""
        command = admin.command_name(name)
        if command is None:
            return 404, {"command": name, "error": f"Command not found: {name}"}
        if command == "leader":
            st = self.status()
            leader = st.get("leader")
            entry = next((s for s in self.membership() if s.id == leader), None)
            ip = entry.host if entry is not None else self.cfg.client_host if st.get("role") == "standalone" else ""
            return 200, {
                "is_leader": st.get("role") in ("leader", "standalone"),
                "leader_id": leader if leader is not None else -1,
                "leader_ip": ip,
                "command": command,
                "error": None,
            }
        if command == "voting_view":
            view = {str(s.id): s.spec().split("=", 1)[1] for s in self.membership()}
            return 200, {"current_config": view, "command": command, "error": None}
        return 200, self.ask(f"json:{command}")


class NodeCollector:
    """prometheus_client collector: one consistent read of the node per scrape."""

    # mntr keys (without zk_) exported as counters; every other numeric one is a gauge.
    COUNTERS = {"packets_received", "packets_sent"}
    SKIP = {"version", "server_state", "zxid"}

    def __init__(self, ops: OpsActor) -> None:
        self.ops = ops

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        metrics = self.ops.ask("metrics")
        mntr = metrics.get("mntr") or {}
        state = GaugeMetricFamily("zoomq_server_state", "1 for the state this node serves in", labels=["state"])
        state.add_metric([str(mntr.get("server_state", "unknown"))], 1)
        yield state
        zxid = mntr.get("zxid")
        if isinstance(zxid, str) and zxid.startswith("0x"):
            yield GaugeMetricFamily("last_zxid", "the last txn applied on this node", value=int(zxid, 16))
        quotas: dict[str, GaugeMetricFamily] = {}
        for key, value in mntr.items():
            if key in self.SKIP or key in ("command", "error") or not isinstance(value, int | float):
                continue
            if "_quota_" in key and key.endswith("_per_namespace"):
                namespace, _, gauge = key.partition("_quota_")
                name = f"quota_{gauge}"
                family = quotas.get(name)
                if family is None:
                    family = quotas[name] = GaugeMetricFamily(
                        name, "ZooKeeper's quota gauge per namespace", labels=["namespace"]
                    )
                family.add_metric([namespace], value)
            elif key in self.COUNTERS:
                yield CounterMetricFamily(key, f"ZooKeeper's {key}", value=value)
            else:
                yield GaugeMetricFamily(key, f"ZooKeeper's {key}", value=value)
        yield from quotas.values()
        latency = HistogramMetricFamily(
            "zoomq_request_latency_seconds",
            "request latency at this node, arrival to answer, per operation",
            labels=["op"],
        )
        for op, h in sorted((metrics.get("latency") or {}).items()):
            buckets = _seconds_buckets(h)
            latency.add_metric([op], buckets, sum_value=h["sum_ms"] / 1000.0)
        yield latency
        fsync = HistogramMetricFamily("zoomq_fsync_seconds", "the log actor's fsyncs (one per batch of appends)")
        h = self.ops.fsyncs.get("fsync") or {"buckets": [[le, 0] for le in (*BUCKETS_MS, None)], "sum_ms": 0.0}
        fsync.add_metric(
            [],
            _seconds_buckets(h),
            sum_value=h["sum_ms"] / 1000.0,
        )
        yield fsync
        queued = GaugeMetricFamily(
            "zoomq_bus_queued_frames",
            "frames an actor has queued for another, not yet written",
            labels=["actor", "dest"],
        )
        for actor, table in (
            ("session", metrics.get("bus_queued") or {}),
            ("log", self.ops.log_queued),
            ("ops", self.ops.bus.queued_by_dest()),
        ):
            for dest, n in sorted(table.items()):
                queued.add_metric([actor, dest], n)
        yield queued
        yield CounterMetricFamily(
            "zoomq_txns_applied", "txns this node applied from the commit stream", value=metrics.get("applied", 0)
        )
        leader = metrics.get("leader")
        if leader:
            yield CounterMetricFamily("zoomq_proposals", "txns this leader proposed", value=leader.get("proposed", 0))
            yield CounterMetricFamily(
                "zoomq_commits", "entries this leader committed", value=leader.get("committed", 0)
            )
            yield CounterMetricFamily(
                "zoomq_commit_rounds",
                "commit rounds (commits / rounds = the batch size)",
                value=leader.get("commit_rounds", 0),
            )
            lag = GaugeMetricFamily(
                "zoomq_learner_lag_txns", "txns a voting learner's log is behind the last commit", labels=["sid"]
            )
            for sid, behind in sorted((leader.get("lag") or {}).items()):
                lag.add_metric([str(sid)], behind)
            yield lag
        status = self.ops.status()
        count, total_ms, last_ms = status.get("elections") or (0, 0.0, 0.0)
        yield GaugeMetricFamily(
            "election_time", "ZooKeeper's election_time: the last election's duration (ms)", value=last_ms
        )
        yield CounterMetricFamily("zoomq_elections", "elections this node ran", value=count)
        yield CounterMetricFamily("zoomq_election_seconds", "time spent in elections", value=total_ms / 1000.0)
        actors = status.get("actors") or {}
        cpu = CounterMetricFamily("zoomq_actor_cpu_seconds", "CPU time of each actor process", labels=["actor"])
        rss = GaugeMetricFamily("zoomq_actor_rss_bytes", "resident memory of each actor process", labels=["actor"])
        restarts = CounterMetricFamily("zoomq_actor_restarts", "restarts of each actor", labels=["actor"])
        for name, entry in sorted(actors.items()):
            if entry.get("cpu_s") is not None:
                cpu.add_metric([name], entry["cpu_s"])
            if entry.get("rss") is not None:
                rss.add_metric([name], entry["rss"])
            restarts.add_metric([name], entry.get("restarts", 0))
        yield cpu
        yield rss
        yield restarts


def _seconds_buckets(h: dict[str, Any]) -> list[tuple[str, int]]:
    """runtime/latency.py's cumulative buckets (upper bounds in ms, None = +Inf) as Prometheus' (le in seconds)."""
    return [("+Inf" if le is None else repr(le / 1000.0), n) for le, n in h["buckets"]]


class AdminServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], ops: OpsActor) -> None:
        self.ops = ops
        super().__init__(address, _AdminHandler)


class _AdminHandler(http.server.BaseHTTPRequestHandler):
    server: AdminServer

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/commands":
            status, body = 200, {"commands": {name: list(aliases) for name, aliases in admin.JSON_COMMANDS.items()}}
        elif path.startswith("/commands/"):
            try:
                status, body = self.server.ops.command(path[len("/commands/") :])
            except TimeoutError as exc:
                status, body = 503, {"command": path[len("/commands/") :], "error": str(exc)}
        else:
            status, body = 404, {"error": f"no such path: {path or '/'} (try /commands)"}
        data = json.dumps(body, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # no access log on stderr
