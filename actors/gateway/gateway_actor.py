"""The gateway actor: ZooKeeper's own client protocol (jute over TCP) on `zk_port`, so that kazoo,
zkCli.sh, Curator and every other ZooKeeper client talk to zoomq unchanged.

It holds no semantics. Each TCP connection gets a DEALER to the session actor (over ipc, on a
ROUTER of its own) and is translated message by message (actors/gateway/jute.py) into the native
client protocol: the session actor decides everything, exactly as for a native client — sessions,
ordering, permissions, watches, errors. The gateway only:
- frames (4-byte big-endian length, at most jute.maxbuffer; a bad length closes the connection,
  as ZooKeeper does), and answers a four-letter word sent instead of a length (then closes);
- numbers requests toward the session actor itself, after the session's last remembered xid
  (ZooKeeper clients restart their xids on every connection and never re-send), and puts the
  client's xid back on each reply;
- keeps replies in request order per connection (the few it answers itself, UNIMPLEMENTED for an
  opcode zoomq does not serve, wait their turn);
- closes the TCP connection where ZooKeeper would: refused handshake, expired session (after the
  answer), failed auth (after the answer), close, the session actor no longer knowing the
  connection (the client then reconnects and resumes its session), malformed records.
The client's real address travels in Connect.peer for the ip ACL scheme.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from typing import Any

import msgspec
import zmq

from actors.gateway import GATEWAY_ENDPOINT, GATEWAY_RID_PREFIX, jute
from runtime.actor import Actor, ipc_address
from zoomq import protocol as p
from zoomq.exceptions import Codes

MAX_CONNECTIONS = 10_000


class Conn:
    """One ZooKeeper client connection."""

    __slots__ = ("ident", "peer", "buf", "state", "dealer", "with_ro", "order", "next_xid", "zxid", "out", "closing")

    def __init__(self, ident: bytes, peer: str) -> None:
        self.ident = ident
        self.peer = peer
        self.buf = bytearray()
        self.state = "new"  # new -> connecting -> open; "admin" for a four-letter word
        self.dealer: zmq.Socket | None = None
        self.with_ro = True
        # Replies owed, in request order: [internal xid, client xid, opcode, multi types, frame or None]
        self.order: deque[list[Any]] = deque()
        self.next_xid = 0
        self.zxid = 0
        self.out: list[bytes] = []
        self.closing = False  # close once what is owed has been written


class GatewayActor(Actor):
    name = "gateway"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_decoder = msgspec.msgpack.Decoder(p.ServerMsg)
        self.stream = self.ctx.socket(zmq.STREAM)
        self.stream.setsockopt(zmq.LINGER, 0)
        self.stream.bind(f"tcp://{self.cfg.client_host}:{self.cfg.zk_port}")
        self.add_socket(self.stream, self._on_stream)
        self.conns: dict[bytes, Conn] = {}
        self.session_address = ipc_address(self.run_dir, GATEWAY_ENDPOINT)

    def on_start(self, now: float) -> None:
        self.log.info("gateway_listening", port=self.cfg.zk_port)

    # --- the TCP side -------------------------------------------------------------------------

    def _on_stream(self, frames: list[Any], now: float) -> None:
        ident = frames[0].bytes
        data = frames[1].bytes
        conn = self.conns.get(ident)
        if conn is None:
            if data:  # data from a connection already dropped
                return
            if len(self.conns) >= MAX_CONNECTIONS:
                self.stream.send_multipart([ident, b""])
                return
            try:
                peer = frames[1].get("Peer-Address") or ""
            except zmq.ZMQError:
                peer = ""
            self.conns[ident] = Conn(ident, peer)
            return
        if not data:  # the client went away: the session lives on until its timeout, as in ZooKeeper
            self._forget(conn)
            return
        conn.buf += data
        self._drain(conn)

    def _drain(self, conn: Conn) -> None:
        """Handle every complete frame in the connection's buffer (none while the handshake is
        under way: ZooKeeper clients wait for it anyway)."""
        buf = conn.buf
        while not conn.closing and conn.state in ("new", "open") and len(buf) >= 4:
            if conn.state == "new" and bytes(buf[:4]).decode("ascii", "replace") in jute.FOUR_LETTER_WORDS:
                self._four_letter_word(conn, bytes(buf[:4]).decode())
                del buf[:]
                return
            length = int.from_bytes(buf[:4], "big", signed=True)
            if length < 0 or length > jute.MAX_PACKET:
                self.log.warning("gateway_bad_length", length=length, peer=conn.peer)
                self._close(conn)
                return
            if len(buf) < 4 + length:
                return
            payload = bytes(buf[4:4 + length])
            del buf[:4 + length]
            try:
                self._on_frame(conn, payload)
            except jute.JuteError as exc:
                self.log.warning("gateway_bad_record", error=str(exc), peer=conn.peer)
                self._close(conn)
                return

    def _on_frame(self, conn: Conn, payload: bytes) -> None:
        if conn.state == "new":
            connect, conn.with_ro = jute.decode_connect(payload)
            conn.state = "connecting"
            self._to_session(conn, msgspec.structs.replace(connect, peer=conn.peer))
            return
        try:
            req = jute.decode_request(payload, functools.partial(self._next_xid, conn))
        except jute.Unsupported as exc:
            conn.order.append([None, exc.xid, exc.opcode, None, jute.encode_error(exc.xid, conn.zxid, Codes.UNIMPLEMENTED)])
            self._release(conn)
            return
        msg = req.msg
        if isinstance(msg, p.Ping | p.Auth | p.SetWatches):
            self._to_session(conn, msg)  # special xids: answered out of band, as ZooKeeper does
            return
        conn.order.append([msg.xid, req.xid, req.opcode, req.multi_types, None])
        self._to_session(conn, msg)

    def _next_xid(self, conn: Conn) -> int:
        conn.next_xid = conn.next_xid + 1 if conn.next_xid < 2**31 - 1 else 1
        return conn.next_xid

    def _four_letter_word(self, conn: Conn, word: str) -> None:
        conn.state = "admin"
        self._to_session(conn, p.AdminCommand(1, word))

    # --- the session side -------------------------------------------------------------------

    def _to_session(self, conn: Conn, msg: Any) -> None:
        if conn.dealer is None:
            dealer = self.ctx.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.setsockopt(zmq.IDENTITY, GATEWAY_RID_PREFIX + os.urandom(12))
            dealer.connect(self.session_address)
            self.add_socket(dealer, functools.partial(self._on_session, conn), copy=True)
            conn.dealer = dealer
        conn.dealer.send(self.encoder.encode(msg))

    def _on_session(self, conn: Conn, frames: list[bytes], now: float) -> None:
        for raw in frames:
            try:
                msg = self.server_decoder.decode(raw)
            except msgspec.DecodeError:
                self.log.warning("gateway_bad_session_frame")
                continue
            if conn.ident not in self.conns:
                return
            self._from_session(conn, msg)

    def _from_session(self, conn: Conn, msg: Any) -> None:
        if isinstance(msg, p.Event):
            conn.zxid = max(conn.zxid, msg.zxid)
            conn.out.append(jute.encode_event(msg))
            return
        if isinstance(msg, p.Connected):
            conn.out.append(jute.encode_connected(msg, conn.with_ro))
            if msg.timeout_ms <= 0:  # expired or wrong password: said, then closed
                self._close(conn)
                return
            conn.state = "open"
            conn.next_xid = msg.last_cxid
            conn.zxid = msg.last_zxid
            self._drain(conn)
            return
        if not isinstance(msg, p.Reply):
            return
        conn.zxid = max(conn.zxid, msg.zxid)
        if conn.state == "admin":
            text = msg.body.text if isinstance(msg.body, p.TextResult) else ""
            conn.out.append(text.encode())
            self._close(conn)
            return
        if conn.state == "connecting":  # refused (no quorum, or the client is ahead): close, no answer
            self._close(conn)
            return
        if msg.xid in (p.PING_XID, p.AUTH_XID, p.SET_WATCHES_XID):
            conn.out.append(jute.encode_error(msg.xid, msg.zxid, msg.err))
            if msg.xid == p.AUTH_XID and msg.err == Codes.AUTHFAILED:
                self._close(conn)  # ZooKeeper closes after a failed auth
            elif msg.err == Codes.CONNECTIONLOSS:
                self._close(conn)
            return
        entry = next((e for e in conn.order if e[0] == msg.xid and e[4] is None), None)
        if entry is None:
            self.log.warning("gateway_unexpected_reply", xid=msg.xid)
            return
        if msg.err == Codes.CONNECTIONLOSS:
            # The session actor does not know this connection (it restarted, or this node left
            # the quorum): the client reconnects and resumes, as after any dropped connection.
            self._close(conn)
            return
        entry[4] = jute.encode_reply(entry[1], entry[2], msg, entry[3])
        if entry[2] == jute.CLOSE_SESSION:
            conn.closing = True
        self._release(conn)

    def _release(self, conn: Conn) -> None:
        order = conn.order
        while order and order[0][4] is not None:
            entry = order.popleft()
            conn.out.append(entry[4])
            if entry[2] == jute.CLOSE_SESSION:
                self._close(conn)
                return

    # --- output and closing -----------------------------------------------------------------

    def on_batch_end(self, now: float) -> None:
        for conn in list(self.conns.values()):
            if conn.out:
                data = b"".join(conn.out)
                conn.out.clear()
                try:
                    self.stream.send_multipart([conn.ident, data], flags=zmq.NOBLOCK)
                except zmq.ZMQError:
                    self.log.warning("gateway_send_failed", peer=conn.peer)
            if conn.state == "closed":
                self._forget(conn)
                try:
                    self.stream.send_multipart([conn.ident, b""], flags=zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass

    def _close(self, conn: Conn) -> None:
        """Close after what is already written (at the end of this batch)."""
        conn.closing = True
        conn.state = "closed"

    def _forget(self, conn: Conn) -> None:
        self.conns.pop(conn.ident, None)
        if conn.dealer is not None:
            self.remove_socket(conn.dealer)
            conn.dealer.close(linger=0)
            conn.dealer = None

    def on_stop(self) -> None:
        for conn in list(self.conns.values()):
            self._forget(conn)
