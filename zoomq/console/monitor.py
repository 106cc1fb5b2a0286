"""The ensemble page's figures: each host asked `mntr` (and `srvr` when `mntr` fails) over its
client port with zoomq.admin.ask, parsed, and rates computed from successive samples.

`mntr` gives ZooKeeper's lines (zk_server_state, zk_zxid, zk_epoch, zk_global_sessions,
zk_num_alive_connections, zk_znode_count, zk_packets_received, zk_avg_latency in ms, ...) and,
from nodes that report them, `zoomq_actor_<name>_cpu_seconds`, `zoomq_actor_<name>_rss_bytes` and
`zoomq_actor_<name>_restarts`: shown when present.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zoomq.admin import parse_mntr

_ACTOR_LINE = re.compile(r"^zoomq_actor_(.+)_(cpu_seconds|rss_bytes|restarts)$")
_ACTOR_FIELDS = {"cpu_seconds": "cpuSeconds", "rss_bytes": "rssBytes", "restarts": "restarts"}


def parse_hosts(hosts: str) -> list[tuple[str, int]]:
    """ "h1:p1,h2:p2/chroot" -> [(h1, p1), (h2, p2)] (2181 when a port is left out), as the client reads them."""
    from zoomq.client import _parse_hosts
    from zoomq.exceptions import ConfigurationError

    try:
        return _parse_hosts(hosts)[0]
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from exc


def _num(value: str | None) -> float | int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return None


def _zxid(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 0)
    except ValueError:
        return None


def parse_srvr(text: str) -> dict[str, str]:
    """`srvr`'s "Key: value" lines as mntr names, so that one parser reads both."""
    names = {
        "Mode": "zk_server_state",
        "Zxid": "zk_zxid",
        "Node count": "zk_znode_count",
        "Connections": "zk_num_alive_connections",
        "Received": "zk_packets_received",
        "Sent": "zk_packets_sent",
        "Outstanding": "zk_outstanding_requests",
    }
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in names:
            out[names[key.strip()]] = value.strip()
        elif key.startswith("Latency min/avg/max") and sep:
            parts = value.strip().split("/")
            if len(parts) == 3:
                out["zk_avg_latency"] = parts[1]
    return out


def summarize(fields: dict[str, str]) -> dict[str, Any]:
    """The figures the ensemble page shows, from `mntr`'s (or `srvr`'s) fields."""
    zxid = _zxid(fields.get("zk_zxid"))
    epoch = _num(fields.get("zk_epoch"))
    if epoch is None and zxid is not None:
        epoch = zxid >> 32
    sessions = _num(fields.get("zk_global_sessions"))
    local = _num(fields.get("zk_local_sessions"))
    if sessions is not None and local:
        sessions += local
    actors: dict[str, dict[str, Any]] = {}
    for key, value in fields.items():
        m = _ACTOR_LINE.match(key)
        if m:
            actors.setdefault(m.group(1), {})[_ACTOR_FIELDS[m.group(2)]] = _num(value)
    return {
        "role": fields.get("zk_server_state"),
        "zxid": hex(zxid) if zxid is not None else None,
        "epoch": epoch,
        "sessions": sessions,
        "connections": _num(fields.get("zk_num_alive_connections")),
        "znodes": _num(fields.get("zk_znode_count")),
        "watches": _num(fields.get("zk_watch_count")),
        "ephemerals": _num(fields.get("zk_ephemerals_count")),
        "dataBytes": _num(fields.get("zk_approximate_data_size")),
        "outstanding": _num(fields.get("zk_outstanding_requests")),
        "packetsReceived": _num(fields.get("zk_packets_received")),
        "packetsSent": _num(fields.get("zk_packets_sent")),
        "avgLatencyMs": _num(fields.get("zk_avg_latency")),
        "maxLatencyMs": _num(fields.get("zk_max_latency")),
        "uptimeMs": _num(fields.get("zk_uptime")),
        "syncedFollowers": _num(fields.get("zk_synced_followers")),
        "version": fields.get("zk_version"),
        "actors": actors,
    }


