"""An ensemble laid out on the lab's hosts (bench/nemesis/netns.py): one node per namespace.

`ZoomqCluster` runs `python -m zoomq server --config nodeN.toml` in host N's namespace, every node
on its own address with the standard ports; `ZooKeeperCluster` runs Apache ZooKeeper (Debian's
package, as bench/targets.py finds it) the same way. Both offer what the fault schedule needs:
start / kill (SIGKILL of the node's whole process tree) / pause (SIGSTOP of it) / resume, which node
leads, and for zoomq the PIDs of single actors.

Clock jumps: when libfaketime is installed (Debian's `faketime`), every node runs under it with
its offset read from `<dir>/faketime` (`+0` at rest); `jump_clock` writes a new offset there. Only
the wall clock moves (FAKETIME_DONT_FAKE_MONOTONIC=1): a timeout that depended on it would show.

Proxies (`proxy=True`): every host runs bench/nemesis/proxy.py, and every TCP link goes through the
proxy of the host that opens it. In host i's namespace, node j's ports are reached at 127.0.1.j
(the proxy listens there and forwards to j's real address), so node i's config names its peers by
those addresses and the clients name the nodes the same way; `link()` then delays, slows or stalls
the links to a host (the kernel here has no `tc netem`). The nftables faults still apply: the
proxy's own connections leave from its host's address.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.nemesis.netns import Lab

CLIENT_PORT, QUORUM_PORT, ELECTION_PORT = 2181, 2888, 3888
FAKETIME_LIBS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
)


def faketime_lib() -> str | None:
    return next((lib for lib in FAKETIME_LIBS if Path(lib).exists()), None)


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    """The first line a child prints, waiting at most `timeout`."""
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return out[0] if out else ""


def tree(proc: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return [proc, *proc.children(recursive=True)]
    return []


class Cluster:
    """What both targets share: processes per host, signals to their trees, the clock offset."""

    name = "?"

    def __init__(
        self,
        lab: Lab,
        nodes: int,
        observers: int,
        workdir: Path,
        tick_ms: int,
        faketime: bool = True,
        proxy: bool = True,
    ) -> None:
        self.lab, self.n, self.observers, self.tick_ms = lab, nodes, observers, tick_ms
        self.workdir = workdir
        self.proxied = proxy
        self.proxies: dict[int | str, subprocess.Popen] = {}
        self._sockets = Path(tempfile.mkdtemp(prefix="zqn-ctl-"))  # short paths: a Unix socket's is limited
        self.procs: dict[int, subprocess.Popen] = {}
        self.paused: set[int] = set()
        self.faketime = faketime_lib() if faketime else None
        for sid in self.sids:
            self.node_dir(sid).mkdir(parents=True, exist_ok=True)
            self.set_clock(sid, 0)

    @property
    def sids(self) -> list[int]:
        return list(range(1, self.n + self.observers + 1))

    def node_dir(self, sid: int) -> Path:
        return self.workdir / f"node{sid}"

    def peer_host(self, viewer: int | str, sid: int) -> str:
        """How host `viewer` addresses node `sid`: through its proxy, or directly."""
        return f"127.0.1.{sid}" if self.proxied and viewer != sid else self.lab.addr(sid)

    def address(self, sid: int) -> str:
        return f"{self.peer_host('c', sid)}:{CLIENT_PORT}"

    # --- proxies ---------------------------------------------------------------------------------

    def _routes(self, host: int | str) -> list[str]:
        ports = (CLIENT_PORT,) if host == "c" else (QUORUM_PORT, ELECTION_PORT)
        return [
            f"127.0.1.{sid}:{port}={self.lab.addr(sid)}:{port}" for sid in self.sids if sid != host for port in ports
        ]

    def start_proxies(self, timeout: float = 30.0) -> None:
        for host in self.lab.all_hosts():
            argv = [sys.executable, "-m", "bench.nemesis.proxy", "--control", str(self._sockets / f"{host}.sock")]
            for route in self._routes(host):
                argv += ["--route", route]
            with open(self.workdir / f"proxy-{host}.log", "ab") as log:  # the child keeps its own copy
                proc = self.lab.popen(
                    host,
                    argv,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    cwd=Path(__file__).resolve().parents[2],
                )
            self.proxies[host] = proc
        for host, proc in self.proxies.items():
            line = _readline(proc, timeout)
            if line.strip() != "ready":
                raise RuntimeError(f"the proxy of host {host} did not start: {line!r}")

    def link(self, host: int | str, peer: int | str = "*", **settings: object) -> None:
        """Set how `host`'s proxy treats its links to `peer` ("*": all): delay_ms, jitter_ms,
        bandwidth_bps, stall (bench/nemesis/proxy.py)."""
        from bench.nemesis.proxy import control

        target = "*" if peer == "*" else self.lab.addr(peer)
        control(str(self._sockets / f"{host}.sock"), {"op": "set", "peer": target, **settings})

    def clear_links(self) -> None:
        from bench.nemesis.proxy import ProxyError, control

        for host in self.proxies:
            with contextlib.suppress(ProxyError):
                control(str(self._sockets / f"{host}.sock"), {"op": "clear"})

    def hosts(self) -> list[str]:
        return [self.address(sid) for sid in self.sids]

    def participants(self) -> list[int]:
        return list(range(1, self.n + 1))

    # --- processes -------------------------------------------------------------------------------

    def argv(self, sid: int) -> list[str]:
        raise NotImplementedError

    def env(self, sid: int) -> dict[str, str]:
        env = dict(os.environ)
        if self.faketime:
            env.update(
                LD_PRELOAD=self.faketime,
                FAKETIME_TIMESTAMP_FILE=str(self.node_dir(sid) / "faketime"),
                FAKETIME_CACHE_DURATION="1",
                FAKETIME_DONT_FAKE_MONOTONIC="1",
            )
        return env

    def start(self, sid: int) -> None:
        proc = self.procs.get(sid)
        if proc is not None and proc.poll() is None:
            return
        log = open(self.node_dir(sid) / "node.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.procs[sid] = self.lab.popen(
                sid,
                self.argv(sid),
                cwd=self.node_dir(sid),
                env=self.env(sid),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        self.paused.discard(sid)

    def start_all(self) -> None:
        for sid in self.sids:
            self.start(sid)

    def processes(self, sid: int) -> list[psutil.Process]:
        proc = self.procs.get(sid)
        if proc is None or proc.poll() is not None:
            return []
        with contextlib.suppress(psutil.Error):
            return tree(psutil.Process(proc.pid))
        return []

    def alive(self, sid: int) -> bool:
        proc = self.procs.get(sid)
        return proc is not None and proc.poll() is None

    def kill(self, sid: int) -> None:
        for p in self.processes(sid):
            with contextlib.suppress(psutil.Error):
                p.kill()
        proc = self.procs.get(sid)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.paused.discard(sid)

    def pause(self, sid: int) -> None:
        for p in self.processes(sid):
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGSTOP)
        self.paused.add(sid)

    def resume(self, sid: int) -> None:
        for p in self.processes(sid):
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGCONT)
        self.paused.discard(sid)

    def stop_all(self) -> None:
        for sid in self.sids:
            self.resume(sid)
            self.kill(sid)
        for proc in self.proxies.values():
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self._sockets, ignore_errors=True)

    def set_clock(self, sid: int, offset_s: float) -> None:
        """The node's wall clock runs `offset_s` seconds off (when libfaketime is there)."""
        path = self.node_dir(sid) / "faketime"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{offset_s:+.0f}s\n" if offset_s else "+0\n")
        tmp.replace(path)

    # --- roles -----------------------------------------------------------------------------------

    def role(self, sid: int) -> str | None:
        raise NotImplementedError

    def leader(self, timeout: float = 10.0) -> int | None:
        """The participant that says it leads (None when none does within `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            for sid in self.participants():
                if sid not in self.paused and self.alive(sid) and self.role(sid) == "leader":
                    return sid
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)  # polling the nodes' own reports, with a deadline

    def serving(self, sid: int) -> bool:
        return self.alive(sid) and self.role(sid) in ("leader", "follower", "observer")

    def wait_serving(self, timeout: float) -> list[int]:
        """Wait until every node serves; returns the ones that do not when time is up."""
        deadline = time.monotonic() + timeout
        while True:
            missing = [sid for sid in self.sids if not self.serving(sid)]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.2)

    def actor_pids(self, sid: int) -> dict[str, int]:
        return {}


class ZoomqCluster(Cluster):
    name = "zoomq"

    def __init__(
        self,
        lab: Lab,
        nodes: int,
        observers: int,
        workdir: Path,
        tick_ms: int,
        faketime: bool = True,
        proxy: bool = True,
    ) -> None:
        super().__init__(lab, nodes, observers, workdir, tick_ms, faketime, proxy)
        from zoomq.testing import to_toml

        for sid in self.sids:
            servers = [
                {
                    "id": other,
                    "host": self.peer_host(sid, other),
                    "quorum_port": QUORUM_PORT,
                    "election_port": ELECTION_PORT,
                    "client_port": CLIENT_PORT,
                    "role": "observer" if other > nodes else "participant",
                }
                for other in self.sids
            ]
            cfg = {
                "sid": sid,
                "data_dir": str(self.node_dir(sid) / "data"),
                "client_host": lab.addr(sid),
                "client_port": CLIENT_PORT,
                "tick_ms": tick_ms,
                "log_json": True,
                "servers": servers,
            }
            (self.node_dir(sid) / "node.toml").write_text(to_toml(cfg))

    def argv(self, sid: int) -> list[str]:
        return [sys.executable, "-m", "zoomq", "server", "--config", str(self.node_dir(sid) / "node.toml")]

    def status(self, sid: int) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            st = json.loads((self.node_dir(sid) / "data" / "status.json").read_text())
            if self.procs.get(sid) is not None and st.get("pid") == self.procs[sid].pid:
                return st
        return {}

    def role(self, sid: int) -> str | None:
        st = self.status(sid)
        return st.get("role") if st.get("state") == "running" else None

    def actor_pids(self, sid: int) -> dict[str, int]:
        actors = self.status(sid).get("actors", {})
        return {name: a["pid"] for name, a in actors.items() if a.get("pid")}

    def kill_actor(self, sid: int, name: str) -> bool:
        pid = self.actor_pids(sid).get(name)
        if pid is None:
            return False
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
            return True
        return False


class ZooKeeperCluster(Cluster):
    name = "zookeeper"

    def __init__(
        self,
        lab: Lab,
        nodes: int,
        observers: int,
        workdir: Path,
        tick_ms: int,
        faketime: bool = True,
        proxy: bool = True,
    ) -> None:
        # Under libfaketime the JVM answers in seconds instead of milliseconds (every clock read goes
        # through it): ZooKeeper runs on the true clock, and its clock-jump faults are skipped.
        super().__init__(lab, nodes, observers, workdir, tick_ms, faketime=False, proxy=proxy)
        from bench.targets import INSTALL_HINT, zookeeper_classpath

        classpath = zookeeper_classpath()
        if classpath is None:
            raise RuntimeError(INSTALL_HINT)
        self.classpath = classpath
        for sid in self.sids:
            data = self.node_dir(sid) / "data"
            data.mkdir(parents=True, exist_ok=True)
            (data / "myid").write_text(f"{sid}\n")
            cfg = {
                "tickTime": tick_ms,
                "initLimit": 10,
                "syncLimit": 5,
                "dataDir": str(data),
                "clientPort": CLIENT_PORT,
                "clientPortAddress": lab.addr(sid),
                "forceSync": "yes",
                "4lw.commands.whitelist": "*",
                "admin.enableServer": "false",
                "maxClientCnxns": 0,
                "autopurge.purgeInterval": 0,
            }
            if sid > nodes:
                cfg["peerType"] = "observer"
            for other in self.sids:
                suffix = ":observer" if other > nodes else ""
                cfg[f"server.{other}"] = f"{self.peer_host(sid, other)}:{QUORUM_PORT}:{ELECTION_PORT}{suffix}"
            (self.node_dir(sid) / "zoo.cfg").write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))

    def argv(self, sid: int) -> list[str]:
        d = self.node_dir(sid)
        return [
            "java",
            "-Xmx1000m",
            "-Dzookeeper.admin.enableServer=false",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            f"-Dzookeeper.log.dir={d}",
            "-cp",
            self.classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(d / "zoo.cfg"),
        ]

    def role(self, sid: int) -> str | None:
        """`srvr`'s Mode, asked from inside the node's own namespace."""
        if not self.alive(sid) or sid in self.paused:
            return None
        script = f"exec 3<>/dev/tcp/{self.lab.addr(sid)}/{CLIENT_PORT} && echo srvr >&3 && timeout 1 cat <&3"
        try:
            out = self.lab.run(sid, ["timeout", "2", "bash", "-c", script])
        except Exception:  # noqa: BLE001 - not answering is an answer here
            return None
        mode = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Mode:")), "")
        return mode or None
