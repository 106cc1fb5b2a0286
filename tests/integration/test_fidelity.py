"""Where zoomq once answered differently from ZooKeeper 3.9 / kazoo, and now does not: each test
pins one behaviour, with zoomq's client and, where it matters, with the real kazoo through the
ZooKeeper-protocol gateway."""

from __future__ import annotations

import struct
import threading

import pytest
import structlog

from tests_support import JuteConnection, jute_strings
from zoomq import Client, KazooState
from zoomq.exceptions import ConnectionClosedError, NodeExistsError
from zoomq.testing import ZoomqServer, free_port, wait_for

kazoo = pytest.importorskip("kazoo", reason="kazoo is a test dependency: pip install -e '.[test]'")

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NodeExistsError as KazooNodeExists  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    node = ZoomqServer(data_dir=tmp_path_factory.mktemp("fidelity") / "data", zk_port=free_port(), snapshot_every=5)
    node.start()
    node.zk_port = node.config_overrides["zk_port"]
    yield node
    node.stop()


@pytest.fixture
def kz(gw):
    client = KazooClient(hosts=f"127.0.0.1:{gw.zk_port}")
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


def test_create_of_the_root_is_node_exists(gw, kz):
    with pytest.raises(NodeExistsError):
        gw.client().create("/")
    with pytest.raises(KazooNodeExists):
        kz.create("/")


def test_no_data_stays_apart_from_empty_data_through_both_protocols_and_a_restart(tmp_path):
    node = ZoomqServer(data_dir=tmp_path / "d", zk_port=free_port(), snapshot_every=3)
    node.start()
    try:
        zk = node.client()
        zk.create("/none", None)
        zk.create("/empty", b"")
        zk.create("/was", b"x")
        zk.set("/was", None)
        assert zk.get("/none")[0] is None and zk.get("/empty")[0] == b"" and zk.get("/was")[0] is None
        assert zk.get("/none")[1].dataLength == 0
        kz = KazooClient(hosts=f"127.0.0.1:{node.config_overrides['zk_port']}")
        kz.start(timeout=15)
        try:
            kz.create("/kz-none", None)  # kazoo sends a buffer of length -1
            kz.create("/kz-empty", b"")
            assert kz.get("/kz-none")[0] is None and kz.get("/kz-empty")[0] == b""
            assert kz.get("/none")[0] is None and zk.get("/kz-none")[0] is None
            kz.set("/kz-empty", None)
            assert zk.get("/kz-empty")[0] is None
        finally:
            kz.stop()
            kz.close()
        for i in range(6):  # past snapshot_every: the values go through a snapshot, then the log
            zk.create(f"/filler{i}", b"")
        node.restart()
        zk = node.client()
        assert [zk.get(p)[0] for p in ("/none", "/empty", "/was", "/kz-none", "/kz-empty")] == [
            None,
            b"",
            None,
            None,
            None,
        ]
    finally:
        node.stop()


def test_a_committed_transaction_takes_nothing_more(gw):
    zk = gw.client()
    tx = zk.transaction()
    tx.create("/tx-once", b"")
    assert tx.commit() == ["/tx-once"]
    for late in (
        lambda: tx.create("/tx-late"),
        lambda: tx.delete("/tx-once"),
        lambda: tx.set_data("/tx-once", b"x"),
        lambda: tx.check("/tx-once", 0),
        tx.commit,
        tx.commit_async,
    ):
        with pytest.raises(ValueError, match="Transaction already committed"):
            late()
    assert zk.exists("/tx-late") is None


def test_calls_on_a_stopped_or_never_started_client_raise_connection_closed(gw):
    never = Client(hosts=gw.hosts)
    with pytest.raises(ConnectionClosedError, match="Connection has been closed"):
        never.get("/")
    zk = gw.client()
    zk.stop()
    for call in (
        lambda: zk.get("/"),
        lambda: zk.create("/after-stop"),
        lambda: zk.get_async("/").get(timeout=5),
        lambda: zk.set_async("/", b"").get(timeout=5),
        lambda: zk.get_children_async("/").get(timeout=5),
    ):
        with pytest.raises(ConnectionClosedError, match="Connection has been closed"):
            call()


