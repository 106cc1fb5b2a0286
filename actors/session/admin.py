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
        f"Zookeeper version: {VERSION}\nLatency min/avg/max: 0/0.0/0\nReceived: {f.received}\n"
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
        "zk_avg_latency": 0,
        "zk_max_latency": 0,
        "zk_min_latency": 0,
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
    return "".join(f" /{c.peer}[1](queued={c.queued},sid={hex(c.session_id)},to={c.timeout_ms},lzxid={hex(f.zxid)})\n"
                   for c in f.open) + "\n"


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
