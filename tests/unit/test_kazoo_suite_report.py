"""The kazoo-suite runner's reading of junit XML and its comparison table."""

from __future__ import annotations

import pytest

from bench.kazoo_suite import parse_junit, report

pytestmark = pytest.mark.timeout(30)

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="kazoo.tests.test_client.TestClient" name="test_ok" />
<testcase classname="kazoo.tests.test_client.TestClient" name="test_broken"><failure message="x" /></testcase>
<testcase classname="kazoo.tests.test_client.TestReconfig" name="test_pending"><skipped type="pytest.xfail" message="x" /></testcase>
<testcase classname="kazoo.tests.test_sasl.TestGSSAPI" name="test_skipped"><skipped type="pytest.skip" message="x" /></testcase>
<testcase classname="kazoo.tests.test_lock.KazooLockTests" name="test_teardown"><error message="teardown" /></testcase>
</testsuite></testsuites>
"""


def test_outcomes_per_test_and_the_comparison(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    zoomq = parse_junit(path)
    assert zoomq == {
        "test_client.py::TestClient::test_ok": "passed",
        "test_client.py::TestClient::test_broken": "failed",
        "test_client.py::TestReconfig::test_pending": "xfailed",
        "test_sasl.py::TestGSSAPI::test_skipped": "skipped",
        "test_lock.py::KazooLockTests::test_teardown": "failed",
    }
    zookeeper = dict.fromkeys(zoomq, "passed") | {"test_sasl.py::TestGSSAPI::test_skipped": "skipped"}
    text = report({"zoomq": zoomq, "zookeeper": zookeeper}, "2.11.0")
    assert "| test_client.py | 1 / 1 / 0 / 1 | 3 / 0 / 0 / 0 |" in text
    assert "Pass on ZooKeeper, not on zoomq (3):" in text
    assert "- `test_client.py::TestReconfig::test_pending`: xfailed" in text
    assert parse_junit(tmp_path / "missing.xml") == {}
