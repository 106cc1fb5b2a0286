"""The gateway's jute codec against an independent implementation: kazoo's own serializers build
the requests we decode, and parse the replies we encode."""

from __future__ import annotations

import struct

import pytest

ks = pytest.importorskip("kazoo.protocol.serialization", reason="kazoo is a test dependency")

from kazoo.exceptions import NodeExistsError, RolledBackError, RuntimeInconsistency  # noqa: E402
from kazoo.security import ACL as KACL  # noqa: E402
from kazoo.security import Id as KId  # noqa: E402

from actors.gateway import jute  # noqa: E402
from zoomq import protocol as p  # noqa: E402
from zoomq.exceptions import Codes  # noqa: E402
from zoomq.security import ACL, Id  # noqa: E402
from zoomq.states import ZnodeStat  # noqa: E402

STAT = ZnodeStat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
OPEN = [KACL(31, KId("world", "anyone"))]


def _request(xid: int, req) -> bytes:
    return struct.pack(">ii", xid, req.type) + bytes(req.serialize())


def _decode(xid: int, req):
    counter = iter(range(100, 200))
    return jute.decode_request(_request(xid, req), lambda: next(counter))


@pytest.mark.parametrize(
    ("req", "expect"),
    [
        (ks.Create("/a", b"v", OPEN, 3), p.Create(100, "/a", b"v", [ACL(31, Id("world", "anyone"))], 3)),
        (ks.Create2("/a", b"", OPEN, 0), p.Create(100, "/a", b"", [ACL(31, Id("world", "anyone"))], 0)),
        (ks.Delete("/a", 4), p.Delete(100, "/a", 4)),
        (ks.Exists("/a", True), p.Exists(100, "/a", True)),
        (ks.GetData("/a", False), p.GetData(100, "/a", False)),
        (ks.SetData("/a", b"x", -1), p.SetData(100, "/a", b"x", -1)),
        (ks.GetACL("/a"), p.GetACL(100, "/a")),
        (ks.SetACL("/a", OPEN, 2), p.SetACL(100, "/a", [ACL(31, Id("world", "anyone"))], 2)),
        (ks.GetChildren("/a", True), p.GetChildren(100, "/a", True, False)),
        (ks.GetChildren2("/a", False), p.GetChildren(100, "/a", False, True)),
        (ks.Sync("/a"), p.Sync(100, "/a")),
        (ks.CheckVersion("/a", 3), p.Check(100, "/a", 3)),
        (ks.Create("/a", None, OPEN, 0), p.Create(100, "/a", None, [ACL(31, Id("world", "anyone"))], 0)),  # null data
        (ks.SetData("/a", None, -1), p.SetData(100, "/a", None, -1)),
    ],
)
def test_requests_built_by_kazoo_decode_to_native_messages(req, expect):
    decoded = _decode(7, req)
    assert (decoded.xid, decoded.opcode, decoded.msg) == (7, req.type, expect)


def test_special_xids_keep_their_meaning():
    assert _decode(-2, ks.Ping).msg == p.Ping()
    auth = _decode(-4, ks.Auth(0, "digest", "u:p")).msg
    assert auth == p.Auth(p.AUTH_XID, "digest", b"u:p")
    close = _decode(9, ks.Close)
    assert close.opcode == jute.CLOSE_SESSION and close.msg == p.Close(100)


def test_multi_round_trip_with_zookeepers_failure_encoding():
    txn = ks.Transaction(
        [ks.Create("/x", b"", OPEN, 0), ks.Delete("/y", -1), ks.SetData("/z", b"1", 2), ks.CheckVersion("/w", 1)]
    )
    req = _decode(5, txn)
    assert [type(op) for op in req.msg.ops] == [p.Create, p.Delete, p.SetData, p.Check]
    assert req.multi_types == [1, 2, 5, 13]
    ok = p.Reply(
        100, 9, 0, p.MultiResult([p.OpResult(0, "/x", STAT), p.OpResult(0), p.OpResult(0, None, STAT), p.OpResult(0)])
    )
    results = ks.Transaction.deserialize(jute.encode_reply(5, jute.MULTI, ok, req.multi_types)[4 + 16 :], 0)
    assert results == ["/x", True, STAT, True]
    failed = p.Reply(
        100, 9, 0, p.MultiResult([p.OpResult(0), p.OpResult(Codes.NODEEXISTS), p.OpResult(-2), p.OpResult(-2)])
    )
    results = ks.Transaction.deserialize(jute.encode_reply(5, jute.MULTI, failed, req.multi_types)[4 + 16 :], 0)
    assert [type(r) for r in results] == [RolledBackError, NodeExistsError, RuntimeInconsistency, RuntimeInconsistency]


def test_replies_parse_with_kazoos_deserializers():
    def body(opcode, reply):
        frame = jute.encode_reply(3, opcode, reply)
        xid, zxid, err = struct.unpack(">iqi", frame[4:20])
        assert (xid, zxid, err) == (3, reply.zxid, reply.err)
        return frame[20:]

    assert ks.Create.deserialize(body(1, p.Reply(1, 5, 0, p.CreateResult("/a", STAT))), 0) == "/a"
    assert ks.Create2.deserialize(body(15, p.Reply(1, 5, 0, p.CreateResult("/a", STAT))), 0) == ("/a", STAT)
    assert ks.GetData.deserialize(body(4, p.Reply(1, 5, 0, p.DataResult(b"v", STAT))), 0) == (b"v", STAT)
    assert ks.Exists.deserialize(body(3, p.Reply(1, 5, 0, p.StatResult(STAT))), 0) == STAT
    assert ks.GetChildren.deserialize(body(8, p.Reply(1, 5, 0, p.ChildrenResult(["a", "b"]))), 0) == ["a", "b"]
    assert ks.GetChildren2.deserialize(body(12, p.Reply(1, 5, 0, p.ChildrenResult(["a"], STAT))), 0) == (["a"], STAT)
    acls, stat = ks.GetACL.deserialize(body(6, p.Reply(1, 5, 0, p.ACLResult([ACL(1, Id("ip", "1.2.3.4"))], STAT))), 0)
    assert (acls[0].perms, acls[0].id.scheme, acls[0].id.id, stat) == (1, "ip", "1.2.3.4", STAT)
    assert ks.Sync.deserialize(body(9, p.Reply(1, 5, 0, p.PathResult("/a"))), 0) == "/a"
    assert body(4, p.Reply(1, 5, Codes.NONODE)) == b""  # no record with an error, as ZooKeeper


