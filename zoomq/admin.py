"""ZooKeeper's four-letter admin words (ruok, srvr, stat, mntr, cons, wchs, conf, envi, isro)
asked over a node's client port, without opening a session: `zoomq admin HOST:PORT CMD`."""

from __future__ import annotations

import time

import msgspec
import zmq
import zmq.utils.monitor

from zoomq import protocol as p

WORDS = ("ruok", "isro", "srvr", "stat", "mntr", "cons", "wchs", "conf", "envi")
_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


class AdminError(RuntimeError):
    """The node did not answer in time, or answered with an error."""


def ask(
    host: str,
    port: int,
    command: str,
    timeout: float = 5.0,
    curve_server_key: str | None = None,
    curve_secret_key: str | None = None,
    *,
    curve_keys: tuple[tuple[bytes, bytes], bytes] | None = None,
) -> str:
    """The node's answer to `command`, as text (over CURVE when given the node's public key and
    this client's key pair, as files or z85 text, or `curve_keys` already loaded: ((public,
    secret), server public key))."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if curve_keys is not None:
            from runtime import curve

            curve.connect_as(sock, *curve_keys)
        elif curve_server_key or curve_secret_key:
            from runtime import curve

            if not (curve_server_key and curve_secret_key):
                raise AdminError("CURVE needs both the node's public key and this client's key pair")
            try:
                curve.connect_as(sock, curve.secret_pair(curve_secret_key), curve.public_key(curve_server_key))
            except curve.CurveError as exc:
                raise AdminError(str(exc)) from exc
        # The monitor says why a node does not answer: it refused the CURVE handshake, or nothing
        # listens there (ZeroMQ would otherwise retry quietly until the timeout).
        monitor = sock.get_monitor_socket(zmq.EVENT_CONNECT_RETRIED | _HANDSHAKE_FAILED)
        try:
            sock.connect(f"tcp://{host}:{port}")
            sock.send(msgspec.msgpack.encode(p.AdminCommand(1, command)))
            _wait_answer(sock, monitor, f"{host}:{port}", command, timeout, bool(curve_server_key or curve_keys))
            reply = msgspec.msgpack.decode(sock.recv(), type=p.ServerMsg)
        finally:
            sock.disable_monitor()
            monitor.close(linger=0)
    finally:
        sock.close(linger=0)
    if not isinstance(reply, p.Reply) or reply.err or not isinstance(reply.body, p.TextResult):
        raise AdminError(f"{host}:{port} answered {command!r} with {reply!r}")
    return reply.body.text


def _wait_answer(sock: zmq.Socket, monitor: zmq.Socket, where: str, command: str, timeout: float, curve: bool) -> None:
    from zoomq.client import refusal

    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    deadline = time.monotonic() + timeout
    why = ""
    while (left := deadline - time.monotonic()) > 0:
        ready = dict(poller.poll(int(left * 1000) + 1))
        if sock in ready:
            return
        if monitor in ready:
            refused = refusal(zmq.utils.monitor.recv_monitor_message(monitor))
            if refused is not None:
                why = refused[1]
                if "CURVE" in why:
                    hint = "" if curve else " (this node uses CURVE: pass --curve-server-key and --curve-secret-key)"
                    raise AdminError(f"{where} {why}{hint}")
    raise AdminError(f"{where} did not answer {command!r} within {timeout:g}s" + (f": it {why}" if why else ""))


def parse_mntr(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            out[key] = value
    return out
