"""ZooKeeper's four-letter admin words (ruok, srvr, stat, mntr, cons, wchs, conf, envi, isro)
asked over a node's client port, without opening a session: `zoomq admin HOST:PORT CMD`."""

from __future__ import annotations

import msgspec
import zmq

from zoomq import protocol as p

WORDS = ("ruok", "isro", "srvr", "stat", "mntr", "cons", "wchs", "conf", "envi")


class AdminError(RuntimeError):
    """The node did not answer in time, or answered with an error."""


def ask(host: str, port: int, command: str, timeout: float = 5.0,
        curve_server_key: str | None = None, curve_secret_key: str | None = None) -> str:
    """The node's answer to `command`, as text (over CURVE when given the node's public key and
    this client's key pair)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if curve_server_key or curve_secret_key:
            from runtime import curve

            if not (curve_server_key and curve_secret_key):
                raise AdminError("CURVE needs both the node's public key and this client's key pair")
            try:
                curve.connect_as(sock, curve.secret_pair(curve_secret_key), curve.public_key(curve_server_key))
            except curve.CurveError as exc:
                raise AdminError(str(exc)) from exc
        sock.connect(f"tcp://{host}:{port}")
        sock.send(msgspec.msgpack.encode(p.AdminCommand(1, command)))
        if not sock.poll(int(timeout * 1000)):
            raise AdminError(f"{host}:{port} did not answer {command!r} within {timeout:g}s")
        reply = msgspec.msgpack.decode(sock.recv(), type=p.ServerMsg)
    finally:
        sock.close(linger=0)
    if not isinstance(reply, p.Reply) or reply.err or not isinstance(reply.body, p.TextResult):
        raise AdminError(f"{host}:{port} answered {command!r} with {reply!r}")
    return reply.body.text


def parse_mntr(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            out[key] = value
    return out
