"""The session actor's shell for the simulation: the real session core (actors/session/session.py)
over the simulated disk and network, doing what actors/session/session_actor.py does.

Client connections are routing ids; their frames (the real msgpack protocol) arrive through the
world with a delay and the core's frames go back the same way. At a sync point the state is read
from this node's disk (whole, or caught up from the log), as the real shell reads it; every
`snapshot_every` applied txns a snapshot is written at once (the real shell forks a writer).
What the core applies is reported to the world's invariants (applied only once durable here, the
same txn at the same zxid everywhere, rising zxids).
"""

from __future__ import annotations

from typing import Any

from actors.protocol.effects import Tell
from actors.protocol.internal import Committed, SyncPoint
from actors.protocol.txn import Txn
from actors.session.session import SessionCore
from runtime.config import NodeConfig, ServerEntry
from zoomq.security import make_digest_acl_credential

SUPER_PASSWORD = "sim"
SUPER_DIGEST = make_digest_acl_credential("super", SUPER_PASSWORD)  # the reconfiguring client's
SNAPSHOT_EVERY = 40  # applied txns between snapshots (small: lagging learners then get a SNAP)


def node_config(sid: int, voters: frozenset[int], observers: frozenset[int], tick_ms: int) -> NodeConfig:
    servers = [ServerEntry(s, role="observer" if s in observers else "participant") for s in sorted(voters | observers)]
    return NodeConfig(
        sid=sid,
        servers=servers,
        tick_ms=tick_ms,
        snapshot_every=SNAPSHOT_EVERY,
        min_session_timeout_ms=200,
        max_session_timeout_ms=60_000,
        reconfig_enabled=True,
        super_digest=SUPER_DIGEST,
    )


class SimSession:
    def __init__(self, node: Any) -> None:
        self.node = node
        world = node.world
        self.cfg = node_config(node.sid, node.voters, node.observers, world.cfg.tick_ms)
        self.core = SessionCore(
            cfg=self.cfg, log=node.quiet, now=world.now, wall_ms=world.wall_ms, random_bytes=world.rng.randbytes
        )
        self._carry_out()

    @property
    def synced(self) -> bool:
        return self.core.synced

    @property
    def tree(self) -> Any:
        return self.core.tree

    # --- inputs -------------------------------------------------------------------------------

    def receive(self, msg: Any) -> None:
        """A message from this node's role actor (or its log's answer to a sync point)."""
        core = self.core
        now = self.node.world.now
        if isinstance(msg, SyncPoint):
            core.sync_point(msg, self._state_at(msg.zxid), now)
        elif isinstance(msg, Committed):
            before = core.tree.last_zxid
            core.role_message(msg, now)
            after = core.tree.last_zxid
            for entry in msg.entries:
                if isinstance(entry, Txn) and before < entry.zxid <= after:
                    self.node.world.note_applied(self.node, entry)
        else:
            core.role_message(msg, now)
        self._carry_out()

    def client_frames(self, rid: bytes, frames: list[bytes]) -> None:
        self.core.client_frames(rid, frames, self.node.world.now)
        self._carry_out()

    def _state_at(self, zxid: int) -> Any:
        """What the real shell reads: the whole state (first load, or a snapshot installed past
        the tree), or the tree caught up from the log, as far as the disk goes."""
        disk = self.node.disk
        tree = self.core.tree
        before = tree.last_zxid
        newer = [z for z in disk.snapshots if before < z <= zxid]
        if self.core.needs_reload(bool(newer)):
            tree = disk.state(zxid)
        else:
            for txn in disk.log:
                if tree.last_zxid < txn.zxid <= zxid:
                    tree.apply(txn, results=False)
        if tree.last_zxid >= zxid:  # the core takes it; otherwise it asks again
            self.node.world.note_applied_state(
                self.node, tree, [t for t in disk.log if before < t.zxid <= tree.last_zxid]
            )
        return tree

    # --- outputs ------------------------------------------------------------------------------

    def _carry_out(self) -> None:
        core = self.core
        node = self.node
        if core.out:
            out, core.out = core.out, {}
            for rid, frames in out.items():
                node.world.to_client(node, rid, frames)
        for effect in core.take_effects():
            if isinstance(effect, Tell):
                node.tell(effect.dest, effect.msg, "session")
        if core.wants_snapshot:  # the real shell forks a writer; here it is written at once
            core.snapshot_started()
            node.disk.snapshots[core.tree.last_zxid] = core.tree.to_snapshot()

    # --- timers -------------------------------------------------------------------------------

    def next_deadline(self) -> float:
        return self.core.next_deadline()

    def timer(self, now: float) -> None:
        self.core.tick(now)
        self._carry_out()
