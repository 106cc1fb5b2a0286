"""The client's session engine (zoomq/engine.py) as scripts: the node's messages in, frames and
effects out. No socket, no thread, no clock."""

from __future__ import annotations

import msgspec
import pytest

from zoomq import protocol as p
from zoomq.engine import MAX_IN_FLIGHT, Deliver, Handshake, Notify, Request, SessionEngine, StateChange
from zoomq.exceptions import AuthFailedError, Codes, NoNodeError, SessionExpiredError, SessionMovedError, error_for
from zoomq.states import EventType, KazooState, KeeperState

pytestmark = pytest.mark.timeout(30)
DECODE = msgspec.msgpack.Decoder(p.ClientMsg).decode
ENCODE = msgspec.msgpack.Encoder().encode
SID, PASSWD = 0x1234, b"p" * 16


def checked(reply: p.Reply):
    if reply.err:
        raise error_for(reply.err)
    return reply.body


def stat_or_none(reply: p.Reply):
    return None if reply.err == Codes.NONODE else checked(reply)


class Script:
    def __init__(self, **kwargs) -> None:
        self.engine = SessionEngine(timeout_ms=9_000, **kwargs)
        self.results: dict[str, list] = {}

    def request(self, name: str, msg_of, watch=None, parse=checked) -> Request:
        xid, gen = self.engine.next_xid()
        msg = msg_of(xid)
        req = Request(xid, ENCODE(msg), name, parse, watch, msg, gen)
        self.engine.submit(req)
        return req

    def connect(self, session_id=SID, zxid=0, last_cxid=0) -> list:
        outcome, frames = self.engine.handshake(
            p.Connected(p.PROTOCOL_VERSION, 9_000, session_id, PASSWD, False, zxid, last_cxid)
        )
        assert outcome is Handshake.READY
        return [DECODE(f) for f in frames]

    def sent(self) -> list:
        return [DECODE(f) for f in self.engine.frames()]

    def effects(self) -> list:
        return self.engine.take_effects()

    def delivered(self) -> dict:
        return {e.result: (e.value, type(e.error)) for e in self.effects() if isinstance(e, Deliver)}


def test_a_new_session_connects_and_says_so_once():
    s = Script()
    assert s.engine.connect_message().session_id == 0
    assert s.connect() == []
    assert s.effects() == [StateChange(KazooState.CONNECTED)]
    assert s.engine.keeper == KeeperState.CONNECTED
    assert (s.engine.session_id, s.engine.passwd) == (SID, PASSWD)
    assert s.engine.connect_message().session_id == SID


def test_the_node_refusing_to_open_or_an_expired_session_is_tried_again():
    s = Script(client_id=(SID, PASSWD))
    assert s.engine.handshake(p.Reply(0, 0, Codes.CONNECTIONLOSS))[0] is Handshake.FAILED
    assert s.engine.handshake(p.Event(0, 1, 3, "/"))[0] is Handshake.WAIT
    assert s.engine.handshake(p.Connected(p.PROTOCOL_VERSION, 0, 0, bytes(16)))[0] is Handshake.AGAIN
    assert s.engine.connect_message().session_id == 0  # a new session next
    assert s.engine.keeper == KeeperState.EXPIRED_SESSION


def test_requests_unanswered_on_a_lost_connection_are_resent_first_with_the_same_xids():
    s = Script()
    s.connect()
    a = s.request("a", lambda x: p.Create(x, "/a", b"", []))
    b = s.request("b", lambda x: p.Create(x, "/b", b"", []))
    assert [m.xid for m in s.sent()] == [a.xid, b.xid]
    c = s.request("c", lambda x: p.Create(x, "/c", b"", []))
    s.effects()
    s.engine.connection_lost(now=1.0, served=True)
    assert s.effects() == [StateChange(KazooState.SUSPENDED)]
    s.connect()
    assert [(m.xid, m.path) for m in s.sent()] == [(a.xid, "/a"), (b.xid, "/b"), (c.xid, "/c")]


