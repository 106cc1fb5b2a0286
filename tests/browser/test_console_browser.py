"""The web console in a real browser: Playwright driving the system's Chromium (never a
downloaded one) against the console served by uvicorn on a thread and real zoomq nodes.

Screenshots are kept: under $ZOOMQ_ARTIFACTS/console-browser/<test>/ when ZOOMQ_ARTIFACTS is set,
else under the test's tmp_path (pytest keeps the last three runs' tmp dirs). Skipped, saying why,
when no Chromium is found (/usr/bin/chromium, or `chromium` on PATH; ZOOMQ_CHROMIUM overrides).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zoomq.security import make_digest_acl
from zoomq.testing import ZoomqEnsemble, ZoomqServer


def find_chromium() -> str | None:
    explicit = os.environ.get("ZOOMQ_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = find_chromium()
if CHROMIUM is None:
    pytest.skip(
        "no Chromium found (/usr/bin/chromium or chromium on PATH; Debian: apt-get install chromium)",
        allow_module_level=True,
    )
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
pytest.importorskip("uvicorn", reason="the console extra is not installed (pip install -e '.[console]')")

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from zoomq.console.testing import ConsoleThread  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
WAIT_MS = 15_000


def artifacts_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = os.environ.get("ZOOMQ_ARTIFACTS")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    where = Path(root) / "console-browser" / name if root else tmp_path / "artifacts"
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


class Shots:
    """Numbered screenshots of a page into the test's artifacts directory."""

    def __init__(self, page: Page, where: Path) -> None:
        self.page, self.where, self.n = page, where, 0

    def __call__(self, name: str) -> Path:
        self.n += 1
        path = self.where / f"{self.n:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))  # type: ignore[attr-defined]
    page.shots = Shots(page, artifacts_dir(request, tmp_path))  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        try:
            page.shots("at-the-end")  # type: ignore[attr-defined] - what the page showed last, pass or fail
        except Exception:  # noqa: BLE001, S110 - a screenshot is a bonus
            pass
        context.close()


@pytest.fixture
def console(node: ZoomqServer) -> Iterator[ConsoleThread]:
    with ConsoleThread(node.hosts) as served:
        yield served


def open_tree(page: Page, console: ConsoleThread, path: str = "/") -> None:
    page.goto(f"{console.url}/tree?path={path}")
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.locator("#node-path")).to_have_text(path)


def test_create_edit_delete_by_clicking(node: ZoomqServer, console: ConsoleThread, page: Page) -> None:
    zk = node.client()
    open_tree(page, console)
    page.fill("#create-name", "app")
    page.fill("#create-data", "hello")
    page.click("#create-button")
    expect(page.locator("#create-result")).to_have_text("Created /app")
    assert zk.get("/app")[0] == b"hello"
    page.click("#children a[data-path='/app']")
    expect(page.locator("#node-path")).to_have_text("/app")
    expect(page.locator("#node-data")).to_have_text("hello")
    expect(page.locator("#data-encoding")).to_have_text("text")
    page.shots("node-app")
    page.fill("#edit-data", "hello, world")
    page.click("#edit-save")
    expect(page.locator("#edit-result")).to_contain_text("version 1")
    expect(page.locator("#node-data")).to_have_text("hello, world")
    assert zk.get("/app")[0] == b"hello, world"
    # Children of every kind the form offers.
    page.fill("#create-name", "kid")
    page.click("#create-button")
    expect(page.locator("#create-result")).to_have_text("Created /app/kid")
    page.fill("#create-name", "job-")
    page.select_option("#create-kind", "sequential")
    page.click("#create-button")
    expect(page.locator("#create-result")).to_contain_text("Created /app/job-00000")
    page.select_option("#create-kind", "ttl")
    expect(page.locator("#create-ttl")).to_be_visible()
    page.fill("#create-name", "lease")
    page.fill("#create-ttl", "30000")
    page.click("#create-button")
    expect(page.locator("#create-result")).to_have_text("Created /app/lease")
    page.select_option("#create-kind", "container")
    page.fill("#create-name", "box")
    page.click("#create-button")
    expect(page.locator("#create-result")).to_have_text("Created /app/box")
    expect(page.locator("#children li")).to_have_count(4)
    page.shots("created-children")
    # A recursive delete shows how many nodes go before anything is deleted.
    page.click("#delete-button")
    expect(page.locator("#delete-confirm-text")).to_contain_text("5 nodes go")
    expect(page.locator("#delete-confirm-yes")).to_have_text("Delete 5 nodes")
    page.shots("delete-confirmation")
    assert zk.exists("/app/kid") is not None
    page.click("#delete-confirm-yes")
    expect(page.locator("#flash")).to_contain_text("Deleted /app (5 nodes)")
    expect(page.locator("#node-path")).to_have_text("/")
    assert zk.exists("/app") is None
    expect(page.locator("#children a[data-path='/app']")).to_have_count(0)
    # A leaf: the confirmation names one node.
    zk.create("/leaf", b"")
    open_tree(page, console, "/leaf")
    page.click("#delete-button")
    expect(page.locator("#delete-confirm-text")).to_contain_text("1 node goes")
    page.click("#delete-confirm-no")
    expect(page.locator("#delete-confirm")).to_be_hidden()
    assert zk.exists("/leaf") is not None
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_stale_version_edit_is_refused(node: ZoomqServer, console: ConsoleThread, page: Page) -> None:
    zk = node.client()
    zk.create("/cfg", b"one")
    open_tree(page, console, "/cfg")
    expect(page.locator("#edit-version")).to_have_text("(loaded version 0)")
    page.fill("#edit-data", "mine")
    zk.set("/cfg", b"theirs")  # someone else writes meanwhile
    page.click("#edit-save")
    expect(page.locator("#edit-result")).to_contain_text("BadVersionError")
    expect(page.locator("#edit-result")).to_contain_text("now at version 1")
    expect(page.locator("#edit-result")).to_have_class("error")
    page.shots("stale-version-refused")
    assert zk.get("/cfg")[0] == b"theirs"
    page.click("#edit-reload")
    expect(page.locator("#node-data")).to_have_text("theirs")
    expect(page.locator("#edit-version")).to_have_text("(loaded version 1)")


