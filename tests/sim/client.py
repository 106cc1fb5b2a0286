"""A simulated client: one session, one operation at a time, as the real client behaves.

It connects to a random node, opens a session, and runs operations on a few registers (znodes
/k0, /k1, ...): set (setData, any version), cas (setData at the version last read) and a
linearizable read (sync, then getData on the same node). Every operation is recorded for the
linearizability checker (tests/linearizability.py) with its call and return times on the
virtual clock.

Like zoomq.Client: a request left unanswered when the connection fails (no reply within the
request timeout, CONNECTIONLOSS, a refused node) is re-sent with the same session and cxid on the
next node, so the leader answers a write that already happened with its first result; the
session is given up only when the node says it expired, and then the operation's outcome is
unknown (recorded without a return). `renumber_resends` (a planted bug, test_mutants.py) re-sends
with a new cxid instead.
"""

from __future__ import annotations

from typing import Any

from tests.linearizability import Op
from zoomq import protocol as p
from zoomq.exceptions import Codes
from zoomq.security import OPEN_ACL_UNSAFE

REQUEST_TIMEOUT_S = 1.0
SESSION_TIMEOUT_MS = 4_000


class SimClient:
    renumber_resends = False

    def __init__(self, world: Any, cid: int, keys: list[str]) -> None:
        self.world = world
        self.cid = cid
        self.keys = keys
        self.node: Any = None
        self.conn_id = 0  # a new connection per connect: answers on an older one are not for us
        self.session_id = 0
        self.last_zxid = 0
        self.cxid = 0
        self.versions: dict[str, int] = {}
        self.op: dict[str, Any] | None = None  # the operation under way
        self.waiting: tuple | None = None  # the request awaiting an answer
        self.deadline: float | None = None
        self.next_action = world.now + world.rng.uniform(0.0, 0.05)
        self.next_ping = world.now + SESSION_TIMEOUT_MS / 3000.0
        self.history: list[Op] = []
        self.created: set[str] = set()  # client 1 creates the registers before any history
        self.done_ops = 0

    # --- the world's hooks --------------------------------------------------------------------

    def next_deadline(self) -> float:
        dues = [self.next_ping]
        if self.deadline is not None:
            dues.append(self.deadline)
        if self.waiting is None:
            dues.append(self.next_action)
        return min(dues)

    def timer(self) -> None:
        now = self.world.now
        if self.deadline is not None and now >= self.deadline:
            self._connection_failed("no answer")
        if self.waiting is None and now >= self.next_action:
            self._act()
        if now >= self.next_ping:
            self.next_ping = now + SESSION_TIMEOUT_MS / 3000.0
            if self.node is not None and self.session_id:
                self.world.to_node(self, self.node, ("ping", self.session_id))

    # --- doing things -------------------------------------------------------------------------

    def _send(self, msg: tuple) -> None:
        self.waiting = msg
        self.deadline = self.world.now + REQUEST_TIMEOUT_S
        self.world.to_node(self, self.node, msg)

    def _act(self) -> None:
        if self.node is None or not self.session_id:
            self._connect()
            return
        if self.op is None:
            if not self.world.keys_ready:
                if self.cid != 1:
                    self.next_action = self.world.now + 0.1
                    return
                missing = [key for key in self.keys if key not in self.created]
                if not missing:
                    self.world.keys_ready = True
                    self.next_action = self.world.now
                    return
                self.op = {"kind": "create", "key": missing[0], "value": b"", "call": self.world.now, "expect": None,
                           "cxid": None, "synced": False}
            elif not self.world.clients_active:
                self.next_action = self.world.now + 0.5
                return
            else:
                self._begin()
        self._step()

    def _connect(self) -> None:
        self.conn_id += 1
        self.node = self.world.rng.choice(list(self.world.nodes.values()))
        self._send(("connect", self.session_id, self.last_zxid, SESSION_TIMEOUT_MS))

    def _begin(self) -> None:
        rng = self.world.rng
        key = rng.choice(self.keys)
        kind = rng.choice(("set", "cas", "get", "get"))
        value = f"c{self.cid}-{self.done_ops}".encode()
        self.op = {"kind": kind, "key": key, "value": value, "call": self.world.now, "expect": None, "cxid": None, "synced": False}
        if kind == "cas":
            self.op["expect"] = self.versions.get(key, 0)

    def _step(self) -> None:
        op = self.op
        assert op is not None
        if op["kind"] == "create":
            if op["cxid"] is None:
                op["cxid"] = self._next_cxid()
            self._send(("write", self.session_id, op["cxid"], p.Create(op["cxid"], op["key"], b"", OPEN_ACL_UNSAFE)))
        elif op["kind"] in ("set", "cas"):
            if op["cxid"] is None:
                op["cxid"] = self._next_cxid()
            version = -1 if op["kind"] == "set" else op["expect"]
            self._send(("write", self.session_id, op["cxid"], p.SetData(op["cxid"], op["key"], op["value"], version)))
        elif not op["synced"]:
            if op["cxid"] is None:
                op["cxid"] = self._next_cxid()
            self._send(("write", self.session_id, op["cxid"], p.Sync(op["cxid"], op["key"])))
        else:
            self._send(("read", self.session_id, op["key"]))

    def _next_cxid(self) -> int:
        self.cxid += 1
        return self.cxid

    def _connection_failed(self, why: str) -> None:
        """Move to another node; the operation under way is re-sent there (same cxid)."""
        self.waiting = None
        self.deadline = None
        self.node = None
        if self.op is not None:
            if self.renumber_resends:
                self.op["cxid"] = None
            if self.op["kind"] == "get":
                self.op["synced"] = False  # sync again on the next node
        self.next_action = self.world.now + self.world.rng.uniform(0.01, 0.1)

    def _finish(self, ret: float | None, ok: bool, out: Any = None) -> None:
        op = self.op
        assert op is not None
        kind = op["kind"]
        self.history.append(Op(self.cid, op["key"], kind, None if kind == "get" else op["value"],
                               op["expect"] if kind == "cas" else None, op["call"], ret, ok, out))
        self.op = None
        self.done_ops += 1
        self.next_action = self.world.now + self.world.rng.uniform(0.0, 0.05)

    # --- answers ------------------------------------------------------------------------------

    def receive(self, node: Any, reply: tuple, conn_id: int) -> None:
        if conn_id != self.conn_id or node is not self.node or self.waiting is None:
            return  # an answer on a connection already given up
        kind = reply[0]
        sent = self.waiting
        self.waiting = None
        self.deadline = None
        if kind == "refused":
            self._connection_failed("refused")
        elif kind == "expired":
            self.session_id = 0
            if self.op is not None and self.op["kind"] != "create":
                self._finish(None, False)  # its outcome is unknown
            self.node = None
            self.next_action = self.world.now
        elif kind == "connected":
            self.session_id = reply[1]
            self.last_zxid = max(self.last_zxid, reply[2])
            self.next_action = self.world.now
        elif kind == "result":
            self._result(sent, reply)
        elif kind in ("data", "nonode"):
            zxid = reply[-1]
            if zxid < self.last_zxid:
                raise AssertionError(f"client {self.cid} read at {zxid:#x} after seeing {self.last_zxid:#x}")
            self.last_zxid = zxid
            op = self.op
            assert op is not None
            out = (reply[1], reply[2]) if kind == "data" else (None, -1)
            if kind == "data":
                self.versions[op["key"]] = reply[2]
            self._finish(self.world.now, True, out)

    def _result(self, sent: tuple, reply: tuple) -> None:
        _, cxid, err, body, zxid = reply
        op = self.op
        if op is None or cxid != op["cxid"]:
            return
        if err in (Codes.CONNECTIONLOSS, Codes.SESSIONMOVED):
            # SESSIONMOVED: this connection's write reached the leader after the session moved to
            # a newer connection of this same client: re-send it there.
            self._connection_failed("connection loss")
            return
        if err == Codes.SESSIONEXPIRED:
            self.session_id = 0
            self.node = None
            if op["kind"] != "create":
                self._finish(None, False)
            return
        self.last_zxid = max(self.last_zxid, zxid)
        if op["kind"] == "create":
            if err not in (Codes.OK, Codes.NODEEXISTS):
                raise AssertionError(f"creating {op['key']} failed with {err}")
            self.created.add(op["key"])
            self.op = None
            self.next_action = self.world.now
            return
        if op["kind"] == "get":
            if err:
                raise AssertionError(f"sync failed with {err}")
            op["synced"] = True
            self.next_action = self.world.now
            return
        if err == Codes.OK:
            self.versions[op["key"]] = body.stat.version
            self.world.note_acked_write(self, zxid)
            self._finish(self.world.now, True)
        elif err in (Codes.BADVERSION, Codes.NONODE):
            self._finish(self.world.now, False)
        else:
            raise AssertionError(f"unexpected error {err} for {op}")
