"""Bad input from a client gets a precise error (or is dropped by ZeroMQ) and the node keeps serving."""

from __future__ import annotations

import socket

import msgspec
import pytest
import zmq

from zoomq import protocol as p
from zoomq.exceptions import Codes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def raw(node):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{node.hosts}")
    enc, dec = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(p.ServerMsg)

    def call(frame: bytes, expect_reply: bool = True):
        sock.send(frame)
        if not expect_reply:
            return None
        assert sock.poll(10_000), "no reply"
        return dec.decode(sock.recv())

    connected = call(enc.encode(p.Connect(p.PROTOCOL_VERSION, 0, 10_000)))
    assert connected.timeout_ms > 0
    yield call, enc
    sock.close(linger=0)


def test_unknown_message_type_is_unimplemented(raw):
    call, enc = raw
    reply = call(msgspec.msgpack.encode(["frobnicate", 7, "/x"]))
    assert reply.xid == 7 and reply.err == Codes.UNIMPLEMENTED


def test_wrong_field_types_are_bad_arguments(raw):
    call, enc = raw
    reply = call(msgspec.msgpack.encode(["get", 8, 12345, "not-a-bool"]))
    assert reply.xid == 8 and reply.err == Codes.BADARGUMENTS


def test_garbage_msgpack_frame_is_dropped_and_the_connection_still_works(raw):
    call, enc = raw
    call(b"\xc1\xff\x00garbage", expect_reply=False)
    reply = call(enc.encode(p.Exists(9, "/")))
    assert reply.xid == 9 and reply.err == 0


def test_invalid_path_and_oversize_data_over_the_wire(raw):
    call, enc = raw
    assert call(enc.encode(p.Create(10, "bad//path", b"", []))).err == Codes.BADARGUMENTS
    assert call(enc.encode(p.GetData(11, "relative"))).err == Codes.BADARGUMENTS
    big = b"x" * (1024 * 1024 + 1)
    assert call(enc.encode(p.SetData(12, "/", big))).err == Codes.BADARGUMENTS
    assert call(enc.encode(p.Create(13, "/f", b"", [], 99))).err == Codes.BADARGUMENTS


def test_requests_before_connect_get_an_error_not_a_crash(node):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{node.hosts}")
    try:
        sock.send(msgspec.msgpack.encode(p.GetData(1, "/")))
        assert sock.poll(10_000)
        reply = msgspec.msgpack.decode(sock.recv(), type=p.ServerMsg)
        assert reply.err in (Codes.CONNECTIONLOSS, Codes.SESSIONEXPIRED)
    finally:
        sock.close(linger=0)


def test_raw_tcp_garbage_on_the_client_port_does_not_hurt_other_clients(node, zk):
    host, port = node.hosts.split(":")
    for payload in (b"ruok", b"\x00" * 64, b"GET / HTTP/1.0\r\n\r\n", bytes(range(256)) * 8):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(payload)
    zk.create("/still-serving", b"yes")
    assert zk.get("/still-serving")[0] == b"yes"


def test_bad_persistent_watch_requests_get_precise_errors(raw):
    call, enc = raw
    assert call(enc.encode(p.AddWatch(20, "no-slash"))).err == Codes.BADARGUMENTS
    assert call(enc.encode(p.AddWatch(21, "/x", 9))).err == Codes.BADARGUMENTS
    assert call(enc.encode(p.RemoveWatches(22, "/x", 3))).err == Codes.NOWATCHER
    assert call(enc.encode(p.RemoveWatches(23, "bad//path", 3))).err == Codes.BADARGUMENTS
    assert call(enc.encode(p.Exists(24, "/"))).err == 0
