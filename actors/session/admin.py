"""ZooKeeper's four-letter words (ruok, isro, srvr, stat, mntr, cons, wchs, conf, envi) as text,
with ZooKeeper's field names (dashboards and scripts parse them), built from a snapshot of the
node's facts (`AdminFacts`): pure, the session core fills the facts it holds and its shell the ones
only a process knows (open connections, file descriptors, uptime, host).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

VERSION = "3.8.0-zoomq-0.1.0"  # the ZooKeeper release whose semantics it follows; tools parse the digits


@dataclass(slots=True)
class ConnectionView:
    """One open client connection, as `stat` and `cons` list it."""

    peer: str
    queued: int
    session_id: int
    timeout_ms: int


@dataclass(slots=True)
class AdminFacts:
    mode: str  # standalone | leader | follower | observer | looking
    serving: bool
    zxid: int
    epoch: int
    node_count: int
    watch_count: int
    watch_paths: int
    watching_sessions: int
    ephemerals: int
    data_size: int
    global_sessions: int
    local_sessions: int
    outstanding: int
    received: int
    sent: int
    connections: int
    open: list[ConnectionView] = field(default_factory=list)
    uptime_ms: int = 0
    open_fds: int | None = None
    learners: Any = None  # LearnerStats on a leader
    config: Any = None  # NodeConfig
    environment: dict[str, str] = field(default_factory=dict)
    quotas: dict[str, Any] = field(default_factory=dict)  # quota root -> (QuotaLimits, QuotaUsage)
    latency: Any = None  # actors/session/latency.py Latencies
    actors: dict[str, Any] = field(default_factory=dict)  # actor -> {"pid", "cpu_s", "rss", "restarts"} (status.json)
    bus_queued: dict[str, int] = field(default_factory=dict)  # frames queued on the node's bus, per destination
    watches_by_path: dict[str, list[int]] = field(default_factory=dict)  # filled for watches_by_path only

    @property
    def latency_ms(self) -> tuple[float, float, float]:
        """(min, avg, max) request latency in ms, as ZooKeeper reports it."""
        lat = self.latency
        if lat is None or not lat.count:
            return 0.0, 0.0, 0.0
        return round(lat.min_ms or 0.0, 3), round(lat.avg_ms, 3), round(lat.max_ms, 3)


def answer(command: str, facts: Callable[[], AdminFacts]) -> str:
    """The text for `command`; `facts` is only called for a command that needs them."""
    command = command.strip().lower()
    handler = _WORDS.get(command)
    if handler is None:
        return f"{command} is not executed because it is not a known command ({', '.join(sorted(_WORDS))})\n"
    return handler(facts)


def _ruok(facts: Callable[[], AdminFacts]) -> str:
    return "imok"


def _isro(facts: Callable[[], AdminFacts]) -> str:
    f = facts()
    return "ro" if f.mode == "read-only" else "rw" if f.serving else "null"


def _srvr(facts: Callable[[], AdminFacts]) -> str:
    f = facts()
    return (
        f"Zookeeper version: {VERSION}\nLatency min/avg/max: {'/'.join(str(v) for v in f.latency_ms)}\nReceived: {f.received}\n"
        f"Sent: {f.sent}\nConnections: {f.connections}\nOutstanding: {f.outstanding}\n"
        f"Zxid: {hex(f.zxid)}\nMode: {f.mode}\nNode count: {f.node_count}\n"
    )


def _stat(facts: Callable[[], AdminFacts]) -> str:
    f = facts()
    clients = "".join(f" /{c.peer}[1](queued={c.queued},sid={hex(c.session_id)})\n" for c in f.open)
    return f"Zookeeper version: {VERSION}\nClients:\n{clients}\n" + _srvr(lambda: f).split("\n", 1)[1]


def _mntr(facts: Callable[[], AdminFacts]) -> str:
    f = facts()
    lines: dict[str, Any] = {
        "zk_version": VERSION,
        "zk_server_state": f.mode,
        "zk_avg_latency": f.latency_ms[1],
        "zk_max_latency": f.latency_ms[2],
        "zk_min_latency": f.latency_ms[0],
        "zk_packets_received": f.received,
        "zk_packets_sent": f.sent,
        "zk_num_alive_connections": f.connections,
        "zk_outstanding_requests": f.outstanding,
        "zk_znode_count": f.node_count,
        "zk_watch_count": f.watch_count,
        "zk_ephemerals_count": f.ephemerals,
        "zk_approximate_data_size": f.data_size,
        "zk_global_sessions": f.global_sessions,
        "zk_local_sessions": f.local_sessions,
        "zk_zxid": hex(f.zxid),
        "zk_epoch": f.epoch,
        "zk_uptime": f.uptime_ms,
    }
    if f.open_fds is not None:
        lines["zk_open_file_descriptor_count"] = f.open_fds
    stats = f.learners
    if f.mode == "leader" and stats is not None:
        # ZooKeeper's leader-only lines (dashboards read them); zk_followers as 3.4/3.5 named it.
        lines["zk_learners"] = stats.learners
        lines["zk_followers"] = stats.learners
        lines["zk_synced_followers"] = stats.synced_followers
        lines["zk_synced_non_voting_followers"] = 0
        lines["zk_synced_observers"] = stats.synced_observers
        lines["zk_pending_syncs"] = stats.pending_syncs
    lines.update(_quota_lines(f.quotas))
    for name, entry in sorted(f.actors.items()):  # zoomq's own: each actor process, as the supervisor sees it
        if entry.get("cpu_s") is not None:
            lines[f"zoomq_actor_{name}_cpu_seconds"] = entry["cpu_s"]
        if entry.get("rss") is not None:
            lines[f"zoomq_actor_{name}_rss_bytes"] = entry["rss"]
        lines[f"zoomq_actor_{name}_restarts"] = entry.get("restarts", 0)
    return "".join(f"{k}\t{v}\n" for k, v in lines.items())


def _quota_lines(quotas: dict[str, Any]) -> dict[str, int]:
    """ZooKeeper 3.7's per-namespace quota gauges (namespace = the first path component, quotas
    in one namespace summed; a limit is the hard one where set, else the soft one), named as
    its mntr prints a gauge set: `zk_<namespace>_<gauge>`."""
    sums: dict[str, list[int]] = {}
    for root, (limits, usage) in sorted(quotas.items()):
        namespace = root.strip("/").split("/")[0]
        row = sums.setdefault(namespace, [0, 0, 0, 0])
        row[0] += limits.count_hard if limits.count_hard > -1 else max(limits.count, 0)
        row[1] += limits.bytes_hard if limits.bytes_hard > -1 else max(limits.bytes, 0)
        row[2] += usage.count
        row[3] += usage.bytes
    out: dict[str, int] = {}
    for namespace, (count_limit, bytes_limit, count, size) in sums.items():
        out[f"zk_{namespace}_quota_count_limit_per_namespace"] = count_limit
        out[f"zk_{namespace}_quota_bytes_limit_per_namespace"] = bytes_limit
        out[f"zk_{namespace}_quota_count_usage_per_namespace"] = count
        out[f"zk_{namespace}_quota_bytes_usage_per_namespace"] = size
    return out


def _cons(facts: Callable[[], AdminFacts]) -> str:
    f = facts()
    return (
        "".join(
            f" /{c.peer}[1](queued={c.queued},sid={hex(c.session_id)},to={c.timeout_ms},lzxid={hex(f.zxid)})\n"
            for c in f.open
        )
        + "\n"
    )


def _wchs(facts: Callable[[], AdminFacts]) -> str:
    f = facts()
    return f"{f.watching_sessions} connections watching {f.watch_paths} paths\nTotal watches:{f.watch_count}\n"


def _conf(facts: Callable[[], AdminFacts]) -> str:
    cfg = facts().config
    lines = [
        f"clientPort={cfg.client_port}",
        f"clientPortAddress={cfg.client_host}",
        f"dataDir={cfg.data_dir}",
        f"dataLogDir={cfg.data_dir}",
        f"tickTime={cfg.tick_ms}",
        f"minSessionTimeout={cfg.min_timeout_ms}",
        f"maxSessionTimeout={cfg.max_timeout_ms}",
        f"serverId={cfg.sid}",
    ]
    if cfg.servers:
        me = next((e for e in cfg.servers if e.id == cfg.sid), None)
        lines += [f"initLimit={cfg.init_limit}", f"syncLimit={cfg.sync_limit}"]
        if me is not None:  # else: removed by a reconfig
            lines += [f"electionPort={me.election_port}", f"quorumPort={me.quorum_port}"]
        lines += [e.spec() for e in cfg.servers]
    return "\n".join(lines) + "\n"


def _envi(facts: Callable[[], AdminFacts]) -> str:
    env = facts().environment
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in {"zookeeper.version": VERSION, **env}.items())


_WORDS: dict[str, Callable[[Callable[[], AdminFacts]], str]] = {
    "ruok": _ruok,
    "isro": _isro,
    "srvr": _srvr,
    "stat": _stat,
    "mntr": _mntr,
    "cons": _cons,
    "wchs": _wchs,
    "conf": _conf,
    "envi": _envi,
}


# --- ZooKeeper's AdminServer (JSON over HTTP, served by the ops actor) ----------------------------

# command -> its ZooKeeper aliases (the four-letter word first): /commands/<either> answers.
JSON_COMMANDS: dict[str, tuple[str, ...]] = {
    "ruok": ("ruok",),
    "monitor": ("mntr",),
    "server_stats": ("srvr",),
    "stat": ("stat",),
    "configuration": ("conf", "config"),
    "connections": ("cons",),
    "watch_summary": ("wchs",),
    "watches_by_path": ("wchp",),
    "environment": ("envi", "env"),
    "is_read_only": ("isro",),
    "leader": ("lead",),  # answered by the ops actor: it knows whom the node follows
    "voting_view": ("vots",),  # likewise: the membership in force
}


def command_name(name: str) -> str | None:
    """The AdminServer command `name` (a command or one of its aliases) stands for."""
    name = name.strip().lower()
    if name in JSON_COMMANDS:
        return name
    return next((cmd for cmd, aliases in JSON_COMMANDS.items() if name in aliases), None)


def json_command(command: str, facts: Callable[[], AdminFacts]) -> dict[str, Any]:
    """ZooKeeper's AdminServer answer for `command` (a name from JSON_COMMANDS), with its field
    names; every answer carries "command" and "error" as ZooKeeper's do."""
    handler = _JSON.get(command)
    if handler is None:
        return {"command": command, "error": f"Unknown command: {command}"}
    return {**handler(facts), "command": command, "error": None}


