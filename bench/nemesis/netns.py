"""Separate network hosts on one Linux machine: a network namespace per node and one for the clients.

Layout (for run id R, a short number):

    zqnR-hub   a bridge `br0` and one veth end per host (no address: traffic never leaves it)
    zqnR-n1    `eth0` 10.77.R.11/24, the other end of its veth on the bridge; `lo` up
    ...
    zqnR-c     `eth0` 10.77.R.100/24: the clients, which reach the nodes only through the bridge

Faults on the network are nftables rules in a host's own namespace (table `inet nemesis`): drop
what comes in from (or goes out to) chosen addresses, or a random share of it (`numgen random`).
Nothing is configured in the machine's own namespace, so its traffic and firewall are untouched.

Every namespace name starts with `zqn<R>-`, and R is recorded with the harness's PID in
`/run/zoomq-nemesis/<R>.pid`: `Lab.destroy` (called on exit, Ctrl-C and SIGTERM) kills the
processes left in the namespaces by their PIDs (`ip netns pids`) and deletes the namespaces; a later
harness run removes what a crashed one left behind (its PID is gone) before creating its own.
Needs root and `ip` (iproute2); `nft` (nftables) for the network faults.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import psutil

STATE_DIR = Path("/run/zoomq-nemesis")
PREFIX = "zqn"
CLIENT_HOST = 100


class LabError(RuntimeError):
    """A namespace, link or rule could not be set up."""


def missing_requirements(need_nft: bool = True) -> str | None:
    """Why this machine cannot run the lab (None when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, e.g. in a VM or container with CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    if need_nft and shutil.which("nft") is None:
        return "`nft` is not installed (apt-get install nftables)"
    try:
        _run(["ip", "netns", "list"])
    except LabError as exc:
        return f"`ip netns` does not work here: {exc}"
    return None


def _run(argv: Sequence[str], stdin: str | None = None, timeout: float = 30) -> str:
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip() or proc.returncode}")
    return proc.stdout


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line.strip()]


def _kill_in(ns: str) -> None:
    """SIGKILL every process in namespace `ns` (our own: the harness made it), by PID."""
    with contextlib.suppress(LabError):
        for pid in _run(["ip", "netns", "pids", ns]).split():
            with contextlib.suppress(psutil.Error, ValueError):
                psutil.Process(int(pid)).kill()


def _remove(names: list[str]) -> None:
    for ns in names:
        _kill_in(ns)
    for ns in names:
        with contextlib.suppress(LabError):
            _run(["ip", "netns", "delete", ns])


def remove_stale() -> list[str]:
    """Delete the namespaces of harness runs whose process is gone; returns their names."""
    stale: list[str] = []
    for ns in _namespaces():
        m = re.match(rf"{PREFIX}(\d+)-", ns)
        if not m:
            continue
        pid_file = STATE_DIR / f"{m.group(1)}.pid"
        try:
            alive = psutil.pid_exists(int(pid_file.read_text()))
        except (OSError, ValueError):
            alive = False
        if not alive:
            stale.append(ns)
    _remove(stale)
    for pid_file in STATE_DIR.glob("*.pid") if STATE_DIR.exists() else []:
        with contextlib.suppress(OSError, ValueError):
            if not psutil.pid_exists(int(pid_file.read_text())):
                pid_file.unlink()
    return stale


