"""ZooKeeper's own wire protocol: the real kazoo client (and zkCli.sh where installed) against zoomq's
gateway, and what malformed input does to a connection (and not to the node)."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import threading

import pytest

kazoo = pytest.importorskip("kazoo", reason="kazoo is a test dependency: pip install -e '.[test]'")

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import (  # noqa: E402
    AuthFailedError,
    ConnectionLoss as KazooConnectionLoss,
    BadVersionError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.security import make_acl, make_digest_acl  # noqa: E402

from tests_support import background, joined, kill_actor  # noqa: E402
from zoomq.testing import ZoomqEnsemble, ZoomqServer, free_port, wait_for  # noqa: E402
from zoomq.security import make_digest_acl_credential  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    node = ZoomqServer(data_dir=tmp_path_factory.mktemp("gw") / "data", zk_port=free_port(), tick_ms=200)
    node.start()
    node.zk_hosts = f"127.0.0.1:{node.config_overrides['zk_port']}"
    yield node
    node.stop()


@pytest.fixture
def kz(gw):
    clients = []

    def make(**kw):
        client = KazooClient(hosts=gw.zk_hosts, timeout=kw.pop("timeout", 10), **kw)
        client.start(timeout=15)
        clients.append(client)
        return client

    make.node = gw
    yield make
    for client in clients:
        client.stop()
        client.close()


def test_crud_and_zookeepers_errors(kz, request):
    zk = kz()
    base = f"/crud-{request.node.name[-8:]}"
    assert zk.create(base, b"v0") == base
    assert zk.get(base)[0] == b"v0"
    stat = zk.set(base, b"v1")
    assert stat.version == 1
    with pytest.raises(BadVersionError):
        zk.set(base, b"x", version=0)
    with pytest.raises(NodeExistsError):
        zk.create(base)
    with pytest.raises(NoNodeError):
        zk.get(base + "/missing")
    assert zk.exists(base + "/missing") is None
    zk.create(base + "/kid", b"")
    with pytest.raises(NotEmptyError):
        zk.delete(base)
    path, stat = zk.create(base + "/seq-", b"", sequence=True, include_data=True)
    assert path == base + "/seq-0000000001" and stat.version == 0
    children, stat = zk.get_children(base, include_data=True)
    assert sorted(children) == ["kid", "seq-0000000001"] and stat.numChildren == 2
    zk.delete(base, recursive=True)
    assert zk.exists(base) is None
    assert zk.sync("/") == "/"


def test_watches_fire_for_changes_made_by_native_and_kazoo_clients(kz):
    zk = kz()
    native = kz.node.client()
    got: list = []
    fired = threading.Event()

    def watcher(event):
        got.append((event.type, event.path))
        fired.set()

    zk.create("/watched", b"")
    zk.get("/watched", watch=watcher)
    native.set("/watched", b"by native")
    assert fired.wait(10)
    assert got == [("CHANGED", "/watched")]
    fired.clear()
    zk.get_children("/watched", watch=watcher)
    native.create("/watched/kid", b"")
    assert fired.wait(10)
    assert got[-1] == ("CHILD", "/watched")
    fired.clear()
    zk.exists("/not-yet", watch=watcher)
    native.create("/not-yet", b"")
    assert fired.wait(10)
    assert got[-1] == ("CREATED", "/not-yet")


def test_ephemerals_go_with_the_session(kz):
    owner = kz()
    observer = kz()
    owner.create("/eph", b"", ephemeral=True)
    with pytest.raises(Exception) as caught:  # noqa: PT011
        owner.create("/eph/kid", b"")
    assert type(caught.value).__name__ == "NoChildrenForEphemeralsError"
    assert observer.exists("/eph").ephemeralOwner == owner.client_id[0]
    owner.stop()
    wait_for(lambda: observer.exists("/eph") is None, timeout=10, what="ephemeral removed on close")


def test_multi_success_and_zookeepers_failure_encoding(kz):
    zk = kz()
    t = zk.transaction()
    t.create("/multi-a", b"1")
    t.set_data("/multi-a", b"2")
    t.check("/multi-a", 1)
    results = t.commit()
    assert results[0] == "/multi-a" and results[1].version == 1 and results[2] is True
    t = zk.transaction()
    t.create("/multi-b", b"")
    t.create("/multi-a", b"")  # exists: the whole transaction fails
    t.delete("/multi-a")
    results = t.commit()
    assert [type(r) for r in results] == [RolledBackError, NodeExistsError, RuntimeInconsistency]
    assert zk.exists("/multi-b") is None


def test_acls_digest_auth_and_ip(kz):
    zk = kz(auth_data=[("digest", "alice:secret")])
    other = kz()
    zk.create("/acl-digest", b"private", acl=[make_digest_acl("alice", "secret", all=True)])
    with pytest.raises(NoAuthError):
        other.get("/acl-digest")
    assert zk.get("/acl-digest")[0] == b"private"
    other.add_auth("digest", "alice:secret")
    assert other.get("/acl-digest")[0] == b"private"
    acls, _ = zk.get_acls("/acl-digest")
    assert acls[0].id.scheme == "digest"
    # The ip scheme sees the client's real address, not the gateway's.
    zk.create("/acl-ip-local", b"", acl=[make_acl("ip", "127.0.0.1", read=True)])
    zk.create("/acl-ip-far", b"", acl=[make_acl("ip", "10.1.2.3", read=True)])
    assert other.get("/acl-ip-local")[0] == b""
    with pytest.raises(NoAuthError):
        other.get("/acl-ip-far")
    bad = kz()
    with pytest.raises(AuthFailedError):
        bad.add_auth("nonsense", "x")


def test_kazoos_own_recipes(kz):
    clients = [kz() for _ in range(3)]
    clients[0].create("/r-count", b"0")
    holders = []
    most = [0]
    lock_guard = threading.Lock()

    def work(zk, name):
        for _ in range(5):
            with zk.Lock("/r-lock", name):
                with lock_guard:
                    holders.append(name)
                    most[0] = max(most[0], len(holders))
                value = int(zk.get("/r-count")[0])
                zk.set("/r-count", str(value + 1).encode())
                with lock_guard:
                    holders.remove(name)

    threads = [background(lambda zk=zk, i=i: work(zk, f"c{i}")) for i, zk in enumerate(clients)]
    for t, out in threads:
        joined(t, out, timeout=60)
    assert most[0] == 1 and clients[0].get("/r-count")[0] == b"15"

    counter = clients[0].Counter("/r-counter")
    counter += 5
    clients[1].Counter("/r-counter").__add__(2)
    assert counter.value == 7

    queue = clients[0].Queue("/r-queue")
    for item in (b"a", b"b", b"c"):
        queue.put(item)
    assert [clients[1].Queue("/r-queue").get() for _ in range(3)] == [b"a", b"b", b"c"]

    elected = threading.Event()
    election = clients[2].Election("/r-election", "me")
    t, out = background(lambda: election.run(elected.set))
    joined(t, out, timeout=30)
    assert elected.is_set()

    barrier = clients[0].Barrier("/r-barrier")
    barrier.create()
    t, out = background(lambda: clients[1].Barrier("/r-barrier").wait(30))
    wait_for(lambda: clients[0].exists("/r-barrier") is not None, timeout=5)
    barrier.remove()
    assert joined(t, out, timeout=30) is True


def test_four_letter_words_on_the_zookeeper_port(kz):
    zk = kz()
    assert zk.command(b"ruok") == "imok"
    assert "Mode: standalone" in zk.command(b"srvr")
    assert "zk_znode_count" in zk.command(b"mntr")
    assert zk.server_version()  # kazoo reads it from envi


def test_session_survives_a_gateway_restart(kz):
    zk = kz(timeout=10)
    zk.create("/survivor", b"", ephemeral=True)
    session = zk.client_id[0]
    kill_actor(kz.node, "gateway")
    wait_for(lambda: zk.connected and zk.exists("/survivor") is not None, timeout=20, what="kazoo back")
    assert zk.client_id[0] == session
    assert zk.exists("/survivor").ephemeralOwner == session


def _raw(node: ZoomqServer) -> socket.socket:
    port = int(node.zk_hosts.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _handshake(sock: socket.socket) -> None:
    body = struct.pack(">iqiq", 0, 0, 10_000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
    sock.sendall(struct.pack(">i", len(body)) + body)
    length = struct.unpack(">i", _read(sock, 4))[0]
    timeout = struct.unpack(">i", _read(sock, length)[4:8])[0]
    assert timeout > 0


def _read(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionError, TimeoutError, OSError):
        return True


@pytest.mark.parametrize(
    "case", ["length-over-limit", "negative-length", "garbage-handshake", "truncated-record", "bad-multi"]
)
def test_malformed_input_closes_that_connection_and_the_node_serves_on(kz, case):
    zk = kz()
    sock = _raw(kz.node)
    try:
        if case == "length-over-limit":
            sock.sendall(struct.pack(">i", 0xFFFFF + 1) + b"x" * 16)
        elif case == "negative-length":
            sock.sendall(struct.pack(">i", -5))
        elif case == "garbage-handshake":
            sock.sendall(struct.pack(">i", 3) + b"abc")
        else:
            _handshake(sock)
            if case == "truncated-record":  # getData whose path says 100 bytes but has 2
                body = struct.pack(">ii", 1, 4) + struct.pack(">i", 100) + b"/a"
            else:  # a multi with an op type that cannot be in one, and no end marker
                body = struct.pack(">ii", 1, 14) + struct.pack(">i?i", 4, False, -1) + b"\0" * 5
            sock.sendall(struct.pack(">i", len(body)) + body)
        assert _closed(sock)
    finally:
        sock.close()
    assert zk.exists("/") is not None
    assert kz().get_children("/") is not None


def test_unknown_opcode_is_unimplemented_in_order_and_the_connection_stays(kz):
    sock = _raw(kz.node)
    try:
        _handshake(sock)
        frames = [
            struct.pack(">ii", 1, 999),  # unknown
            struct.pack(">ii", 2, 3) + struct.pack(">i", 1) + b"/" + b"\0",
        ]  # exists("/")
        sock.sendall(b"".join(struct.pack(">i", len(f)) + f for f in frames))
        replies = []
        for _ in range(2):
            length = struct.unpack(">i", _read(sock, 4))[0]
            replies.append(struct.unpack(">iqi", _read(sock, length)[:16]))
        assert [(xid, err) for xid, _, err in replies] == [(1, -6), (2, 0)]
    finally:
        sock.close()


@pytest.mark.faults
def test_kazoo_on_an_ensemble_moves_to_another_node_and_keeps_its_session(tmp_path):
    ports = [free_port() for _ in range(3)]
    ens = ZoomqEnsemble(3, base_dir=tmp_path / "ens")
    for node, port in zip(ens.nodes, ports, strict=True):
        node.config_overrides["zk_port"] = port
    with ens:
        hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
        zk = KazooClient(hosts=hosts, timeout=10)
        zk.start(timeout=20)
        try:
            zk.create("/moving", b"", ephemeral=True)
            session = zk.client_id[0]
            port = zk._connection._socket.getpeername()[1]
            victim = ens.nodes[ports.index(port)]
            victim.kill()

            def mine_elsewhere():
                try:  # kazoo may be connected for a moment to a node that is still electing
                    stat = zk.exists("/moving")
                    return stat is not None and zk._connection._socket.getpeername()[1] != port and stat
                except (KazooConnectionLoss, OSError, AttributeError):
                    return None

            stat = wait_for(mine_elsewhere, timeout=30, what="kazoo on another node")
            assert zk.client_id[0] == session
            assert stat.ephemeralOwner == session
            zk.retry(zk.set, "/moving", b"still mine")  # a leader change may still drop a connection: kazoo retries
        finally:
            zk.stop()
            zk.close()


ZKCLI = shutil.which("zkCli.sh") or next((p for p in ("/usr/share/zookeeper/bin/zkCli.sh",) if os.path.exists(p)), None)


@pytest.mark.skipif(ZKCLI is None, reason="zkCli.sh not installed (apt-get install zookeeper)")
def test_zkcli_drives_zoomq(gw):
    script = (
        "create /fromcli hello\nls /\nget -w /fromcli\nset /fromcli world\nget /fromcli\nstat /fromcli\n"
        "delete /fromcli\nls /\naddauth digest bob:pw\nwhoami\nquit\n"
    )
    out = subprocess.run([ZKCLI, "-server", gw.zk_hosts], input=script, capture_output=True, text=True, timeout=90)
    text = out.stdout + out.stderr
    assert "Created /fromcli" in text, text[-3000:]
    assert "hello" in text and "world" in text
    assert "type:NodeDataChanged path:/fromcli" in text  # the watch set by get -w fired
    assert "dataVersion = 1" in text
    assert "Auth scheme: User\ndigest: bob\nip: 127.0.0.1" in text  # whoami: the session's identities
    assert gw.client().exists("/fromcli") is None


@pytest.fixture(scope="module")
def sasl_gw(tmp_path_factory):
    pytest.importorskip("puresasl", reason="pure-sasl (kazoo's SASL library) is a test dependency")
    node = ZoomqServer(
        data_dir=tmp_path_factory.mktemp("sasl") / "data",
        zk_port=free_port(),
        sasl_users={"bob": "s3cret", "alice": "other"},
    )
    node.start()
    node.zk_hosts = f"127.0.0.1:{node.config_overrides['zk_port']}"
    yield node
    node.stop()


def _sasl_client(node, user: str, password: str) -> KazooClient:
    return KazooClient(
        hosts=node.zk_hosts, sasl_options={"mechanism": "DIGEST-MD5", "username": user, "password": password}
    )


def test_sasl_digest_md5_identity_guards_acls(sasl_gw):
    bob = _sasl_client(sasl_gw, "bob", "s3cret")
    bob.start(timeout=15)
    alice = _sasl_client(sasl_gw, "alice", "other")
    alice.start(timeout=15)
    anonymous = KazooClient(hosts=sasl_gw.zk_hosts)
    anonymous.start(timeout=15)
    try:
        bob.create("/bobs", b"mine", acl=[make_acl("sasl", "bob", all=True)])
        assert bob.get("/bobs")[0] == b"mine"
        for other in (alice, anonymous):
            with pytest.raises(NoAuthError):
                other.get("/bobs")
        kill_actor(sasl_gw, "gateway")  # every connection drops: kazoo reconnects, SASL again, same identity
        assert bob.retry(bob.get, "/bobs")[0] == b"mine"
        with pytest.raises(NoAuthError):
            alice.retry(alice.get, "/bobs")
    finally:
        for client in (bob, alice, anonymous):
            client.stop()
            client.close()


@pytest.mark.parametrize("how", ["wrong-password", "unknown-user", "auth-packet"])
def test_sasl_failures_are_auth_failed_and_the_node_serves_on(sasl_gw, how):
    if how == "auth-packet":  # claiming a SASL identity without the exchange
        client = KazooClient(hosts=sasl_gw.zk_hosts)
        client.start(timeout=15)
        with pytest.raises(AuthFailedError):
            client.add_auth("sasl", "bob")
    else:
        client = _sasl_client(sasl_gw, "bob" if how == "wrong-password" else "mallory", "nope")
        _auth_failed(client)
    client.stop()
    client.close()
    assert sasl_gw.client().exists("/") is not None


def _auth_failed(client: KazooClient) -> None:
    """kazoo reports CONNECTED before its SASL exchange; a failed one then passes through
    AUTH_FAILED (and CLOSED right after, where nothing can be asked any more)."""
    from kazoo.protocol.states import KeeperState

    seen = []
    callback = client._session_callback

    def record(state):
        seen.append(state)
        return callback(state)

    client._session_callback = record
    client.start_async().wait(15)
    wait_for(lambda: KeeperState.AUTH_FAILED in seen, timeout=15, what="AUTH_FAILED")


def test_sasl_without_configured_users_is_auth_failed(gw):
    pytest.importorskip("puresasl", reason="pure-sasl (kazoo's SASL library) is a test dependency")
    client = _sasl_client(gw, "bob", "s3cret")
    _auth_failed(client)
    client.stop()
    client.close()


@pytest.mark.skipif(ZKCLI is None, reason="zkCli.sh not installed (apt-get install zookeeper)")
def test_zkcli_reconfigures_an_ensemble_through_the_gateway(tmp_path):
    ports = {sid: {"zk_port": free_port()} for sid in (1, 2, 3)}
    with ZoomqEnsemble(
        3,
        base_dir=tmp_path,
        node_overrides=ports,
        reconfig_enabled=True,
        super_digest=make_digest_acl_credential("super", "secret"),
    ) as ens:
        hosts = ",".join(f"127.0.0.1:{p['zk_port']}" for p in ports.values())
        joining = f"server.9=127.0.0.1:{free_port()}:{free_port()}:observer;127.0.0.1:{free_port()}"
        script = f"addauth digest super:secret\nreconfig -add {joining}\nconfig\nreconfig -remove 9\nconfig\nquit\n"
        out = subprocess.run([ZKCLI, "-server", hosts], input=script, capture_output=True, text=True, timeout=90)
        text = out.stdout + out.stderr
        assert text.count("Committed new configuration") == 2, text[-3000:]
        assert joining in text  # shown by the first reconfig and by `config`
        assert "server.9=" not in ens.client().get_config()[0].decode()  # and gone again
