"""The simulated world: a virtual clock, one event queue, N nodes, a few clients, a fault
schedule drawn from the seed, and the invariants checked after every step.

Determinism: every choice (delays, faults, client operations, torn tails) comes from
`random.Random(seed)`, events at the same time run in the order they were scheduled, and nodes and
clients are visited in a fixed order. The same seed replays the same run.

Invariants, after every event:
- learners accept each epoch from one leader only (ZAB: a new epoch is above every epoch accepted
  before), and at most one leader is established per epoch;
- a node applies a committed txn only once its own log has it durable;
- committed txns agree: a zxid applied anywhere is the same txn everywhere;
- on each node, applied zxids rise, and their epochs never go back (primary order);
- a write acknowledged to a client is in the log of every leader established after it.
After the run (faults healed, every node up, clients quiet) the nodes converge: the same tree
(data, sessions, ephemerals, per-session result tables) on every node; and every client history
is linearizable (bench/linearizability.py).
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.follower.learner import Learner
from actors.leader.leader import Leader
from actors.protocol.txn import ReconfigTxn, Txn
from actors.protocol.zxid import epoch_of
from bench import linearizability
from tests.sim.client import SimClient
from tests.sim.net import Net
from tests.sim.node import SimNode


class SimFailure(AssertionError):
    """An invariant broke; the message holds the seed, a reproduction command and the trace's tail."""


@dataclass
class SimConfig:
    nodes: int = 3
    observers: int = 0
    clients: int = 3
    keys: int = 2
    tick_ms: int = 100
    init_limit: int = 10
    sync_limit: int = 5
    duration_s: float = 12.0  # faults and client load
    quiesce_s: float = 15.0  # then: healed, every node up, clients idle, until converged
    fault_every_s: tuple[float, float] = (0.3, 1.5)
    # Client 1 also reconfigures now and then: a random node made an observer or a participant
    # (never fewer than two voters), through the real reconfig path, under the same faults.
    reconfigs: bool = False


@dataclass
class FaultSettings:
    datagram_loss: float = 0.0
    slow_disk: float = 1.0


@dataclass
class Factories:
    """The core classes the nodes run (test_mutants.py swaps in planted bugs)."""

    leader: Callable[..., Any] = Leader
    learner: Callable[..., Any] = Learner
    client: Callable[..., Any] = SimClient


@dataclass(order=True)
class _Event:
    time: float
    seq: int
    fn: Callable[[], None] = field(compare=False)
    desc: str = field(compare=False)
    owner: int | None = field(compare=False, default=None)