class Lab:
    """The namespaces of one harness run: `hosts` node hosts plus the clients' host."""

    def __init__(self, hosts: int) -> None:
        if not 1 <= hosts <= 60:
            raise ValueError("between 1 and 60 hosts")
        self.hosts = hosts
        self.run_id = self._claim_id()
        self.hub = f"{PREFIX}{self.run_id}-hub"
        self.created: list[str] = []
        self._old_handlers: dict[int, object] = {}

    @staticmethod
    def _claim_id() -> int:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        for rid in range(1, 250):
            path = STATE_DIR / f"{rid}.pid"
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return rid
        raise LabError(f"no free run id in {STATE_DIR} (remove stale *.pid files)")

    # --- names and addresses ---------------------------------------------------------------------

    def ns(self, host: int | str) -> str:
        """Namespace of node host `host` (1-based) or of the clients ("c")."""
        return f"{PREFIX}{self.run_id}-{'c' if host == 'c' else f'n{host}'}"

    def addr(self, host: int | str) -> str:
        return f"10.77.{self.run_id}.{CLIENT_HOST if host == 'c' else 10 + int(host)}"

    def all_hosts(self) -> list[int | str]:
        return [*range(1, self.hosts + 1), "c"]

    # --- setup and teardown ----------------------------------------------------------------------

    def create(self) -> Self:
        remove_stale()
        self._trap_signals()
        try:
            self._add_ns(self.hub)
            _run(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
            _run(["ip", "-n", self.hub, "link", "set", "br0", "up"])
            for i, host in enumerate(self.all_hosts()):
                ns, veth = self.ns(host), f"v{i}"
                self._add_ns(ns)
                _run(["ip", "-n", self.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
                _run(["ip", "-n", self.hub, "link", "set", veth, "master", "br0", "up"])
                _run(["ip", "-n", ns, "addr", "add", f"{self.addr(host)}/24", "dev", "eth0"])
                _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
                _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        except BaseException:
            self.destroy()
            raise
        return self

    def _add_ns(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self.created.append(name)

    def destroy(self) -> None:
        """Kill what runs in the namespaces and delete them (idempotent)."""
        names, self.created = list(reversed(self.created)), []
        _remove(names)
        with contextlib.suppress(OSError):
            (STATE_DIR / f"{self.run_id}.pid").unlink()
        for signum, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, handler)  # type: ignore[arg-type]
        self._old_handlers.clear()

    def _trap_signals(self) -> None:
        """SIGTERM / SIGHUP end the harness like Ctrl-C does, so its `finally` tears the lab down."""

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        with contextlib.suppress(ValueError):  # not the main thread: the caller handles signals
            for signum in (signal.SIGTERM, signal.SIGHUP):
                self._old_handlers[signum] = signal.signal(signum, interrupt)

    def __enter__(self) -> Self:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # --- processes -------------------------------------------------------------------------------

    def popen(self, host: int | str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen:
        """Start `argv` inside host `host`'s namespace (`ip netns exec` execs it: the PID is argv's)."""
        return subprocess.Popen(["ip", "netns", "exec", self.ns(host), *argv], **kwargs)  # type: ignore[call-overload]

    def run(self, host: int | str, argv: Sequence[str], stdin: str | None = None, timeout: float = 30) -> str:
        return _run(["ip", "netns", "exec", self.ns(host), *argv], stdin=stdin, timeout=timeout)

    # --- network faults (nftables in a host's namespace) -------------------------------------------

    def set_rules(self, host: int | str, rules_in: Sequence[str] = (), rules_out: Sequence[str] = ()) -> None:
        """Replace host's fault rules: nft rule bodies for its incoming and outgoing packets on eth0."""
        lines = [
            "table inet nemesis {",
            "  chain input { type filter hook input priority 0; policy accept;",
            *[f'    iifname "eth0" {rule}' for rule in rules_in],
            "  }",
            "  chain output { type filter hook output priority 0; policy accept;",
            *[f'    oifname "eth0" {rule}' for rule in rules_out],
            "  }",
            "}",
        ]
        script = "\n".join(lines) + "\n"
        self.clear_rules(host)
        self.run(host, ["nft", "-f", "-"], stdin=script)

    def clear_rules(self, host: int | str) -> None:
        with contextlib.suppress(LabError):
            self.run(host, ["nft", "delete", "table", "inet", "nemesis"])

    def heal(self) -> None:
        for host in self.all_hosts():
            self.clear_rules(host)

    def drop_between(
        self,
        host: int | str,
        others: Sequence[int | str],
        incoming: bool = True,
        outgoing: bool = True,
        percent: int = 100,
    ) -> None:
        """At `host`, drop packets from (incoming) and/or to (outgoing) the addresses of `others`,
        all of them or a random `percent`."""
        if not others:
            self.clear_rules(host)
            return
        addrs = ", ".join(self.addr(o) for o in others)
        cond = "" if percent >= 100 else f"numgen random mod 100 < {int(percent)} "
        rules_in = [f"ip saddr {{ {addrs} }} {cond}drop"] if incoming else []
        rules_out = [f"ip daddr {{ {addrs} }} {cond}drop"] if outgoing else []
        self.set_rules(host, rules_in, rules_out)
