"""The session actor: the shell of the session core (actors/session/session.py).

It owns what the core may not touch: the client port (a ROUTER on tcp, CURVE when configured),
the gateway's ROUTER (ipc), their monitors (which connections are open: a ROUTER never says), the
disk reads at a sync point (load the state, or catch up from the log; at a start the state is
read on a thread at once, alongside the role actor's own read, and taken up at the first sync
point if the disk did not move under it), the snapshot writer (a
forked child: a consistent copy at no pause beyond fork()), the clocks, and the process facts the
admin words report. Every decision about a client's request is the core's.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from actors.gateway import GATEWAY_ENDPOINT, GATEWAY_RID_PREFIX
from actors.log import snapshot as snapshots
from actors.log.recovery import catch_up, load_state_counted, resume_state
from actors.protocol.effects import Tell
from actors.protocol.internal import Snapshotted, SyncPoint
from actors.protocol.zxid import fmt
from actors.session.session import MAX_REMEMBERED, SessionCore
from runtime.actor import CLIENT_HWM, Actor, ipc_address, set_peer_options, source_fd


class SessionActor(Actor):
    name = "session"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        max_frame = 2 * self.cfg.max_data_bytes + (1 << 20)
        self.router = self.ctx.socket(zmq.ROUTER)
        set_peer_options(self.router, CLIENT_HWM)
        self.router.setsockopt(zmq.MAXMSGSIZE, max_frame)
        self.secure_bind(self.router, f"tcp://{self.cfg.client_host}:{self.cfg.client_port}", "clients")
        self.add_socket(self.router, functools.partial(self._on_frames, False))
        # Open connections, as srvr/cons/mntr count them: the routers' accepted minus closed
        # file descriptors, and which session connection came in on which descriptor (SRCFD).
        self.open_fds: dict[bool, set[int]] = {False: set(), True: set()}  # by "through the gateway"
        self.rid_fd: dict[bytes, tuple[bool, int]] = {}
        self._monitor(self.router, gateway=False)
        self.gateway_router: zmq.Socket | None = None
        if self.cfg.gateway_on:
            # The ZooKeeper-protocol gateway's connections, over ipc: same handling, own socket
            # (its routing ids start with GATEWAY_RID_PREFIX; the client port refuses those).
            self.gateway_router = self.ctx.socket(zmq.ROUTER)
            set_peer_options(self.gateway_router, CLIENT_HWM)
            self.gateway_router.setsockopt(zmq.MAXMSGSIZE, max_frame)
            self.gateway_router.bind(ipc_address(self.run_dir, GATEWAY_ENDPOINT))
            self.add_socket(self.gateway_router, functools.partial(self._on_frames, True))
            self._monitor(self.gateway_router, gateway=True)

    def _monitor(self, router: zmq.Socket, gateway: bool) -> None:
        monitor = router.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.add_socket(monitor, functools.partial(self._on_monitor, gateway), copy=True)

    def _on_monitor(self, gateway: bool, frames: list[bytes], now: float) -> None:
        try:
            event = parse_monitor_message(frames)
        except (ValueError, struct.error):
            return
        fds = self.open_fds[gateway]
        if event["event"] == zmq.EVENT_ACCEPTED:
            fds.add(event["value"])
        elif event["event"] == zmq.EVENT_DISCONNECTED:
            fds.discard(event["value"])
            gone = (gateway, event["value"])
            for rid in [r for r, at in self.rid_fd.items() if at == gone]:
                del self.rid_fd[rid]

    def _note_connection(self, rid: bytes, frame: Any, gateway: bool) -> None:
        fd = source_fd(frame)
        if fd is not None and len(self.rid_fd) < MAX_REMEMBERED + len(self.core.sessions):
            self.rid_fd[rid] = (gateway, fd)

    def _node_facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "connections": len(self.open_fds[False]) + len(self.open_fds[True]),
            "open_rids": self.rid_fd,
            "sent": self.sent,
            "uptime_ms": int((time.time() - self.started) * 1000),
            "environment": {
                "host.name": platform.node(),
                "python.version": sys.version.split()[0],
                "os.name": platform.system(),
                "os.arch": platform.machine(),
                "user.dir": os.getcwd(),
            },
        }
        try:
            facts["open_fds"] = len(os.listdir("/proc/self/fd"))
        except OSError:
            pass
        facts["bus_queued"] = self.bus.queued_by_dest()
        try:  # the supervisor's view of every actor of this node (refreshed every few seconds)
            facts["actors"] = json.loads((Path(self.run_dir) / "status.json").read_bytes()).get("actors") or {}
        except (OSError, ValueError):
            pass
        return facts

    # --- lifecycle ----------------------------------------------------------------------------

    def on_start(self, now: float) -> None:
        self.dir = Path(self.cfg.data_dir) / "version-1"
        self.started = time.time()
        self.sent = 0
        self.snapshot_child: tuple[int, int] | None = None  # (pid, zxid)
        self.core = SessionCore(
            cfg=self.cfg,
            log=self.log,
            now=now,
            wall_ms=int(self.started * 1000),
            random_bytes=os.urandom,
            peer_of=_peer_address,
            note_connection=self._note_connection,
            node_facts=self._node_facts,
        )
        self._carry_out()
        # The state is read now, on a thread, while the role actor reads its own: the first sync
        # point then only catches up (a million znodes: seconds saved from every start).
        self._preload: list[Any] = []
        self._preloader = threading.Thread(target=self._read_ahead, name="preload", daemon=True)
        self._preloader.start()

    def _read_ahead(self) -> None:
        try:
            self._preload.append(load_state_counted(self.dir, log=self.log))
        except Exception as exc:  # noqa: BLE001 - the sync point reads the state itself then
            self.log.warning("preload_failed", error=repr(exc)[:300])

    def next_deadline(self) -> float | None:
        return self.core.next_deadline()

    def on_timer(self, now: float) -> None:
        self.core.tick(now)
        self._reap_snapshot_child()

    def on_stop(self) -> None:
        self._reap_snapshot_child(block=True)

    # --- inputs -------------------------------------------------------------------------------

    def _on_frames(self, gateway: bool, frames: list[Any], now: float) -> None:
        rid = frames[0].bytes
        if not gateway and rid.startswith(GATEWAY_RID_PREFIX):
            return  # a client posing as the gateway (to choose its ip identity): ignored
        self.core.client_frames(rid, frames[1:], now, gateway)

    def on_message(self, msg: Any, now: float) -> None:
        if isinstance(msg, SyncPoint):
            self.core.sync_point(msg, self._state_at(msg.zxid), now)
        else:
            self.core.role_message(msg, now)

    def _state_at(self, zxid: int) -> Any:
        """The state through `zxid` from this node's disk: read whole (first load, or a leader's
        snapshot installed past the tree) or caught up from the log."""
        tree = self.core.tree
        newer = [z for z, _ in snapshots.list_snapshots(self.dir) if tree.last_zxid < z <= zxid]
        # Txns replayed count towards the next snapshot as txns applied do: a node that restarts
        # often would otherwise never reach snapshot_every, and replay its whole log at each start.
        if self.core.needs_reload(bool(newer)):
            ahead = self._take_preload()
            if ahead is not None:
                tree, replayed = ahead
                # Usable if the disk did not move under it: not past the sync point (a follower's
                # uncommitted tail may be truncated), its last txn still logged, no newer snapshot.
                if resume_state(tree, self.dir, upto=zxid, log=self.log) is not None:
                    self.core.applied_since_snapshot = replayed  # (+ the few caught up just now)
                    return tree
            tree, replayed = load_state_counted(self.dir, upto=zxid, log=self.log)
            self.core.applied_since_snapshot = replayed
            return tree
        if zxid > tree.last_zxid:
            self.core.applied_since_snapshot += catch_up(tree, self.dir, zxid, self.log)
        return tree

    def _take_preload(self) -> tuple[Any, int] | None:
        """The state read at the start (waiting for the read to end), once; None after that."""
        thread, self._preloader = self._preloader, None
        if thread is None:
            return None
        thread.join()
        return self._preload.pop() if self._preload else None

    # --- outputs ------------------------------------------------------------------------------

    def on_batch_end(self, now: float) -> None:
        self._carry_out()

    def _carry_out(self) -> None:
        core = self.core
        if core.out:
            router, gateway = self.router, self.gateway_router
            out, core.out = core.out, {}
            for rid, frames in out.items():
                try:
                    sock = gateway if gateway is not None and rid.startswith(GATEWAY_RID_PREFIX) else router
                    sock.send_multipart([rid, *frames], flags=zmq.NOBLOCK)
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.EAGAIN:
                        core.not_reading(rid, len(frames))
                    continue  # EHOSTUNREACH: the connection is gone
                self.sent += len(frames)
        for effect in core.take_effects():
            if isinstance(effect, Tell):
                self.tell(effect.dest, effect.msg)
        if core.wants_snapshot and self.snapshot_child is None:
            self._take_snapshot()

    # --- snapshots ----------------------------------------------------------------------------

    def _take_snapshot(self) -> None:
        """Write a snapshot from a forked child: a consistent copy at no pause beyond fork()."""
        self.core.snapshot_started()
        tree = self.core.tree
        zxid = tree.last_zxid
        pid = os.fork()
        if pid == 0:  # child: no sockets, no logging through shared state; just the file
            code = 0
            try:
                snapshots.write_snapshot(self.dir, zxid, tree.to_snapshot())
            except BaseException:  # noqa: BLE001 - the parent logs the failure from the exit code
                code = 1
            os._exit(code)
        self.snapshot_child = (pid, zxid)
        self.log.info("snapshot_started", zxid=fmt(zxid), pid=pid)

    def _reap_snapshot_child(self, block: bool = False) -> None:
        if self.snapshot_child is None:
            return
        pid, zxid = self.snapshot_child
        try:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 1
        if done == 0:
            return
        self.snapshot_child = None
        if os.waitstatus_to_exitcode(status) == 0:
            self.log.info("snapshot_written", zxid=fmt(zxid))
            self.tell("log", Snapshotted(zxid=zxid))
        else:
            self.log.error("snapshot_failed", zxid=fmt(zxid), status=status)


def _peer_address(frame: Any) -> str | None:
    """The client's IP address (ZeroMQ's Peer-Address property of the frame)."""
    try:
        return frame.get("Peer-Address") or None
    except (AttributeError, zmq.ZMQError):
        return None