class EnsembleMonitor:
    """Asks every host for its figures, all at once, at most every `min_interval` seconds (the
    page polls every second or two; several browser sessions share the samples)."""

    def __init__(
        self,
        hosts: list[tuple[str, int]],
        *,
        timeout: float = 1.5,
        min_interval: float = 0.5,
        curve_server_key: Any = None,
        curve_secret_key: str | None = None,
    ) -> None:
        self.hosts = list(hosts)
        self.timeout = timeout
        self.min_interval = min_interval
        self._keys = self._load_keys(curve_server_key, curve_secret_key)
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None
        self._last_at = 0.0
        self._previous: dict[str, tuple[float, int]] = {}  # host -> (when, packets received)
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(16, len(self.hosts))), thread_name_prefix="console-mntr")

    def _load_keys(self, server_key: Any, secret_key: str | None) -> dict[str, Any] | None:
        if server_key is None and secret_key is None:
            return None
        from runtime import curve

        if server_key is None or secret_key is None:
            raise ValueError("CURVE needs both the node's public key and this client's key pair")
        pair = curve.secret_pair(secret_key)
        if isinstance(server_key, dict):
            keys = {str(k): curve.public_key(v) for k, v in server_key.items()}
        else:
            keys = {"*": curve.public_key(server_key)}
        return {"pair": pair, "servers": keys}

    def _ask(self, host: str, port: int, word: str) -> str:
        from zoomq.admin import ask

        keys = None
        if self._keys is not None:
            server = self._keys["servers"].get(f"{host}:{port}") or self._keys["servers"].get("*")
            if server is None:
                raise ValueError(f"no CURVE server key for {host}:{port}")
            keys = (self._keys["pair"], server)
        return ask(host, port, word, timeout=self.timeout, curve_keys=keys)

    def _one(self, host: str, port: int) -> dict[str, Any]:
        name = f"{host}:{port}"
        started = time.monotonic()
        try:
            fields = parse_mntr(self._ask(host, port, "mntr"))
            source = "mntr"
            if "zk_server_state" not in fields:
                fields, source = parse_srvr(self._ask(host, port, "srvr")), "srvr"
        except Exception as exc:  # noqa: BLE001 - a host that does not answer is shown as down
            self._previous.pop(name, None)
            return {"host": name, "ok": False, "error": f"{type(exc).__name__}: {exc}", "role": None, "actors": {}}
        out = {"host": name, "ok": True, "error": None, "source": source, **summarize(fields)}
        now = time.monotonic()
        received = out.get("packetsReceived")
        rate = None
        prev = self._previous.get(name)
        if isinstance(received, int):
            if prev is not None and received >= prev[1] and now > prev[0]:
                rate = (received - prev[1]) / (now - prev[0])
            self._previous[name] = (now, received)
        out["receivedPerSecond"] = rate
        out["askMs"] = round((now - started) * 1000, 1)
        return out

    def sample(self) -> dict[str, Any]:
        """{"at": unix time, "hosts": [...], "leader": "host:port" or None}."""
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last_at < self.min_interval:
                return self._last
            rows = list(self._pool.map(lambda hp: self._one(*hp), self.hosts))
            leaders = [r["host"] for r in rows if r.get("role") == "leader"]
            standalone = [r["host"] for r in rows if r.get("role") == "standalone"]
            rates = [r["receivedPerSecond"] for r in rows if r.get("receivedPerSecond") is not None]
            self._last = {
                "at": time.time(),
                "hosts": rows,
                "leader": (leaders or standalone or [None])[0],
                "receivedPerSecond": sum(rates) if rates else None,
                "up": sum(1 for r in rows if r["ok"]),
            }
            self._last_at = time.monotonic()
            return self._last

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
