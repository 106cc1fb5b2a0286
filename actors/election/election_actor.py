"""The election actor: fast leader election with the node's peers over the election port.

Shell around `actors.election.fle.Election`: a ROUTER bound on this node's election port
receives notifications; one DEALER per peer (IMMEDIATE: nothing queues for a peer that is not
connected) sends them. It idles until the supervisor says `Look`; then it asks the log actor for
the durable end of the log, reads `currentEpoch`, and runs a round: re-sending its vote every
`RESEND_S` while looking, deciding after the finalize wait. The outcome goes to the supervisor as
`Elected`; after that it answers every looking peer with the settled vote, until the next `Look`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.utils.monitor

from actors.election.fle import NO_LEADER, Election
from actors.log import epochs
from actors.protocol.internal import Elected, Hello, LogReady, Look, Reconfigured
from actors.protocol.quorum import LOOKING, Notification
from actors.protocol.zxid import fmt
from runtime.config import membership_text, read_membership, with_own_entry
from runtime.actor import Actor, limit_unacked

RESEND_S = 0.2
REDIAL_S = 1.0  # a peer connection whose CURVE key was refused is made again after this long
HELLO_RETRY_S = 1.0
PEER_HWM = 64


class ElectionActor(Actor):
    name = "election"

    def on_start(self, now: float) -> None:
        cfg = self.cfg
        self.dir = Path(cfg.data_dir) / "version-1"
        me = next((s for s in cfg.servers if s.id == cfg.sid), None)
        if me is None:
            raise SystemExit(f"server id {cfg.sid} is not in the configured servers")
        voters = frozenset(s.id for s in cfg.servers if s.role != "observer")
        observers = frozenset(s.id for s in cfg.servers if s.role == "observer")
        known = read_membership(cfg.data_dir)  # a reconfig's membership, which notifications carry
        version = known.version if known is not None else 0
        text = membership_text(known.servers, known.version) if known is not None else b""
        self.core = Election(
            cfg.sid, voters, observers, finalize_s=min(0.2, cfg.tick_ms / 1000.0), config_version=version, config=text
        )
        self.notification_decoder = msgspec.msgpack.Decoder(Notification)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.secure_bind(self.router, f"tcp://{me.host}:{me.election_port}", "peers")
        self.add_socket(self.router, self._on_peer)  # frames: with CURVE, each names its sender's key
        self.peers: dict[int, zmq.Socket] = {}
        self.addresses: dict[int, str] = {}
        self.monitors: dict[int, zmq.Socket] = {}  # CURVE: handshake events of each peer connection
        self.refused_by: set[int] = set()
        self.impostors: set[int] = set()  # server ids claimed with another key (logged once)
        self.redial: dict[int, float] = {}  # peers whose key refusal ended their connection: when to retry
        self._connect_peers(cfg.servers)
        self.wants_log: float | None = None  # Hello sent, LogReady awaited (retry time)
        self.look: Look | None = None  # the last Look: whom not to vote for, and how long
        self.resend_due: float | None = None

    def _connect_peers(self, servers: list[Any]) -> None:
        """One DEALER per other member; a member gone (or moved) by a reconfig is let go."""
        wanted = {s.id: f"tcp://{s.host}:{s.election_port}" for s in servers if s.id != self.cfg.sid}
        for sid in [sid for sid in self.peers if self.addresses.get(sid) != wanted.get(sid)]:
            self._drop_peer(sid)
        for sid, address in wanted.items():
            if sid in self.peers:
                continue
            if self.curve_on and self._peer_key(sid) is None:
                # CURVE needs every member's key: tried again at the next election
                self.log.warning("member_without_curve_key", sid=sid)
                continue
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.SNDHWM, PEER_HWM)
            sock.setsockopt(zmq.IDENTITY, str(self.cfg.sid).encode())
            limit_unacked(sock)  # votes flow again as soon as a partition heals
            if self.curve_on:  # a member that refuses this node's key says nothing else: tell the operator
                # Watched before the connect: a refusal that came first would be missed, and the
                # connection, which ZeroMQ does not make again, never redialled.
                monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED)
                self.add_socket(monitor, lambda frames, now, sid=sid: self._on_handshake(sid, frames, now), copy=True)
                self.monitors[sid] = monitor
            self.secure_connect(sock, address, sid)
            # A member answers a node it does not know yet (one joining) on this connection.
            self.add_socket(sock, lambda frames, now, sid=sid: self._on_answer(sid, frames, now), copy=True)
            self.peers[sid] = sock
            self.addresses[sid] = address

    def _drop_peer(self, sid: int) -> None:
        sock = self.peers.pop(sid)
        monitor = self.monitors.pop(sid, None)
        if monitor is not None:
            self.remove_socket(monitor)
            sock.disable_monitor()
            monitor.close(linger=0)
        self.remove_socket(sock)
        sock.close(linger=0)
        del self.addresses[sid]

    def _on_handshake(self, sid: int, frames: list[bytes], now: float) -> None:
        """CURVE handshakes with a member. ZeroMQ does not reconnect a connection whose key was
        refused: it is made again after REDIAL_S (the member may admit the key meanwhile, from its
        curve_peer_keys); the refusal is logged once per streak."""
        event = zmq.utils.monitor.parse_monitor_message(frames)["event"]
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.refused_by.discard(sid)
            return
        self.redial.setdefault(sid, now + REDIAL_S)
        if sid not in self.refused_by:
            self.refused_by.add(sid)
            self.log.warning(
                "key_refused",
                sid=sid,
                why=f"server {sid} does not admit this node's CURVE key: add it to its curve_peer_keys "
                f"as server.{self.cfg.sid}.key",
            )

    def _redial(self, now: float) -> None:
        due = [sid for sid, at in self.redial.items() if now >= at]
        for sid in due:
            del self.redial[sid]
            if sid in self.peers:
                self._drop_peer(sid)
        if due:
            self._connect_peers(self.cfg.servers)

    def _peer_key(self, sid: int) -> bytes | None:
        from runtime import curve

        return curve.peer_key(self.cfg, sid)

    # --- timers ---------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        dues = [d for d in (self.wants_log, self.resend_due, self.core.decide_at) if d is not None]
        dues += self.redial.values()
        return min(dues) if dues else None

    def on_timer(self, now: float) -> None:
        if self.redial:
            self._redial(now)
        if self.wants_log is not None and now >= self.wants_log:
            self._ask_log(now)
        self.core.tick(now)
        if self.core.lifted != NO_LEADER:
            self.log.info("suspicion_lifted", suspect=self.core.lifted, why="no quorum of voters without it heard")
            self.core.lifted = NO_LEADER
        if self.core.state == LOOKING and self.resend_due is not None and now >= self.resend_due:
            self.core.broadcast()
            self.resend_due = now + RESEND_S

    # --- messages -------------------------------------------------------------------------------

    def on_message(self, msg: Any, now: float) -> None:
        if isinstance(msg, Look):
            self.look = msg
            self._connect_peers(self.cfg.servers)  # a member whose CURVE key has come since
            self._ask_log(now)
        elif isinstance(msg, LogReady):
            if self.wants_log is None:
                return
            self.wants_log = None
            epoch = epochs.read_epoch(self.dir, "currentEpoch")
            look = self.look or Look()
            self.core.look(msg.last_zxid, epoch, now, suspect=look.suspect, suspect_s=look.suspect_ms / 1000.0)
            self.resend_due = now + RESEND_S
            self.log.info(
                "looking",
                round=self.core.round,
                zxid=fmt(msg.last_zxid),
                epoch=epoch,
                **({"suspect": look.suspect} if look.suspect >= 0 else {}),
            )
        elif isinstance(msg, Elected):
            self.core.serve(msg.state, msg.leader, msg.zxid, msg.epoch, msg.round)
            self.wants_log = self.resend_due = None
        elif isinstance(msg, Reconfigured):
            self._members(msg.servers, msg.version)
        else:
            self.log.warning("unexpected_message", type=type(msg).__name__)

    def _members(self, servers: list[Any], version: int) -> None:
        """The membership in force from `version` on (this node kept in its place if it names it not)."""
        everyone = with_own_entry(servers, self.cfg.servers, self.cfg.sid)
        voters = frozenset(s.id for s in everyone if s.voter)
        observers = frozenset(s.id for s in everyone if not s.voter)
        self.core.set_members(voters, observers, version, membership_text(servers, version), self._now)
        self.cfg = msgspec.structs.replace(self.cfg, servers=everyone)
        self._connect_peers(everyone)
        self.log.info("members", version=hex(version), voters=sorted(voters), observers=sorted(observers))

    def _ask_log(self, now: float) -> None:
        self.tell("log", Hello(origin=self.cfg.sid, reply_to=self.name))
        self.wants_log = now + HELLO_RETRY_S

    def _on_peer(self, frames: list[Any], now: float) -> None:
        if len(frames) == 2:
            self._notified(frames[0].bytes, frames[1].bytes, now, frames[1])

    def _on_answer(self, sid: int, frames: list[Any], now: float) -> None:
        if len(frames) == 1:
            self._notified(str(sid).encode(), frames[0], now)

    def _notified(self, sender: bytes, payload: bytes, now: float, frame: Any = None) -> None:
        """A notification; `frame`: the one it came in on our ROUTER, whose CURVE key must be
        that of the server it names (an answer on our own connection comes from the key we
        connected to)."""
        try:
            n = self.notification_decoder.decode(payload)
        except msgspec.DecodeError:
            self.log.warning("bad_notification", size=len(payload))
            return
        if sender != str(n.sid).encode():
            self.log.warning("notification_sender_mismatch", sid=n.sid)
            return
        if frame is not None and not self.peer_is(n.sid, frame):
            if n.sid not in self.impostors:  # once per server id: it resends every RESEND_S
                self.impostors.add(n.sid)
                self.log.warning("notification_key_mismatch", sid=n.sid, why="its CURVE key is not that server's")
            return
        self.core.receive(n, now)

    def _answer(self, dest: int, payload: bytes) -> None:
        """To one node, on our connection to it; else on the one it asked through (a node not a
        member yet, or one whose connection from us is down: refused, or not made again yet)."""
        sock = self.peers.get(dest)
        if sock is not None:
            try:
                sock.send(payload, zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
        try:
            self.router.send_multipart([str(dest).encode(), payload], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # not connected that way either: it asks again

    def on_batch_end(self, now: float) -> None:
        core = self.core
        if core.outbox:
            for dest, n in core.outbox:
                payload = self.encoder.encode(n)
                if dest is None:
                    for sock in self.peers.values():
                        try:
                            sock.send(payload, zmq.NOBLOCK)
                        except zmq.Again:
                            pass  # not connected: it gets our vote when it asks
                else:
                    self._answer(dest, payload)
            core.outbox.clear()
        if core.adopted is not None:
            m, core.adopted = core.adopted, None
            self.log.info("membership_from_a_peer", version=hex(m.version))
            self._members(m.servers, m.version)
            self.tell("supervisor", Reconfigured(m.servers, m.version))
        if core.decided is not None:
            d = core.decided
            core.decided = None
            self.resend_due = None
            self.log.info("elected", state=d.state, leader=d.leader, zxid=fmt(d.zxid), epoch=d.epoch, round=d.round)
            self.tell("supervisor", Elected(d.state, d.leader, d.zxid, d.epoch, d.round))