def test_connect_with_and_without_the_read_only_flag():
    kazoo_connect = ks.Connect(0, 42, 5000, 0, b"\0" * 16, False)
    msg, with_ro = jute.decode_connect(bytes(kazoo_connect.serialize()))
    assert (msg.last_zxid_seen, msg.timeout_ms, msg.session_id, with_ro) == (42, 5000, 0, True)
    old_client = bytes(kazoo_connect.serialize())[:-1]
    assert jute.decode_connect(old_client)[1] is False
    frame = jute.encode_connected(p.Connected(1, 4000, 77, b"k" * 16), with_ro=True)
    parsed, _ = ks.Connect.deserialize(frame[4:], 0)
    assert (parsed.time_out, parsed.session_id, parsed.passwd) == (4000, 77, b"k" * 16)


@pytest.mark.parametrize(
    "payload",
    [
        struct.pack(">ii", 1, 4) + struct.pack(">i", 50) + b"/a",  # string longer than the record
        struct.pack(">ii", 1, 4),  # no path at all
        struct.pack(">ii", 1, 1) + struct.pack(">i", 2) + b"/a" + struct.pack(">i", -7),  # negative buffer
        struct.pack(">ii", 1, 14) + struct.pack(">i?i", 1, False, -1),  # multi cut short
        struct.pack(">ii", 1, 1) + struct.pack(">i", 2) + b"\xff\xfe",  # not UTF-8
        b"\x00\x00",  # not even a header
    ],
)
def test_malformed_records_are_jute_errors(payload):
    with pytest.raises(jute.JuteError):
        jute.decode_request(payload, lambda: 1)


def test_unknown_opcodes_are_unsupported_not_errors():
    with pytest.raises(jute.Unsupported) as caught:
        jute.decode_request(struct.pack(">ii", 8, 999), lambda: 1)
    assert (caught.value.xid, caught.value.opcode) == (8, 999)


def test_the_opcodes_kazoo_does_not_send():
    def frame(xid: int, opcode: int, body: bytes = b"") -> bytes:
        return struct.pack(">ii", xid, opcode) + body

    path = struct.pack(">i", 2) + b"/a"
    assert jute.decode_request(
        frame(3, jute.CHECK_WATCHES, path + struct.pack(">i", 4)), lambda: 7
    ).msg == p.CheckWatches(7, "/a", 4)
    assert jute.decode_request(frame(3, jute.WHO_AM_I), lambda: 7).msg == p.WhoAmI(7)
    assert jute.decode_request(frame(3, jute.SASL, struct.pack(">i", 2) + b"hi"), lambda: 7).msg == jute.SaslToken(
        b"hi"
    )
    reads = (
        struct.pack(">i?i", jute.GET_DATA, False, -1)
        + path
        + b"\1"
        + struct.pack(">i?i", jute.GET_CHILDREN, False, -1)
        + path
        + b"\0"
        + struct.pack(">i?i", -1, True, -1)
    )
    req = jute.decode_request(frame(3, jute.MULTI_READ, reads), lambda: 7)
    assert req.msg == p.MultiRead(7, [p.GetData(0, "/a", True), p.GetChildren(0, "/a", False, False)])
    with pytest.raises(jute.Unsupported) as caught:  # a write inside a multiRead: answered, not dropped
        jute.decode_request(
            frame(3, jute.MULTI_READ, struct.pack(">i?i", jute.DELETE, False, -1) + path + struct.pack(">ii", -1, 0)),
            lambda: 7,
        )
    assert caught.value.code == Codes.MARSHALLINGERROR


def test_who_am_i_and_null_data_replies():
    who = jute.encode_reply(5, jute.WHO_AM_I, p.Reply(5, 9, 0, p.WhoAmIResult([p.AuthIdentity("digest", "bob")])))
    assert (
        who[4:]
        == struct.pack(">iqi", 5, 9, 0)
        + struct.pack(">i", 1)
        + struct.pack(">i", 6)
        + b"digest"
        + struct.pack(">i", 3)
        + b"bob"
    )
    data = jute.encode_reply(6, jute.GET_DATA, p.Reply(6, 9, 0, p.DataResult(None, STAT)))
    value, stat = ks.GetData.deserialize(data[4 + 16 :], 0)
    assert value is None and stat == STAT  # a null buffer (-1), as ZooKeeper sends for no data


def test_x509_subjects_are_rfc2253():
    from actors.gateway.tls import rfc2253

    subject = ((("countryName", "US"),), (("organizationName", "Acme, Inc"),), (("commonName", "app"),))
    assert rfc2253(subject) == "CN=app,O=Acme\\, Inc,C=US"
    assert rfc2253(((("commonName", " lead"),),)) == "CN=\\ lead"