def test_no_more_than_max_in_flight_requests_go_unanswered():
    s = Script()
    s.connect()
    for i in range(MAX_IN_FLIGHT + 5):
        s.request(i, lambda x: p.Exists(x, "/"))
    assert len(s.sent()) == MAX_IN_FLIGHT
    assert s.sent() == []
    first = min(s.engine.pending)
    s.engine.received(p.Reply(first, 1, Codes.OK, p.StatResult(None)))
    assert len(s.sent()) == 1


def test_a_session_taken_over_numbers_after_the_nodes_last_xid_and_renumbers_older_requests():
    s = Script(client_id=(SID, PASSWD))
    early = s.request("early", lambda x: p.SetData(x, "/a", b"1"))
    assert early.xid == 1
    s.connect(last_cxid=500)
    (sent,) = s.sent()
    assert sent.xid == 501 and sent.path == "/a"
    assert s.request("late", lambda x: p.Exists(x, "/")).xid == 502


def test_a_reconnection_replays_auth_then_watches_from_the_last_zxid_seen():
    s = Script(auth_data=[("digest", "u:p")], chroot="/app")
    assert [type(m) for m in s.connect()] == [p.Auth]
    s.effects()
    s.request("g", lambda x: p.GetData(x, "/app/d", True), watch=("data", "/d", print))
    s.request("e", lambda x: p.Exists(x, "/app/e", True), watch=("data", "/e", print), parse=stat_or_none)
    s.request("c", lambda x: p.GetChildren(x, "/app", True), watch=("child", "/", print))
    s.sent()
    s.engine.received(p.Reply(1, 7, Codes.OK, p.DataResult(b"", None)))
    s.engine.received(p.Reply(2, 7, Codes.NONODE))  # exists() on a missing node: an exist watch
    s.engine.received(p.Reply(3, 8, Codes.OK, p.ChildrenResult([])))
    s.engine.connection_lost(now=1.0, served=True)
    auth, watches = s.connect(zxid=20)
    assert (auth.scheme, auth.credential) == ("digest", b"u:p")
    assert (watches.relative_zxid, watches.data, watches.exist, watches.child) == (8, ["/app/d"], ["/app/e"], ["/app"])


def test_a_reply_that_says_connectionloss_is_a_reconnection_and_moves_no_zxid():
    s = Script()
    s.connect(zxid=5)
    req = s.request("r", lambda x: p.Exists(x, "/"))
    s.sent()
    assert s.engine.received(p.Reply(req.xid, 99, Codes.CONNECTIONLOSS)) is False
    assert s.engine.last_zxid == 5
    s.engine.connection_lost(now=1.0, served=True)
    s.connect()
    assert [m.xid for m in s.sent()] == [req.xid]


def test_session_expired_fails_everything_and_drops_the_watches():
    s = Script()
    s.connect()
    sent = s.request("sent", lambda x: p.Exists(x, "/", True), watch=("data", "/", print))
    s.sent()
    s.engine.received(p.Reply(sent.xid, 1, Codes.OK, p.StatResult(None)))
    s.request("queued", lambda x: p.Exists(x, "/"))
    other = s.request("other", lambda x: p.Exists(x, "/"))
    s.engine.frames()
    s.effects()
    assert s.engine.received(p.Reply(other.xid, 1, Codes.SESSIONEXPIRED)) is False
    effects = s.effects()
    assert {e.result: type(e.error) for e in effects if isinstance(e, Deliver)} == {
        "queued": SessionExpiredError,
        "other": SessionExpiredError,
    }
    assert StateChange(KazooState.LOST) in effects and s.engine.keeper == KeeperState.EXPIRED_SESSION
    assert s.engine.watches.data == {} and s.engine.session_id == 0


def test_session_expired_while_stopping_is_not_reported():
    s = Script()
    s.connect()
    s.effects()
    s.engine.stopping = True
    assert s.engine.received(p.Reply(9, 1, Codes.SESSIONEXPIRED)) is False
    assert s.effects() == []


def test_session_moved_fails_that_request_with_its_own_error_and_ends_the_session():
    s = Script()
    s.connect()
    moved = s.request("moved", lambda x: p.SetData(x, "/a", b""))
    rest = s.request("rest", lambda x: p.SetData(x, "/b", b""))
    s.sent()
    s.effects()
    assert s.engine.received(p.Reply(moved.xid, 1, Codes.SESSIONMOVED)) is False
    assert s.delivered() == {"moved": (None, SessionMovedError), "rest": (None, SessionExpiredError)}
    assert rest.xid not in s.engine.pending


