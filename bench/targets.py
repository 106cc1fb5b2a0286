"""The systems under test, started and stopped by the harness: zoomq and Apache ZooKeeper.

Both offer the same face to the harness (`Target`): start every node in a temp dir on free ports
of 127.0.0.1 and wait until each serves, name its nodes with their roles and client addresses,
list every process of each node's tree (for CPU and memory accounting), find and kill the leader,
restart nodes on the same data, and stop everything. Processes are found and stopped by PID only
(the process each node was started as, and its psutil tree).

- zoomq: a standalone `ZoomqServer` (`--nodes 1`) or a `ZoomqEnsemble`; per-actor processes are
  named from the node's status.json (zoomq.testing's `actor_pids()`).
- ZooKeeper: one `java ... org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg` per node
  with a generated zoo.cfg (same node count and tickTime as zoomq would get, forceSync=yes, data in
  a temp dir). The jars come from Debian's `zookeeper` package (/usr/share/java/zookeeper.jar,
  whose manifest names its dependencies) or from $ZOOKEEPER_HOME/lib of an upstream tarball.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import psutil

from zoomq.testing import ZoomqEnsemble, ZoomqServer, free_port, wait_for

TARGETS = ("zoomq", "zookeeper")
INSTALL_HINT = (
    "Apache ZooKeeper is not installed: install it with `apt-get install -y zookeeper` (Debian/Ubuntu; "
    "it puts the jars in /usr/share/java) or unpack an upstream release and set ZOOKEEPER_HOME; "
    "Java 11+ must be on PATH."
)
STOP_TIMEOUT_S = 10.0


@dataclass
class NodeInfo:
    """One node as the harness sees it."""

    sid: int
    hosts: str  # "127.0.0.1:port" for clients
    role: str  # standalone | leader | follower | observer | down | looking
    pid: int | None  # the process the node was started as (the root of its tree)
    data_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"node{self.sid}"


class Target:
    """What the harness needs from a system under test (see the module docstring)."""

    name = "target"

    def start(self, timeout: float = 60.0) -> Target:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def nodes(self) -> list[NodeInfo]:
        raise NotImplementedError

    def kill_node(self, sid: int) -> None:
        """SIGKILL node `sid`'s whole process tree; its files stay."""
        raise NotImplementedError

    def stop_node(self, sid: int) -> None:
        """Stop node `sid` (SIGTERM, then SIGKILL of what is left); its files stay."""
        raise NotImplementedError

    def launch_node(self, sid: int) -> None:
        """Start node `sid` again on its data dir and ports, without waiting."""
        raise NotImplementedError

    def wait_node(self, sid: int, timeout: float = 60.0) -> None:
        """Until node `sid` serves clients."""
        raise NotImplementedError

    def processes(self) -> dict[str, psutil.Process]:
        """Every live process of every node, by a label `node<sid>:<role>/<name>`."""
        raise NotImplementedError

    # --- shared on top of the above ------------------------------------------------------------

    @property
    def hosts(self) -> str:
        return ",".join(n.hosts for n in self.nodes())

    def leader(self, timeout: float = 30.0) -> NodeInfo:
        """The node that leads (a standalone node leads itself); waits for one, bounded."""

        def find() -> NodeInfo | None:
            return next((n for n in self.nodes() if n.role in ("leader", "standalone")), None)

        return wait_for(find, timeout=timeout, what=f"a {self.name} leader", interval=0.05)

    def client_hosts(self, connect: str = "spread") -> list[str]:
        """Addresses to give client processes in turn (client i gets entry i % len).

        spread: every node, those that do not lead first (a client of a follower is the common
        case, and it pays the forwarding hop); leader: the leader only; followers: every node but
        the leader (the leader on a standalone node)."""
        nodes = self.nodes()
        lead = [n for n in nodes if n.role in ("leader", "standalone")]
        rest = [n for n in nodes if n not in lead]
        if connect == "leader":
            chosen = lead or nodes
        elif connect == "followers":
            chosen = rest or lead
        else:
            chosen = rest + lead
        return [n.hosts for n in chosen]

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- zoomq ---------------------------------------------------------------------------------------


