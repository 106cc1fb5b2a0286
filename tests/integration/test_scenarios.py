"""The seed's coordination scenarios: configuration publish/subscribe, naming with client-side
load balancing, cluster membership — on a real node, with sessions that end."""

from __future__ import annotations

import queue

import pytest

from zoomq.recipe.scenarios import ConfigCenter, Membership, ServiceRegistry
from zoomq.testing import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_config_subscribers_get_the_current_value_then_every_change(node, zk):
    publisher = ConfigCenter(zk, "/config/app")
    publisher.publish(b"v1")
    seen: queue.Queue = queue.Queue()
    ConfigCenter(node.client(), "/config/app").subscribe(seen.put)
    assert seen.get(timeout=10) == b"v1"  # the initial read
    publisher.publish(b"v2")
    publisher.publish(b"v3")
    got = [seen.get(timeout=10)]
    while got[-1] != b"v3":
        got.append(seen.get(timeout=10))
    assert got[-1] == b"v3" and set(got) <= {b"v2", b"v3"}


def test_config_subscriber_before_the_first_publish_sees_none_then_the_value(node, zk):
    seen: queue.Queue = queue.Queue()
    ConfigCenter(zk, "/config/later").subscribe(seen.put)
    assert seen.get(timeout=10) is None
    ConfigCenter(node.client(), "/config/later").publish(b"x")
    assert seen.get(timeout=10) == b"x"


def test_naming_registers_resolves_and_balances_over_live_providers(node, zk):
    a, b = node.client(), node.client()
    ServiceRegistry(a).register("db", "10.0.0.1:5432")
    ServiceRegistry(b).register("db", "10.0.0.2:5432")
    consumer = ServiceRegistry(zk)
    assert consumer.resolve("db") == ["10.0.0.1:5432", "10.0.0.2:5432"]
    wait_for(lambda: len(consumer.providers("db")) == 2, 10, "two providers")
    picks = [consumer.pick("db") for _ in range(6)]
    assert picks.count("10.0.0.1:5432") == 3 and picks.count("10.0.0.2:5432") == 3  # round robin
    assert consumer.pick("db", "random") in {"10.0.0.1:5432", "10.0.0.2:5432"}
    a.stop()  # a provider's session ends: it is withdrawn from every consumer
    wait_for(lambda: consumer.providers("db") == ["10.0.0.2:5432"], 10, "the departure")
    assert {consumer.pick("db") for _ in range(3)} == {"10.0.0.2:5432"}
    assert consumer.pick("nothing") is None
    with pytest.raises(ValueError):
        consumer.pick("db", "fastest")


def test_membership_reports_joins_and_leaves_including_session_loss(node, zk):
    joined: queue.Queue = queue.Queue()
    left: queue.Queue = queue.Queue()
    Membership(zk, "/cluster").listen(joined.put, left.put)
    m1, m2 = node.client(), node.client()
    Membership(m1, "/cluster").join("node-1")
    Membership(m2, "/cluster").join("node-2", b"10.0.0.2")
    assert {joined.get(timeout=10), joined.get(timeout=10)} == {"node-1", "node-2"}
    assert Membership(zk, "/cluster").members() == ["node-1", "node-2"]
    Membership(m1, "/cluster").leave("node-1")
    assert left.get(timeout=10) == "node-1"
    m2.stop()  # the session ends: the member leaves without saying so
    assert left.get(timeout=10) == "node-2"
    assert Membership(zk, "/cluster").members() == []


_MEMBER = """
import sys
from zoomq import Client
from zoomq.recipe.scenarios import Membership
zk = Client(hosts=sys.argv[1], timeout=1.0)
zk.start(timeout=30)
Membership(zk, "/killed").join("worker")
print("joined", zk.client_id[0], flush=True)
sys.stdin.read()  # until killed
"""


def test_membership_sees_a_killed_member_leave_when_its_session_expires(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from zoomq.testing import ZoomqServer

    with ZoomqServer(data_dir=tmp_path / "data", tick_ms=200) as node:
        zk = node.client()
        left: queue.Queue = queue.Queue()
        Membership(zk, "/killed").listen(lambda m: None, left.put)
        member = subprocess.Popen(
            [sys.executable, "-c", _MEMBER, node.hosts], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert member.stdout.readline().startswith("joined")
            assert Membership(zk, "/killed").members() == ["worker"]
            os.kill(member.pid, signal.SIGKILL)  # no close: only the session timeout ends it
            member.wait(10)
            killed_at = time.monotonic()
            assert left.get(timeout=20) == "worker"
            waited = time.monotonic() - killed_at
        finally:
            if member.poll() is None:
                member.kill()
                member.wait(10)
        # Reported, not asserted as a bound (timings vary): the 1 s session plus the node's
        # expiry check; a node that expired sessions at once would not be waiting at all.
        print(f"member seen leaving {waited:.2f} s after SIGKILL (session timeout 1 s)")
        assert waited > 0.5  # the session outlived its process until its timeout
        assert Membership(zk, "/killed").members() == []
