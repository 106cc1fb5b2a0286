"""The node's supervisor: starts one process per actor, watches them, restarts them, stops them.

Rules:
- The supervisor only ever signals PIDs it started (its actors) and the processes of their trees.
- It never busy-waits: it sleeps in a selector on one pidfd per actor plus a wake-up pipe that
  signal handlers write to; every wait has a bound (`MAX_WAIT_S`, the stop deadline).
- An actor exit it did not ask for becomes `RestartPolicy.on_exit(name, now)`; the decision is
  applied as is: restart that actor after a delay, restart the whole set, or give up (exit
  `EXIT_GAVE_UP`).
- SIGTERM, SIGINT or SIGHUP: SIGTERM every actor, wait up to `stop_timeout_s`, SIGKILL the rest and any
  process left in their trees, exit 0. The same cleanup runs if the supervisor itself fails.
  Actors also die with their parent (`runtime.actor.die_with_parent`), but nothing here counts on it.
- Files: `<data_dir>/zoomq.pid` (the supervisor's pid, flock-ed: one node per data dir),
  `<run_dir>/config.json` (the resolved config every actor reads), `<run_dir>/status.json`
  (`{"pid", "state", "actors": {name: {"pid", "restarts", ...}}}`, replaced atomically on change).
  A run dir the supervisor created (`cfg.run_dir == ""`) is removed at exit. status.json is also
  kept as `<data_dir>/status.json` so that tools find a node from its data dir alone.
- Roles (an ensemble: `cfg.servers` is not empty). The base actors are log, session and
  election; the role actor (leader, follower or observer) is started when the election actor
  reports `Elected`, with `<run_dir>/role.json` saying whom to follow. When the role actor exits
  (its role ended: no leader, no quorum; or it crashed) the node is LOOKING again: the session
  actor is told `Looking` (it sends clients elsewhere) and the election actor `Look`. A crash of
  the role actor also counts in the restart policy; an `EXIT_ROLE_ENDED` exit does not.
  Standalone, the leader actor is a base actor, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec
import psutil

from actors.protocol.internal import Elected, InternalMsg, Look, Looking, Reconfigured
from runtime import logs, spawn
from runtime.localbus import LocalBus
from runtime.config import NodeConfig, applied, read_membership, to_json, write_membership
from runtime.files import write_atomic
from runtime.restart_policy import GiveUp, RestartActor, RestartAll, RestartPolicy
from runtime.roles import ACTOR_OF_STATE, EXIT_ROLE_ENDED, Role, write_role

EXIT_OK = 0
EXIT_CRASHED = 1  # the supervisor itself failed (a bug): see the log
EXIT_GAVE_UP = 3  # actors kept failing; node-level restarts did not help
EXIT_DATA_DIR_IN_USE = 4  # another supervisor holds <data_dir>/zoomq.pid

DEFAULT_ACTORS = ("log", "leader", "session")
ENSEMBLE_ACTORS = ("log", "session", "election")
ROLE_ACTORS = ("leader", "follower", "observer")
STANDBY_DELAY_S = 1.0  # after a role actor starts, the next standby starts (not competing with it)
MAX_WAIT_S = 1.0  # the loop wakes at least this often, whatever happens
NO_PIDFD_WAIT_S = 0.2  # ... and this often when the kernel has no pidfd_open
STATS_EVERY_S = 2.0  # refresh of per-actor CPU/RSS in status.json
STOP_TIMEOUT_S = 5.0
IPC_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep room for "<name>.ipc"
PID_FILE = "zoomq.pid"

ArgvBuilder = Callable[[str, str, str], list[str]]


class _Child:
    """One running actor process and what the supervisor knows about it."""

    __slots__ = ("name", "pidfd", "popen", "started_wall", "tree")

    def __init__(self, name: str, popen: subprocess.Popen[bytes], pidfd: int | None) -> None:
        self.name = name
        self.popen = popen
        self.pidfd = pidfd
        self.started_wall = time.time()
        self.tree: list[psutil.Process] = []

    @property
    def pid(self) -> int:
        return self.popen.pid


class Supervisor:
    """Owns the processes of one node's actors.

    In: actor exits (pidfds), SIGTERM/SIGINT, `request_stop()`. Out: processes started, restarted
    and stopped; log lines `actor_started`, `actor_exited`, `restarting_actor`, `restarting_node`,
    `giving_up`; the pid and status files.
    """

    def __init__(
        self,
        cfg: NodeConfig,
        *,
        actors: list[str] | tuple[str, ...] | None = None,
        argv: ArgvBuilder = spawn.command,
        log: Any = None,
        policy: RestartPolicy | None = None,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        max_node_restarts: int = 3,
    ) -> None:
        self.cfg = cfg
        self.ensemble = bool(cfg.servers)
        if actors is None:
            actors = ENSEMBLE_ACTORS if self.ensemble else DEFAULT_ACTORS
            if cfg.gateway_on:
                actors = (*actors, "gateway")  # ZooKeeper's wire protocol, next to the session actor
            if cfg.metrics_port or cfg.admin_port:
                actors = (*actors, "ops")  # /metrics and ZooKeeper's AdminServer
        self.actors = list(actors)
        self.argv = argv
        self.log = (
            log
            if log is not None
            else logs.configure(node=cfg.sid, actor="supervisor", level=cfg.log_level, json=cfg.log_json)
        )
        self.policy = policy or RestartPolicy(
            cfg.restart_max,
            cfg.restart_window_s,
            cfg.restart_backoff_s,
            max(cfg.restart_backoff_s, cfg.restart_backoff_max_s),
            max_node_restarts=max_node_restarts,
        )
        self.stop_timeout_s = stop_timeout_s
        self.run_dir = ""
        self.config_path = ""
        self.exit_reason = ""  # a sentence for the command line when run() returns non-zero
        self._children: dict[str, _Child] = {}
        self._restarts: dict[str, int] = dict.fromkeys([*self.actors, *ROLE_ACTORS], 0)
        self.role: Role | None = None  # what the node serves as (ensemble); None = looking
        self.role_actor: str | None = None
        self._look_at: float | None = None  # when to (re)start an election
        self._suspect = -1  # the leader whose following just failed (see _on_role_exit)
        self.membership_version = 0  # the reconfig the membership in cfg.servers comes from (0: none)
        self._looking_since: float | None = None  # when the current election began
        self.elections = [0, 0.0, 0.0]  # count, total ms, last ms
        self._bus: LocalBus | None = None  # messages to and from the actors (ensembles only)
        self._inbox_decoder = msgspec.msgpack.Decoder(InternalMsg)
        self._encoder = msgspec.msgpack.Encoder()
        self._data_status_path: Path | None = None
        self._pending: dict[str, float] = {}  # actor -> monotonic time to start it again
        self._failed_starts: list[str] = []  # actors whose Popen failed (handled like exits)
        self._node_restart_at: float | None = None
        self._state = "starting"
        self._stop_signal: int | None = None
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._has_pidfd = True
        self._stats: dict[str, dict[str, float]] = {}
        self._stats_due = 0.0
        self._pid_fd: int | None = None
        self._pid_path: Path | None = None
        self._own_run_dir = False
        self._status_path: Path | None = None
        # A role actor started ahead of time (runtime/spawn.py `standby`): ensembles with the stock
        # actor command only (a test's own argv builder starts every actor itself).
        self._use_standby = self.ensemble and argv is spawn.command
        self._standby: subprocess.Popen[bytes] | None = None
        self._standby_at: float | None = None

    # --- public -------------------------------------------------------------------------------

    def run(self) -> int:
        """Run the node until stopped; the process exit code (`EXIT_*`)."""
        try:
            with self._signals():
                code = self._prepare()
                if code != EXIT_OK:
                    return code
                return self._loop()
        except Exception:
            self.log.exception("supervisor_failed")
            self.exit_reason = "the supervisor failed unexpectedly (see the log)"
            return EXIT_CRASHED
        finally:
            self._cleanup()

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the loop to stop every actor and return (any thread; signal handlers use it)."""
        self._stop_signal = signum
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def status(self) -> dict[str, Any]:
        """The content of status.json."""
        actors: dict[str, Any] = {}
        names = [*self.actors, *([self.role_actor] if self.role_actor else [])]
        for name in names:
            child = self._children.get(name)
            entry: dict[str, Any] = {"pid": child.pid if child else None, "restarts": self._restarts.get(name, 0)}
            if child is not None:
                entry["started"] = child.started_wall
                entry.update(self._stats.get(name, {}))
            actors[name] = entry
        if not self.ensemble:
            role, leader = "standalone", self.cfg.sid
        elif self.role is None:
            role, leader = "looking", None
        else:
            role, leader = (
                {"leading": "leader", "following": "follower", "observing": "observer"}[self.role.state],
                self.role.leader,
            )
        standby = self._standby
        standby_pid = standby.pid if standby is not None and standby.poll() is None else None
        return {
            "pid": os.getpid(),
            "state": self._state,
            # the next role actor, started ahead of time; ready: its interpreter is up and its state read
            "standby": {"pid": standby_pid, "ready": standby_pid is not None and self._standby_ready(standby_pid)},
            "role": role,
            "leader": leader,
            "sid": self.cfg.sid,
            "client": f"{self.cfg.client_host}:{self.cfg.client_port}",
            "data_dir": self.cfg.data_dir,
            "run_dir": self.run_dir,
            "actors": actors,
            # elections this supervisor ran: [count, total ms, last ms] (for /metrics' election_time)
            "elections": [self.elections[0], round(self.elections[1], 3), round(self.elections[2], 3)],
        }

    # --- setup and teardown -------------------------------------------------------------------

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT/SIGHUP -> request_stop, when run() is on the main thread (else: request_stop())."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signum)

        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _prepare(self) -> int:
        cfg = self.cfg
        data_dir = Path(cfg.data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        if not self._lock_pid_file(data_dir / PID_FILE):
            return EXIT_DATA_DIR_IN_USE
        if cfg.run_dir:
            run_dir = Path(cfg.run_dir).resolve()
            run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # its ipc sockets reach the actors
        else:
            run_dir = Path(tempfile.mkdtemp(prefix="zq-", dir="/tmp"))
            self._own_run_dir = True
        self.run_dir = str(run_dir)
        if len(self.run_dir) + 16 > IPC_PATH_MAX:
            self.log.warning("run_dir_too_long", run_dir=self.run_dir, hint="ipc paths are limited to ~100 bytes")
        self.cfg = msgspec.structs.replace(cfg, run_dir=self.run_dir, data_dir=str(data_dir))
        if self.ensemble:
            membership = read_membership(data_dir)
            self.membership_version = membership.version if membership is not None else 0
        config_path = run_dir / "config.json"
        write_atomic(config_path, to_json(self.cfg), durable=False)
        self.config_path = str(config_path)
        self._status_path = run_dir / "status.json"
        self._data_status_path = data_dir / "status.json"
        if self.ensemble:
            self._bus = LocalBus(self.run_dir, "supervisor", self.log, queue_limit=1_000)
            self._sel.register(self._bus.fileno(), selectors.EVENT_READ, "inbox")
        self.log.info(
            "supervisor_started",
            pid=os.getpid(),
            run_dir=self.run_dir,
            data_dir=self.cfg.data_dir,
            actors=self.actors,
            client=f"{self.cfg.client_host}:{self.cfg.client_port}",
        )
        return EXIT_OK

    def _lock_pid_file(self, path: Path) -> bool:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            self.log.error("data_dir_in_use", data_dir=str(path.parent), pid=owner)
            self.exit_reason = f"data dir {path.parent} is in use by another zoomq node (pid {owner or '?'})"
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._pid_fd = fd
        self._pid_path = path
        return True

    def _cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self._stop_children(list(self._children.values()))
        with contextlib.suppress(Exception):
            self._drop_standby()
        self._state = "stopped"
        if self._bus is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(self._bus.fileno())
            self._bus.close()
            self._bus = None
        if self._own_run_dir and self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        elif self._status_path is not None:
            with contextlib.suppress(OSError):
                self._write_status()
        if self._data_status_path is not None:
            with contextlib.suppress(OSError):
                self._data_status_path.unlink()
        if self._pid_fd is not None:
            with contextlib.suppress(OSError):
                assert self._pid_path is not None
                self._pid_path.unlink()
            os.close(self._pid_fd)
            self._pid_fd = None
        self._sel.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.log.info("supervisor_stopped")

    # --- the loop -----------------------------------------------------------------------------

    def _loop(self) -> int:
        self._start_all()
        while True:
            if self._stop_signal is not None:
                return self._shutdown()
            now = time.monotonic()
            self._sel.select(self._wait_s(now))
            self._drain_wake()
            self._drain_inbox()
            if self._stop_signal is not None:
                return self._shutdown()
            now = time.monotonic()
            for child in list(self._children.values()):
                if self._children.get(child.name) is not child:
                    continue  # stopped meanwhile by a node restart: not an exit to count
                code = child.popen.poll()
                if code is not None:
                    result = self._on_exit(child, code, now)
                    if result is not None:
                        return result
            self._start_due(now)
            if self._standby_at is not None and now >= self._standby_at and self._state == "running":
                self._start_standby(now)
            if self._look_at is not None and now >= self._look_at and "election" in self._children:
                self._look_at = None
                self._tell("election", Look(self._suspect, self.cfg.sync_limit * self.cfg.tick_ms))
                if self._looking_since is None:
                    self._looking_since = now
                self._suspect = -1
            while self._failed_starts:
                result = self._apply(self.policy.on_exit(self._failed_starts.pop(0), now), now)
                if result is not None:
                    return result
            if now >= self._stats_due:
                self._refresh_stats(now)

    def _wait_s(self, now: float) -> float:
        wait = MAX_WAIT_S if self._has_pidfd else NO_PIDFD_WAIT_S
        dues = list(self._pending.values())
        if self._look_at is not None:
            dues.append(self._look_at)
        if self._node_restart_at is not None:
            dues.append(self._node_restart_at)
        if self._standby_at is not None:
            dues.append(self._standby_at)
        dues.append(self._stats_due)
        if self._bus is not None and (retry := self._bus.next_deadline()) is not None:
            dues.append(retry)
        for due in dues:
            wait = min(wait, due - now)
        return max(0.0, wait)

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 512):
                pass

    def _on_exit(self, child: _Child, code: int, now: float) -> int | None:
        self._forget(child)
        fields: dict[str, Any] = {"name": child.name, "pid": child.pid}
        if code < 0:
            fields["signal"] = _signal_name(-code)
        else:
            fields["code"] = code
        if child.name == self.role_actor:
            return self._on_role_exit(child, code, now, fields)
        self.log.warning("actor_exited", **fields)
        return self._apply(self.policy.on_exit(child.name, now), now)

    # --- roles (ensemble) ---------------------------------------------------------------------

    def _on_role_exit(self, child: _Child, code: int, now: float, fields: dict[str, Any]) -> int | None:
        """The role ended (or its actor crashed): look for a leader again, not voting for the
        leader this node just failed to follow for a while (actors/election/fle.py says why)."""
        followed = self.role.leader if self.role is not None and self.role.state != "leading" else -1
        self._suspect = followed if code == EXIT_ROLE_ENDED else -1
        self.role_actor = None
        self.role = None
        self._tell("session", Looking())
        if code == EXIT_ROLE_ENDED:
            self.log.info("role_ended", **fields)
            self._look_at = now
            self._write_status()
            return None
        self.log.warning("actor_exited", **fields)
        decision = self.policy.on_exit(child.name, now)
        if isinstance(decision, RestartActor):
            self._restarts[child.name] += 1
            self._look_at = now + decision.delay_s
            self._write_status()
            return None
        return self._apply(decision, now)

    def _drain_inbox(self) -> None:
        """Messages from the actors, and queued ones to them written as room allows."""
        if self._bus is not None:
            self._bus.process(time.monotonic(), self._on_frame)

    def _on_frame(self, frame: bytes) -> None:
        try:
            msg = self._inbox_decoder.decode(frame)
        except msgspec.DecodeError:
            self.log.warning("bad_internal_message", size=len(frame))
            return
        if isinstance(msg, Elected):
            self._on_elected(msg)
        elif isinstance(msg, Reconfigured):
            self._on_reconfigured(msg)

    def _on_reconfigured(self, msg: Reconfigured) -> None:
        """A reconfig committed on this node: keep the membership in the data dir (a restart
        starts from it) and in config.json (actors started from now on read it); the election
        actor takes it at once. A follower or observer whose own role changed ends its role and
        looks again as the new one. A leader that is no longer a voter steps down by itself
        (actors/leader). What the reconfig means for this node: runtime/config.py `applied`."""
        if msg.version <= self.membership_version or not self.ensemble:
            return
        outcome = applied(self.cfg.servers, self.cfg.sid, msg.servers, msg.version)
        self.membership_version = msg.version
        if outcome.keep is not None:
            write_membership(self.cfg.data_dir, outcome.keep)
        self.log.info(
            "reconfigured",
            version=hex(msg.version),
            servers=[s.spec() for s in msg.servers],
            member=outcome.keep is not None,
        )
        self.cfg = msgspec.structs.replace(self.cfg, servers=outcome.servers)
        write_atomic(self.config_path, to_json(self.cfg), durable=False)
        self._tell("election", Reconfigured(outcome.election, msg.version))
        if (
            outcome.role_changed
            and self.role is not None
            and self.role.state != "leading"
            and self.role_actor is not None
        ):
            child = self._children.get(self.role_actor)
            self.role_actor = None
            self.role = None
            if child is not None:
                self._stop_children([child])
            self._tell("session", Looking())
            self._look_at = time.monotonic()
            self._write_status()

    def _on_elected(self, msg: Elected) -> None:
        if self._state in ("stopping", "restarting", "giving_up"):
            return
        if self._looking_since is not None:  # ZooKeeper's election_time: from Look to the outcome
            took_ms = (time.monotonic() - self._looking_since) * 1000.0
            self._looking_since = None
            self.elections = [self.elections[0] + 1, self.elections[1] + took_ms, took_ms]
        role = Role(msg.state, msg.leader, msg.epoch, msg.zxid, msg.round)
        if self.role_actor is not None:
            if self.role == role:
                return
            old = self._children.get(self.role_actor)
            self.role_actor = None  # an exit we asked for: not a role ending to react to
            if old is not None:
                self._stop_children([old])
        actor = ACTOR_OF_STATE.get(msg.state)
        if actor is None:
            self.log.error("unknown_role", state=msg.state)
            return
        write_role(self.run_dir, role)
        self.role = role
        self.role_actor = actor
        self.log.info("role", state=msg.state, leader=msg.leader, role_actor=actor, epoch=msg.epoch, zxid=hex(msg.zxid))
        self._start(actor, time.monotonic())
        self._write_status()

    def _tell(self, dest: str, msg: Any) -> None:
        if self._bus is not None:
            self._bus.send(dest, [self._encoder.encode(msg)], time.monotonic())

    def _apply(self, decision: RestartActor | RestartAll | GiveUp, now: float) -> int | None:
        match decision:
            case RestartActor(name=name, delay_s=delay):
                self.log.info("restarting_actor", name=name, delay_s=delay, restarts=self._restarts[name] + 1)
                self._pending[name] = now + delay
            case RestartAll(delay_s=delay, reason=reason):
                self.log.warning("restarting_node", delay_s=delay, reason=reason)
                self._state = "restarting"
                self._pending.clear()
                self._failed_starts.clear()
                self.role_actor = None
                self.role = None
                self._look_at = None
                self._stop_children(list(self._children.values()))
                self._drop_standby()
                self._node_restart_at = time.monotonic() + delay
                self._write_status()
            case GiveUp(reason=reason):
                self.log.error("giving_up", reason=reason)
                self.exit_reason = f"actors keep failing, giving up: {reason}"
                self._state = "giving_up"
                self._pending.clear()
                self._stop_children(list(self._children.values()))
                self._drop_standby()
                return EXIT_GAVE_UP
        return None

    def _start_due(self, now: float) -> None:
        if self._node_restart_at is not None and now >= self._node_restart_at:
            self._node_restart_at = None
            self.policy.reset()
            for name in self.actors:
                self._restarts[name] += 1
            self._start_all()
            return
        for name, due in list(self._pending.items()):
            if now >= due:
                del self._pending[name]
                self._restarts[name] += 1
                self._start(name, now)
                if name == "election" and self.ensemble:
                    if self.role is not None:
                        r = self.role
                        self._tell("election", Elected(r.state, r.leader, r.zxid, r.epoch, r.round))
                    else:
                        self._look_at = now

    def _start_all(self) -> None:
        self._state = "starting"
        now = time.monotonic()
        for name in self.actors:
            if name not in self._children:
                self._start(name, now)
        if self.ensemble:
            self.role = None
            self.role_actor = None
            self._look_at = now
            self._standby_at = now + STANDBY_DELAY_S if self._use_standby else None
        if len(self._children) == len(self.actors):
            self._state = "running"
        self._write_status()

    def _start(self, name: str, now: float) -> None:
        popen = self._take_standby(name, now) if name in ROLE_ACTORS else None
        if popen is None:
            argv = self.argv(name, self.config_path, self.run_dir)
            try:
                popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, close_fds=True)
            except OSError as exc:
                self.log.error("actor_start_failed", name=name, error=str(exc), argv=argv)
                self._failed_starts.append(name)  # handled like an exit on the next loop turn
                return
        pidfd = None
        if self._has_pidfd:
            try:
                pidfd = os.pidfd_open(popen.pid)
            except (AttributeError, OSError):
                self._has_pidfd = False  # old kernel: poll every NO_PIDFD_WAIT_S instead
        child = _Child(name, popen, pidfd)
        if pidfd is not None:
            self._sel.register(pidfd, selectors.EVENT_READ, name)
        self._children[name] = child
        self.log.info("actor_started", name=name, pid=popen.pid)
        if self._state == "running":
            self._write_status()

    # --- the standby role actor ---------------------------------------------------------------

    def _take_standby(self, name: str, now: float) -> subprocess.Popen[bytes] | None:
        """The waiting standby, told to become `name`; None if there is none alive."""
        if not self._use_standby:
            return None
        self._standby_at = now + STANDBY_DELAY_S
        popen, self._standby = self._standby, None
        if popen is None or popen.poll() is not None:
            return None
        try:
            assert popen.stdin is not None
            popen.stdin.write(f"{name}\n".encode())
            popen.stdin.close()
        except OSError:  # it died just now: start the actor afresh
            self._stop_children([_Child(spawn.STANDBY, popen, None)])
            return None
        return popen

    def _start_standby(self, now: float) -> None:
        self._standby_at = None
        if self._standby is not None and self._standby.poll() is None:
            return
        argv = spawn.command(spawn.STANDBY, self.config_path, self.run_dir)
        try:
            self._standby = subprocess.Popen(argv, stdin=subprocess.PIPE, close_fds=True)
        except OSError as exc:
            self.log.warning("standby_start_failed", error=str(exc))
            self._standby_at = now + MAX_WAIT_S * 10

    def _standby_ready(self, pid: int) -> bool:
        try:
            return (Path(self.run_dir) / spawn.STANDBY_READY).read_text() == str(pid)
        except OSError:
            return False

    def _drop_standby(self) -> None:
        popen, self._standby = self._standby, None
        self._standby_at = None
        if popen is not None:
            with contextlib.suppress(OSError):
                assert popen.stdin is not None
                popen.stdin.close()  # EOF: it exits of itself
            self._stop_children([_Child(spawn.STANDBY, popen, None)])

    def _forget(self, child: _Child) -> None:
        self._children.pop(child.name, None)
        if child.pidfd is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(child.pidfd)
            with contextlib.suppress(OSError):
                os.close(child.pidfd)
            child.pidfd = None
        self._stats.pop(child.name, None)
        self._write_status()

    def _shutdown(self) -> int:
        sig = self._stop_signal or signal.SIGTERM
        self.log.info("supervisor_stopping", signal=_signal_name(sig))
        self._state = "stopping"
        self._pending.clear()
        self._node_restart_at = None
        self._stop_children(list(self._children.values()))
        self._drop_standby()
        return EXIT_OK

    # --- stopping processes -------------------------------------------------------------------

    def _stop_children(self, children: list[_Child]) -> None:
        """SIGTERM, wait up to the deadline, SIGKILL; then every process left in their trees."""
        if not children:
            return
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.tree = psutil.Process(child.pid).children(recursive=True)
            if child.popen.poll() is None:
                with contextlib.suppress(OSError):
                    child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(max(0.0, deadline - time.monotonic()))
        for child in children:
            if child.popen.poll() is None:
                self.log.warning("actor_killed", name=child.name, pid=child.pid, after_s=self.stop_timeout_s)
                with contextlib.suppress(OSError):
                    child.popen.kill()
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(self.stop_timeout_s)  # SIGKILL is not ignorable: bounded anyway
            code = child.popen.returncode
            self.log.info("actor_stopped", name=child.name, pid=child.pid, code=code)
        leftovers: list[psutil.Process] = []
        for child in children:
            for proc in child.tree:
                with contextlib.suppress(psutil.Error):
                    if proc.is_running():  # is_running() also guards against a reused pid
                        proc.kill()
                        leftovers.append(proc)
            child.tree = []
            self._forget(child)
        if leftovers:
            self.log.warning("descendants_killed", pids=[p.pid for p in leftovers])
            psutil.wait_procs(leftovers, timeout=self.stop_timeout_s)

    # --- status -------------------------------------------------------------------------------

    def _refresh_stats(self, now: float) -> None:
        self._stats_due = now + STATS_EVERY_S
        for name, child in self._children.items():
            try:
                proc = psutil.Process(child.pid)
                with proc.oneshot():
                    times = proc.cpu_times()
                    rss = proc.memory_info().rss
            except psutil.Error:
                continue
            self._stats[name] = {"cpu_s": round(times.user + times.system, 3), "rss": rss}
        self._write_status()

    def _write_status(self) -> None:
        if self._status_path is None:
            return
        data = json.dumps(self.status()).encode()
        for path in (self._status_path, self._data_status_path):
            if path is not None:
                with contextlib.suppress(OSError):
                    write_atomic(path, data, durable=False)  # rewritten every few seconds


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def main(cfg: NodeConfig) -> int:
    """Run a node with the standard actor set (what `zoomq server` calls)."""
    return Supervisor(cfg).run()
