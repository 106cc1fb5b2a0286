"""A simulated client: the real session engine (zoomq/engine.py) under a shell that does what
zoomq.Client's I/O thread does, on the virtual clock: connect to a node (a new connection each
time, as TCP), hand the node's answers to the engine, send what the engine says, ping when idle,
give a silent connection up after two thirds of the session timeout, move to another node.

On top, a workload of one operation at a time on a few registers (znodes /k0, /k1, ...): set
(setData, any version), cas (setData at the version last read) and a linearizable read (sync,
then getData, pipelined on one connection; a read whose sync was answered on another connection
is done again). Every operation is recorded for the linearizability checker
(bench/linearizability.py) with its call and return times; one whose outcome the client cannot
know (the session ended under it) is recorded without a return.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bench.linearizability import Op
from zoomq import protocol as p
from zoomq.engine import Deliver, Handshake, Request, SessionEngine
from runtime.config import ServerEntry
from tests.sim.session import SUPER_PASSWORD
from zoomq.exceptions import (
    BadVersionError,
    NewConfigNoQuorumError,
    NodeExistsError,
    NoNodeError,
    ReconfigInProcessError,
    SessionExpiredError,
    SessionMovedError,
    error_for,
)
from zoomq.security import OPEN_ACL_UNSAFE

SESSION_TIMEOUT_MS = 4_000
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(p.ServerMsg).decode


def _reply(reply: p.Reply) -> tuple[int, Any]:
    """(zxid, body) of a successful reply; the caller's error otherwise."""
    if reply.err:
        raise error_for(reply.err)
    return reply.zxid, reply.body


