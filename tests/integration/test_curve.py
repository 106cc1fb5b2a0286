"""CurveZMQ on the client, quorum and election ports: who gets in, who does not, and that the
service keeps serving the others while it refuses someone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import zmq
import zmq.utils.monitor

from runtime import config as node_config
from runtime import curve
from zoomq import Client
from zoomq.exceptions import ConfigurationError
from zoomq.testing import ZoomqEnsemble, ZoomqServer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("curve")
    curve.generate(root / "node", "node")
    curve.generate(root / "clients", "app")
    curve.generate(root / "strangers", "stranger")
    return root


@pytest.fixture(scope="module")
def secure_node(keys: Path, tmp_path_factory: pytest.TempPathFactory):
    node = ZoomqServer(
        data_dir=tmp_path_factory.mktemp("secure") / "data",
        client_options={
            "curve_server_key": str(keys / "node/node.key"),
            "curve_secret_key": str(keys / "clients/app.key_secret"),
        },
        curve_secret_key=str(keys / "node/node.key_secret"),
        curve_client_keys=str(keys / "clients"),
    )
    node.start()
    yield node
    node.stop()


def _refused(node: ZoomqServer, **options) -> str:
    client = Client(hosts=node.hosts, **options)
    with pytest.raises(Exception) as caught:  # noqa: PT011 - kazoo's TimeoutError, checked below
        client.start(timeout=2)
    assert type(caught.value).__name__ == "TimeoutError"
    return str(caught.value)


def test_an_allowed_client_works_and_others_are_refused_while_it_keeps_working(secure_node, keys):
    good = secure_node.client()
    good.create("/curve", b"secret")
    message = _refused(secure_node)  # plain TCP: no CURVE at all
    assert "CURVE handshake" in message
    _refused(
        secure_node,
        curve_server_key=str(keys / "node/node.key"),
        curve_secret_key=str(keys / "strangers/stranger.key_secret"),
    )  # key not admitted
    _refused(
        secure_node,
        curve_server_key=str(keys / "strangers/stranger.key"),
        curve_secret_key=str(keys / "clients/app.key_secret"),
    )  # not this node's key
    assert good.get("/curve")[0] == b"secret"
    assert good.command("ruok") == "imok"


def test_a_key_added_to_the_directory_is_admitted_and_a_removed_one_is_not(secure_node, keys):
    public_file, secret_file = curve.generate(keys / "later", "later")
    options = {"curve_server_key": str(keys / "node/node.key"), "curve_secret_key": str(secret_file)}
    _refused(secure_node, **options)
    shutil.copy(public_file, keys / "clients" / "later.key")
    admitted = secure_node.client(**options)
    assert admitted.exists("/") is not None
    (keys / "clients" / "later.key").unlink()
    _refused(secure_node, **options)
    assert admitted.exists("/") is not None  # connections made before stay (revocation is for new ones)


def test_the_wire_is_encrypted(secure_node, keys):
    # The handshake with CURVE off gets nowhere near the session actor: a plain DEALER's
    # connect message is never answered.
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(f"tcp://{secure_node.hosts}")
        from zoomq import protocol as p

        sock.send(msgspec.msgpack.encode(p.AdminCommand(1, "ruok")))
        assert not sock.poll(1000)
    finally:
        sock.close(linger=0)


def test_admin_and_shell_take_keys(secure_node, keys):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    flags = [
        "--curve-server-key",
        str(keys / "node/node.key"),
        "--curve-secret-key",
        str(keys / "clients/app.key_secret"),
    ]
    out = subprocess.run(
        [sys.executable, "-m", "zoomq", "admin", secure_node.hosts, "ruok", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0 and out.stdout.strip() == "imok", out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "zoomq", "admin", secure_node.hosts, "ruok", "--timeout", "30"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 1 and "refused the CURVE handshake" in out.stderr and "--curve-server-key" in out.stderr, (
        out.stderr
    )
    out = subprocess.run(
        [sys.executable, "-m", "zoomq", "shell", secure_node.hosts, "-c", "create /viashell x; get /viashell", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0 and "x" in out.stdout, out.stderr


def test_keys_generate_and_show(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "zoomq", "keys", "generate", "--dir", str(tmp_path), "n1", "app"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [r[0] for r in rows] == ["n1", "app"]
    assert (tmp_path / "n1.key_secret").stat().st_mode & 0o077 == 0  # the secret is private
    shown = subprocess.run(
        [sys.executable, "-m", "zoomq", "keys", "show", str(tmp_path / "app.key_secret")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.stdout.strip() == rows[1][1] == curve.public_key(str(tmp_path / "app.key")).decode()
    bad = subprocess.run(
        [sys.executable, "-m", "zoomq", "keys", "show", str(tmp_path / "missing.key")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "zoomq keys:" in bad.stderr


@pytest.mark.parametrize(
    "case",
    [
        "secret-missing",
        "clients-missing",
        "clients-not-a-dir",
        "peer-key-missing",
        "peer-key-malformed",
        "own-key-mismatch",
        "clients-without-secret",
        "peer-dir-not-a-dir",
        "peer-dir-without-secret",
    ],
)
def test_bad_curve_configuration_is_a_precise_error(keys, tmp_path, case):
    secret = str(keys / "node/node.key_secret")
    own = curve.public_key(str(keys / "node/node.key")).decode()
    other = curve.public_key(str(keys / "strangers/stranger.key")).decode()
    servers = [
        {"id": 1, "quorum_port": 2888, "election_port": 3888, "curve_public_key": own},
        {"id": 2, "quorum_port": 2889, "election_port": 3889, "curve_public_key": other},
    ]
    fields, expect = {
        "secret-missing": (
            {"curve_secret_key": str(tmp_path / "nope.key_secret"), "curve_client_keys": "*"},
            "cannot read",
        ),
        "clients-missing": ({"curve_secret_key": secret}, "curve_client_keys"),
        "clients-not-a-dir": (
            {"curve_secret_key": secret, "curve_client_keys": str(tmp_path / "nodir")},
            "not a directory",
        ),
        "peer-key-missing": (
            {
                "curve_secret_key": secret,
                "curve_client_keys": "*",
                "servers": [servers[0], {**servers[1], "curve_public_key": ""}],
            },
            "server 2",
        ),
        "peer-key-malformed": (
            {
                "curve_secret_key": secret,
                "curve_client_keys": "*",
                "servers": [servers[0], {**servers[1], "curve_public_key": "short"}],
            },
            "server 2",
        ),
        "own-key-mismatch": (
            {
                "curve_secret_key": secret,
                "curve_client_keys": "*",
                "servers": [{**servers[0], "curve_public_key": other}, servers[1]],
            },
            "public half",
        ),
        "clients-without-secret": ({"curve_client_keys": "*"}, "need curve_secret_key"),
        "peer-dir-not-a-dir": (
            {"curve_secret_key": secret, "curve_client_keys": "*", "curve_peer_keys": str(tmp_path / "nodir")},
            "curve_peer_keys: .* is not a directory",
        ),
        "peer-dir-without-secret": ({"curve_peer_keys": str(tmp_path)}, "need curve_secret_key"),
    }[case]
    with pytest.raises(node_config.ConfigError, match=expect):
        node_config.load(None, **fields)


def test_a_server_key_comes_from_curve_peer_keys_and_one_added_by_reconfig_may_wait(keys, tmp_path):
    secret = str(keys / "node/node.key_secret")
    own = curve.public_key(str(keys / "node/node.key")).decode()
    peers = tmp_path / "peers"
    servers = [
        {"id": 1, "quorum_port": 2888, "election_port": 3888, "curve_public_key": own},
        {"id": 2, "quorum_port": 2889, "election_port": 3889},
    ]
    fields = {"curve_secret_key": secret, "curve_client_keys": "*", "curve_peer_keys": str(peers), "servers": servers}
    peers.mkdir()
    with pytest.raises(node_config.ConfigError, match=r"server 2: .*server\.2\.key in curve_peer_keys"):
        node_config.load(None, **fields)
    curve.install_server_key(peers, 2, keys / "strangers/stranger.key")
    cfg = node_config.load(None, **fields)
    stranger = curve.public_key(str(keys / "strangers/stranger.key"))
    assert cfg.servers[1].curve_public_key == stranger.decode()
    assert curve.peer_key(cfg, 2) == stranger
    # A membership a reconfig left (membership.json) may name a server whose key is not there
    # yet: the member starts anyway, and knows the key once the file comes.
    data = tmp_path / "data"
    data.mkdir()
    added = node_config.ServerEntry(3, "127.0.0.1", 2890, 3890)
    members = [node_config.ServerEntry(**{"host": "127.0.0.1", **e}) for e in servers] + [added]
    node_config.write_membership(str(data), node_config.Membership(members, 0x1_00000005))
    cfg = node_config.load(None, **fields, data_dir=str(data))
    assert [s.id for s in cfg.servers] == [1, 2, 3] and curve.peer_key(cfg, 3) is None
    curve.install_server_key(peers, 3, keys / "clients/app.key")
    assert curve.peer_key(cfg, 3) == curve.public_key(str(keys / "clients/app.key"))


def test_peer_keys_admit_the_directory_s_server_keys_as_they_come_and_go(keys, tmp_path):
    known = curve.public_key(str(keys / "node/node.key"))
    joiner = curve.public_key(str(keys / "strangers/stranger.key"))
    peers = tmp_path / "peers"
    peers.mkdir()
    admits = curve._PeerKeys({known}, str(peers)).callback
    assert admits("peers", known) and not admits("peers", joiner)
    shutil.copy(keys / "strangers/stranger.key", peers / "stranger.key")  # not named server.<id>.key
    assert not admits("peers", joiner)
    (peers / "server.7.key").write_text("not a key")  # malformed: ignored, no error
    assert not admits("peers", joiner)
    curve.install_server_key(peers, 4, keys / "strangers/stranger.key")
    assert admits("peers", joiner)
    (peers / "server.4.key").unlink()  # revoked
    assert not admits("peers", joiner)
    with pytest.raises(curve.CurveError):
        curve.install_server_key(peers, 5, peers / "server.7.key")
    assert not (peers / "server.5.key").exists()


def test_client_with_half_the_keys_is_a_configuration_error(keys):
    with pytest.raises(ConfigurationError):
        Client(hosts="127.0.0.1:1", curve_server_key=str(keys / "node/node.key"))
    with pytest.raises(ConfigurationError):
        Client(hosts="127.0.0.1:1", curve_server_key="not a key", curve_secret_key=str(keys / "clients/app.key_secret"))
    with pytest.raises(ConfigurationError):  # a per-host key map must cover every host
        Client(
            hosts="127.0.0.1:1,127.0.0.1:2",
            curve_server_key={"127.0.0.1:1": str(keys / "node/node.key")},
            curve_secret_key=str(keys / "clients/app.key_secret"),
        )


@pytest.mark.faults
def test_an_ensemble_refuses_a_member_whose_key_it_does_not_know_and_serves(tmp_path):
    ens = ZoomqEnsemble(3, base_dir=tmp_path / "ens", curve=True)
    impostor = ens.node(3)
    # Node 3 gets a new key pair; the others still list its old public key.
    public_file, secret_file = curve.generate(tmp_path / "impostor", "node3")
    own_view = [
        msgspec.structs.replace(s, curve_public_key=curve.public_key(str(public_file)).decode()) if s.id == 3 else s
        for s in ens.servers
    ]
    impostor.config_overrides.update(curve_secret_key=str(secret_file), servers=own_view)
    try:
        for node in ens.nodes:
            node.launch()
        for node in ens.nodes[:2]:
            node.wait_ready(30)
        zk = ens.client(hosts=",".join(n.hosts for n in ens.nodes[:2]))
        zk.create("/served", b"yes")
        leader = ens.leader()
        assert leader is not impostor

        # Each member refuses its key (the impostor says so, naming them) ...
        def refused_by() -> set[int]:
            lines = [json.loads(line) for line in impostor.log_text().splitlines() if '"key_refused"' in line]
            return {line["sid"] for line in lines}

        wait_for(lambda: refused_by() == {1, 2}, 30, "both members refusing the impostor's key")

        # ... and it cannot join: while the others elect, serve and heartbeat, it never
        # follows, and the leader never hears of it (a window of several election rounds).
        def impostor_joined() -> bool:
            return ens.role_of(impostor) in ("follower", "leader", "observer") or "learner_connected" in _sid3(leader)

        with pytest.raises(TimeoutError):
            wait_for(impostor_joined, timeout=3, what="the impostor joining")
        assert impostor.running
        zk.set("/served", b"again")
        assert zk.get("/served")[0] == b"again"
    finally:
        ens.stop()


@pytest.mark.faults
def test_a_peer_cannot_claim_another_servers_id_with_its_own_admitted_key(tmp_path):
    ens = ZoomqEnsemble(3, base_dir=tmp_path / "ens", curve=True)
    impostor = ens.node(3)
    # "Node 3" runs with node 2's key pair: a key the members admit, but not server 3's.
    keys = tmp_path / "ens" / "keys"
    borrowed = curve.public_key(str(keys / "node2.key")).decode()
    own_view = [msgspec.structs.replace(s, curve_public_key=borrowed) if s.id == 3 else s for s in ens.servers]
    impostor.config_overrides.update(curve_secret_key=str(keys / "node2.key_secret"), servers=own_view)
    try:
        for node in ens.nodes:
            node.launch()
        for node in ens.nodes[:2]:
            node.wait_ready(30)

        def caught_by() -> set[int]:
            return {
                n.sid
                for n in ens.nodes[:2]
                if '"notification_key_mismatch"' in n.log_text() and '"sid": 3' in n.log_text()
            }

        wait_for(lambda: caught_by() == {1, 2}, 30, "both members dropping votes that claim server 3")
        leader = ens.leader()
        assert leader is not impostor
        zk = ens.client(hosts=",".join(n.hosts for n in ens.nodes[:2]))
        zk.create("/still", b"served")
        assert ens.role_of(impostor) not in ("follower", "leader", "observer")
        assert "learner_connected" not in _sid3(leader)
    finally:
        ens.stop()


def _sid3(leader: ZoomqServer) -> str:
    return "\n".join(line for line in leader.log_text().splitlines() if '"sid": 3' in line)


@pytest.mark.faults
def test_a_stranger_on_the_peer_ports_is_refused_and_the_quorum_holds(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path / "ens", curve=True) as ens:
        zk = ens.client()
        zk.create("/q", b"0")
        leader = ens.leader()
        epoch = leader.status().get("epoch")
        entry = next(s for s in ens.servers if s.client_port == leader.port)
        _, stranger_secret = curve.generate(tmp_path / "stranger", "stranger")
        ctx = zmq.Context.instance()
        socks = []
        try:
            for port in (entry.quorum_port, entry.election_port):
                for keyed in (True, False):
                    sock = ctx.socket(zmq.DEALER)
                    sock.setsockopt(zmq.LINGER, 0)
                    monitor = sock.get_monitor_socket(
                        zmq.EVENT_HANDSHAKE_FAILED_AUTH
                        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                        | zmq.EVENT_HANDSHAKE_SUCCEEDED
                    )
                    if keyed:  # a well-formed CURVE client whose key no member lists
                        curve.connect_as(
                            sock, curve.secret_pair(str(stranger_secret)), curve.public_key(entry.curve_public_key)
                        )
                    sock.connect(f"tcp://127.0.0.1:{port}")
                    sock.send(b"\x93\x01\x02\x03")
                    socks.append((sock, monitor))
            for sock, monitor in socks:
                if monitor.poll(10_000):
                    event = zmq.utils.monitor.recv_monitor_message(monitor)
                    assert event["event"] != zmq.EVENT_HANDSHAKE_SUCCEEDED
                assert not sock.poll(200)
        finally:
            for sock, monitor in socks:
                sock.disable_monitor()
                monitor.close(linger=0)
                sock.close(linger=0)
        for i in range(20):
            zk.set("/q", str(i).encode())
        assert ens.leader() is leader and leader.status().get("epoch") == epoch
