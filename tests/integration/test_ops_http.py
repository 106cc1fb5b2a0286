"""The ops actor's HTTP faces on real nodes: Prometheus' /metrics scraped under load (values move
as they should), and ZooKeeper's AdminServer JSON with ZooKeeper's field names."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime.config import ConfigError, load
from zoomq.admin import ask, parse_mntr
from zoomq.testing import ZoomqEnsemble, ZoomqServer, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one /metrics scrape."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


class PortTaken(Exception):
    """Something else (another test's node, over ZeroMQ) answered on a port chosen for HTTP."""


def listening(port: int) -> None:
    """Until the ops actor's server on `port` answers (it starts next to the node's client port)."""

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
        except urllib.error.HTTPError:
            return True  # an answer, if not a page
        except http.client.HTTPException as exc:
            raise PortTaken(f"port {port} does not speak HTTP: {exc!r}") from None
        except OSError:
            return False
        return True

    wait_for(answers, 20, f"the HTTP server on port {port}")


def command(port: int, name: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/commands/{name}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def ens(tmp_path_factory):
    # A free port may be taken by another test process before this ensemble binds it (free_port
    # only finds one free now): then the ensemble starts again on other ports, at most 3 times.
    for attempt in range(3):
        ports = {sid: {"metrics_port": free_port(), "admin_port": free_port()} for sid in (1, 2, 3)}
        with ZoomqEnsemble(3, base_dir=tmp_path_factory.mktemp("ops"), node_overrides=ports) as ensemble:
            ensemble.ports = ports
            try:
                for node_ports in ports.values():
                    for port in node_ports.values():
                        listening(port)
            except PortTaken:
                if attempt == 2:
                    raise
                continue
            yield ensemble
            return


def test_metrics_move_with_the_load_as_they_should(ens):
    leader = ens.leader()
    port = ens.ports[leader.sid]["metrics_port"]
    before = scrape(port)
    zk = ens.client(hosts=leader.hosts)
    for i in range(50):
        zk.create(f"/m{i}", b"x" * 10)
        zk.get(f"/m{i}")
    after = wait_for(
        lambda: (
            (s := scrape(port))
            and value(s, "zoomq_txns_applied_total") >= value(before, "zoomq_txns_applied_total") + 50
            and s
        ),
        20,
        "the creates applied",
    )
    assert value(after, "znode_count") == value(before, "znode_count") + 50
    assert value(after, "packets_received_total") >= value(before, "packets_received_total") + 100
    assert value(after, "zoomq_request_latency_seconds_count", op="create") >= 50
    assert value(after, "zoomq_request_latency_seconds_bucket", op="get", le="+Inf") >= 50
    # The leader's counters reach its session actor with each heartbeat's learner stats.
    wait_for(
        lambda: (
            (s := scrape(port))
            and value(s, "zoomq_proposals_total") >= value(before, "zoomq_proposals_total") + 50
            and value(s, "zoomq_commits_total") >= value(before, "zoomq_commits_total") + 50
        ),
        20,
        "the leader's counters",
    )
    assert value(after, "zoomq_server_state", state="leader") == 1
    assert value(after, "zoomq_elections_total") >= 1 and value(after, "election_time") > 0
    assert value(after, "learners") == 2 and value(after, "synced_followers") == 2
    assert {labels for (name, labels) in after if name == "zoomq_learner_lag_txns"} == {
        (("sid", str(n.sid)),) for n in ens.nodes if n is not leader
    }
    for actor in ("log", "session", "election", "leader", "ops"):
        wait_for(
            lambda a=actor: scrape(port).get(("zoomq_actor_rss_bytes", (("actor", a),)), 0) > 0, 20, f"{actor}'s RSS"
        )
    wait_for(lambda: scrape(port).get(("zoomq_fsync_seconds_count", ()), 0) >= 1, 20, "the log actor's fsyncs")
    queues = {labels for (name, labels) in scrape(port) if name == "zoomq_bus_queued_frames"}
    assert (("actor", "session"), ("dest", "role")) in queues and (("actor", "log"), ("dest", "role")) in queues
    follower = next(n for n in ens.nodes if n is not leader)
    on_follower = scrape(ens.ports[follower.sid]["metrics_port"])
    assert value(on_follower, "zoomq_server_state", state="follower") == 1
    assert ("zoomq_proposals_total", ()) not in on_follower  # the leader's counters, on the leader only
    mntr = parse_mntr(ask("127.0.0.1", leader.port, "mntr"))
    assert float(mntr["zk_avg_latency"]) > 0 and "zoomq_actor_session_rss_bytes" in mntr


def test_the_admin_server_answers_zookeepers_commands_with_its_field_names(ens):
    leader = ens.leader()
    port = ens.ports[leader.sid]["admin_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/commands", timeout=10) as r:
        assert {"monitor", "server_stats", "configuration", "leader", "voting_view", "watches_by_path"} <= set(
            json.loads(r.read())["commands"]
        )
    for name in ("mntr", "monitor"):
        status, body = command(port, name)
        assert status == 200 and body["command"] == "monitor" and body["error"] is None
        assert body["server_state"] == "leader" and body["znode_count"] >= 4 and "avg_latency" in body
    status, body = command(port, "ruok")
    assert (status, body) == (200, {"command": "ruok", "error": None})
    status, body = command(port, "srvr")
    assert body["server_stats"]["server_state"] == "leader" and "last_processed_zxid" in body["server_stats"]
    status, body = command(port, "conf")
    assert body["client_port"] == leader.port and body["server_id"] == leader.sid
    status, body = command(port, "leader")
    assert body["is_leader"] is True and body["leader_id"] == leader.sid and body["leader_ip"] == "127.0.0.1"
    follower = next(n for n in ens.nodes if n is not leader)
    status, body = command(ens.ports[follower.sid]["admin_port"], "lead")
    assert body["is_leader"] is False and body["leader_id"] == leader.sid
    status, body = command(port, "voting_view")
    assert set(body["current_config"]) == {"1", "2", "3"} and body["current_config"][str(leader.sid)].endswith(
        f";127.0.0.1:{leader.port}"
    )
    zk = ens.client(hosts=leader.hosts)
    zk.create("/watched", b"")
    zk.get("/watched", watch=lambda event: None)
    status, body = command(port, "wchp")
    assert list(body["path2sessions"]["/watched"]) == [zk.client_id[0]]
    status, body = command(port, "wchs")
    assert body["num_total_watches"] >= 1 and body["num_paths"] >= 1
    status, body = command(port, "isro")
    assert body["read_only"] is False
    status, body = command(port, "cons")
    assert any(c["session_id"] == hex(zk.client_id[0]) for c in body["connections"])
    status, body = command(port, "envi")
    assert "zookeeper.version" in body
    status, body = command(port, "nonsense")
    assert status == 404 and "not found" in body["error"]
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/elsewhere", timeout=10)


def test_ports_that_clash_are_refused(tmp_path):
    for fields in (
        {"metrics_port": 2181},
        {"admin_port": 2181},
        {"metrics_port": 9000, "admin_port": 9000},
        {"metrics_port": 70000},
    ):
        with pytest.raises(ConfigError, match="metrics_port and admin_port"):
            load(None, data_dir=str(tmp_path), client_port=2181, **fields)


def test_a_standalone_node_serves_both_and_nothing_without_them(tmp_path):
    metrics, admin_port = free_port(), free_port()
    with ZoomqServer(data_dir=tmp_path / "on", metrics_port=metrics, admin_port=admin_port) as node:
        listening(metrics)
        listening(admin_port)
        assert value(scrape(metrics), "zoomq_server_state", state="standalone") == 1
        status, body = command(admin_port, "leader")
        assert body["is_leader"] is True and body["leader_ip"] == "127.0.0.1"
        assert "ops" in node.actor_pids()
    with ZoomqServer(data_dir=tmp_path / "off") as node:
        assert "ops" not in node.actor_pids()  # off by default: no process, no port


def test_the_grafana_dashboard_reads_metrics_the_nodes_export(ens):
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text())
    leader = ens.leader()
    ens.client(hosts=leader.hosts).create("/for-the-dashboard", b"")
    port = ens.ports[leader.sid]["metrics_port"]
    exported = wait_for(
        lambda: (names := {name for name, _ in scrape(port)}) and "zoomq_learner_lag_txns" in names and names,
        20,
        "the leader's counters",
    )
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        names = set(
            re.findall(r"\b([a-z_]+(?:_total|_bucket|_bytes|_txns|_count|_state|_requests|_connections|_size))\b", expr)
        )
        names -= {"by", "sum", "rate", "increase", "histogram_quantile"}
        assert names and names <= exported, f"{expr}: {names - exported} not exported"
