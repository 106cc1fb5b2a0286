"""Shared fixtures: a real standalone node per test (its own data dir and free port)."""

from __future__ import annotations

import pytest

from zoomq.testing import ZoomqServer, zoomq_server  # noqa: F401 - the fixture `node` builds on


@pytest.fixture
def node(zoomq_server: ZoomqServer) -> ZoomqServer:
    return zoomq_server


@pytest.fixture
def zk(node: ZoomqServer):
    return node.client()