class _StopsDuringHandshake(Client):
    """Calls stop() from another thread at the moment a reconnection's handshake completes, while
    the client is still SUSPENDED: the race in which the Close was skipped and the I/O thread
    then served a connection nobody would close."""

    race = False
    stopper: threading.Thread | None = None

    def _after_connect(self, sock, frames):
        super()._after_connect(sock, frames)
        if self.race and self.stopper is None:
            stopper = threading.Thread(target=self.stop, daemon=True)
            stopper.start()
            self.stopper = stopper  # published started: the test joins it as soon as it sees it
            wait_for(self._stopped.is_set, timeout=10, what="stop() under way")


def test_stop_during_a_reconnection_ends_the_client(tmp_path):
    node = ZoomqServer(data_dir=tmp_path / "d")
    node.start()
    zk = _StopsDuringHandshake(hosts=node.hosts, timeout=30)
    try:
        zk.start(timeout=15)
        io = zk._io
        outlived: list[bool] = []

        def join(timeout=None):  # what stop() sees when its wait for the I/O thread ends
            threading.Thread.join(io, timeout)
            outlived.append(io.is_alive())

        io.join = join
        zk.race = True
        node.restart()  # the connection drops; the client reconnects and resumes its session
        wait_for(lambda: zk.stopper is not None, timeout=30, what="a reconnection handshake")
        zk.stopper.join(30)
        assert not zk.stopper.is_alive()
        assert outlived == [False], "stop() gave up waiting for the I/O thread, which served on"
        assert zk.state == KazooState.LOST
    finally:
        zk.stop()
        node.stop()


# --- the ZooKeeper-protocol opcodes kazoo does not send ------------------------------------------

GET_DATA, GET_CHILDREN, CHECK_WATCHES, REMOVE_WATCHES, MULTI_READ = 4, 8, 17, 18, 22
GET_EPHEMERALS, ALL_CHILDREN, SET_WATCHES2, ADD_WATCH, WHO_AM_I, AUTH = 103, 104, 105, 106, 107, 100
MULTI_END = struct.pack(">i?i", -1, True, -1)


@pytest.fixture
def jute(gw, kz):
    kz.ensure_path("/ops/kid")
    conn = JuteConnection("127.0.0.1", gw.zk_port)
    yield conn
    conn.close()


def _path_int(conn: JuteConnection, path: str, value: int) -> bytes:
    return conn.string(path) + struct.pack(">i", value)


def test_multi_read_answers_each_read_on_its_own(jute):
    s = jute.string
    ops = (
        struct.pack(">i?i", GET_DATA, False, -1)
        + s("/ops")
        + b"\0"
        + struct.pack(">i?i", GET_CHILDREN, False, -1)
        + s("/ops")
        + b"\0"
        + struct.pack(">i?i", GET_DATA, False, -1)
        + s("/ops/missing")
        + b"\0"
        + MULTI_END
    )
    _xid, _zxid, err, body = jute.call(MULTI_READ, ops)
    assert err == 0
    op_type, done, op_err = struct.unpack(">i?i", body[:9])
    assert (op_type, done, op_err) == (GET_DATA, False, 0)
    (n,) = struct.unpack(">i", body[9:13])
    at = 13 + max(n, 0) + 68  # the data, then its Stat
    assert struct.unpack(">i?i", body[at : at + 9]) == (GET_CHILDREN, False, 0)
    children, at = jute_strings(body, at + 9)
    assert children == ["kid"]
    assert struct.unpack(">i?ii", body[at : at + 13]) == (-1, False, -101, -101)  # NoNode in its slot only
    assert body[at + 13 :] == MULTI_END


def test_multi_read_with_a_write_in_it_is_a_marshalling_error_and_the_connection_stays(jute):
    ops = struct.pack(">i?i", 2, False, -1) + jute.string("/ops") + struct.pack(">i", -1) + MULTI_END
    assert jute.call(MULTI_READ, ops)[2] == -5
    assert jute.call(ALL_CHILDREN, jute.string("/ops"))[2] == 0


