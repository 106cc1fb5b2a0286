"""Shared fixtures: a real standalone node per test (its own data dir and free port)."""

from __future__ import annotations

import pytest

from zoomq.testing import ZoomqServer, zoomq_server  # noqa: F401 - the fixture `node` builds on


@pytest.fixture
def node(zoomq_server: ZoomqServer) -> ZoomqServer:  # noqa: F811 - the imported fixture, by name
    return zoomq_server


@pytest.fixture
def zk(node: ZoomqServer):
    return node.client()


@pytest.fixture(params=["threaded", "asyncio"])
def zk_face(request: pytest.FixtureRequest, node: ZoomqServer):
    """A client on `node` through each face: `zoomq.Client`, and `zoomq.aio.Client` driven from
    the test's thread (tests_support.Blocking). Modules whose tests must pass on both use it as zk."""
    if request.param == "threaded":
        yield node.client()
        return
    from tests_support import asyncio_client

    with asyncio_client(node.hosts) as client:
        yield client