def _server_stats(f: AdminFacts) -> dict[str, Any]:
    low, avg, high = f.latency_ms
    return {
        "packets_sent": f.sent,
        "packets_received": f.received,
        "fsync_threshold_exceed_count": 0,
        "client_response_stats": {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1},
        "provider_null": False,
        "server_state": f.mode,
        "outstanding_requests": f.outstanding,
        "last_processed_zxid": f.zxid,
        "avg_latency": avg,
        "max_latency": high,
        "min_latency": low,
        "num_alive_client_connections": f.connections,
        "uptime": f.uptime_ms,
    }


def _json_server_stats(facts: Callable[[], AdminFacts]) -> dict[str, Any]:
    f = facts()
    return {
        "version": VERSION,
        "read_only": f.mode == "read-only",
        "server_stats": _server_stats(f),
        "client_response": {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1},
        "node_count": f.node_count,
    }


def _connection(f: AdminFacts, c: ConnectionView) -> dict[str, Any]:
    return {
        "remote_socket_address": c.peer,
        "interest_ops": 1,
        "outstanding_requests": c.queued,
        "session_id": hex(c.session_id),
        "session_timeout": c.timeout_ms,
        "last_zxid": hex(f.zxid),
    }


def _json_stat(facts: Callable[[], AdminFacts]) -> dict[str, Any]:
    f = facts()
    return {
        **_json_server_stats(lambda: f),
        "connections": [_connection(f, c) for c in f.open],
        "secure_connections": [],
    }


