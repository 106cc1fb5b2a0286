"""A real ensemble (3 participants + 1 observer, each node its own supervisor and actors):
roles, replication, reads on every node, sessions that move between nodes."""

from __future__ import annotations

import contextlib
import threading

import psutil
import pytest

from zoomq import Client
from zoomq.exceptions import NoNodeError
from zoomq.testing import ZoomqEnsemble, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def ens():
    with ZoomqEnsemble(3, observers=1) as ensemble:
        yield ensemble


def _roles(ens: ZoomqEnsemble) -> list[str | None]:
    return [ens.role_of(n) for n in ens.nodes]


def test_one_leader_two_followers_one_observer(ens):
    wait_for(lambda: sorted(map(str, _roles(ens))) == ["follower", "follower", "leader", "observer"], 20, "roles")
    assert _roles(ens)[3] == "observer"
    leader = ens.leader()
    for node in ens.nodes:
        assert node.status()["leader"] == int(leader.status()["sid"])


def test_a_write_through_any_node_is_read_on_every_node(ens):
    writers = [ens.client(hosts=n.hosts) for n in ens.nodes]
    for i, zk in enumerate(writers):
        zk.create(f"/any{i}", str(i).encode())
    for zk in writers:
        zk.sync("/")
        for i in range(len(writers)):
            assert zk.get(f"/any{i}")[0] == str(i).encode()


def test_sync_makes_the_next_read_see_the_latest_commit(ens):
    leader = ens.leader()
    observer = ens.nodes[3]
    writer = ens.client(hosts=leader.hosts)
    reader = ens.client(hosts=observer.hosts)
    writer.create("/synced", b"0")
    for i in range(1, 30):
        writer.set("/synced", str(i).encode())
        reader.sync("/synced")
        assert reader.get("/synced")[0] == str(i).encode()


def test_sequential_nodes_created_through_different_nodes_are_unique_and_ordered(ens):
    ens.client().create("/seq", b"")
    clients = [ens.client(hosts=n.hosts) for n in ens.nodes]
    made: list[str] = []
    lock = threading.Lock()

    def work(zk: Client, who: int) -> None:
        for i in range(40):
            path = zk.create("/seq/n-", f"{who}:{i}".encode(), sequence=True)
            with lock:
                made.append(path)

    threads = [threading.Thread(target=work, args=(zk, i)) for i, zk in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(made) == len(set(made)) == 160
    zk = clients[0]
    zk.sync("/seq")
    assert sorted(zk.get_children("/seq")) == sorted(p.rsplit("/", 1)[1] for p in made)
    # Each client's own creates got increasing sequence numbers (FIFO order per session).
    for who in range(len(clients)):
        mine = [p for p in made if zk.get(p)[0].startswith(f"{who}:".encode())]
        assert mine == sorted(mine)


def test_a_session_moves_to_another_node_with_its_ephemerals_and_watches(ens):
    first, second = ens.nodes[0], ens.nodes[1]
    zk = ens.client(hosts=f"{first.hosts},{second.hosts}", randomize_hosts=False, timeout=10.0)
    session = zk.client_id[0]
    zk.create("/moving", b"")
    zk.create("/moving/eph", b"", ephemeral=True)
    fired = threading.Event()
    zk.get("/moving", watch=lambda event: fired.set())
    first.kill()
    try:
        other = ens.client(hosts=ens.nodes[2].hosts)
        wait_for(
            lambda: zk.connected and zk.client_id[0] == session and zk.exists("/moving/eph"), 30, "session resumed"
        )
        other.set("/moving", b"changed")
        assert fired.wait(15), "the watch did not fire after the session moved"
        assert zk.client_id[0] == session
        assert other.exists("/moving/eph") is not None
    finally:
        first.start(timeout=30)


def test_a_closed_session_ends_its_ephemerals_on_every_node(ens):
    zk = ens.client(hosts=ens.nodes[0].hosts)
    zk.create("/gone", b"", ephemeral=True)
    zk.stop()
    for node in ens.nodes:
        reader = ens.client(hosts=node.hosts)
        reader.sync("/")
        with pytest.raises(NoNodeError):
            reader.get("/gone")


def test_status_reports_every_actor_and_the_role_actor(ens):
    for node in ens.nodes:
        actors = node.status()["actors"]
        role = ens.role_of(node)
        assert {"log", "session", "election", role} <= set(actors), actors
        assert all(a["pid"] for a in actors.values())


def _standbys(node) -> list[psutil.Process]:
    idle = []
    for proc in psutil.Process(node.pid).children():
        with contextlib.suppress(psutil.Error):
            if "standby" in proc.cmdline() and proc.pid not in node.actor_pids().values():
                idle.append(proc)
    return idle


def test_a_role_actor_is_a_process_started_ahead_of_time_and_another_waits_for_the_next_role(ens):
    """Leader changes do not wait for an interpreter: each node keeps one standby process that
    becomes the next role actor (runtime/spawn.py), and starts another after it is taken."""
    for node in ens.nodes:
        wait_for(lambda node=node: len(_standbys(node)) == 1, 30, "one standby per node")
    follower = next(n for n in ens.nodes if ens.role_of(n) == "follower")
    waiting = _standbys(follower)[0]
    role_pid = follower.actor_pids()["follower"]
    psutil.Process(role_pid).kill()  # the role ends: the node looks again and takes up a role
    wait_for(lambda: follower.actor_pids().get("follower") not in (None, role_pid), 30, "a new follower actor")
    assert follower.actor_pids()["follower"] == waiting.pid  # the standby became it
    assert not follower.standby_ready()  # the taken one no longer counts
    wait_for(lambda: len(_standbys(follower)) == 1 and _standbys(follower)[0].pid != waiting.pid, 30, "a new standby")
    ens.wait_standbys(30)  # preloaded, and said so (runtime/spawn.py's standby.ready)
    assert follower.standby_ready()
    wait_for(
        lambda: follower.status().get("standby") == {"pid": _standbys(follower)[0].pid, "ready": True},
        30,
        "status.json telling the standby is ready",
    )
    client = Client(hosts=follower.hosts)
    client.start(timeout=20)
    try:
        client.ensure_path("/standby-check")  # a write through the node the new role actor serves
        assert client.exists("/standby-check")
    finally:
        client.stop()
        client.close()