def test_a_failed_auth_is_terminal():
    s = Script()
    s.connect()
    s.effects()
    s.engine.add_auth("digest", "u:bad", "auth")
    queued = s.request("queued", lambda x: p.Exists(x, "/"))
    frames = s.sent()
    assert [type(m) for m in frames] == [p.Auth, p.Exists] and queued.xid in s.engine.pending
    assert s.engine.received(p.Reply(p.AUTH_XID, 1, Codes.AUTHFAILED)) is False
    assert s.delivered() == {"auth": (None, AuthFailedError), "queued": (None, AuthFailedError)}
    assert s.engine.auth_failed and s.engine.keeper == KeeperState.AUTH_FAILED


def test_auth_is_answered_in_order_and_at_once_when_not_connected():
    s = Script()
    s.engine.add_auth("digest", "u:p", "offline")
    assert s.delivered() == {"offline": (True, type(None))}
    s.connect()
    s.engine.add_auth("digest", "v:q", "online")
    s.sent()
    assert s.engine.received(p.Reply(p.AUTH_XID, 1, Codes.OK)) is True  # the replayed u:p
    assert s.delivered() == {}
    assert s.engine.received(p.Reply(p.AUTH_XID, 1, Codes.OK)) is True
    assert s.delivered() == {"online": (True, type(None))}


def test_no_node_reached_within_the_session_timeout_gives_the_session_up():
    s = Script()
    s.engine.begin(0.0)
    s.connect()
    s.engine.connection_lost(now=10.0, served=True)  # the connection ended at t=10
    s.engine.connection_lost(now=18.0, served=False)
    assert s.engine.session_id == SID
    s.engine.connection_lost(now=19.5, served=False)  # 9.5 s > 9 s without a node
    assert s.engine.session_id == 0 and s.engine.keeper == KeeperState.EXPIRED_SESSION


def test_watch_events_fire_one_shot_persistent_and_recursive_watches_without_the_chroot():
    s = Script(chroot="/app")
    s.connect()
    once, always, below = [], [], []
    s.request("g", lambda x: p.GetData(x, "/app/a/b", True), watch=("data", "/a/b", once.append))
    s.request("p", lambda x: p.AddWatch(x, "/app/a/b", 0), watch=("persistent", "/a/b", always.append))
    s.request("r", lambda x: p.AddWatch(x, "/app/a", 1), watch=("recursive", "/a", below.append))
    s.sent()
    for xid in (1, 2, 3):
        s.engine.received(p.Reply(xid, 1, Codes.OK, p.DataResult(b"", None) if xid == 1 else None))
    s.effects()
    for _ in range(2):
        s.engine.received(p.Event(5, p.EVENT_NODE_DATA_CHANGED, p.STATE_SYNC_CONNECTED, "/app/a/b"))
    fired = [(e.func.__self__, e.event) for e in s.effects() if isinstance(e, Notify)]
    assert sum(1 for f, _ in fired if f is once) == 1
    assert sum(1 for f, _ in fired if f is always) == 2 and sum(1 for f, _ in fired if f is below) == 2
    assert {ev.path for _, ev in fired} == {"/a/b"} and {ev.type for _, ev in fired} == {EventType.CHANGED}
    assert s.engine.last_zxid == 5


def test_a_callers_error_reaches_the_caller_and_a_close_ends_the_session():
    s = Script()
    s.connect()
    bad = s.request("bad", lambda x: p.GetData(x, "/none"))
    s.sent()
    s.engine.received(p.Reply(bad.xid, 1, Codes.NONODE))
    assert s.delivered() == {"bad": (None, NoNodeError)}
    s.engine.closing = "close"
    s.request("close", lambda x: p.Close(x))
    (close,) = s.sent()
    s.engine.received(p.Reply(close.xid, 2, Codes.OK))
    assert StateChange(KazooState.LOST) in s.effects() and s.engine.keeper == KeeperState.CLOSED
