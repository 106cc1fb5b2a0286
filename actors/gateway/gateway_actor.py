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

With `zk_secure_port`, a second port speaks the same protocol inside TLS (ZooKeeper's
secureClientPort; actors/gateway/tls.py): the bytes are decrypted before framing and encrypted
after, and a verified client certificate's subject travels in Connect.x509 (the x509 scheme).
"""

from __future__ import annotations

import functools
import os
import ssl
from collections import deque
from typing import Any

import msgspec
import zmq

from actors.gateway import GATEWAY_ENDPOINT, GATEWAY_RID_PREFIX, jute, sasl, tls
from runtime.actor import Actor, ipc_address
from zoomq import protocol as p
from zoomq.exceptions import Codes

MAX_CONNECTIONS = 10_000


class Conn:
    """One ZooKeeper client connection."""

    __slots__ = (
        "key",
        "ident",
        "stream",
        "tls",
        "peer",
        "buf",
        "state",
        "dealer",
        "with_ro",
        "order",
        "next_xid",
        "zxid",
        "out",
        "closing",
        "sasl",
        "own_auths",
    )

    def __init__(
        self, key: bytes, ident: bytes, stream: zmq.Socket, peer: str, tls_conn: tls.TlsConnection | None
    ) -> None:
        self.key = key  # ident, prefixed by which port it came in on
        self.ident = ident
        self.stream = stream
        self.tls = tls_conn
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
        self.sasl: sasl.DigestMd5Server | None = None
        self.own_auths = 0  # Auth replies owed for the gateway's own Auth (a SASL identity): not the client's


class GatewayActor(Actor):
    name = "gateway"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_decoder = msgspec.msgpack.Decoder(p.ServerMsg)
        self.conns: dict[bytes, Conn] = {}
        self.session_address = ipc_address(self.run_dir, GATEWAY_ENDPOINT)
        self.tls_context = None
        if self.cfg.zk_port:
            self._listen(self.cfg.zk_port, b"p")
        if self.cfg.zk_secure_port:
            self.tls_context = tls.server_context(
                self.cfg.zk_tls_cert, self.cfg.zk_tls_key, self.cfg.zk_tls_ca, self.cfg.zk_tls_client_auth
            )
            self._listen(self.cfg.zk_secure_port, b"s")

    def _listen(self, port: int, kind: bytes) -> None:
        stream = self.ctx.socket(zmq.STREAM)
        stream.setsockopt(zmq.LINGER, 0)
        stream.bind(f"tcp://{self.cfg.client_host}:{port}")
        self.add_socket(stream, functools.partial(self._on_stream, stream, kind))

    def on_start(self, now: float) -> None:
        self.log.info("gateway_listening", port=self.cfg.zk_port or None, secure_port=self.cfg.zk_secure_port or None)

    # --- the TCP side -------------------------------------------------------------------------

    def _on_stream(self, stream: zmq.Socket, kind: bytes, frames: list[Any], now: float) -> None:
        ident = frames[0].bytes
        data = frames[1].bytes
        key = kind + ident
        conn = self.conns.get(key)
        if conn is None:
            if data:  # data from a connection already dropped
                return
            if len(self.conns) >= MAX_CONNECTIONS:
                stream.send_multipart([ident, b""])
                return
            try:
                peer = frames[1].get("Peer-Address") or ""
            except zmq.ZMQError:
                peer = ""
            secure = tls.TlsConnection(self.tls_context) if kind == b"s" and self.tls_context is not None else None
            self.conns[key] = Conn(key, ident, stream, peer, secure)
            return
        if not data:  # the client went away: the session lives on until its timeout, as in ZooKeeper
            self._forget(conn)
            return
        if conn.tls is not None:
            try:
                data = conn.tls.receive(data)
            except ssl.SSLError as exc:
                self.log.warning("gateway_tls_failed", error=str(exc), peer=conn.peer)
                self._close(conn)
                return
            if conn.tls.closed:
                self._close(conn)
            if not data:
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
            payload = bytes(buf[4 : 4 + length])
            del buf[: 4 + length]
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
            x509 = conn.tls.identity if conn.tls is not None else ""
            self._to_session(conn, msgspec.structs.replace(connect, peer=conn.peer, x509=x509))
            return
        try:
            req = jute.decode_request(payload, functools.partial(self._next_xid, conn))
        except jute.Unsupported as exc:
            conn.order.append([None, exc.xid, exc.opcode, None, jute.encode_error(exc.xid, conn.zxid, exc.code)])
            self._release(conn)
            return
        msg = req.msg
        if isinstance(msg, jute.SaslToken):
            self._sasl_step(conn, req.xid, msg.token)
            return
        if isinstance(msg, p.Auth) and msg.scheme == "sasl":
            # ZooKeeper's SASL provider refuses auth packets: an identity needs the exchange.
            conn.out.append(jute.encode_error(p.AUTH_XID, conn.zxid, Codes.AUTHFAILED))
            self._close(conn)
            return
        if isinstance(msg, p.Ping | p.Auth | p.SetWatches):
            self._to_session(conn, msg)  # special xids: answered out of band, as ZooKeeper does
            return
        conn.order.append([msg.xid, req.xid, req.opcode, req.multi_types, None])
        self._to_session(conn, msg)

    def _sasl_step(self, conn: Conn, xid: int, token: bytes) -> None:
        """One SASL DIGEST-MD5 step, answered here in request order; a failure drops the
        connection (ZooKeeper's way), a success authenticates the session as sasl:<user>."""
        if not self.cfg.sasl_users:
            conn.order.append([None, xid, jute.SASL, None, jute.encode_error(xid, conn.zxid, Codes.AUTHFAILED)])
            self._release(conn)
            self._close(conn)
            return
        if conn.sasl is None:
            conn.sasl = sasl.DigestMd5Server(self.cfg.sasl_users, os.urandom(16))
        try:
            answer = conn.sasl.step(token)
        except sasl.SaslFailure as exc:
            self.log.warning("gateway_sasl_failed", why=str(exc), peer=conn.peer)
            self._close(conn)
            return
        if conn.sasl.user is not None and answer:
            conn.own_auths += 1
            self._to_session(conn, p.Auth(p.AUTH_XID, "sasl", conn.sasl.user.encode()))
        conn.order.append([None, xid, jute.SASL, None, jute.encode_sasl(xid, conn.zxid, answer)])
        self._release(conn)

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
            if conn.key not in self.conns:
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
        if msg.xid == p.AUTH_XID and conn.own_auths:
            conn.own_auths -= 1  # the answer to the SASL identity the gateway passed on
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
            data = b"".join(conn.out) if conn.out else b""
            conn.out.clear()
            if conn.tls is not None:
                try:
                    conn.tls.send(data)
                except ssl.SSLError as exc:
                    self.log.warning("gateway_tls_failed", error=str(exc), peer=conn.peer)
                    conn.state = "closed"
                data = conn.tls.take_output()
            if data:
                try:
                    conn.stream.send_multipart([conn.ident, data], flags=zmq.NOBLOCK)
                except zmq.ZMQError:
                    self.log.warning("gateway_send_failed", peer=conn.peer)
            if conn.state == "closed":
                self._forget(conn)
                try:
                    conn.stream.send_multipart([conn.ident, b""], flags=zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass

    def _close(self, conn: Conn) -> None:
        """Close after what is already written (at the end of this batch)."""
        conn.closing = True
        conn.state = "closed"

    def _forget(self, conn: Conn) -> None:
        self.conns.pop(conn.key, None)
        if conn.dealer is not None:
            self.remove_socket(conn.dealer)
            conn.dealer.close(linger=0)
            conn.dealer = None

    def on_stop(self) -> None:
        for conn in list(self.conns.values()):
            self._forget(conn)
