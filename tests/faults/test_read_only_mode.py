"""Read-only mode on a real ensemble: a node cut off from the quorum (the other two SIGSTOPped)
serves reads to a read-only client (CONNECTED_RO), refuses its writes with
NotReadOnlyCallError, says `ro` to isro; once the others are back the client moves to read-write
by itself. Without the setting, the same node serves nobody."""

from __future__ import annotations

import pytest

from zoomq import Client
from zoomq.admin import ask
from zoomq.exceptions import KazooException, NotReadOnlyCallError
from zoomq.states import KazooState, KeeperState
from zoomq.testing import ZoomqEnsemble, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


def _isro(node) -> str:
    host, port = node.hosts.rsplit(":", 1)
    try:
        return ask(host, int(port), "isro", timeout=2.0).strip()
    except Exception:  # noqa: BLE001 - not answering is an answer here
        return ""


def _readable(client: Client, path: str) -> bool:
    try:
        return client.get(path)[0] == b"before"
    except KazooException:
        return False


def test_a_cut_off_node_serves_read_only_clients_then_they_go_back_to_read_write(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path, read_only_mode=True) as ens:
        setup = ens.client()
        setup.create("/ro/cfg", b"before", makepath=True)
        alone = ens.followers()[0]
        others = [n for n in ens.nodes if n is not alone]
        client = Client(
            hosts=",".join(n.hosts for n in [alone, *others]), randomize_hosts=False, read_only=True, timeout=10.0
        )
        client.start(timeout=30)
        states: list[str] = []
        client.add_listener(states.append)
        try:
            client.sync("/ro/cfg")
            assert client.client_state == KeeperState.CONNECTED
            for node in others:
                node.pause()
            try:
                wait_for(lambda: _isro(alone) == "ro", 60, "the cut-off node serving read-only")
                wait_for(
                    lambda: client.client_state == KeeperState.CONNECTED_RO and _readable(client, "/ro/cfg"),
                    60,
                    "the client reading from the read-only node",
                )
                assert (
                    client.state == KazooState.CONNECTED
                )  # kazoo's KazooState: CONNECTED (read-only is the keeper state)
                assert client.get_children("/ro") == ["cfg"]
                with pytest.raises(NotReadOnlyCallError):
                    client.create("/ro/new")
                with pytest.raises(NotReadOnlyCallError):
                    client.get("/ro/cfg", linearizable=True)
            finally:
                for node in others:
                    node.resume()
            wait_for(lambda: client.client_state == KeeperState.CONNECTED, 60, "the client back on a read-write node")
            client.retry(client.create, "/ro/after", b"")
            setup.sync("/ro")  # another session: its node may not have applied that create yet
            assert setup.exists("/ro/after") is not None
            assert setup.exists("/ro/new") is None
        finally:
            client.stop()


def test_without_read_only_mode_a_cut_off_node_serves_no_one(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path) as ens:
        alone = ens.followers()[0]
        others = [n for n in ens.nodes if n is not alone]
        for node in others:
            node.pause()
        try:
            wait_for(lambda: _isro(alone) == "null", 60, "the cut-off node looking")
            client = Client(hosts=alone.hosts, read_only=True, timeout=10.0)
            with pytest.raises(KazooException):
                client.start(timeout=3)
            client.stop()
        finally:
            for node in others:
                node.resume()