def _json_monitor(facts: Callable[[], AdminFacts]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in _mntr(facts).splitlines():
        key, _, value = line.partition("\t")
        key = key[3:] if key.startswith("zk_") else key
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def _json_configuration(facts: Callable[[], AdminFacts]) -> dict[str, Any]:
    cfg = facts().config
    out: dict[str, Any] = {
        "client_port": cfg.client_port,
        "client_port_listen_backlog": -1,
        "data_dir": cfg.data_dir,
        "data_log_dir": cfg.data_dir,
        "tick_time": cfg.tick_ms,
        "max_client_cnxns": 0,
        "min_session_timeout": cfg.min_timeout_ms,
        "max_session_timeout": cfg.max_timeout_ms,
        "server_id": cfg.sid,
    }
    if cfg.servers:
        out["init_limit"] = cfg.init_limit
        out["sync_limit"] = cfg.sync_limit
    return out


def _json_watch_summary(facts: Callable[[], AdminFacts]) -> dict[str, Any]:
    f = facts()
    return {"num_connections": f.watching_sessions, "num_paths": f.watch_paths, "num_total_watches": f.watch_count}


def _json_environment(facts: Callable[[], AdminFacts]) -> dict[str, Any]:
    return {"zookeeper.version": VERSION, **facts().environment}


_JSON: dict[str, Callable[[Callable[[], AdminFacts]], dict[str, Any]]] = {
    "ruok": lambda facts: {},
    "monitor": _json_monitor,
    "server_stats": _json_server_stats,
    "stat": _json_stat,
    "configuration": _json_configuration,
    "connections": lambda facts: (
        lambda f: {"connections": [_connection(f, c) for c in f.open], "secure_connections": []}
    )(facts()),
    "watch_summary": _json_watch_summary,
    "watches_by_path": lambda facts: {"path2sessions": facts().watches_by_path},
    "environment": _json_environment,
    "is_read_only": lambda facts: {"read_only": facts().mode == "read-only"},
}