def test_check_and_remove_watches_by_type(jute):
    assert jute.call(CHECK_WATCHES, _path_int(jute, "/ops", 2))[2] == -121  # NoWatcher
    assert jute.call(GET_DATA, jute.string("/ops") + b"\1")[2] == 0  # a data watch
    assert [jute.call(CHECK_WATCHES, _path_int(jute, "/ops", t))[2] for t in (1, 2, 3)] == [-121, 0, 0]
    assert jute.call(ADD_WATCH, _path_int(jute, "/ops", 0))[2:] == (0, b"\0\0\0\0")  # persistent
    assert [jute.call(CHECK_WATCHES, _path_int(jute, "/ops", t))[2] for t in (4, 5)] == [0, -121]  # 3.9's types
    assert jute.call(REMOVE_WATCHES, _path_int(jute, "/ops", 4))[2] == 0
    assert jute.call(CHECK_WATCHES, _path_int(jute, "/ops", 4))[2] == -121
    assert jute.call(REMOVE_WATCHES, _path_int(jute, "/ops", 2))[2] == 0
    assert jute.call(REMOVE_WATCHES, _path_int(jute, "/ops", 2))[2] == -121
    assert jute.call(CHECK_WATCHES, _path_int(jute, "/ops", 9))[2] == -5  # no such WatcherType, as ZooKeeper
    assert jute.call(CHECK_WATCHES, _path_int(jute, "ops", 3))[2] == -8


def test_set_watches2_rearms_persistent_watches_that_then_fire(jute, kz):
    s = jute.string
    body = (
        struct.pack(">q", 0)
        + struct.pack(">iii", 0, 0, 0)
        + struct.pack(">i", 1)
        + s("/ops")
        + struct.pack(">i", 1)
        + s("/ops")
    )
    assert jute.call(SET_WATCHES2, body, xid=-8)[2] == 0
    assert [jute.call(CHECK_WATCHES, _path_int(jute, "/ops", t))[2] for t in (4, 5)] == [0, 0]
    kz.set("/ops/kid", b"changed")
    kz.set("/ops", b"changed")
    wait_for(lambda: jute.call(ALL_CHILDREN, s("/ops")) and len(jute.events) >= 2, timeout=10, what="the events")
    assert (3, 3, "/ops/kid") in jute.events and (3, 3, "/ops") in jute.events


def test_counts_ephemerals_and_who_am_i(jute):
    s = jute.string
    assert struct.unpack(">i", jute.call(ALL_CHILDREN, s("/ops"))[3])[0] == 1
    acl = struct.pack(">i", 1) + struct.pack(">i", 31) + s("world") + s("anyone")
    assert jute.call(1, s("/ops/eph") + struct.pack(">i", 0) + acl + struct.pack(">i", 1))[2] == 0
    assert jute_strings(jute.call(GET_EPHEMERALS, s("/ops"))[3])[0] == ["/ops/eph"]
    assert jute_strings(jute.call(GET_EPHEMERALS, s("/nothing-here"))[3])[0] == []
    assert jute.call(AUTH, struct.pack(">i", 0) + s("digest") + s("bob:secret"), xid=-4)[2] == 0
    _xid, _zxid, err, body = jute.call(WHO_AM_I)
    assert err == 0
    (count,) = struct.unpack(">i", body[:4])
    pairs = jute_strings(struct.pack(">i", 2 * count) + body[4:])[0]
    assert list(zip(pairs[::2], pairs[1::2], strict=True)) == [("digest", "bob"), ("ip", "127.0.0.1")]


# --- what operators see ----------------------------------------------------------------------------


