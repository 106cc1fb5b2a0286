"""TLS on the ZooKeeper-protocol port (ZooKeeper's secureClientPort): kazoo's use_ssl connects with
the certificates `zoomq tls generate` makes, a verified client certificate is the x509 identity
ACLs name, and whoever cannot prove one is refused, while the node serves on."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import config as node_config
from zoomq.testing import ZoomqServer, free_port

kazoo = pytest.importorskip("kazoo", reason="kazoo is a test dependency: pip install -e '.[test]'")
pytest.importorskip("cryptography", reason="`zoomq tls generate` needs cryptography: pip install -e '.[test]'")

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NoAuthError  # noqa: E402
from kazoo.security import make_acl  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _generate(directory: Path, *names: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "zoomq", "tls", "generate", "--dir", str(directory), *names],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert [line.split("\t")[0] for line in out.stdout.splitlines()] == ["CA", *names]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tls")
    _generate(root, "node", "app", "other")
    _generate(root / "stranger", "app")  # same name, another CA
    assert (root / "app.key").stat().st_mode & 0o077 == 0
    return root


@pytest.fixture(scope="module")
def node(certs: Path, tmp_path_factory: pytest.TempPathFactory):
    server = ZoomqServer(
        data_dir=tmp_path_factory.mktemp("tlsnode") / "data",
        zk_port=free_port(),
        zk_secure_port=free_port(),
        zk_tls_cert=str(certs / "node.pem"),
        zk_tls_key=str(certs / "node.key"),
        zk_tls_ca=str(certs / "ca.pem"),
    )
    server.start()
    server.secure = f"127.0.0.1:{server.config_overrides['zk_secure_port']}"
    server.plain = f"127.0.0.1:{server.config_overrides['zk_port']}"
    yield server
    server.stop()


def _kazoo(hosts: str, certs: Path | None = None, name: str = "app", ca: Path | None = None, **kw) -> KazooClient:
    if certs is None:
        return KazooClient(hosts=hosts, **kw)
    return KazooClient(
        hosts=hosts,
        use_ssl=True,
        ca=str(ca or certs / "ca.pem"),
        certfile=str(certs / f"{name}.pem"),
        keyfile=str(certs / f"{name}.key"),
        **kw,
    )


def test_kazoo_over_tls_and_the_x509_identity(node, certs):
    app = _kazoo(node.secure, certs)
    app.start(timeout=15)
    other = _kazoo(node.secure, certs, name="other")
    other.start(timeout=15)
    plain = _kazoo(node.plain)
    plain.start(timeout=15)
    try:
        app.create("/tls-mine", b"secret", acl=[make_acl("x509", "CN=app", all=True)])
        assert app.get("/tls-mine")[0] == b"secret"
        for stranger in (other, plain):
            with pytest.raises(NoAuthError):
                stranger.get("/tls-mine")
        app.create("/tls-auth", b"", acl=[make_acl("auth", "", all=True)])  # "auth" means: my x509 identity
        assert app.get_acls("/tls-auth")[0][0].id.id == "CN=app"
        plain.create("/tls-shared", b"from plain")
        assert app.get("/tls-shared")[0] == b"from plain"  # one service behind both ports
    finally:
        for client in (app, other, plain):
            client.stop()
            client.close()


@pytest.mark.parametrize("who", ["no-certificate", "another-ca", "plain-tcp"])
def test_who_cannot_prove_itself_is_refused_and_the_node_serves_on(node, certs, who):
    if who == "plain-tcp":  # a ZooKeeper handshake without TLS on the TLS port: no session
        host, port = node.secure.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            body = struct.pack(">iqiq", 0, 0, 10_000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
            sock.sendall(struct.pack(">i", len(body)) + body)
            try:
                answer = sock.recv(64)
            except OSError:
                answer = b""
            assert answer[:4] != struct.pack(">i", 36)  # not a ConnectResponse
    else:
        if who == "no-certificate":
            client = KazooClient(hosts=node.secure, use_ssl=True, ca=str(certs / "ca.pem"))
        else:
            client = _kazoo(node.secure, certs / "stranger", ca=certs / "ca.pem")
        with pytest.raises(Exception):  # noqa: B017,PT011 - kazoo's handshake failure or its connect timeout
            client.start(timeout=3)
        client.stop()
        client.close()
    good = _kazoo(node.secure, certs)
    good.start(timeout=15)
    try:
        assert good.exists("/") is not None
    finally:
        good.stop()
        good.close()


@pytest.mark.parametrize(
    "case", ["no-cert", "missing-file", "need-without-ca", "bad-mode", "files-without-port", "same-port"]
)
def test_bad_tls_configuration_is_a_precise_error(certs, tmp_path, case):
    good = {"zk_secure_port": 2282, "zk_tls_cert": str(certs / "node.pem"), "zk_tls_key": str(certs / "node.key")}
    fields, expect = {
        "no-cert": ({"zk_secure_port": 2282}, "needs zk_tls_cert and zk_tls_key"),
        "missing-file": ({**good, "zk_tls_cert": str(tmp_path / "nope.pem")}, "cannot load"),
        "need-without-ca": ({**good, "zk_tls_client_auth": "need"}, "needs zk_tls_ca"),
        "bad-mode": (
            {**good, "zk_tls_ca": str(certs / "ca.pem"), "zk_tls_client_auth": "sometimes"},
            "need, want or none",
        ),
        "files-without-port": ({"zk_tls_cert": str(certs / "node.pem")}, "zk_secure_port is not"),
        "same-port": ({**good, "zk_port": 2282}, "zk_secure_port must be"),
    }[case]
    with pytest.raises(node_config.ConfigError, match=expect):
        node_config.load(None, data_dir=str(tmp_path), **fields)


def test_tls_generate_without_names_or_with_a_bad_one(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "zoomq", "tls", "generate", "--dir", str(tmp_path), "ca"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "bad name" in out.stderr