class World:
    def __init__(self, seed: int, cfg: SimConfig | None = None, factories: Factories | None = None) -> None:
        self.seed = seed
        self.cfg = cfg or SimConfig()
        self.factories = factories or Factories()
        self.rng = random.Random(seed)
        self.batch_rng = random.Random(seed ^ 0xBA7C4)  # which inputs a node's actor takes in one batch
        self.faults = FaultSettings()
        self.now = 0.0
        self.wall_offset_ms = 1_700_000_000_000
        self._queue: list[_Event] = []
        self._seq = 0
        self.paused: dict[int, list[_Event]] = {}  # node -> its events held while it is paused
        self.net = Net(self)
        n = self.cfg.nodes + self.cfg.observers
        voters = frozenset(range(1, self.cfg.nodes + 1))
        observers = frozenset(range(self.cfg.nodes + 1, n + 1))
        self.nodes: dict[int, SimNode] = {sid: SimNode(self, sid, voters, observers) for sid in range(1, n + 1)}
        keys = [f"/k{i}" for i in range(self.cfg.keys)]
        self.keys = keys
        self.clients = [self.factories.client(self, cid, keys) for cid in range(1, self.cfg.clients + 1)]
        self.clients_active = True
        self.keys_ready = False
        self.steps = 0
        self._trace: deque[str] = deque(maxlen=80)
        self.client_rids: dict[bytes, tuple[Any, int]] = {}
        self._last_on: dict[tuple[bytes, str], float] = {}  # (client connection, direction) -> last delivery time
        # invariant bookkeeping
        self.leader_of_epoch: dict[int, int] = {}
        # (learner, epoch) -> the leader it accepted that epoch from: ZAB lets two prospective leaders
        # propose the same epoch (each from a quorum that had not accepted it), but no learner acks
        # one epoch twice, so at most one of them can gather a quorum.
        self.accepted_from: dict[tuple[int, int], tuple[int, tuple[int, int]]] = {}
        self.committed: dict[int, Txn] = {}
        self.applied_last: dict[int, int] = {}
        self.acked_zxids: set[int] = set()
        self.written: dict[bytes, int] = {}  # a client write's value -> the zxid that applied it
        self.roles: dict[int, str] = {}

    # --- time and events ----------------------------------------------------------------------

    @property
    def wall_ms(self) -> int:
        return self.wall_offset_ms + int(self.now * 1000)

    def at(self, time: float, fn: Callable[[], None], desc: str, owner: int | None = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Event(time, self._seq, fn, desc, owner))

    def delay(self) -> float:
        r = self.rng.random()
        if r < 0.9:
            return self.rng.uniform(0.0001, 0.002)
        return self.rng.uniform(0.002, 0.05)  # now and then a slow packet

    def trace(self, text: str) -> None:
        self._trace.append(f"{self.now:9.4f} {text}")

    # --- clients <-> nodes --------------------------------------------------------------------

    def to_node(self, client: Any, node: Any, rid: bytes, frames: list[bytes]) -> None:
        """A client's frames on its current connection (a new connection per connect, as TCP)."""
        incarnation = node.incarnation
        self.client_rids[rid] = (client, client.conn_id)
        self.at(
            self._in_order((rid, "up")),
            lambda: node.incarnation == incarnation and node.client_frames(rid, frames),
            f"client{client.cid}->{node.sid} {len(frames)} frames",
            owner=node.sid,
        )

    def to_client(self, node: Any, rid: bytes, frames: list[bytes]) -> None:
        client, conn_id = self.client_rids[rid]
        self.at(
            self._in_order((rid, "down")),
            lambda: client.receive(node, conn_id, frames),
            f"{node.sid}->client{client.cid} {len(frames)} frames",
        )

    def _in_order(self, way: tuple[bytes, str]) -> float:
        """A delivery time on a client connection: delayed, but never before an earlier send on the
        same connection and direction (a client connection is TCP: in order)."""
        when = max(self.now + self.delay(), self._last_on.get(way, 0.0))
        self._last_on[way] = when
        return when

    def clients_reset(self, node: Any) -> None:
        """A node died: the clients connected to it see their connection reset."""
        for client in self.clients:
            if client.node is node:
                conn_id = client.conn_id
                self.at(
                    self.now + self.delay(), lambda c=client, i=conn_id: c.disconnected(i), f"reset client{client.cid}"
                )

    # --- faults -------------------------------------------------------------------------------

    def pause(self, sid: int) -> None:
        self.paused.setdefault(sid, [])
        self.trace(f"pause {sid}")

    def resume(self, sid: int) -> None:
        held = self.paused.pop(sid, None)
        self.trace(f"resume {sid}")
        for event in held or ():
            self.at(self.now, event.fn, event.desc, event.owner)  # in their original order

    def kill(self, sid: int, restart_after: float) -> None:
        node = self.nodes[sid]
        if not node.up:
            return
        self.resume(sid) if sid in self.paused else None
        self.trace(f"kill -9 {sid} (restart in {restart_after:.2f}s)")
        node.crash()
        self.roles.pop(sid, None)
        self.at(self.now + restart_after, lambda: node.up or node.start(), f"restart {sid}")

    def _fault(self) -> None:
        """One fault from the schedule, undone after a while (a kill: restarted)."""
        rng = self.rng
        sids = sorted(self.nodes)
        kind = rng.choice(
            ("kill", "kill-leader", "pause", "isolate", "isolate-leader", "one-way", "break-channel", "clock", "loss")
        )
        leader = next((sid for sid, role in sorted(self.roles.items()) if role == "leading"), None)
        victim = leader if kind.endswith("leader") and leader is not None else rng.choice(sids)
        length = rng.uniform(0.2, 3.0)
        if kind.startswith("kill"):
            self.kill(victim, length)
        elif kind == "pause":
            if victim not in self.paused and self.nodes[victim].up:
                self.pause(victim)
                self.at(self.now + length, lambda: self.resume(victim), f"resume {victim}")
        elif kind.startswith("isolate"):
            pairs = {(victim, o) for o in sids if o != victim} | {(o, victim) for o in sids if o != victim}
            self._partition(pairs, length, f"isolate {victim}")
        elif kind == "one-way":
            other = rng.choice([s for s in sids if s != victim])
            self._partition({(victim, other)}, length, f"drop {victim}->{other}")
        elif kind == "break-channel":
            if self.net.channels:
                ch = rng.choice(sorted(self.net.channels.values(), key=lambda c: c.cid))
                self.trace(f"break channel {ch.cid} ({ch.a}->{ch.b})")
                self.net.close(ch, "reset by the network")
        elif kind == "clock":
            jump = rng.choice((-1, 1)) * rng.randint(10_000, 3_600_000)
            self.wall_offset_ms += jump
            self.trace(f"wall clock jumps {jump:+d} ms")
        elif kind == "loss":
            self.faults.datagram_loss = 0.2
            self.trace("20% datagram loss")
            self.at(self.now + length, lambda: setattr(self.faults, "datagram_loss", 0.0), "loss over")

    def _partition(self, pairs: set[tuple[int, int]], length: float, what: str) -> None:
        self.trace(f"partition: {what} for {length:.2f}s")
        self.net.partition(pairs)
        self.at(self.now + length, self._heal, "heal")

    def _heal(self) -> None:
        self.trace("heal")
        self.net.heal()

    # --- bookkeeping the invariants read ------------------------------------------------------

    def note_role(self, node: SimNode, role: str) -> None:
        self.roles[node.sid] = role
        self.trace(f"node {node.sid}: {role}")

    def note_vouched(self, learner: int, epoch: int, leader: int, leader_term: tuple[int, int]) -> None:
        """`leader` (in that node's incarnation and role term) got a fresh AckEpoch for `epoch` from
        `learner`: one that may count towards establishing the epoch."""
        first = self.accepted_from.setdefault((learner, epoch), (leader, leader_term))
        if first != (leader, leader_term):
            self.fail(f"node {learner} vouched for epoch {epoch} to two leaders: node {first[0]} and node {leader}")

    def _voters_for(self, leader: Any) -> list[set[int]]:
        last = leader.last_logged
        committed = [t for z, t in self.committed.items() if z <= last and isinstance(t.op, ReconfigTxn)]
        force = max(committed, key=lambda t: t.zxid, default=None)
        out = [{s.id for s in force.op.servers if s.voter} if force is not None else set(range(1, self.cfg.nodes + 1))]
        logged = leader.prep.tree.membership if leader.prep is not None else None
        if logged is not None and (force is None or logged.version > force.zxid):
            out.append({s.id for s in logged.servers if s.voter})
        return out

    def note_established(self, node: SimNode, leader: Any) -> None:
        epoch = leader.epoch
        other = self.leader_of_epoch.setdefault(epoch, node.sid)
        if other != node.sid:
            self.fail(f"two leaders established in epoch {epoch}: {other} and {node.sid}")
        term = (node.incarnation, node.role_incarnation)
        vouched = {
            sid for (sid, e), (by, t) in self.accepted_from.items() if e == epoch and (by, t) == (node.sid, term)
        }
        # A quorum of the voters in force (the last reconfig committed in its history) and, when
        # its log holds a newer one, of that one's voters too.
        for voters in self._voters_for(leader):
            if len((vouched | {node.sid}) & voters) * 2 <= len(voters):
                self.fail(
                    f"node {node.sid} established epoch {epoch} with fresh acks from only {sorted(vouched)} "
                    f"(voters {sorted(voters)})"
                )
        self.trace(f"node {node.sid}: established epoch {epoch}")
        disk = node.disk
        logged = {t.zxid: t for t in disk.log}
        for zxid in sorted(self.acked_zxids):
            if zxid <= disk.base or any(zxid <= s for s in disk.snapshots):
                continue
            txn = logged.get(zxid)
            if txn is None or txn != self.committed.get(zxid):
                self.fail(f"leader {node.sid} of epoch {epoch} lacks acknowledged txn {zxid:#x}")

    def note_applied(self, node: SimNode, txn: Txn) -> None:
        if txn.zxid > node.disk.last_durable:
            self.fail(
                f"node {node.sid} applied {txn.zxid:#x} before its own log had it durable (at {node.disk.last_durable:#x})"
            )
        known = self.committed.setdefault(txn.zxid, txn)
        if known != txn:
            self.fail(f"node {node.sid} applied {txn} at {txn.zxid:#x}, another node applied {known}")
        data = getattr(txn.op, "data", None)
        if data:  # every client write carries a value of its own: one txn per value
            first = self.written.setdefault(data, txn.zxid)
            if first != txn.zxid:
                self.fail(f"the write of {data!r} was applied twice: at {first:#x} and {txn.zxid:#x}")
        last = self.applied_last.get(node.sid, 0)
        if txn.zxid <= last or epoch_of(txn.zxid) < epoch_of(last):
            self.fail(f"node {node.sid} applied {txn.zxid:#x} after {last:#x}")
        self.applied_last[node.sid] = txn.zxid

    def note_applied_state(self, node: SimNode, tree: Any, read: list[Txn]) -> None:
        """A session rebuilt its tree from disk at a sync point (`read`: the txns it read from the
        log to get there): committed never goes back, and what it read agrees with what others applied."""
        last = self.applied_last.get(node.sid, 0)
        if tree.last_zxid < last:
            self.fail(f"node {node.sid} resynchronized at {tree.last_zxid:#x}, below the {last:#x} it had applied")
        for txn in read:
            known = self.committed.setdefault(txn.zxid, txn)
            if known != txn:
                self.fail(f"node {node.sid} read {txn} at {txn.zxid:#x} from its disk, another node applied {known}")
        self.applied_last[node.sid] = tree.last_zxid

    def note_acked_write(self, client: Any, zxid: int) -> None:
        if zxid not in self.committed:
            self.fail(f"client {client.cid} got an acknowledgement for {zxid:#x}, which no node applied")
        self.acked_zxids.add(zxid)

    def fail(self, message: str) -> None:
        raise SimFailure(self.report(message))

    def report(self, message: str) -> str:
        cfg = self.cfg
        repro = (
            f"python -m tests.sim --seed {self.seed} --nodes {cfg.nodes} --observers {cfg.observers} "
            f"--clients {cfg.clients} --duration {cfg.duration_s:g}" + (" --reconfigs" if cfg.reconfigs else "")
        )
        tail = "\n".join(list(self._trace)[-40:])
        return f"seed {self.seed}, step {self.steps}, t={self.now:.4f}: {message}\nreproduce: {repro}\nlast events:\n{tail}"

    # --- the run ------------------------------------------------------------------------------

    def _due_actors(self) -> float:
        dues = [node.next_deadline() for sid, node in sorted(self.nodes.items()) if node.up and sid not in self.paused]
        dues += [c.next_deadline() for c in self.clients]
        dues = [d for d in dues if d is not None]
        return min(dues) if dues else float("inf")

    def _step(self, until: float) -> bool:
        due = self._due_actors()
        event_time = self._queue[0].time if self._queue else float("inf")
        when = min(due, event_time)
        if when > until:
            self.now = until
            return False
        self.now = max(self.now, when)
        self.steps += 1
        if event_time <= due:
            event = heapq.heappop(self._queue)
            if event.owner is not None and event.owner in self.paused:
                self.paused[event.owner].append(event)
                return True
            event.fn()
        else:
            for sid, node in sorted(self.nodes.items()):
                if node.up and sid not in self.paused and (d := node.next_deadline()) is not None and d <= self.now:
                    node.timer()
            for client in self.clients:
                if client.next_deadline() <= self.now:
                    client.timer()
        return True

    def run(self) -> World:
        cfg = self.cfg
        for node in self.nodes.values():
            self.at(self.rng.uniform(0, 0.05), node.start, f"start {node.sid}")
        next_fault = self.rng.uniform(*cfg.fault_every_s)
        end = cfg.duration_s
        for _ in range(50_000_000):
            if self.now >= next_fault and self.now < end:
                self._fault()
                next_fault = self.now + self.rng.uniform(*cfg.fault_every_s)
            if not self._step(min(next_fault, end) if self.now < end else end):
                if self.now >= end:
                    break
        self._quiesce()
        return self

    def _quiesce(self) -> None:
        self.clients_active = False
        self.trace("quiesce: heal, resume, restart")
        self.net.heal()
        self.faults.datagram_loss = 0.0
        for sid in list(self.paused):
            self.resume(sid)
        for node in self.nodes.values():
            if not node.up:
                node.start()
        deadline = self.now + self.cfg.quiesce_s
        for _ in range(50_000_000):
            if not self._step(deadline) or self.now >= deadline:
                break
            if self._converged():
                break
        if not self._converged():
            states = {
                sid: (n.up, self.roles.get(sid), n.session.synced, hex(n.session.tree.last_zxid))
                for sid, n in self.nodes.items()
            }
            self.fail(f"no convergence within {self.cfg.quiesce_s}s of quiet: {states}")
        self._check_histories()

    def _converged(self) -> bool:
        nodes = list(self.nodes.values())
        if not all(n.up and n.session.synced for n in nodes):
            return False
        lasts = {n.session.tree.last_zxid for n in nodes}
        if len(lasts) != 1:
            return False
        digests = {n.session.tree.digest() for n in nodes}
        if len(digests) != 1:
            self.fail("nodes at the same zxid hold different trees")
        return True

    def _check_histories(self) -> None:
        ops = []
        for client in self.clients:
            ops.extend(client.history)
            if client.op is not None and client.op["kind"] not in (
                "create",
                "reconfig",
            ):  # under way at the end: unknown outcome
                op = client.op
                ops.append(
                    linearizability.Op(
                        client.cid,
                        op["key"],
                        op["kind"],
                        None if op["kind"] == "get" else op["value"],
                        op["expect"] if op["kind"] == "cas" else None,
                        op["call"],
                        None,
                        False,
                    )
                )
        initial = {key: (b"", 0) for key in self.keys}  # client 1 creates them before any history
        ok, why = linearizability.check(ops, initial=initial)
        if not ok:
            self.fail(f"client histories are not linearizable: {why}")
        self.ops_checked = len(ops)
