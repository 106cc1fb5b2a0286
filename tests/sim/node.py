"""One simulated node: the real cores (fast leader election, the leader or a learner, with prep,
proposer and session tracker inside the leader) under sim shells that do what the actor shells
do, over the simulated network and disk. Local messages between a node's actors travel as events
with a small delay, FIFO per pair of actors, as ipc does.

The session actor is its real core under a sim shell (tests/sim/session.py); clients speak the
real protocol to it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog

from actors.election.fle import Election
from actors.follower.learner import Learner
from actors.follower.learner import Phase as LearnerPhaseOfCore
from actors.leader.leader import Leader
from actors.protocol import quorum as q
from actors.leader.sync import prepare
from actors.protocol.effects import Drop, EndRole, InstallSnapshot, PersistEpoch, PrepareSync, Send, Tell
from actors.protocol.internal import (
    Elected,
    Hello,
    LeaderUp,
    Logged,
    Looking,
    LogReady,
    OwnSession,
    Reconfigured,
    Touch,
    WriteRequest,
)
from actors.protocol.quorum import FOLLOWING, LEADING, LOOKING, OBSERVING
from runtime.channel import ChannelState
from runtime.config import ServerEntry, applied, membership_text, with_own_entry
from tests.sim.disk import SimDisk, SimLog
from tests.sim.session import SimSession

RESEND_S = 0.2
_log = structlog.get_logger("sim")
_ENCODER = msgspec.msgpack.Encoder()
_TO_LEADER = msgspec.msgpack.Decoder(q.ToLeader)
_TO_LEARNER = msgspec.msgpack.Decoder(q.ToLearner)


class QuietLog:
    """A logger that drops everything (the cores log a lot; the trace is the world's)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


QUIET = QuietLog()


class SimNode:
    def __init__(self, world: Any, sid: int, voters: frozenset[int], observers: frozenset[int]) -> None:
        self.world = world
        self.sid = sid
        self.voters = voters
        self.observers = observers
        self.servers = [
            ServerEntry(s, role="observer" if s in observers else "participant") for s in sorted(voters | observers)
        ]
        self.disk = SimDisk()
        self.incarnation = 0
        self.up = False
        self.factories = world.factories  # the core classes (mutants swap them)
        self.quiet = QUIET
        self._batch_open = False

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.incarnation += 1
        self.up = True
        if self.disk.membership is not None:  # membership.json: what the last reconfig made, at restart
            self._set_members(self.disk.membership.servers)
        self.log = SimLog(self)
        known = self.disk.membership
        self.election = Election(
            self.sid,
            self.voters,
            self.observers,
            finalize_s=0.05,
            config_version=known.version if known else 0,
            config=membership_text(known.servers, known.version) if known else b"",
        )
        self.suspect: tuple[int, float] = (-1, 0.0)  # as the supervisor's Look says it
        self.election_resend: float | None = None
        self.election_wants_log = False
        self.role: Leader | Learner | None = None
        self.role_incarnation = 0
        self.learner_channel: tuple[Any, ChannelState] | None = None  # (net channel, state)
        self.leader_channels: dict[bytes, tuple[Any, ChannelState]] = {}
        self.last_fifo: dict[tuple[str, str], float] = {}
        self.session = SimSession(self)
        self._look()

    def crash(self) -> None:
        """SIGKILL of the whole node (and, with `power`, the machine: unsynced writes go)."""
        if not self.up:
            return
        self.up = False
        self.incarnation += 1
        self.disk.crash(self.world.rng)
        self.world.net.close_all_of(self.sid, "peer died")
        self.world.clients_reset(self)
        self.role = None

    def crash_actor(self, why: str) -> None:
        self.world.trace(f"node {self.sid}: actor crash ({why}): node restarts")
        self.crash()
        self.world.at(self.world.now + 0.05, lambda: self.up or self.start(), f"restart {self.sid}")

    # --- local messages (ipc) -----------------------------------------------------------------

    def reply(self, dest: str, msg: Any, src: str = "log") -> None:
        self.tell(dest, msg, src)

    def tell(self, dest: str, msg: Any, src: str = "node") -> None:
        world = self.world
        when = max(world.now + world.rng.uniform(0.00005, 0.0005), self.last_fifo.get((src, dest), 0.0))
        self.last_fifo[(src, dest)] = when
        incarnation = self.incarnation
        world.at(
            when,
            lambda: self._local(incarnation, dest, msg),
            f"{self.sid}:{src}->{dest} {type(msg).__name__}",
            owner=self.sid,
        )

    def _local(self, incarnation: int, dest: str, msg: Any) -> None:
        if incarnation != self.incarnation or not self.up:
            return
        if dest == "log":
            self.log.receive(msg)
        elif dest == "session":
            self.session.receive(msg)
        elif dest == "election":
            self._election_message(msg)
        elif dest == "supervisor":
            if isinstance(msg, Reconfigured):
                self._reconfigured(msg)
            else:
                self._elected(msg)
        elif dest == "role":
            self._role_message(msg)

    # --- election and the supervisor's role swaps ---------------------------------------------

    def _look(self) -> None:
        self.election_wants_log = True
        self.tell("log", Hello(origin=self.sid, reply_to="election"), "election")

    def _election_message(self, msg: Any) -> None:
        if isinstance(msg, LogReady) and self.election_wants_log:
            self.election_wants_log = False
            suspect, suspect_s = self.suspect
            self.suspect = (-1, 0.0)
            self.election.look(msg.last_zxid, self.disk.epochs["currentEpoch"], self.world.now, suspect, suspect_s)
            self.election_resend = self.world.now + RESEND_S
            self._flush_election()

    def election_notification(self, n: q.Notification) -> None:
        if self.up:
            self.election.receive(n, self.world.now)
            self._flush_election()

    def _flush_election(self) -> None:
        core = self.election
        if core.adopted is not None:  # a peer's newer membership: what the election actor tells the supervisor
            m, core.adopted = core.adopted, None
            self.world.trace(f"node {self.sid}: membership {m.version:#x} taken from a peer")
            self.tell("supervisor", Reconfigured(m.servers, m.version), "election")
        for dest, n in core.outbox:
            for peer in self.world.nodes.values():
                if peer.sid != self.sid and (dest is None or dest == peer.sid):
                    incarnation = peer.incarnation
                    self.world.net.datagram(
                        self.sid,
                        peer.sid,
                        lambda p=peer, i=incarnation, n=n: p.up and p.incarnation == i and p.election_notification(n),
                    )
        core.outbox.clear()
        if core.decided is not None:
            d, core.decided = core.decided, None
            self.election_resend = None
            self.tell("supervisor", Elected(d.state, d.leader, d.zxid, d.epoch, d.round), "election")

    def _elected(self, msg: Elected) -> None:
        if self.role is not None:
            return
        self.role_incarnation += 1
        now = self.world.now
        cfg = self.world.cfg
        accepted, current = self.disk.epochs["acceptedEpoch"], self.disk.epochs["currentEpoch"]
        if msg.state == LEADING:
            self.role = self.factories.leader(
                sid=self.sid,
                voters=self.voters,
                ensemble=True,
                accepted_epoch=accepted,
                current_epoch=current,
                tick_ms=cfg.tick_ms,
                init_limit=cfg.init_limit,
                container_check_ms=60_000,
                max_data_bytes=1 << 20,
                now=now,
                log=QUIET,
                servers=self.servers,
                reconfig_enabled=True,
            )
            self.role.set_time(now, self.world.wall_ms)
            self.tell("log", Hello(origin=self.sid), "role")
            self.world.note_role(self, "leading")
        elif msg.state in (FOLLOWING, OBSERVING):
            self.role = self.factories.learner(
                sid=self.sid,
                leader=msg.leader,
                voting=msg.state == FOLLOWING,
                accepted_epoch=accepted,
                current_epoch=current,
                tick_s=cfg.tick_ms / 1000.0,
                init_limit=cfg.init_limit,
                sync_limit=cfg.sync_limit,
                now=now,
                log=QUIET,
            )
            channel = self.world.net.open(
                self.sid,
                msg.leader,
                self.role_incarnation,
                f"{self.sid}-{self.incarnation}-{self.role_incarnation}".encode(),
            )
            self.learner_channel = (
                channel,
                ChannelState(now, silence_s=self.role.silence_s, heartbeat_s=cfg.tick_ms / 2000.0),
            )
            self.world.note_role(self, msg.state)
        self._role_effects()

    def _set_members(self, servers: list[ServerEntry]) -> None:
        servers = with_own_entry(servers, self.servers, self.sid)  # as the supervisor keeps it
        self.servers = servers
        self.voters = frozenset(s.id for s in servers if s.voter)
        self.observers = frozenset(s.id for s in servers if not s.voter)

    def _reconfigured(self, msg: Reconfigured) -> None:
        """What the supervisor does (runtime/supervisor.py): keep it, tell the election, end a
        learner whose own role changed."""
        if self.disk.membership is not None and msg.version <= self.disk.membership.version:
            return
        outcome = applied(self.servers, self.sid, list(msg.servers), msg.version)
        if outcome.keep is not None:
            self.disk.membership = outcome.keep
        self._set_members(outcome.servers)
        self.world.trace(f"node {self.sid}: reconfigured {msg.version:#x}: voters {sorted(self.voters)}")
        self.election.set_members(
            self.voters, self.observers, msg.version, membership_text(msg.servers, msg.version), self.world.now
        )
        self._flush_election()
        if outcome.role_changed and self.role is not None and not isinstance(self.role, Leader):
            self._end_role("its role changed by a reconfig")

    def _end_role(self, reason: str) -> None:
        self.world.trace(f"node {self.sid}: role ended: {reason}")
        followed = self.role.leader if isinstance(self.role, Learner) else -1
        self.suspect = (followed, self.world.cfg.sync_limit * self.world.cfg.tick_ms / 1000.0)
        self.role = None
        if self.learner_channel is not None:
            self.world.net.close(self.learner_channel[0], "role ended")
            self.learner_channel = None
        for ch, _state in self.leader_channels.values():
            self.world.net.close(ch, "role ended")
        self.leader_channels.clear()
        self.tell("session", Looking(), "supervisor")
        self.world.note_role(self, LOOKING)
        self._look()

    # --- the role actor's shell ---------------------------------------------------------------

    def _role_message(self, msg: Any) -> None:
        role = self.role
        if role is None:
            return
        if isinstance(role, Leader):
            role.set_time(self.world.now, self.world.wall_ms)
            if isinstance(msg, LogReady):
                role.log_ready(
                    msg.last_zxid, self.disk.state(msg.last_zxid) if role.phase.value == "starting" else None
                )
            elif isinstance(msg, Logged):
                role.logged(msg.zxid)
            elif isinstance(msg, WriteRequest):
                role.write(msg)
            elif isinstance(msg, Touch):
                role.touch(msg.sessions)
            elif isinstance(msg, OwnSession):
                role.own(msg)
            elif isinstance(msg, Hello):
                role.hello()
        else:
            if isinstance(msg, LogReady):
                role.log_ready(msg.last_zxid)
            elif isinstance(msg, Logged):
                role.logged(msg.zxid)
            elif isinstance(msg, WriteRequest | Touch | Hello | OwnSession):
                role.local(msg)
        self._role_effects()

    def channel_message(self, ch: Any, payload: bytes) -> None:
        if not self.up:
            return
        role = self.role
        if ch.a == self.sid:  # the learner's end
            if self.learner_channel is None or self.learner_channel[0] is not ch or not isinstance(role, Learner):
                return
            state = self.learner_channel[1]
            data = state.accept(payload, self.world.now)
            if data is None:
                role.channel_broken("sequence gap")
            else:
                msg = _TO_LEARNER.decode(data)
                if isinstance(msg, q.NewLeader) and msg.zxid > role.appended:
                    self.world.fail(
                        f"node {self.sid}: NEWLEADER {msg.zxid:#x} past what the leader sent ({role.appended:#x})"
                    )
                role.from_leader(msg)
            self._role_effects()
            return
        # the leader's end
        if not isinstance(role, Leader):
            self.world.net.close(ch, "not leading")  # nothing listens: connection refused
            return
        role.set_time(self.world.now, self.world.wall_ms)
        known = self.leader_channels.get(ch.b_tag)
        if known is None:
            state = ChannelState(
                self.world.now,
                silence_s=self.world.cfg.sync_limit * self.world.cfg.tick_ms / 1000.0,
                heartbeat_s=self.world.cfg.tick_ms / 2000.0,
            )
            data = state.accept(payload, self.world.now)
            msg = _TO_LEADER.decode(data) if data is not None else None
            if not isinstance(msg, q.FollowerInfo):  # a channel this leader dropped: tell it, as the actor does
                fresh = ChannelState(self.world.now, silence_s=1.0, heartbeat_s=1.0)
                self.world.net.send(ch, self.sid, fresh.frame(_ENCODER.encode(q.Dropped("unknown channel"))))
                return
            self.leader_channels[ch.b_tag] = (ch, state)
            ch.leader_term = (self.incarnation, self.role_incarnation)  # which leader this channel reached
            role.learner_info(ch.b_tag, msg)
        else:
            data = known[1].accept(payload, self.world.now)
            if data is None:
                self._forget(ch.b_tag, "sequence gap")
            else:
                msg = _TO_LEADER.decode(data)
                if isinstance(msg, q.AckEpoch) and msg.fresh and not role.ready:
                    self.world.note_vouched(ch.a, role.epoch, self.sid, ch.leader_term)
                role.from_learner(ch.b_tag, msg)
        self._role_effects()

    def channel_closed(self, ch: Any, why: str) -> None:
        if not self.up:
            return
        role = self.role
        if (
            ch.a == self.sid
            and self.learner_channel is not None
            and self.learner_channel[0] is ch
            and isinstance(role, Learner)
        ):
            role.channel_broken(f"the connection to the leader closed: {why}")
            self._role_effects()
        elif ch.b == self.sid and isinstance(role, Leader) and ch.b_tag in self.leader_channels:
            self.leader_channels.pop(ch.b_tag)
            role.learner_lost(ch.b_tag, f"closed: {why}")
            self._role_effects()

    def _prepare_sync(self, effect: PrepareSync) -> None:
        """The shell's reading thread: the history is read as it is now, the result handed back a
        little later (commits go on meanwhile, as they do while the real thread reads)."""
        prepared = prepare(self.disk, effect.learner_last, effect.upto)
        role, incarnation = self.role, self.incarnation

        def ready() -> None:
            if self.up and self.incarnation == incarnation and self.role is role:
                role.set_time(self.world.now, self.world.wall_ms)
                role.sync_ready(effect.to, prepared)
                self._role_effects()

        self.world.at(
            self.world.now + self.world.rng.uniform(0.0005, 0.03), ready, f"sync read {self.sid}", owner=self.sid
        )

    def _forget(self, tag: bytes, why: str) -> None:
        entry = self.leader_channels.pop(tag, None)
        if entry is not None:
            self.world.net.close(entry[0], why)
            if isinstance(self.role, Leader):
                self.role.learner_lost(tag, why)

    def _send_learner(self, msg: Any) -> None:
        assert self.learner_channel is not None
        ch, state = self.learner_channel
        self.world.net.send(ch, self.sid, state.frame(_ENCODER.encode(msg)))

    BATCH_P = 0.25  # how often an input opens a batch that later inputs join before its effects go

    def _role_effects(self) -> None:
        """The role's effects after an input. As the real actor, which takes every message waiting
        in its sockets and only then carries out the effects (runtime/actor.py), an input now and
        then waits for the inputs that come in the next few milliseconds (acks, a synchronization
        read) before anything is sent: a core must not assume it is flushed after each input."""
        if self.role is None or self._batch_open:
            return
        rng = self.world.batch_rng
        if rng.random() >= self.BATCH_P:
            self._flush_role()
            return
        self._batch_open = True

        def batch_end() -> None:
            self._batch_open = False
            if self.up:
                self._flush_role()

        self.world.at(self.world.now + rng.uniform(0.0001, 0.003), batch_end, f"batch end {self.sid}", owner=self.sid)

    def _flush_role(self) -> None:
        role = self.role
        if role is None:
            return
        for effect in role.take_effects():
            if isinstance(effect, Send):
                if isinstance(role, Leader):
                    entry = self.leader_channels.get(effect.to)
                    if entry is not None:
                        self.world.net.send(entry[0], self.sid, entry[1].frame(_ENCODER.encode(effect.msg)))
                else:
                    self._send_learner(effect.msg)
            elif isinstance(effect, Tell):
                self.tell(effect.dest, effect.msg, "role")
                if isinstance(effect.msg, LeaderUp) and isinstance(role, Leader):
                    self.world.note_established(self, role)
            elif isinstance(effect, PersistEpoch):
                self.disk.epochs[effect.name] = effect.epoch
            elif isinstance(effect, InstallSnapshot):
                self.disk.snapshots[effect.zxid] = effect.data
            elif isinstance(effect, Drop):
                entry = self.leader_channels.pop(effect.to, None)
                if entry is not None:
                    self.world.net.close(entry[0], effect.why)
            elif isinstance(effect, PrepareSync):
                self._prepare_sync(effect)
            elif isinstance(effect, EndRole):
                self._end_role(effect.reason)
                return
        if isinstance(role, Learner) and self.learner_channel is not None:
            self.learner_channel[1].silence_s = role.silence_s

    # --- timers -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if not self.up:
            return None
        dues = [
            self.election.decide_at,
            self.election_resend if self.election.state == LOOKING else None,
            self.session.next_deadline(),
        ]
        role = self.role
        if role is not None:
            dues.append(role.next_deadline())
            if self.learner_channel is not None:
                dues.append(self.learner_channel[1].deadline())
            dues.extend(state.deadline() for _ch, state in self.leader_channels.values())
        dues = [d for d in dues if d is not None]
        return min(dues) if dues else None

    def timer(self) -> None:
        now = self.world.now
        self.election.tick(now)
        if self.election.state == LOOKING and self.election_resend is not None and now >= self.election_resend:
            self.election.broadcast()
            self.election_resend = now + RESEND_S
        self._flush_election()
        self.session.timer(now)
        role = self.role
        if isinstance(role, Leader):
            role.set_time(now, self.world.wall_ms)
            for tag, (_ch, state) in list(self.leader_channels.items()):
                if state.dead(now):
                    self._forget(tag, "silent")
                elif state.heartbeat_due(now):
                    self.world.net.send(_ch, self.sid, state.frame(_ENCODER.encode(q.Ping())))
            role.tick()
        elif isinstance(role, Learner) and self.learner_channel is not None:
            role.tick(now)
            state = self.learner_channel[1]
            state.silence_s = role.silence_s
            if state.dead(now):
                role.channel_broken("leader silent")
            elif state.heartbeat_due(now) and role.phase is not LearnerPhaseOfCore.STARTING:
                self._send_learner(q.Ping())
        self._flush_role()  # the actor's timers run at the end of its batch, its effects go with them

    # --- clients ------------------------------------------------------------------------------

    def client_frames(self, rid: bytes, frames: list[bytes]) -> None:
        if self.up:
            self.session.client_frames(rid, frames)
