"""zoomq.testing.free_port: ports below the kernel's ephemeral range, each handed out once per
process, from a slice of its own for each pytest-xdist worker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from zoomq.testing import _ephemeral_low, free_port

_SHOW = "import json; from zoomq.testing import free_port; print(json.dumps([free_port() for _ in range(200)]))"


def _ports_of(worker: str, count: str) -> list[int]:
    env = {**os.environ, "PYTEST_XDIST_WORKER": worker, "PYTEST_XDIST_WORKER_COUNT": count}
    out = subprocess.run([sys.executable, "-c", _SHOW], env=env, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_each_port_once_and_below_the_ephemeral_range():
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    low = _ephemeral_low()
    assert all(port < low for port in ports), "a port from the range outgoing connections use"


def test_a_port_something_listens_on_is_skipped():
    port = free_port()
    with socket.create_server(("127.0.0.1", port + 1)):
        later = [free_port() for _ in range(3)]
    assert port + 1 not in later


def test_two_workers_never_share_a_port():
    gw0, gw1 = _ports_of("gw0", "2"), _ports_of("gw1", "2")
    assert not set(gw0) & set(gw1)
    assert max(gw0) < min(gw1), "worker 0's slice lies below worker 1's"