class SimClient:
    engine_class: type[SessionEngine] = SessionEngine

    def __init__(self, world: Any, cid: int, keys: list[str]) -> None:
        self.world = world
        self.cid = cid
        self.keys = keys
        self.reconfigures = cid == 1 and world.cfg.reconfigs
        auth = [("digest", f"super:{SUPER_PASSWORD}")] if self.reconfigures else []
        self.engine = self.engine_class(timeout_ms=SESSION_TIMEOUT_MS, auth_data=auth)
        self.roles = {
            sid: "observer" if node.observers and sid in node.observers else "participant"
            for sid, node in world.nodes.items()
        }  # the membership as this client last made it
        self.engine.begin(world.now)
        self.node: Any = None
        self.conn_id = 0  # a new connection per connect: answers on an older one are not for us
        self.phase = "idle"  # idle -> handshake -> serving -> idle
        self.handshake_deadline = 0.0
        self.last_recv = self.last_send = world.now
        self.next_connect = world.now + world.rng.uniform(0.0, 0.05)
        self.versions: dict[str, int] = {}
        self.op: dict[str, Any] | None = None  # the operation under way
        self.next_action = world.now + world.rng.uniform(0.0, 0.05)
        self.history: list[Op] = []
        self.created: set[str] = set()  # client 1 creates the registers before any history
        self.done_ops = 0

    @property
    def rid(self) -> bytes:
        return f"client{self.cid}:{self.conn_id}".encode()

    # --- the world's hooks --------------------------------------------------------------------

    def next_deadline(self) -> float:
        engine = self.engine
        if self.phase == "idle":
            dues = [self.next_connect]
        elif self.phase == "handshake":
            dues = [self.handshake_deadline]
        else:
            dues = [self.last_recv + engine.read_timeout_s, self.last_send + engine.ping_every_s]
        if self.op is None:
            dues.append(self.next_action)
        return min(dues)

    def timer(self) -> None:
        now = self.world.now
        engine = self.engine
        if self.phase == "idle" and now >= self.next_connect:
            self._connect()
        elif self.phase == "handshake" and now >= self.handshake_deadline:
            self._lost("no answer to connect")
        elif self.phase == "serving":
            if now >= self.last_recv + engine.read_timeout_s:
                self._lost("silent")
            elif now >= self.last_send + engine.ping_every_s:
                self._send([_ENCODE(p.Ping())])
        if self.op is None and now >= self.next_action:
            self._act()
        self._flush()

    def disconnected(self, conn_id: int) -> None:
        """The node's end of the connection went away (it crashed: TCP reset)."""
        if conn_id == self.conn_id and self.phase != "idle":
            self._lost("reset")
            self._flush()

    def receive(self, node: Any, conn_id: int, frames: list[bytes]) -> None:
        if conn_id != self.conn_id or node is not self.node or self.phase == "idle":
            return  # an answer on a connection already given up
        self.last_recv = self.world.now
        engine = self.engine
        for frame in frames:
            msg = _DECODE(frame)
            if self.phase == "handshake":
                outcome, replay = engine.handshake(msg)
                if outcome is Handshake.FAILED:
                    self._lost("refused")
                    break
                if outcome is Handshake.AGAIN:
                    self._send([_ENCODE(engine.connect_message())])
                elif outcome is Handshake.READY:
                    self.phase = "serving"
                    if replay:
                        self._send(replay)
            elif not engine.received(msg):
                self._lost("the node said so")
                break
        self._flush()

    # --- the connection -----------------------------------------------------------------------

    def _connect(self) -> None:
        self.conn_id += 1
        self.node = self.world.rng.choice(list(self.world.nodes.values()))
        self.phase = "handshake"
        self.handshake_deadline = self.world.now + max(0.2, self.engine.negotiated_ms / 1000.0 / len(self.world.nodes))
        self.last_recv = self.world.now
        self._send([_ENCODE(self.engine.connect_message())])

    def _send(self, frames: list[bytes]) -> None:
        self.last_send = self.world.now
        self.world.to_node(self, self.node, self.rid, frames)

    def _lost(self, why: str) -> None:
        self.world.trace(f"client{self.cid}: connection {self.conn_id} lost ({why})")
        self.engine.connection_lost(self.world.now, served=self.phase == "serving")
        self.phase = "idle"
        self.node = None
        self.next_connect = self.world.now + self.world.rng.uniform(0.01, 0.1)

    def _flush(self) -> None:
        """Send what the engine has for the node; take in what it delivered."""
        engine = self.engine
        if self.phase == "serving":
            frames = engine.frames()
            if frames:
                self._send(frames)
        for effect in engine.take_effects():
            if isinstance(effect, Deliver):
                self._outcome(effect.result, effect.value, effect.error)

    # --- the workload -------------------------------------------------------------------------

    def _submit(self, name: str, msg_of: Any) -> None:
        xid, gen = self.engine.next_xid()
        msg = msg_of(xid)
        self.engine.submit(Request(xid, _ENCODE(msg), (name, self.op), _reply, None, msg, gen))

    def _act(self) -> None:
        world = self.world
        if not world.keys_ready:
            if self.cid != 1:
                self.next_action = world.now + 0.1
                return
            missing = [key for key in self.keys if key not in self.created]
            if not missing:
                world.keys_ready = True
                self.next_action = world.now
                return
            self.op = {"kind": "create", "key": missing[0], "value": b"", "call": world.now, "expect": None}
        elif not world.clients_active:
            self.next_action = world.now + 0.5
            return
        else:
            rng = world.rng
            key = rng.choice(self.keys)
            kind = rng.choice(("set", "cas", "get", "get"))
            if self.reconfigures and rng.random() < 0.08:
                self.op = self._reconfig_op()
                self._start(self.op)
                return
            value = f"c{self.cid}-{self.done_ops}".encode()
            self.op = {
                "kind": kind,
                "key": key,
                "value": value,
                "call": world.now,
                "expect": self.versions.get(key, 0) if kind == "cas" else None,
            }
        self._start(self.op)

    def _reconfig_op(self) -> dict[str, Any]:
        """Flip one node between participant and observer, keeping at least two participants."""
        rng = self.world.rng
        sid = rng.choice(sorted(self.roles))
        role = "observer" if self.roles[sid] == "participant" else "participant"
        if role == "observer" and sum(r == "participant" for r in self.roles.values()) <= 2:
            role, sid = "participant", next((s for s, r in sorted(self.roles.items()) if r == "observer"), sid)
        spec = ServerEntry(sid, role=role).spec()
        return {
            "kind": "reconfig",
            "key": "/zookeeper/config",
            "value": spec,
            "call": self.world.now,
            "expect": None,
            "sid": sid,
            "role": role,
        }

    def _start(self, op: dict[str, Any]) -> None:
        key, kind = op["key"], op["kind"]
        if kind == "reconfig":
            self._submit("reconfig", lambda x: p.Reconfig(x, joining=op["value"]))
        elif kind == "create":
            self._submit("create", lambda x: p.Create(x, key, b"", OPEN_ACL_UNSAFE))
        elif kind in ("set", "cas"):
            version = -1 if kind == "set" else op["expect"]
            self._submit("write", lambda x: p.SetData(x, key, op["value"], version))
        else:
            self._submit("sync", lambda x: p.Sync(x, key))
            self._submit("read", lambda x: p.GetData(x, key))

    def _outcome(self, result: tuple[str, Any], value: Any, error: BaseException | None) -> None:
        name, op = result
        if op is not self.op or op is None:
            return  # the read of an abandoned attempt
        now = self.world.now
        if isinstance(error, (SessionExpiredError, SessionMovedError)):
            # The session ended under the operation: its outcome is unknown (a create is retried).
            if op["kind"] == "create":
                self._start(op)
            else:
                self._finish(None, False)
            return
        if name == "reconfig":
            if error is None:
                self.roles[op["sid"]] = op["role"]
                self.world.note_acked_write(self, value[0])
            elif not isinstance(error, (ReconfigInProcessError, NewConfigNoQuorumError)):
                raise AssertionError(f"reconfig {op['value']} failed with {error!r}")
            self.op = None
            self.done_ops += 1
            self.next_action = now + self.world.rng.uniform(0.0, 0.05)
        elif name == "create":
            if error is not None and not isinstance(error, NodeExistsError):
                raise AssertionError(f"creating {op['key']} failed with {error!r}")
            self.created.add(op["key"])
            self.op = None
            self.next_action = now
        elif name == "sync":
            if error is not None:
                raise AssertionError(f"sync failed with {error!r}")
            op["sync_conn"] = self.conn_id
        elif name == "read":
            if op.get("sync_conn") != self.conn_id:
                op.pop("sync_conn", None)  # answered on another connection than its sync: again
                self._start(op)
                return
            if isinstance(error, NoNodeError):
                self._finish(now, True, (None, -1))
            elif error is not None:
                raise AssertionError(f"read failed with {error!r}")
            else:
                zxid, body = value
                self.versions[op["key"]] = body.stat.version
                self._finish(now, True, (body.data, body.stat.version))
        elif error is None:  # a write
            zxid, body = value
            self.versions[op["key"]] = body.stat.version
            self.world.note_acked_write(self, zxid)
            self._finish(now, True)
        elif isinstance(error, (BadVersionError, NoNodeError)):
            self._finish(now, False)
        else:
            raise AssertionError(f"unexpected {error!r} for {op}")

    def _finish(self, ret: float | None, ok: bool, out: Any = None) -> None:
        op = self.op
        assert op is not None
        kind = op["kind"]
        if kind == "reconfig":  # not a register: nothing for the linearizability checker
            self.op = None
            self.done_ops += 1
            self.next_action = self.world.now + self.world.rng.uniform(0.0, 0.05)
            return
        self.history.append(
            Op(
                self.cid,
                op["key"],
                kind,
                None if kind == "get" else op["value"],
                op["expect"] if kind == "cas" else None,
                op["call"],
                ret,
                ok,
                out,
            )
        )
        self.op = None
        self.done_ops += 1
        self.next_action = self.world.now + self.world.rng.uniform(0.0, 0.05)
