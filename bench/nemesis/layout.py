"""`python -m bench run|compare --layout netns`: the benchmark's targets on separate network hosts.

The same namespaces as the nemesis (netns.py, cluster.py): a node per namespace with its own
address, the load generators in the clients' namespace. With `--link-delay-ms`, every link goes
through the delay proxy, which adds a LAN-like delay (with a fifth of it as jitter) on every peer
and client link; without it the links are straight (a proxy in Python would take CPU from the
nodes on a small machine). The load generators report over an ipc:// socket (a file: reachable
from any namespace). No fault is injected: this is for scale-out figures (3 vs 5 participants, observers).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path

import psutil

from bench.nemesis.cluster import Cluster, ZooKeeperCluster, ZoomqCluster
from bench.nemesis.netns import Lab, missing_requirements
from bench.targets import NodeInfo, Target


class NetnsTarget(Target):
    def __init__(self, name: str, nodes: int, observers: int, tick_ms: int, link_delay_ms: float = 0.0) -> None:
        why = missing_requirements(need_nft=False)
        if why:
            raise RuntimeError(f"--layout netns: {why}")
        self.name = name
        self.n, self.observers, self.tick_ms, self.link_delay_ms = nodes, observers, tick_ms, link_delay_ms
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-netns-{name}-"))
        self.lab = Lab(nodes + observers)
        self.cluster: Cluster | None = None

    def start(self, timeout: float = 60.0) -> NetnsTarget:
        self.lab.create()
        cls = ZooKeeperCluster if self.name == "zookeeper" else ZoomqCluster
        self.cluster = cls(
            self.lab, self.n, self.observers, self.workdir, self.tick_ms, faketime=False, proxy=bool(self.link_delay_ms)
        )
        if self.link_delay_ms:
            self.cluster.start_proxies()
            for host in self.lab.all_hosts():
                self.cluster.link(host, "*", delay_ms=self.link_delay_ms, jitter_ms=self.link_delay_ms / 5)
        self.cluster.start_all()
        missing = self.cluster.wait_serving(timeout)
        if missing:
            raise RuntimeError(f"nodes {missing} did not serve within {timeout:g} s; logs in {self.workdir}")
        return self

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop_all()
        self.lab.destroy()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- what the harness reads ------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        assert self.cluster is not None
        out = []
        for sid in self.cluster.sids:
            proc = self.cluster.procs.get(sid)
            role = self.cluster.role(sid) or "looking"
            out.append(
                NodeInfo(sid, self.cluster.address(sid), role, proc.pid if proc else None, self.cluster.node_dir(sid))
            )
        return out

    def processes(self) -> dict[str, psutil.Process]:
        """The nodes' processes (not the proxies: they stand for the network)."""
        assert self.cluster is not None
        out: dict[str, psutil.Process] = {}
        for sid in self.cluster.sids:
            for p in self.cluster.processes(sid):
                with contextlib.suppress(psutil.Error):
                    cmd = p.cmdline()
                    name = cmd[3] if len(cmd) > 3 and cmd[1:3] == ["-m", "runtime.spawn"] else Path(cmd[0]).name
                    out[f"node{sid}:{name}/{p.pid}"] = p
        return out

    def client_prefix(self) -> list[str]:
        """Load generators run in the clients' namespace."""
        return ["ip", "netns", "exec", self.lab.ns("c")]

    def report_endpoint(self) -> str:
        return f"ipc://{self.workdir}/loadgen.sock"

    def kill_node(self, sid: int) -> None:
        assert self.cluster is not None
        self.cluster.kill(sid)

    def stop_node(self, sid: int) -> None:
        self.kill_node(sid)

    def launch_node(self, sid: int) -> None:
        assert self.cluster is not None
        self.cluster.start(sid)

    def wait_node(self, sid: int, timeout: float = 60.0) -> None:
        assert self.cluster is not None
        deadline = time.monotonic() + timeout
        while not self.cluster.serving(sid):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"node {sid} did not serve within {timeout:g} s")
            time.sleep(0.1)  # polling the node's own report, with a deadline
