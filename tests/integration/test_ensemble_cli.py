"""`zoomq ensemble up/status` and `zoomq admin`: the commands that run and inspect an ensemble."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import subprocess
import sys

import psutil
import pytest

from zoomq import Client
from zoomq.admin import ask, parse_mntr
from zoomq.ensemble import ELECTION_OFFSET, QUORUM_OFFSET, EnsembleError, _tls_join
from zoomq.testing import wait_for

kazoo = pytest.importorskip("kazoo", reason="kazoo is a test dependency: pip install -e '.[test]'")
from kazoo.client import KazooClient  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _base_port(n: int) -> int:
    for _ in range(200):
        base = random.randrange(20000, 28000)
        ports = [base + off + i for off in (0, QUORUM_OFFSET, ELECTION_OFFSET) for i in range(n)]
        if all(_free(p) for p in ports):
            return base
    raise RuntimeError("no free port range")


def _free_range(n: int, avoid: set[int]) -> int:
    for _ in range(200):
        base = random.randrange(28000, 32000)
        if all(_free(base + i) and base + i not in avoid for i in range(n)):
            return base
    raise RuntimeError("no free port range")


def _zoomq(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoomq", *args], capture_output=True, text=True, timeout=60)


def _up(base: int, data, *extra: str, output: bool = False) -> subprocess.Popen:
    """`zoomq ensemble up -n 3` in the background (its output discarded, or readable as text
    from `.stdout`, stderr included)."""
    return subprocess.Popen(
        [sys.executable, "-m", "zoomq", "ensemble", "up", "-n", "3", "--base-port", str(base)]
        + ["--data-dir", str(data), "--tick-ms", "100", *extra],
        stdout=subprocess.PIPE if output else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        text=True,
    )


@contextlib.contextmanager
def _running(base: int, data, *extra: str, output: bool = False):
    """`_up` for the block, then stopped by SIGTERM; a clean exit (code 0) is part of the test."""
    up = _up(base, data, *extra, output=output)
    try:
        yield up
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    assert code == 0


def _rows(data) -> list[dict]:
    """`zoomq ensemble status --json`: one row per node."""
    return json.loads(_zoomq("ensemble", "status", "--data-dir", str(data), "--json").stdout or "[]")


def _roles(data) -> list[str]:
    return sorted(str(r["role"]) for r in _rows(data))


def test_ensemble_up_status_admin_and_stop(tmp_path):
    base = _base_port(4)
    taken = {base + i for i in range(4)}
    quorum = _free_range(4, taken)
    election = _free_range(4, taken | {quorum + i for i in range(4)})
    secure = _free_range(4, taken | {p + i for p in (quorum, election) for i in range(4)})
    data = tmp_path / "ens"
    ports = ["--quorum-base-port", str(quorum), "--election-base-port", str(election)]
    with _running(base, data, "--observers", "1", *ports, "--zk-secure-base-port", str(secure), output=True) as up:
        hosts = ",".join(f"127.0.0.1:{base + i}" for i in range(4))
        first = up.stdout.readline() + up.stdout.readline() + up.stdout.readline()
        assert f"connect with: {hosts}" in first and "use_ssl=True" in first

        def all_serving():
            rows = _rows(data)
            roles = sorted(str(r["role"]) for r in rows)
            return (
                rows
                if roles == ["follower", "follower", "leader", "observer"] and all(r["epoch"] for r in rows)
                else None
            )

        rows = wait_for(all_serving, 60, "an ensemble with a leader")
        zk = Client(hosts=hosts)
        zk.start(timeout=30)
        zk.create("/from-cli", b"x")
        zk.stop()
        rows = json.loads(_zoomq("ensemble", "status", "--data-dir", str(data), "--json").stdout)
        for row in rows:
            assert {"log", "session", "election"} <= set(row["actors"])
            assert row["pid"] and row["client"] == f"127.0.0.1:{base + row['id'] - 1}"
        leader = next(r for r in rows if r["role"] == "leader")
        text = _zoomq("ensemble", "status", "--data-dir", str(data)).stdout
        assert "leader" in text and "observer" in text
        lead_port = int(leader["client"].rsplit(":", 1)[1])
        lead_mntr = parse_mntr(ask("127.0.0.1", lead_port, "mntr"))  # ZooKeeper's leader-only lines
        wanted = {
            "zk_learners": "3",
            "zk_followers": "3",
            "zk_synced_followers": "2",
            "zk_synced_observers": "1",
            "zk_pending_syncs": "0",
        }
        wait_for(
            lambda: {k: parse_mntr(ask("127.0.0.1", lead_port, "mntr")).get(k) for k in wanted} == wanted,
            10,
            "leader's learner lines",
        )
        assert "zk_followers" not in parse_mntr(ask("127.0.0.1", base + 3, "mntr")) and "zk_followers" in lead_mntr
        conf = ask("127.0.0.1", base, "conf")
        assert (
            f"server.1=127.0.0.1:{quorum}:{election}:participant" in conf
            and f"server.4=127.0.0.1:{quorum + 3}:{election + 3}:observer" in conf
        )
        tls = data / "tls"
        kz = KazooClient(
            hosts=f"127.0.0.1:{secure + 1}",
            use_ssl=True,
            ca=str(tls / "ca.pem"),
            certfile=str(tls / "client.pem"),
            keyfile=str(tls / "client.key"),
        )
        kz.start(timeout=30)
        try:
            assert kz.get("/from-cli")[0] == b"x"
        finally:
            kz.stop()
            kz.close()

        out = _zoomq("admin", leader["client"], "srvr")
        assert out.returncode == 0 and "Mode: leader" in out.stdout
        mntr = parse_mntr(ask("127.0.0.1", base + 3, "mntr"))
        assert mntr["zk_server_state"] == "observer" and int(mntr["zk_znode_count"]) >= 5
        assert ask("127.0.0.1", base, "ruok") == "imok"
        assert "server.4=" in ask("127.0.0.1", base, "conf")
        assert "Total watches:" in ask("127.0.0.1", base, "wchs")
        assert "not a known command" in ask("127.0.0.1", base, "xyzw")
        pids = [r["pid"] for r in rows] + [a["pid"] for r in rows for a in r["actors"].values()]
    wait_for(
        lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids),
        30,
        "every node process gone",
    )


def test_admin_reports_unreachable_nodes_and_bad_addresses():
    out = _zoomq("admin", "nonsense", "ruok")
    assert out.returncode == 2
    port = _base_port(1)
    out = _zoomq("admin", f"127.0.0.1:{port}", "ruok", "--timeout", "0.5")
    assert out.returncode == 1 and "did not answer" in out.stderr and "refused the connection" in out.stderr, out.stderr


def test_ensemble_up_refuses_overlapping_port_ranges(tmp_path):
    base = _base_port(3)
    out = _zoomq(
        "ensemble",
        "up",
        "-n",
        "3",
        "--base-port",
        str(base),
        "--quorum-base-port",
        str(base + 1),
        "--data-dir",
        str(tmp_path / "ens"),
    )
    assert out.returncode == 2 and "overlap" in out.stderr


def test_ensemble_status_without_nodes(tmp_path):
    out = _zoomq("ensemble", "status", "--data-dir", str(tmp_path))
    assert out.returncode == 1 and "no node" in out.stderr


def test_ensemble_up_with_curve_serves_keyed_clients_only(tmp_path):
    base = _base_port(3)
    data = tmp_path / "ens"
    with _running(base, data, "--curve", output=True) as up:
        hosts = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
        banner = "".join(up.stdout.readline() for _ in range(3))
        assert "CURVE on" in banner

        def serving():
            rows = _rows(data)
            return (
                rows
                if sorted(str(r["role"]) for r in rows) == ["follower", "follower", "leader"]
                and all(r["epoch"] for r in rows)
                else None
            )

        wait_for(serving, 60, "a CURVE ensemble with a leader (status speaks CURVE too)")
        keys = data / "keys"
        server_keys = {f"127.0.0.1:{base + i}": str(keys / f"node{i + 1}.key") for i in range(3)}
        zk = Client(
            hosts=hosts, curve_server_key=server_keys, curve_secret_key=str(keys / "clients" / "client.key_secret")
        )
        zk.start(timeout=30)
        zk.create("/secure", b"x")
        zk.stop()
        plain = Client(hosts=hosts)
        with pytest.raises(Exception, match="CURVE"):  # raised once every host refused, not at the timeout
            plain.start(timeout=20)


def test_ensemble_add_grows_a_curve_ensemble(tmp_path):
    base = _base_port(5)
    data = tmp_path / "ens"
    with _running(base, data, "--curve"):
        wait_for(lambda: _roles(data) == ["follower", "follower", "leader"], 60, "the CURVE ensemble")
        added = _zoomq("ensemble", "add", "--data-dir", str(data))
        assert added.returncode == 0, added.stderr
        assert "server.4=" in added.stdout
        keys = data / "keys"
        assert (keys / "peers" / "server.4.key").read_text() == (keys / "node4.key").read_text()
        wait_for(lambda: _roles(data) == ["follower"] * 3 + ["leader"], 60, "four voters")
        four = Client(
            hosts=f"127.0.0.1:{base + 3}",
            curve_server_key=str(keys / "node4.key"),
            curve_secret_key=str(keys / "clients" / "client.key_secret"),
        )
        four.start(timeout=30)
        assert b"server.4=" in four.get_config()[0]
        four.create("/through-four", b"x")
        four.stop()


def test_ensemble_add_grows_an_ensemble_serving_zookeepers_tls_port(tmp_path):
    base = _base_port(5)
    taken = {base + off + i for off in (0, QUORUM_OFFSET, ELECTION_OFFSET) for i in range(5)}
    secure = _free_range(5, taken)
    data = tmp_path / "ens"
    with _running(base, data, "--zk-secure-base-port", str(secure)):
        wait_for(lambda: _roles(data) == ["follower", "follower", "leader"], 60, "the ensemble")
        added = _zoomq("ensemble", "add", "--data-dir", str(data))
        assert added.returncode == 0, added.stderr
        wait_for(lambda: _roles(data) == ["follower"] * 3 + ["leader"], 60, "four voters")
        tls = data / "tls"
        zk = KazooClient(
            hosts=f"127.0.0.1:{secure + 3}",  # node 4's TLS port, its certificate from the ensemble's CA
            use_ssl=True,
            ca=str(tls / "ca.pem"),
            certfile=str(tls / "client.pem"),
            keyfile=str(tls / "client.key"),
        )
        zk.start(timeout=30)
        try:
            zk.create("/over-tls", b"x")
            assert b"server.4=" in zk.get("/zookeeper/config")[0]
        finally:
            zk.stop()
            zk.close()


def test_ensemble_add_will_not_make_a_certificate_without_the_ensembles_ca_key(tmp_path):
    (tmp_path / "ca.pem").write_text("an operator's CA, whose key is elsewhere")
    cfg = {"sid": 4, "zk_tls_ca": str(tmp_path / "ca.pem"), "zk_tls_cert": str(tmp_path / "node1.pem")}
    with pytest.raises(EnsembleError, match="no ca.pem \\+ ca.key"):
        _tls_join(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.pem"]  # nothing written, the CA untouched


def test_ensemble_add_and_remove_reconfigure_the_running_ensemble(tmp_path):
    base = _base_port(5)  # room for the node added
    data = tmp_path / "ens"
    pids: list[int] = []

    def rows():
        return {r["id"]: r for r in _rows(data)}

    with _running(base, data):
        wait_for(
            lambda: sorted(str(r["role"]) for r in rows().values()) == ["follower", "follower", "leader"],
            60,
            "the ensemble",
        )
        hosts = ",".join(f"127.0.0.1:{base + i}" for i in range(4))
        zk = Client(hosts=hosts)
        zk.start(timeout=30)
        zk.create("/before", b"1")
        added = _zoomq("ensemble", "add", "--data-dir", str(data))
        assert added.returncode == 0, added.stderr
        assert (
            f"server.4=127.0.0.1:{base + QUORUM_OFFSET + 3}:{base + ELECTION_OFFSET + 3}:participant;127.0.0.1:{base + 3}"
            in added.stdout
        )
        assert (data / "node4.toml").exists()
        wait_for(lambda: (data / "node4" / "membership.json").exists(), 30, "node 4 applying the reconfig")
        four = Client(hosts=f"127.0.0.1:{base + 3}")
        four.start(timeout=30)
        assert four.get("/before")[0] == b"1" and b"server.4=" in four.get_config()[0]
        four.stop()
        pids = [r["pid"] for r in rows().values() if r["pid"]]
        leader = next(sid for sid, r in rows().items() if r["role"] == "leader")
        removed = _zoomq("ensemble", "remove", str(leader), "--data-dir", str(data))
        assert removed.returncode == 0, removed.stderr
        assert f"server.{leader}=" not in removed.stdout and "server.4=" in removed.stdout
        wait_for(lambda: rows()[leader]["role"] == "removed", 30, "the removed node stopped by `up`")
        wait_for(
            lambda: (
                sorted(str(r["role"]) for sid, r in rows().items() if sid != leader)
                == ["follower", "follower", "leader"]
            ),
            60,
            "a leader among the other three",
        )
        zk.create("/after", b"2")  # the session moved on to a member
        assert zk.get("/before")[0] == b"1"
        zk.stop()
        assert _zoomq("ensemble", "remove", "9", "--data-dir", str(data)).returncode == 1  # not a member: BadArguments
    wait_for(
        lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids),
        30,
        "every node process gone",
    )