class ZoomqTarget(Target):
    """A standalone zoomq node or an ensemble, data under one temp dir removed at stop."""

    name = "zoomq"

    def __init__(
        self, nodes: int = 1, observers: int = 0, tick_ms: int = 2000, zk_gateway: bool = False, **config: Any
    ) -> None:
        self.n, self.observers, self.tick_ms = nodes, observers, tick_ms
        self.zk_gateway = zk_gateway  # each node also serves ZooKeeper's protocol (for kazoo clients)
        self.base = Path(tempfile.mkdtemp(prefix="bench-zoomq-"))
        self.config = config
        if nodes <= 1 and observers == 0:
            self.ensemble: ZoomqEnsemble | None = None
            # An explicit data dir: a node's stop() keeps it, so that restarts find the data.
            self.servers = [ZoomqServer(data_dir=self.base / "node1", tick_ms=tick_ms, **config)]
        else:
            self.ensemble = ZoomqEnsemble(nodes, observers=observers, base_dir=self.base, tick_ms=tick_ms, **config)
            self.servers = list(self.ensemble.nodes)
        if zk_gateway:
            for server in self.servers:
                server.config_overrides["zk_port"] = free_port()

    def _server(self, sid: int) -> ZoomqServer:
        return self.servers[sid - 1]

    def start(self, timeout: float = 60.0) -> ZoomqTarget:
        for server in self.servers:
            server.launch()
        deadline = time.monotonic() + timeout
        for server in self.servers:
            server.wait_ready(max(1.0, deadline - time.monotonic()))
        if self.ensemble is not None:
            self.leader(max(1.0, deadline - time.monotonic()))
            # Measured as a node runs after its first seconds: with its standby role actor up (its
            # start, an interpreter and imports, would otherwise fall into the measured window).
            wait_for(
                lambda: all(s.standby_ready() for s in self.servers),
                timeout=max(1.0, deadline - time.monotonic()),
                what="standby role actors ready",
            )
        return self

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop(STOP_TIMEOUT_S)
        shutil.rmtree(self.base, ignore_errors=True)

    def _role(self, server: ZoomqServer) -> str:
        if not server.running:
            return "down"
        if self.ensemble is None:
            return "standalone"
        return server.status().get("role") or "looking"

    def nodes(self) -> list[NodeInfo]:
        return [
            NodeInfo(
                sid=i + 1,
                hosts=self._hosts(s),
                role=self._role(s),
                pid=s.pid if s.running else None,
                data_dir=s.data_dir,
            )
            for i, s in enumerate(self.servers)
        ]

    def _hosts(self, server: ZoomqServer) -> str:
        """Where clients connect: the ZooKeeper-protocol port when kazoo drives zoomq."""
        if self.zk_gateway:
            return f"{server.host}:{server.config_overrides['zk_port']}"
        return server.hosts

    def kill_node(self, sid: int) -> None:
        self._server(sid).kill()

    def stop_node(self, sid: int) -> None:
        server = self._server(sid)
        server.stop(STOP_TIMEOUT_S)  # the data dir was given: it stays

    def launch_node(self, sid: int) -> None:
        self._server(sid).launch()

    def wait_node(self, sid: int, timeout: float = 60.0) -> None:
        self._server(sid).wait_ready(timeout)

    def actor_pids(self, sid: int) -> dict[str, int]:
        """{actor: pid} from the status.json the node's supervisor keeps in its data dir (what
        `zoomq ensemble status` reads), completed from the process tree while it is not written."""
        server = self._server(sid)
        pids: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            status = json.loads((server.data_dir / "status.json").read_bytes())
            if status.get("pid") == server.pid:  # not a file left by an earlier run
                pids = {name: a["pid"] for name, a in (status.get("actors") or {}).items() if a.get("pid")}
                if standby := (status.get("standby") or {}).get("pid"):
                    pids["standby"] = standby
        return {**server.actor_pids(), **pids}

    def processes(self) -> dict[str, psutil.Process]:
        out: dict[str, psutil.Process] = {}
        for node in self.nodes():
            if node.pid is None:
                continue
            names = {pid: name for name, pid in self.actor_pids(node.sid).items()}
            for proc in _tree_with_root(node.pid):
                name = "supervisor" if proc.pid == node.pid else names.get(proc.pid, f"pid{proc.pid}")
                out[f"{node.label}:{node.role}/{name}"] = proc
        return out


# --- Apache ZooKeeper ----------------------------------------------------------------------------


def zookeeper_classpath(with_netty: bool = False) -> str | None:
    """The classpath of an installed ZooKeeper server, or None when there is none (or no java).
    `with_netty`: also what Debian's manifest leaves out for the Netty connection factory, the
    secure client port and the admin server (kazoo's test harness configures all three)."""
    if shutil.which("java") is None:
        return None
    home = os.environ.get("ZOOKEEPER_HOME")
    if home:
        jars = sorted(glob.glob(os.path.join(home, "lib", "*.jar"))) + sorted(glob.glob(os.path.join(home, "*.jar")))
        if any("zookeeper" in os.path.basename(j) for j in jars):
            return os.pathsep.join(jars)
    debian = Path("/usr/share/java/zookeeper.jar")  # its manifest's Class-Path lists the dependencies
    if debian.exists():
        jars = [str(debian)]
        # slf4j-api alone logs nothing; the simple binding (set to WARN) keeps errors in node.log.
        simple = Path("/usr/share/java/slf4j-simple.jar")
        if simple.exists():
            jars.append(str(simple))
        if with_netty:
            extra = (
                "netty-codec.jar",
                "netty-resolver.jar",
                "netty-transport-native-unix-common.jar",
                "servlet-api.jar",
            )
            jars += [str(debian.parent / name) for name in extra if (debian.parent / name).exists()]
        return os.pathsep.join(jars)
    upstream = sorted(glob.glob("/usr/share/zookeeper/lib/*.jar"))
    if any("zookeeper" in os.path.basename(j) for j in upstream):
        return os.pathsep.join(upstream)
    return None


