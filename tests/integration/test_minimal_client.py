"""The protocol as documented (docs/protocol.md) is enough to write a client: the minimal client in
examples/ (no zoomq imports) talks to a real node."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

_PATH = Path(__file__).resolve().parents[2] / "examples" / "minimal_client.py"


@pytest.fixture(scope="module")
def mini():
    spec = importlib.util.spec_from_file_location("minimal_client", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_documented_protocol_round_trip(node, mini):
    c = mini.MiniClient(node.hosts)
    err, body = c.call("create", "/doc", b"hello", mini.OPEN_ACL, 0, 0)
    assert err == 0 and body[0] == "created" and body[1] == "/doc"
    err, body = c.call("get", "/doc", True)
    assert err == 0 and body[:2] == ["data", b"hello"] and len(body[2]) == 11
    other = mini.MiniClient(node.hosts)
    assert other.call("set", "/doc", b"world", -1)[0] == 0
    event = c.wait_event()
    assert event[0] == "e" and event[2] == 3 and event[4] == "/doc"
    assert c.call("set", "/doc", b"x", 0)[0] == -103  # BADVERSION, as documented
    assert c.call("get", "/missing", False)[0] == -101
    err, body = c.call("multi", [["create", 0, "/doc/a", b"", mini.OPEN_ACL, 0, 0], ["check", 0, "/doc", 99]])
    assert err == 0 and [r[0] for r in body[1]] == [0, -103]
    assert c.call("admin", "ruok")[1] == ["text", "imok"]
    other.close()
    c.close()


def test_the_example_script_runs(node, mini):
    assert mini.main(node.hosts) == 0
