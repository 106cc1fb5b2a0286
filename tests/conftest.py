"""Shared fixtures: a real standalone node per test (its own data dir and free port)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zoomq.testing import ZoomqServer


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ZoomqServer]:
    server = ZoomqServer(data_dir=tmp_path / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def zk(node: ZoomqServer):
    client = node.client()
    yield client