def zookeeper_available() -> bool:
    return zookeeper_classpath() is not None


def four_letter(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    """Ask a ZooKeeper node a four-letter word (ruok, srvr, mntr, ...) on its client port."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode())
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def zk_mode(host: str, port: int, timeout: float = 2.0) -> str | None:
    """`srvr`'s Mode (leader, follower, observer, standalone), or None when not serving."""
    try:
        text = four_letter(host, port, "srvr", timeout)
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


@dataclass
class _ZkNode:
    sid: int
    client_port: int
    quorum_port: int
    election_port: int
    observer: bool
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Any = None


class ZooKeeperTarget(Target):
    """`nodes` participants and `observers` observers of Apache ZooKeeper on 127.0.0.1."""

    name = "zookeeper"

    def __init__(
        self,
        nodes: int = 1,
        observers: int = 0,
        tick_ms: int = 2000,
        heap_mb: int = 1000,
        extra_cfg: dict[str, Any] | None = None,
    ) -> None:
        classpath = zookeeper_classpath()
        if classpath is None:
            raise RuntimeError(INSTALL_HINT)
        self.classpath = classpath
        self.n, self.observers, self.tick_ms, self.heap_mb = nodes, observers, tick_ms, heap_mb
        self.extra_cfg = dict(extra_cfg or {})
        self.base = Path(tempfile.mkdtemp(prefix="bench-zk-"))
        self.standalone = nodes <= 1 and observers == 0
        self._nodes = [
            _ZkNode(
                sid=sid,
                client_port=free_port(),
                quorum_port=free_port(),
                election_port=free_port(),
                observer=sid > nodes,
                dir=self.base / f"node{sid}",
            )
            for sid in range(1, nodes + observers + 1)
        ]
        for node in self._nodes:
            (node.dir / "data").mkdir(parents=True)
            (node.dir / "data" / "myid").write_text(f"{node.sid}\n")
            (node.dir / "zoo.cfg").write_text(self._cfg(node))

    def _cfg(self, node: _ZkNode) -> str:
        lines = {
            "tickTime": self.tick_ms,
            "initLimit": 10,
            "syncLimit": 5,
            "dataDir": str(node.dir / "data"),
            "clientPort": node.client_port,
            "clientPortAddress": "127.0.0.1",
            "forceSync": "yes",
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
            "maxClientCnxns": 0,  # the default 60 per address would cap the harness's clients
            "autopurge.purgeInterval": 0,
        }
        if not self.standalone:
            if node.observer:
                lines["peerType"] = "observer"
            for other in self._nodes:
                suffix = ":observer" if other.observer else ""
                lines[f"server.{other.sid}"] = f"127.0.0.1:{other.quorum_port}:{other.election_port}{suffix}"
        lines.update(self.extra_cfg)
        return "".join(f"{k}={v}\n" for k, v in lines.items())

    def _argv(self, node: _ZkNode) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap_mb}m",  # zkServer.sh's default heap (ZK_SERVER_HEAP=1000)
            "-Dzookeeper.admin.enableServer=false",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            f"-Dzookeeper.log.dir={node.dir}",
            "-cp",
            self.classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(node.dir / "zoo.cfg"),
        ]

    def _node(self, sid: int) -> _ZkNode:
        return self._nodes[sid - 1]

    def launch_node(self, sid: int) -> None:
        node = self._node(sid)
        if node.proc is not None and node.proc.poll() is None:
            return
        if node.log is not None:
            node.log.close()
        node.log = open(node.dir / "node.log", "ab")  # noqa: SIM115 - closed at stop
        node.proc = subprocess.Popen(
            self._argv(node),
            cwd=node.dir,
            stdin=subprocess.DEVNULL,
            stdout=node.log,
            stderr=node.log,
            start_new_session=True,
        )

    def wait_node(self, sid: int, timeout: float = 60.0) -> None:
        node = self._node(sid)

        def serving() -> bool:
            if node.proc is None or node.proc.poll() is not None:
                raise RuntimeError(f"ZooKeeper node {sid} exited while starting; log:\n{self.log_tail(sid)}")
            return zk_mode("127.0.0.1", node.client_port, timeout=1.0) in (
                "leader",
                "follower",
                "observer",
                "standalone",
            )

        try:
            wait_for(serving, timeout=timeout, what=f"ZooKeeper node {sid} to serve", interval=0.05)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; log:\n{self.log_tail(sid)}") from None

    def start(self, timeout: float = 60.0) -> ZooKeeperTarget:
        for node in self._nodes:
            self.launch_node(node.sid)
        deadline = time.monotonic() + timeout
        for node in self._nodes:
            self.wait_node(node.sid, max(1.0, deadline - time.monotonic()))
        self._probe_sessions(max(1.0, deadline - time.monotonic()))
        return self

    def _probe_sessions(self, timeout: float) -> None:
        """A kazoo session on every node: the ensemble serves, not just answers srvr."""
        from kazoo.client import KazooClient

        for node in self._nodes:
            zk = KazooClient(hosts=f"127.0.0.1:{node.client_port}", timeout=10.0)
            try:
                zk.start(timeout=timeout)
                zk.exists("/")
            finally:
                with contextlib.suppress(Exception):
                    zk.stop()
                with contextlib.suppress(Exception):
                    zk.close()

    def log_tail(self, sid: int, size: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return (self._node(sid).dir / "node.log").read_text(errors="replace")[-size:]
        return ""

    def kill_node(self, sid: int) -> None:
        node = self._node(sid)
        if node.proc is not None:
            _kill_tree(node.proc, graceful=False)

    def stop_node(self, sid: int) -> None:
        node = self._node(sid)
        if node.proc is not None:
            _kill_tree(node.proc, graceful=True)
        if node.log is not None:
            with contextlib.suppress(OSError):
                node.log.close()
            node.log = None

    def stop(self) -> None:
        for node in self._nodes:
            with contextlib.suppress(Exception):
                self.stop_node(node.sid)
        shutil.rmtree(self.base, ignore_errors=True)

    def nodes(self) -> list[NodeInfo]:
        out = []
        for node in self._nodes:
            running = node.proc is not None and node.proc.poll() is None
            role = (zk_mode("127.0.0.1", node.client_port) or "looking") if running else "down"
            out.append(
                NodeInfo(
                    sid=node.sid,
                    hosts=f"127.0.0.1:{node.client_port}",
                    role=role,
                    pid=node.proc.pid if running and node.proc else None,
                    data_dir=node.dir / "data",
                )
            )
        return out

    def processes(self) -> dict[str, psutil.Process]:
        out: dict[str, psutil.Process] = {}
        for node in self.nodes():
            if node.pid is None:
                continue
            for proc in _tree_with_root(node.pid):
                name = "java" if proc.pid == node.pid else f"pid{proc.pid}"
                out[f"{node.label}:{node.role}/{name}"] = proc
        return out


# --- helpers -------------------------------------------------------------------------------------


def make_target(name: str, nodes: int = 1, observers: int = 0, tick_ms: int = 2000, client: str = "native") -> Target:
    if name == "zoomq":
        return ZoomqTarget(nodes, observers, tick_ms, zk_gateway=client == "kazoo")
    if name == "zookeeper":
        return ZooKeeperTarget(nodes, observers, tick_ms)
    raise ValueError(f"unknown target {name!r} (one of {', '.join(TARGETS)})")


def _tree_with_root(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _kill_tree(proc: subprocess.Popen[bytes], graceful: bool) -> None:
    """Stop `proc` and every process of its tree, by PID: SIGTERM and a bounded wait first when
    `graceful`, then SIGKILL of whatever is left."""
    tree = _tree_with_root(proc.pid) if proc.poll() is None else []
    if graceful and proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT_S)
    for p in tree:
        with contextlib.suppress(psutil.Error):
            if p.is_running():
                p.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(STOP_TIMEOUT_S)
    psutil.wait_procs([p for p in tree if p.pid != proc.pid], timeout=STOP_TIMEOUT_S)


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU of a process, with that of its reaped children (zoomq forks snapshots)."""
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system + t.children_user + t.children_system


def memory_mib(procs: list[psutil.Process]) -> tuple[float, float]:
    """(RSS, PSS) summed over `procs`, in MiB. PSS shares each shared page among the processes
    mapping it: the fair figure for a node made of several processes."""
    rss = pss = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return rss / 2**20, pss / 2**20


__all__ = [
    "INSTALL_HINT",
    "TARGETS",
    "NodeInfo",
    "Target",
    "ZooKeeperTarget",
    "ZoomqTarget",
    "cpu_seconds",
    "four_letter",
    "make_target",
    "memory_mib",
    "zk_mode",
    "zookeeper_available",
    "zookeeper_classpath",
]
