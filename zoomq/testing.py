"""Real zoomq nodes for tests: this project's own, and those of applications that use zoomq.

```python
from zoomq.testing import ZoomqServer, wait_for

with ZoomqServer() as server:              # a standalone node on a free port, data in a temp dir
    zk = server.client()                   # a started zoomq.Client, stopped with the server
    zk.create("/app", b"x")
    server.restart()                       # same data dir and port: what survives a restart
    server.kill()                          # SIGKILL to the whole node: what survives a crash
```

With pytest, `from zoomq.testing import zoomq_server` in a conftest.py gives a fixture yielding a
started node whose data lives in the test's tmp_path.

Rules: processes are found and stopped by PID only (the node's supervisor and its process tree,
via psutil); every wait has a deadline; nothing binds outside 127.0.0.1 unless asked to.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self, TypeVar

import psutil

__all__ = ["ServerStartError", "ZoomqEnsemble", "ZoomqServer", "free_port", "wait_for", "zoomq_server"]

T = TypeVar("T")
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # holds zoomq/, runtime/, actors/
_LOG_TAIL_BYTES = 4000
KEEP_LOGS_ENV = "ZOOMQ_KEEP_LOGS"  # a directory: each node's log is copied there when its run dir goes


# free_port's ports: below the ephemeral range, and below 20000 (tests that need a run of
# consecutive ports, as `zoomq ensemble up --base-port` does, draw theirs from 20000-32767).
_PORT_FLOOR, _PORT_CEILING = 10_000, 20_000


def _ephemeral_low() -> int:
    """The lowest port the kernel gives outgoing connections (Linux: 32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class _Ports:
    """This process's share of the ports below the ephemeral range, handed out in turn: one slice
    per pytest-xdist worker (gw0, gw1, ...), so two workers never hand out the same port, starting
    at a point drawn from the PID, so two test runs side by side rarely meet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slice: tuple[int, int] | None = None
        self._next = 0

    def _share(self) -> tuple[int, int]:
        workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
        index = int(worker) % workers if worker.isdigit() else 0
        width = (min(_ephemeral_low(), _PORT_CEILING) - _PORT_FLOOR) // workers
        return _PORT_FLOOR + index * width, _PORT_FLOOR + (index + 1) * width

    def take(self, host: str) -> int | None:
        """The next port of the slice nothing holds now; None if there is no slice."""
        with self._lock:
            if self._slice is None:
                self._slice = self._share()
                first, end = self._slice
                # Knuth's multiplicative hash: processes started one after another (PIDs n, n+1)
                # begin far apart in the slice, not on neighbouring ports.
                self._next = first + (os.getpid() * 2654435761) % max(1, end - first)
            first, end = self._slice
            if end - first < 100:
                return None
            for _ in range(2_000):
                port, self._next = self._next, (self._next + 1 if self._next + 1 < end else first)
                if _bindable(host, port):
                    return port
        return None


_PORTS = _Ports()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now and that no other caller is given.

    A port the kernel picks (bind to 0) comes from the range it also gives outgoing connections,
    and is free only until someone binds or connects from it: another test's node, or any
    client's connection, could take it before the node it was picked for binds. So ports come
    from below that range (no outgoing connection uses them), each once per process, from this
    pytest-xdist worker's own slice; a port something holds is skipped. Where the ephemeral range
    leaves no room below it, the kernel picks."""
    port = _PORTS.take(host)
    if port is not None:
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, what: str = "", interval: float = 0.01) -> T:
    """Call `predicate` until it returns something truthy, and return that; TimeoutError after
    `timeout` seconds. Exceptions from `predicate` propagate."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what or predicate!r}")
        time.sleep(interval)


def expire_session(client: Any, timeout: float = 30.0) -> None:
    """End `client`'s session as the node would on expiry, and wait until the client knows it.

    Another connection takes the session over with the client's id and password and closes it:
    the node deletes its ephemerals, fires their watches, and answers the client's next message on
    its old connection with SESSIONEXPIRED. Returns once the client has reported LOST (it may have
    opened a new session since, as kazoo does).
    """
    from zoomq import Client, KazooState

    lost = threading.Event()

    def listener(state: str) -> None:
        if state == KazooState.LOST:
            lost.set()

    session_id, passwd = wait_for(lambda: client.client_id, timeout=timeout, what="a connected client")
    client.add_listener(listener)
    try:
        hosts = ",".join(f"{h}:{p}" for h, p in client.hosts) + client.chroot
        thief = Client(hosts=hosts, client_id=(session_id, passwd))
        thief.start(timeout=timeout)
        try:
            if thief.client_id is None or thief.client_id[0] != session_id:
                raise AssertionError(f"session {session_id:#x} was already gone")
            # The client may have written under this session, with xids just past where the thief
            # starts, before the thief's connection took the session over (after that, its writes
            # are refused with SESSIONMOVED): number the Close far beyond them, so that it is never
            # taken for a re-sent one of the client's requests and answered with its result.
            thief._engine_call(thief._engine.skip_xids, 1 << 20)
        finally:
            thief.stop()  # closes the session
        if not lost.wait(timeout):
            raise AssertionError(f"the client did not report its session {session_id:#x} lost within {timeout} s")
    finally:
        client.remove_listener(listener)


class ServerStartError(RuntimeError):
    """The node exited or did not become ready in time; the message holds the tail of its log."""


class ZoomqServer:
    """One standalone zoomq node (`python -m zoomq server`) run as a subprocess.

    `data_dir`: kept at stop when given; a temporary one (removed at stop) when None.
    `port`: the client port; a free one when None. `client_options`: extra `zoomq.Client`
    arguments for the clients it makes (the readiness probe, `client()`), e.g. CURVE keys. Other
    keyword arguments are `NodeConfig` fields (`tick_ms=500`, `snapshot_every=100`,
    `servers=[...]`, `curve_secret_key=...`) written into the generated TOML file.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        port: int | None = None,
        client_options: dict[str, Any] | None = None,
        **config_overrides: Any,
    ) -> None:
        self.host = str(config_overrides.pop("client_host", "127.0.0.1"))
        port_override = config_overrides.pop("client_port", None)
        self.port = int(port or port_override or free_port())
        self._own_data_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="zoomq-data-"))
        self.config_overrides = config_overrides
        self.client_options = dict(client_options or {})
        self.run_dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._clients: list[Any] = []
        self._log_file: Any = None

    # --- facts --------------------------------------------------------------------------------

    @property
    def sid(self) -> int:
        return int(self.config_overrides.get("sid", 1))

    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        """The node's stderr (its structlog lines), kept until stop()."""
        return self.run_dir / "node.log" if self.run_dir is not None else None

    def log_text(self) -> str:
        path = self.log_path
        if path is None:
            return ""
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    def status(self) -> dict[str, Any]:
        """The supervisor's status.json ({} while it is not written yet)."""
        if self.run_dir is None:
            return {}
        try:
            return json.loads((self.run_dir / "status.json").read_bytes())
        except (OSError, ValueError):
            return {}

    def standby_ready(self) -> bool:
        """Whether this ensemble node's next role actor waits ready (started ahead of time, its
        state read): a leader change on this node then starts no interpreter."""
        from runtime.spawn import STANDBY_READY

        if self.run_dir is None or not self.running:
            return False
        try:
            pid = int((self.run_dir / STANDBY_READY).read_text())
            proc = psutil.Process(pid)
            alive = proc.ppid() == self.pid and proc.status() != psutil.STATUS_ZOMBIE
        except (OSError, ValueError, psutil.Error):
            return False
        roles = {a.get("pid") for a in self.status().get("actors", {}).values()}
        return alive and pid not in roles  # not already the role actor it became

    def actor_pids(self) -> dict[str, int]:
        """{actor name: pid} of the supervisor's live actor processes."""
        if not self.running:
            return {}
        try:
            children = psutil.Process(self.pid).children()
        except psutil.Error:
            return {}
        pids: dict[str, int] = {}
        roles: dict[int, str] | None = None
        for proc in children:
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                cmdline = proc.cmdline()
            except psutil.Error:
                continue
            if "runtime.spawn" in cmdline:
                at = cmdline.index("runtime.spawn")
                if at + 1 < len(cmdline):
                    name = cmdline[at + 1]
                    if name == "standby":  # started ahead of time: which role it became, if any
                        if roles is None:
                            roles = {a.get("pid"): n for n, a in self.status().get("actors", {}).items()}
                        name = roles.get(proc.pid, "")
                    if name:
                        pids[name] = proc.pid
        return pids

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> Self:
        """Start the node and wait until a client can open a session on it."""
        if self.running:
            return self
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> Self:
        """Start the node's process without waiting (see `wait_ready`)."""
        if self.running:
            return self
        self._cleanup_run_dir()
        self.run_dir = Path(tempfile.mkdtemp(prefix="zq-", dir="/tmp"))  # short: ipc path limit
        config_path = self.run_dir / "node.toml"
        config_path.write_text(self._toml())
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed at stop
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoomq", "server", "--config", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            env=env,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 20.0) -> Self:
        """Wait until a client can open a session on this node; stop it and raise
        ServerStartError (with the log's tail) if it does not."""
        assert self.proc is not None, "launch() first"
        try:
            self._wait_ready(timeout)
        except KeyboardInterrupt:
            self.stop()
            raise
        except Exception:  # noqa: BLE001 - any failure to start is reported with the log
            tail = self._log_tail()
            code = self.proc.poll()
            self.stop()
            if code is not None:
                raise ServerStartError(f"zoomq node exited with code {code} while starting; log:\n{tail}") from None
            raise ServerStartError(f"zoomq node not ready within {timeout:g}s; log:\n{tail}") from None
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the clients, SIGTERM the node, SIGKILL whatever of its tree is left after
        `timeout`; remove its run dir and its data dir unless that was given."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.stop()
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        self._stop_processes(timeout)
        self._cleanup_run_dir()
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self, timeout: float = 20.0) -> Self:
        """Stop the node (keeping its data dir and port) and start it again."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.stop()
        self._clients.clear()
        self._stop_processes(10.0)
        return self.start(timeout)

    def kill(self) -> None:
        """SIGKILL the supervisor and every actor at once (a crash); files stay as they are."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGSTOP)  # frozen: it cannot start a replacement meanwhile
        tree = _tree(proc.pid)
        for p in tree:
            with contextlib.suppress(psutil.Error):
                p.kill()
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10.0)
        _wait_gone(tree, 10.0)
        self._close_log()

    def pause(self) -> None:
        """SIGSTOP the node's whole process tree (a hung machine: sockets stay open, nothing answers)."""
        assert self.proc is not None
        _each(self.proc.pid, psutil.Process.suspend)

    def resume(self) -> None:
        """SIGCONT what `pause` stopped."""
        assert self.proc is not None
        _each(self.proc.pid, psutil.Process.resume)

    def client(self, start_timeout: float = 15.0, **kw: Any) -> Any:
        """A started `zoomq.Client` on this node; stopped by `stop()`."""
        from zoomq import Client

        kw.setdefault("hosts", self.hosts)
        client = Client(**{**self.client_options, **kw})
        client.start(timeout=start_timeout)
        self._clients.append(client)
        return client

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ZoomqServer(hosts={self.hosts!r}, data_dir={str(self.data_dir)!r}, pid={self.pid})"

    # --- internals ----------------------------------------------------------------------------

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc is not None

        def supervisor_reports_all_actors() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise ServerStartError("exited")
            status = self.status()
            actors = status.get("actors") or {}
            return (
                status.get("state") == "running"
                and bool(actors)
                and all(a.get("pid") and psutil.pid_exists(a["pid"]) for a in actors.values())
            )

        wait_for(supervisor_reports_all_actors, timeout=timeout, what="the supervisor's actors", interval=0.02)
        wait_for(
            lambda: self._port_open() or (self.proc is not None and self.proc.poll() is not None),
            timeout=max(0.1, deadline - time.monotonic()),
            what=f"port {self.port}",
            interval=0.02,
        )
        if self.proc.poll() is not None:
            raise ServerStartError("exited")
        try:
            from zoomq import Client
        except ImportError:
            return  # no client yet (server-side work in progress): the bound port has to do
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError("exited")
            probe = Client(hosts=self.hosts, **self.client_options)
            try:
                probe.start(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last = exc
            finally:
                with contextlib.suppress(Exception):
                    probe.stop()
                with contextlib.suppress(Exception):
                    probe.close()
        raise TimeoutError(f"no session could be opened on {self.hosts}: {last!r}")

    def _port_open(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _stop_processes(self, timeout: float) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            tree = _tree(proc.pid)
            _each(proc.pid, psutil.Process.resume)  # a paused node could not act on SIGTERM
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    proc.send_signal(signal.SIGSTOP)
                tree = _merge(tree, _tree(proc.pid))
                with contextlib.suppress(OSError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
            alive = []
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    if p.is_running():
                        p.kill()
                        alive.append(p)
            _wait_gone(alive, timeout)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None

    def _cleanup_run_dir(self) -> None:
        if self.run_dir is not None:
            keep = os.environ.get(KEEP_LOGS_ENV)
            if keep:  # the log would go with the run dir: keep a copy for a later look
                with contextlib.suppress(OSError):
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(self.run_dir / "node.log", Path(keep) / f"{self.run_dir.name}-node{self.sid}.log")
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None

    def _log_tail(self) -> str:
        text = self.log_text()
        return text[-_LOG_TAIL_BYTES:]

    def _toml(self) -> str:
        values: dict[str, Any] = {
            "data_dir": str(Path(self.data_dir).resolve()),
            "client_host": self.host,
            "client_port": self.port,
            "run_dir": str(self.run_dir),
        }
        values.update(self.config_overrides)
        return to_toml(values)


class ZoomqEnsemble:
    """An ensemble of `n` participants and `observers` observers on 127.0.0.1, each node a
    `ZoomqServer` (its own supervisor process, data dir `<base_dir>/node<sid>`, free ports).

    ```python
    with ZoomqEnsemble(3) as ens:
        zk = ens.client()                 # connection string with every node
        leader = ens.leader()             # the ZoomqServer whose node leads
        leader.kill()                     # SIGKILL the whole node
        ens.wait_leader(exclude=leader)   # a new leader serves
    ```
    `node_overrides` = {sid: {field: value}} for one node's own settings (e.g. its metrics_port). Other
    keyword arguments are NodeConfig fields for every node (`tick_ms` defaults to 100 so
    that failure detection takes a fraction of a second; session timeouts may still be long).
    `curve=True` gives every node a CurveZMQ key pair (in `<base_dir>/keys`) and `client()` a
    client key the nodes admit (`<base_dir>/keys/clients/client.key`).
    """

    def __init__(
        self,
        n: int = 3,
        observers: int = 0,
        base_dir: str | Path | None = None,
        curve: bool = False,
        node_overrides: dict[int, dict[str, Any]] | None = None,
        **config_overrides: Any,
    ) -> None:
        from runtime.config import ServerEntry

        self._own_base = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="zoomq-ens-"))
        config_overrides.setdefault("tick_ms", 100)
        config_overrides.setdefault("max_session_timeout_ms", 60_000)  # short ticks, not short sessions
        self.servers = [
            ServerEntry(
                id=sid,
                host="127.0.0.1",
                quorum_port=free_port(),
                election_port=free_port(),
                client_port=free_port(),
                role="observer" if sid > n else "participant",
            )
            for sid in range(1, n + observers + 1)
        ]
        per_node: dict[int, dict[str, Any]] = {entry.id: {} for entry in self.servers}
        client_options: dict[str, Any] = {}
        if curve:
            self.servers, per_node, client_options = curve_keys(self.base_dir / "keys", self.servers)
        for sid, extra in (node_overrides or {}).items():  # e.g. {1: {"metrics_port": P}}: one node's own settings
            per_node[sid] = {**per_node[sid], **extra}
        self.client_options = client_options
        self._overrides = config_overrides
        self._clients: list[Any] = []
        self.removed: set[int] = set()  # ids a reconfig took out (see retire)
        self.nodes = [
            ZoomqServer(
                data_dir=self.base_dir / f"node{entry.id}",
                port=entry.client_port,
                client_options=client_options,
                sid=entry.id,
                servers=self.servers,
                **per_node[entry.id],
                **config_overrides,
            )
            for entry in self.servers
        ]

    @property
    def hosts(self) -> str:
        return ",".join(node.hosts for node in self.nodes if node.sid not in self.removed)

    def add_node(
        self, role: str = "participant", timeout: float = 30.0, *, wait: bool = True, admit: bool = True
    ) -> ZoomqServer:
        """Start one more node (the next id, free ports), configured as a machine joining the
        ensemble is: the current members and itself. It follows the leader as a non-voting
        learner until a reconfig adds it (`spec(node)` is what to pass as `joining`).
        With CURVE, its public key goes where the members look for joiners' keys, unless `admit`
        is False (`admit(node)` later). `wait`=False: launched, not waited for."""
        from runtime.config import ServerEntry

        entry = ServerEntry(
            id=max(s.id for s in self.servers) + 1,
            host="127.0.0.1",
            quorum_port=free_port(),
            election_port=free_port(),
            client_port=free_port(),
            role=role,
        )
        own: dict[str, Any] = {}
        if self.client_options:  # CURVE: its key pair, its public key where the members look for it
            entry, own = curve_join(self.base_dir / "keys", entry, admit=admit)
            self.client_options["curve_server_key"][f"{entry.host}:{entry.client_port}"] = entry.curve_public_key
        members = [s for s in self.servers if s.id not in self.removed]
        node = ZoomqServer(
            data_dir=self.base_dir / f"node{entry.id}",
            port=entry.client_port,
            client_options=self.client_options,
            sid=entry.id,
            servers=[*members, entry],
            **own,
            **self._overrides,
        )
        self.servers = [*self.servers, entry]  # a new list: the other nodes' configs keep theirs
        self.nodes.append(node)
        if wait:
            node.start(timeout)
        else:
            node.launch()
        return node

    def admit(self, node: ZoomqServer) -> None:
        """CURVE: put the node's public key where the members look for joiners' keys."""
        from runtime import curve

        keys = self.base_dir / "keys"
        curve.install_server_key(keys / "peers", node.sid, keys / f"node{node.sid}.key")

    def spec(self, node: ZoomqServer) -> str:
        """The node's server spec, as reconfig's `joining` takes it."""
        return next(s for s in self.servers if s.id == node.sid).spec()

    def retire(self, node: ZoomqServer) -> None:
        """After a reconfig removed the node: stop it and leave it out of `hosts`."""
        self.removed.add(node.sid)
        node.stop()

    def node(self, sid: int) -> ZoomqServer:
        return self.nodes[sid - 1]

    def start(self, timeout: float = 30.0) -> Self:
        for node in self.nodes:
            node.launch()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait_ready(max(1.0, deadline - time.monotonic()))
        return self

    def role_of(self, node: ZoomqServer) -> str | None:
        return node.status().get("role") if node.running else None

    def leader(self, timeout: float = 20.0, exclude: ZoomqServer | None = None) -> ZoomqServer:
        """The running node that leads (waits for one, bounded)."""

        def find() -> ZoomqServer | None:
            for node in self.nodes:
                if node is not exclude and node.running and self.role_of(node) == "leader":
                    return node
            return None

        return wait_for(find, timeout=timeout, what="a leader")

    def wait_leader(self, timeout: float = 20.0, exclude: ZoomqServer | None = None) -> ZoomqServer:
        """A leader (not `exclude`) whose node serves clients."""
        leader = self.leader(timeout, exclude)
        leader.wait_ready(timeout)
        return leader

    def wait_standbys(self, timeout: float = 60.0) -> None:
        """Until every running node has its standby role actor ready (see ZoomqServer.standby_ready)."""
        wait_for(
            lambda: all(n.standby_ready() for n in self.nodes if n.running),
            timeout=timeout,
            what="standby role actors ready",
        )

    def followers(self) -> list[ZoomqServer]:
        return [n for n in self.nodes if n.running and self.role_of(n) == "follower"]

    def client(self, start_timeout: float = 20.0, hosts: str | None = None, **kw: Any) -> Any:
        from zoomq import Client

        client = Client(hosts=hosts or self.hosts, **{**self.client_options, **kw})
        client.start(timeout=start_timeout)
        self._clients.append(client)  # stopped with the ensemble (not with any one node)
        return client

    def stop(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.stop()
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        if self._own_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def curve_keys(directory: Path, servers: list[Any]) -> tuple[list[Any], dict[int, dict[str, Any]], dict[str, Any]]:
    """Key pairs for an ensemble: `node<id>` per member and one `client` the nodes admit.
    Returns (servers with their public keys, NodeConfig fields per member, Client arguments)."""
    import msgspec

    from runtime import curve

    keyed, per_node, server_keys = [], {}, {}
    (directory / "peers").mkdir(parents=True, exist_ok=True)
    for entry in servers:
        public_file, secret_file = curve.generate(directory, f"node{entry.id}")
        key = curve.public_key(str(public_file)).decode()
        keyed.append(msgspec.structs.replace(entry, curve_public_key=key))
        per_node[entry.id] = _curve_fields(directory, secret_file)
        server_keys[f"{entry.host}:{entry.client_port}"] = key
    _, client_secret = curve.generate(directory / "clients", "client")
    return keyed, per_node, {"curve_server_key": server_keys, "curve_secret_key": str(client_secret)}


def _curve_fields(directory: Path, secret_file: Path) -> dict[str, Any]:
    return {
        "curve_secret_key": str(secret_file),
        "curve_client_keys": str(directory / "clients"),
        "curve_peer_keys": str(directory / "peers"),
    }


def curve_join(directory: Path, entry: Any, admit: bool = True) -> tuple[Any, dict[str, Any]]:
    """A key pair for a node about to join a `curve_keys` ensemble by a reconfig, its public key
    put where the members look for joiners' keys (`peers/server.<id>.key`) if `admit`. Returns
    (its entry with its public key, its NodeConfig fields)."""
    import msgspec

    from runtime import curve

    public_file, secret_file = curve.generate(directory, f"node{entry.id}")
    if admit:
        curve.install_server_key(directory / "peers", entry.id, public_file)
    key = curve.public_key(str(public_file)).decode()
    return msgspec.structs.replace(entry, curve_public_key=key), _curve_fields(directory, secret_file)


def _gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Until every process is dead (a zombie counts: it runs nothing), bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while procs and time.monotonic() < deadline:
        procs = [p for p in procs if not _gone(p)]
        if procs:
            time.sleep(0.005)


def _each(pid: int, action: Callable[[psutil.Process], Any]) -> None:
    """`action` on process `pid` and every process of its tree (those gone meanwhile are skipped)."""
    with contextlib.suppress(psutil.Error):
        action(psutil.Process(pid))
    for p in _tree(pid):
        with contextlib.suppress(psutil.Error):
            action(p)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _merge(a: list[psutil.Process], b: list[psutil.Process]) -> list[psutil.Process]:
    seen = {p.pid for p in a}
    return a + [p for p in b if p.pid not in seen]


def to_toml(values: dict[str, Any]) -> str:
    """TOML for a flat config: scalars, lists of scalars, and lists of tables (`servers`)."""
    import msgspec

    scalars: list[str] = []
    tables: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        value = msgspec.to_builtins(value)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                tables.append(f"\n[[{key}]]")
                tables.extend(f"{k} = {_toml_scalar(v)}" for k, v in item.items() if v is not None)
        else:
            scalars.append(f"{key} = {_toml_scalar(value)}")
    return "\n".join(scalars + tables) + "\n"


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_scalar(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table, keys quoted
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_scalar(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


try:  # pytest is optional: the fixture exists only where pytest does
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def zoomq_server(tmp_path: Path) -> Iterator[ZoomqServer]:
        """A started standalone node with its data in the test's tmp_path; stopped afterwards."""
        server = ZoomqServer(data_dir=tmp_path / "zoomq-data")
        server.start()
        try:
            yield server
        finally:
            server.stop()
