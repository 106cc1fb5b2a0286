"""The leader actor: the shell of the Leader core (actors/leader/leader.py). A standalone node is
a leader whose quorum is itself.

It owns what the core may not touch: the ROUTER on the quorum port, each learner channel's
numbering and timing (runtime/channel.py: a gap, a stranger or silence past sync_limit ticks drops
that learner, which comes back through election and sync), the epoch files, the disk reads of
the leader's history for synchronizing learners (DiskHistory), loading the state at start, and
the two clocks (monotonic for timers and session expiry, wall for txn stamps). Every decision is
the core's; this file carries its effects out in order: PersistEpoch is written before any
message after it is sent, and a Proposal's bytes are encoded once for every follower.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import time
from collections import deque
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.utils.monitor

from actors.leader.leader import RECENT_COMMITS, Leader, Phase
from actors.leader.sync import prepare
from actors.log import epochs, snapshot
from actors.log.recovery import load_state, resume_state
from actors.log.txnlog import read_txns
from actors.protocol import quorum as q
from actors.protocol.effects import Drop, EndRole, PersistEpoch, PrepareSync, Send, Tell
from actors.protocol.internal import Hello, Logged, LogReady, OwnSession, Touch, WriteRequest
from actors.protocol.txn import Txn
from runtime.actor import QUORUM_HWM, Actor, set_peer_options, source_fd
from runtime.channel import ChannelState
from runtime.config import read_membership
from runtime.roles import EXIT_ROLE_ENDED

LOG_HELLO_RETRY_S = 1.0
PRELOADED: Any = None  # (tree, tail) a standby process read before it became this leader (runtime/spawn.py)


class DiskHistory:
    """The leader's own history on disk, for the core's synchronization of a learner."""

    def __init__(self, directory: Path, log: Any) -> None:
        self.dir = directory
        self.log = log
        self._last: tuple[int, tuple[int, list[Txn]]] | None = None  # (upto, window) last read

    def window(self, upto: int) -> tuple[int, list[Txn]]:
        """Read on the sync thread only. The learners of a new leader all ask for the same `upto`
        (its log's end): the window is read once for all of them."""
        if self._last is not None and self._last[0] == upto:
            return self._last[1]
        snaps = [z for z, _ in snapshot.list_snapshots(self.dir) if z <= upto]
        base = snaps[0] if snaps else 0
        found = (base, list(read_txns(self.dir, base, upto)))
        self._last = (upto, found)
        return found

    def snapshot(self, upto: int) -> tuple[int, bytes]:
        """The newest snapshot file at or below `upto` as it is stored (a learner too far behind
        gets it, then the log after it: a million znodes are not decoded and encoded again for
        it); the state rebuilt at `upto` only if that file does not read back."""
        base, _ = self.window(upto)
        for zxid, path in snapshot.list_snapshots(self.dir):
            if zxid == base:
                stored = snapshot.read_snapshot(path)
                if stored is not None:
                    return stored
        return upto, load_state(self.dir, upto=upto, log=self.log).to_snapshot()


class LeaderActor(Actor):
    name = "role"

    def on_start(self, now: float) -> None:
        cfg = self.cfg
        self.dir = Path(cfg.data_dir) / "version-1"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ensemble = bool(cfg.servers)
        voters = frozenset(s.id for s in cfg.servers if s.voter) or frozenset({cfg.sid})
        self.tick_s = cfg.tick_ms / 1000.0
        self.core = Leader(
            sid=cfg.sid,
            voters=voters,
            ensemble=self.ensemble,
            accepted_epoch=epochs.read_epoch(self.dir, "acceptedEpoch"),
            current_epoch=epochs.read_epoch(self.dir, "currentEpoch"),
            tick_ms=cfg.tick_ms,
            init_limit=cfg.init_limit,
            container_check_ms=cfg.container_check_ms,
            max_data_bytes=cfg.max_data_bytes,
            now=now,
            log=self.log,
            sync_memory_txns=cfg.sync_memory_txns,
            servers=cfg.servers,
            reconfig_enabled=cfg.reconfig_enabled,
            config_version=known.version if (known := read_membership(cfg.data_dir)) is not None else 0,
        )
        # Learners' synchronizations are read on a thread of their own (one at a time), so that the
        # broadcast to the others goes on; a result wakes the loop through an inproc pair.
        self.history = DiskHistory(self.dir, self.log)
        self.sync_reader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-read")
        self.sync_done: queue.SimpleQueue[tuple[bytes, Any]] = queue.SimpleQueue()
        wake_address = f"inproc://sync-ready-{id(self)}"
        self.sync_wake = self.ctx.socket(zmq.PAIR)
        self.sync_wake.bind(wake_address)
        self.sync_wake_sender = self.ctx.socket(zmq.PAIR)
        self.sync_wake_sender.connect(wake_address)
        self.add_socket(self.sync_wake, self._on_sync_ready, copy=True)
        self.channels: dict[bytes, ChannelState] = {}
        self.hello_due = now  # until the log actor answers
        self.stats_due = now
        self.peer_decoder = msgspec.msgpack.Decoder(q.ToLeader)
        self.router: zmq.Socket | None = None
        if self.ensemble:
            me = next(s for s in cfg.servers if s.id == cfg.sid)
            self.router = self.ctx.socket(zmq.ROUTER)
            set_peer_options(self.router, QUORUM_HWM)
            self.secure_bind(self.router, f"tcp://{me.host}:{me.quorum_port}", "peers")
            # A learner's closed connection is noticed at once, not after sync_limit ticks of
            # silence: the ROUTER's monitor reports the closed file descriptor, and each channel's
            # first frame told which descriptor it came in on (ZeroMQ's SRCFD). The monitor is
            # polled first, so a closed descriptor is forgotten before a new connection reuses it.
            self.ident_of_fd: dict[int, bytes] = {}
            monitor = self.router.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            self.add_socket(monitor, self._on_monitor, copy=True)
            self.add_socket(self.router, self._on_peer_frames)
        self.tell("log", Hello(origin=cfg.sid))
        self.hello_due = now + LOG_HELLO_RETRY_S

    # --- the clock ----------------------------------------------------------------------------

    def _clock(self, now: float) -> None:
        self.core.set_time(now, int(time.time() * 1000))

    def next_deadline(self) -> float | None:
        if self.core.phase is Phase.STARTING:
            return self.hello_due
        deadlines = [
            d for d in (self.core.next_deadline(), *(ch.deadline() for ch in self.channels.values())) if d is not None
        ]
        if self.ensemble:
            deadlines.append(self.stats_due)
        return min(deadlines) if deadlines else None

    def on_timer(self, now: float) -> None:
        self._clock(now)
        if self.core.phase is Phase.STARTING:
            if now >= self.hello_due:
                self.tell("log", Hello(origin=self.cfg.sid))
                self.hello_due = now + LOG_HELLO_RETRY_S
            return
        for ident, channel in list(self.channels.items()):
            if channel.dead(now):
                self._forget(ident)
                self.core.learner_lost(ident, "silent")
            elif channel.heartbeat_due(now):
                self._send(ident, self.encoder.encode(q.Ping()))
        self.core.tick()
        if self.ensemble and now >= self.stats_due:
            self.stats_due = now + max(0.02, self.tick_s / 2)
            self.tell("session", self.core.stats())

    # --- inputs -------------------------------------------------------------------------------

    def on_message(self, msg: Any, now: float) -> None:
        self._clock(now)
        if isinstance(msg, WriteRequest):
            self.core.write(msg)
        elif isinstance(msg, Logged):
            if msg.sid == self.cfg.sid:
                self.core.logged(msg.zxid)
        elif isinstance(msg, Touch):
            self.core.touch(msg.sessions)
        elif isinstance(msg, OwnSession):
            self.core.own(msg)
        elif isinstance(msg, Hello):
            self.core.hello()
        elif isinstance(msg, LogReady):
            if self.core.phase is Phase.STARTING:
                tree, tail = self._load(msg.last_zxid)
                self.core.log_ready(msg.last_zxid, tree, tail)
            else:
                self.core.log_ready(msg.last_zxid, None)
        else:
            self.log.warning("unexpected_message", type=type(msg).__name__)

    def _load(self, upto: int) -> tuple[Any, deque[Txn]]:
        """The state through `upto` and the latest txns replayed (the core synchronizes learners
        from them): the tree this process preloaded as a standby, caught up from the log, or the
        state read whole."""
        global PRELOADED  # noqa: PLW0603 - handed over once, from runtime/spawn.py's standby
        preloaded, PRELOADED = PRELOADED, None
        if preloaded is not None:
            tree, tail = preloaded
            if resume_state(tree, self.dir, upto=upto, log=self.log, tail=tail) is not None:
                return tree, tail
        tail = deque(maxlen=RECENT_COMMITS)
        return load_state(self.dir, upto=upto, log=self.log, tail=tail, keep_data=False), tail

    def _on_monitor(self, frames: list[bytes], now: float) -> None:
        event = zmq.utils.monitor.parse_monitor_message(frames)
        ident = self.ident_of_fd.pop(event["value"], None) if event["event"] == zmq.EVENT_DISCONNECTED else None
        if ident is not None and ident in self.channels:
            self._clock(now)
            self._forget(ident)
            self.core.learner_lost(ident, "connection closed")

    def _on_peer_frames(self, raw: list[Any], now: float) -> None:
        self._clock(now)
        if len(raw) != 3:
            self.log.warning("bad_peer_frames", parts=len(raw))
            return
        ident, rest = raw[0].bytes, [raw[1].bytes, raw[2].bytes]
        channel = self.channels.get(ident)
        if channel is None:
            if self._new_channel(ident, rest, now, raw[1]):
                fd = source_fd(raw[1])
                if fd is not None:
                    self.ident_of_fd[fd] = ident
            return
        payload = channel.accept(rest, now)
        if payload is None:
            self._forget(ident)
            self.core.learner_lost(ident, "sequence gap or malformed frames")
            return
        try:
            msg = self.peer_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            self._forget(ident)
            self.core.learner_lost(ident, f"undecodable message: {str(exc)[:100]}")
            return
        self.core.from_learner(ident, msg)

    def _new_channel(self, ident: bytes, rest: list[bytes], now: float, frame: Any) -> bool:
        """A learner's first message must be FollowerInfo numbered 0, with CURVE from the key of
        the server it says it is; anything else is a channel we dropped, or a stranger: it times
        out and starts over."""
        channel = ChannelState(now, silence_s=self.cfg.sync_limit * self.tick_s, heartbeat_s=max(0.02, self.tick_s / 2))
        payload = channel.accept(rest, now)
        if payload is None:  # numbered past 0: a channel this leader dropped
            self._tell_dropped(ident, ChannelState(now, silence_s=1.0, heartbeat_s=1.0))
            return False
        try:
            msg = self.peer_decoder.decode(payload)
        except msgspec.DecodeError:
            return False
        if not isinstance(msg, q.FollowerInfo):
            self._tell_dropped(ident, channel)
            return False
        if msg.sid == self.cfg.sid:
            self.log.warning("learner_with_my_id", sid=msg.sid)
            return False
        if not self.peer_is(msg.sid, frame):
            self.log.warning("learner_key_mismatch", sid=msg.sid, why="its CURVE key is not that server's")
            return False
        self.channels[ident] = channel
        self.core.learner_info(ident, msg)
        return True

    # --- learners' synchronization reads ------------------------------------------------------

    def _prepare(self, effect: PrepareSync) -> None:
        def read() -> None:
            try:
                result: Any = prepare(self.history, effect.learner_last, effect.upto)
            except Exception as exc:  # noqa: BLE001 - reported on the loop, where the learner is dropped
                result = exc
            self.sync_done.put((effect.to, result))
            self.sync_wake_sender.send(b"", zmq.NOBLOCK)

        self.sync_reader.submit(read)

    def _on_sync_ready(self, frames: list[bytes], now: float) -> None:
        self._clock(now)
        while not self.sync_done.empty():
            to, result = self.sync_done.get()
            if isinstance(result, Exception):
                self.log.error("sync_read_failed", error=repr(result)[:300])
                self._forget(to)
                self.core.learner_lost(to, "its synchronization could not be read")
            else:
                self.core.sync_ready(to, result)

    # --- effects ------------------------------------------------------------------------------

    def on_batch_end(self, now: float) -> None:
        encoded: dict[int, bytes] = {}  # one encoding per message, however many learners get it
        for effect in self.core.take_effects():
            if isinstance(effect, Send):
                payload = encoded.get(id(effect.msg))
                if payload is None:
                    payload = encoded[id(effect.msg)] = self.encoder.encode(effect.msg)
                self._send(effect.to, payload)
            elif isinstance(effect, Tell):
                self.tell(effect.dest, effect.msg)
            elif isinstance(effect, PersistEpoch):
                epochs.write_epoch(self.dir, effect.name, effect.epoch)
            elif isinstance(effect, Drop):
                self._forget(effect.to)
            elif isinstance(effect, PrepareSync):
                self._prepare(effect)
            elif isinstance(effect, EndRole):
                self.end(EXIT_ROLE_ENDED, effect.reason, **effect.fields)
                return

    def _send(self, ident: bytes, payload: bytes) -> None:
        channel = self.channels.get(ident)
        if channel is None or self.router is None:
            return
        try:
            self.router.send_multipart([ident, *channel.frame(payload)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # its queue is full (it fell behind), or it is gone
            self._forget(ident)
            self.core.learner_lost(ident, "send queue full" if exc.errno == zmq.EAGAIN else "unreachable")

    def _tell_dropped(self, ident: bytes, channel: ChannelState) -> None:
        """A learner still talking on a channel this leader dropped starts over at once."""
        if self.router is None:
            return
        payload = self.encoder.encode(q.Dropped("this leader no longer knows the channel"))
        with contextlib.suppress(zmq.ZMQError):
            self.router.send_multipart([ident, *channel.frame(payload)], zmq.NOBLOCK)

    def _forget(self, ident: bytes) -> None:
        self.channels.pop(ident, None)

    def on_stop(self) -> None:
        self.log.info("leader_stopping", pid=os.getpid(), phase=self.core.phase.value)
        self.sync_reader.shutdown(wait=False, cancel_futures=True)
        self.sync_wake_sender.close(linger=0)
