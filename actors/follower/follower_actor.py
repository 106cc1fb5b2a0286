"""The follower actor (and, with `observer = True`, the observer): the shell of the Learner core.

It owns what the core may not touch: the DEALER to the leader's quorum port (an identity of its
own, a new channel per actor incarnation) with its monitor, the channel's numbering and timing
(runtime/channel.py), the epoch files and the snapshot file, and the clock. Every decision is
the core's (actors/follower/learner.py); this file only carries effects out, in order:
PersistEpoch and InstallSnapshot are written before any message after them is sent.

A closed connection, a gap, silence past the core's limit, or a message that does not decode
breaks the channel: the core ends the role and the supervisor runs an election; a fresh learner
synchronizes again. Nothing here is trusted across a broken channel.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.utils.monitor

from actors.follower.learner import Learner, Phase
from actors.log import epochs, snapshot
from actors.protocol import quorum as q
from actors.protocol.effects import EndRole, InstallSnapshot, PersistEpoch, Send, Tell
from actors.protocol.internal import Hello, Logged, LogReady, OwnSession, Touch, WriteRequest
from runtime.actor import QUORUM_HWM, Actor, set_peer_options
from runtime.channel import ChannelState
from runtime.roles import EXIT_ROLE_ENDED, read_role


class FollowerActor(Actor):
    name = "role"
    observer = False

    def on_start(self, now: float) -> None:
        cfg = self.cfg
        self.dir = Path(cfg.data_dir) / "version-1"
        self.dir.mkdir(parents=True, exist_ok=True)
        role_name = "observer" if self.observer else "follower"
        role = read_role(self.run_dir)
        leader = next((s for s in cfg.servers if role is not None and s.id == role.leader), None)
        if role is None or leader is None or leader.id == cfg.sid:
            raise SystemExit(f"{role_name}: no leader to follow in {self.run_dir}/role.json")
        tick_s = cfg.tick_ms / 1000.0
        self.core = Learner(
            sid=cfg.sid,
            leader=leader.id,
            voting=not self.observer,
            tick_s=tick_s,
            init_limit=cfg.init_limit,
            sync_limit=cfg.sync_limit,
            accepted_epoch=epochs.read_epoch(self.dir, "acceptedEpoch"),
            current_epoch=epochs.read_epoch(self.dir, "currentEpoch"),
            now=now,
            log=self.log,
        )
        self.channel = ChannelState(now, silence_s=self.core.silence_s, heartbeat_s=max(0.02, tick_s / 2))
        self.peer_decoder = msgspec.msgpack.Decoder(q.ToLearner)
        self.dealer = self.ctx.socket(zmq.DEALER)
        set_peer_options(self.dealer, QUORUM_HWM)
        self.dealer.setsockopt(zmq.IDENTITY, f"{cfg.sid}-{os.getpid()}-{os.urandom(4).hex()}".encode())
        # A dead leader's process closes its connections: notice at once, not at the silence limit.
        # Only a connection that completed its handshake counts: one closed before (a relay or a
        # load balancer on the way that could not reach the leader) never opened, and zmq retries it.
        # The monitor is attached before the connect: a handshake done before it would go unseen,
        # and the leader's death with it (noticed only when the leader fell silent).
        self.handshaken = False
        self.monitor = self.dealer.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.add_socket(self.monitor, self._on_monitor, copy=True)
        self.secure_connect(self.dealer, f"tcp://{leader.host}:{leader.quorum_port}", leader.id)
        self.add_socket(self.dealer, self._on_leader_frames, copy=True)
        self.log.info("following", leader=leader.id, observer=self.observer)
        self.on_batch_end(now)  # the core's first effects (asking the log for its end) go now

    # --- inputs -------------------------------------------------------------------------------

    def _on_leader_frames(self, frames: list[bytes], now: float) -> None:
        if self._stopping:
            return
        payload = self.channel.accept(frames, now)
        if payload is None:
            self.core.channel_broken("sequence gap or malformed frames from the leader", expected=self.channel.in_seq)
            return
        try:
            msg = self.peer_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            self.core.channel_broken("undecodable message from the leader", error=str(exc)[:200])
            return
        self.core.from_leader(msg)

    def _on_monitor(self, frames: list[bytes], now: float) -> None:
        event = zmq.utils.monitor.parse_monitor_message(frames)
        if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.handshaken = True
        elif event["event"] == zmq.EVENT_DISCONNECTED and not self._stopping:
            if self.handshaken:
                self.core.channel_broken("the connection to the leader closed")
            self.handshaken = False

    def on_message(self, msg: Any, now: float) -> None:
        if isinstance(msg, Logged):
            if msg.sid == self.cfg.sid:
                self.core.logged(msg.zxid)
        elif isinstance(msg, LogReady):
            self.core.log_ready(msg.last_zxid)
        elif isinstance(msg, WriteRequest | Touch | Hello | OwnSession):
            self.core.local(msg)
        else:
            self.log.warning("unexpected_message", type=type(msg).__name__)

    def next_deadline(self) -> float | None:
        own = self.core.next_deadline()
        return self.channel.deadline() if own is None else min(own, self.channel.deadline())

    def on_timer(self, now: float) -> None:
        self.core.tick(now)
        self.channel.silence_s = self.core.silence_s
        if self.channel.dead(now):
            self.core.channel_broken(
                "leader silent" if self.core.phase is Phase.SERVING else "synchronization timed out"
            )
        elif self.channel.heartbeat_due(now) and self.channel.out_seq:
            # Only after FollowerInfo went (the channel's first message, as the leader requires):
            # queued by the core in this batch, it is sent at the batch's end, after this.
            self._send(q.Ping())

    # --- effects ------------------------------------------------------------------------------

    def on_batch_end(self, now: float) -> None:
        self.channel.silence_s = self.core.silence_s
        for effect in self.core.take_effects():
            if isinstance(effect, Send):
                self._send(effect.msg)
            elif isinstance(effect, Tell):
                self.tell(effect.dest, effect.msg)
            elif isinstance(effect, PersistEpoch):
                epochs.write_epoch(self.dir, effect.name, effect.epoch)
            elif isinstance(effect, InstallSnapshot):
                snapshot.write_snapshot(self.dir, effect.zxid, effect.data)
            elif isinstance(effect, EndRole):
                self.end(EXIT_ROLE_ENDED, effect.reason, **effect.fields)
                return

    def _send(self, msg: Any) -> None:
        try:
            self.dealer.send_multipart(self.channel.frame(self.encoder.encode(msg)), zmq.NOBLOCK)
        except zmq.Again:
            self.core.channel_broken("cannot send to the leader")

    def on_stop(self) -> None:
        self.dealer.disable_monitor()