def test_connections_counts_open_connections_not_sessions(tmp_path):
    import msgspec
    import zmq

    from zoomq import protocol as p
    from zoomq.admin import ask, parse_mntr

    node = ZoomqServer(data_dir=tmp_path / "d")
    node.start()

    def connections() -> int:  # not counting the asking connection itself
        return int(parse_mntr(ask("127.0.0.1", node.port, "mntr"))["zk_num_alive_connections"]) - 1

    def dealer() -> zmq.Socket:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://{node.hosts}")
        return sock

    try:
        wait_for(lambda: connections() == 0, timeout=10, what="no connection but the asker's")
        idle = dealer()  # a connection that never opens a session
        idle.send(msgspec.msgpack.encode(p.Ping()))
        vanishing = dealer()  # a program that opens a session, then disappears without closing it
        vanishing.send(msgspec.msgpack.encode(p.Connect(p.PROTOCOL_VERSION, 0, 30_000)))
        assert vanishing.poll(10_000)
        session = msgspec.msgpack.decode(vanishing.recv(), type=p.ServerMsg).session_id
        wait_for(lambda: connections() == 2, timeout=10, what="both connections counted")
        assert f"sid={hex(session)}" in ask("127.0.0.1", node.port, "cons")
        vanishing.close(linger=0)
        wait_for(lambda: connections() == 1, timeout=10, what="the closed connection uncounted")
        assert f"sid={hex(session)}" not in ask("127.0.0.1", node.port, "cons")  # cons lists open connections only
        assert f"sid={hex(session)}" not in ask("127.0.0.1", node.port, "stat")
        assert int(parse_mntr(ask("127.0.0.1", node.port, "mntr"))["zk_global_sessions"]) == 1  # the session lives on
        wait_for(
            lambda: "Connections: 2" in ask("127.0.0.1", node.port, "srvr"), timeout=10, what="srvr: idle + the asker"
        )
        idle.close(linger=0)
        wait_for(lambda: connections() == 0, timeout=10, what="the idle connection uncounted")
    finally:
        node.stop()


def test_a_one_member_servers_list_serves_standalone(tmp_path):
    port = free_port()
    node = ZoomqServer(
        data_dir=tmp_path / "d",
        port=port,
        sid=1,
        servers=[
            {
                "id": 1,
                "host": "127.0.0.1",
                "quorum_port": free_port(),
                "election_port": free_port(),
                "client_port": port,
            }
        ],
    )
    node.start()
    try:
        zk = node.client()
        zk.create("/alone", b"1")
        assert zk.get("/alone")[0] == b"1"
        assert "Mode: standalone" in zk.command("srvr")
    finally:
        node.stop()


def test_a_curve_refusal_fails_start_at_once_with_one_warning_per_host(tmp_path):
    from runtime import curve

    curve.generate(tmp_path / "node", "node")
    curve.generate(tmp_path / "clients", "app")
    curve.generate(tmp_path / "other", "other")
    nodes = [
        ZoomqServer(
            data_dir=tmp_path / f"d{i}",
            curve_secret_key=str(tmp_path / "node/node.key_secret"),
            curve_client_keys=str(tmp_path / "clients"),
            client_options={
                "curve_server_key": str(tmp_path / "node/node.key"),
                "curve_secret_key": str(tmp_path / "clients/app.key_secret"),
            },
        )
        for i in range(2)
    ]
    for node in nodes:
        node.start()
    try:
        hosts = ",".join(node.hosts for node in nodes)
        client = Client(
            hosts=hosts,
            curve_server_key=str(tmp_path / "node/node.key"),
            curve_secret_key=str(tmp_path / "other/other.key_secret"),
        )
        with structlog.testing.capture_logs() as logs, pytest.raises(Exception) as caught:  # noqa: PT011
            client.start(timeout=120)  # were it to wait the whole timeout, the message would say so
        assert type(caught.value).__name__ == "TimeoutError"
        assert "every host" in str(caught.value) and "CURVE" in str(caught.value)
        warnings = [entry for entry in logs if entry["event"] == "curve_handshake_failed"]
        assert sorted(w["endpoint"] for w in warnings) == sorted(f"tcp://{node.hosts}" for node in nodes)
    finally:
        for node in nodes:
            node.stop()
