"""/zookeeper/config shows the ensemble's membership as ZooKeeper 3.5+ does (every node the same;
empty on a standalone node), through get_config, the shell's `config` and a plain get."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zoomq.testing import ZoomqEnsemble

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_every_node_shows_the_membership_in_zookeeper_config(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path) as ens:
        texts = set()
        for node in ens.nodes:
            zk = ens.client(hosts=node.hosts)
            data, stat = zk.get_config()
            assert zk.get("/zookeeper/config")[0] == data
            texts.add(data)
            zk.stop()
        (text,) = texts
        lines = text.decode().splitlines()
        assert lines[-1] == "version=0"
        ports = [n.hosts.rsplit(":", 1)[1] for n in ens.nodes]
        assert [line.split("=", 1)[0] for line in lines[:-1]] == ["server.1", "server.2", "server.3"]
        assert all(line.endswith(f";127.0.0.1:{port}") and ":participant;" in line for line, port in zip(lines, ports))
        out = subprocess.run(
            [sys.executable, "-m", "zoomq", "shell", ens.nodes[0].hosts, "-c", "config; config -c"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [*lines, "0 " + ",".join(f"127.0.0.1:{p}" for p in ports)]


def test_a_standalone_node_has_an_empty_config(zk):
    data, _stat = zk.get_config()
    assert data in (b"", None)