def test_noauth_node_is_shown_as_noauth(node: ZoomqServer, console: ConsoleThread, page: Page) -> None:
    zk = node.client()
    zk.create("/locked", b"top secret", acl=[make_digest_acl("alice", "pw", all=True)])
    open_tree(page, console)
    expect(page.locator("#children li[data-name='locked'] .count")).to_have_text("NoAuth")
    page.click("#children a[data-path='/locked']")
    expect(page.locator("#node-path")).to_have_text("/locked")
    expect(page.locator("#node-noauth")).to_be_visible()
    expect(page.locator("#node-noauth")).to_contain_text("NoAuth")
    expect(page.locator("#node-error")).to_be_hidden()
    expect(page.locator("#data-section")).to_be_hidden()
    assert "top secret" not in page.content()
    page.shots("noauth")
    page.fill("#login-user", "alice")
    page.fill("#login-password", "pw")
    page.click("#login-button")
    expect(page.locator("#identities")).to_contain_text("digest:alice")
    expect(page.locator("#node-noauth")).to_be_hidden()
    expect(page.locator("#node-data")).to_have_text("top secret")
    assert "pw" not in page.url
    page.shots("after-login")


def test_script_in_names_and_data_is_shown_as_text(node: ZoomqServer, console: ConsoleThread, page: Page) -> None:
    zk = node.client()
    name = "<img src=x onerror=window.__xss=1>"
    value = "<script>window.__xss = 2</script><b>bold?</b>"
    zk.create("/" + name, value.encode())
    open_tree(page, console)
    link = page.locator("#children a", has_text=name)
    expect(link).to_have_text(name)
    link.click()
    expect(page.locator("#node-path")).to_have_text("/" + name)
    expect(page.locator("#node-data")).to_have_text(value)
    expect(page.locator("#breadcrumb a").nth(1)).to_have_text(name)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#node-data b").count() == 0 and page.locator("img[src='x']").count() == 0
    page.shots("script-escaped")


def test_live_watch_updates_the_page(node: ZoomqServer, console: ConsoleThread, page: Page) -> None:
    zk = node.client()
    zk.create("/live", b"v0")
    open_tree(page, console, "/live")
    page.click("#watch-toggle")
    expect(page.locator("#watch-status")).to_have_text("live")
    zk.set("/live", b"v1 from elsewhere")
    expect(page.locator("#node-data")).to_have_text("v1 from elsewhere")
    expect(page.locator("#stat-table tr[data-field='version'] td").nth(1)).to_have_text("1")
    zk.create("/live/child", b"")
    expect(page.locator("#children a[data-path='/live/child']")).to_have_count(1)
    page.shots("live-watch")
    page.click("#watch-toggle")
    expect(page.locator("#watch-toggle")).to_have_text("Watch live")


@pytest.mark.timeout(180)
def test_ensemble_page_shows_a_new_leader_after_a_kill(tmp_path: Path, page: Page) -> None:
    with ZoomqEnsemble(3, base_dir=tmp_path / "ens") as ens, ConsoleThread(ens.hosts) as served:
        zk = ens.client()
        leader = ens.leader()
        page.goto(f"{served.url}/ensemble")
        summary = page.locator("#ensemble-summary")
        expect(summary).to_contain_text(f"Leader: {leader.hosts}", timeout=30_000)
        expect(page.locator(f"#ensemble-table tr[data-host='{leader.hosts}']")).to_have_attribute("data-role", "leader")
        expect(page.locator("#ensemble-table tr[data-role='follower']")).to_have_count(2)
        for i in range(50):
            zk.create(f"/load-{i}", b"x")
        expect(page.locator("#ensemble-table tbody tr").first.locator("td").nth(7)).not_to_have_text(
            "–", timeout=10_000
        )
        page.shots("ensemble-before-kill")
        leader.kill()
        new_leader = ens.wait_leader(exclude=leader, timeout=30)
        expect(summary).to_contain_text(f"Leader: {new_leader.hosts}", timeout=30_000)
        expect(page.locator(f"#ensemble-table tr[data-host='{leader.hosts}']")).to_have_attribute("data-role", "down")
        expect(page.locator(f"#ensemble-table tr[data-host='{new_leader.hosts}']")).to_have_attribute(
            "data-role", "leader"
        )
        expect(summary).to_contain_text("2 of 3 hosts answering")
        page.shots("ensemble-after-kill")
