"""No ambiguity after a lost connection: pending requests are re-sent with the same session and
xid, and a write that was already applied is answered with its original result, not applied
twice (the leader's replicated table of recent results)."""

from __future__ import annotations

import pytest

from zoomq.testing import ZoomqEnsemble, ZoomqServer, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

BURST = 400


def _burst_then(zk, fault):
    """Pipeline BURST sequential creates, run `fault` while they are in flight; the results."""
    zk.ensure_path("/r")
    results = [zk.create_async("/r/n-", str(i).encode(), sequence=True) for i in range(BURST)]
    fault()
    return [r.get(timeout=60) for r in results]


def _check(zk, paths):
    assert len(set(paths)) == BURST, "two requests were answered with the same node"
    children = zk.get_children("/r")
    assert len(children) == BURST, f"{len(children)} nodes for {BURST} creates: some applied twice or lost"
    assert sorted("/r/" + c for c in children) == sorted(paths)
    for i, path in enumerate(paths):
        assert zk.get(path)[0] == str(i).encode()
    assert paths == sorted(paths), "re-sent requests kept their order"


def test_pipelined_creates_survive_a_node_crash_exactly_once(tmp_path):
    server = ZoomqServer(data_dir=tmp_path / "d", max_session_timeout_ms=60_000).start()
    try:
        zk = server.client(timeout=30.0)
        watcher = server.client()

        def crash_and_restart():
            wait_for(lambda: watcher.exists("/r/n-0000000005") is not None, 30, "some creates applied")
            server.kill()
            server.start(timeout=60)

        paths = _burst_then(zk, crash_and_restart)
        _check(zk, paths)
    finally:
        server.stop()


def test_pipelined_creates_survive_a_leader_crash_exactly_once(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path) as ens:
        leader = ens.leader()
        others = [n for n in ens.nodes if n is not leader]
        zk = ens.client(hosts=",".join(n.hosts for n in [leader, *others]), randomize_hosts=False, timeout=30.0)

        watcher = ens.client(hosts=others[0].hosts)

        def crash():
            # Another session watches progress (this one's reads would queue behind its writes).
            wait_for(lambda: watcher.exists("/r/n-0000000005") is not None, 30, "some creates applied")
            leader.kill()

        paths = _burst_then(zk, crash)
        _check(zk, paths)
