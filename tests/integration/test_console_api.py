"""The web console's API against real zoomq nodes (starlette's TestClient in-process; uvicorn on
a thread for the live-watch stream; the `zoomq console` command as a subprocess once)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from zoomq.security import make_digest_acl
from zoomq.testing import ZoomqEnsemble, ZoomqServer, free_port, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:Using `httpx` with:UserWarning"),
]

pytest.importorskip("starlette", reason="the console extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the console extra (uvicorn) is not installed")

with warnings.catch_warnings():  # starlette 1.x: "Using `httpx` with `starlette.testclient` is deprecated"
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from zoomq.console.app import ConsoleConfig, create_app  # noqa: E402

ORIGIN = "http://testserver"
SCRIPT = "<script>window.__xss = 1</script>"


class Browser:
    """One browser session on the console: its cookie jar and CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.http = client
        self.csrf = client.get("/api/session").json()["csrf"]

    def get(self, url: str, **params: Any) -> Any:
        return self.http.get(url, params=params)

    def post(self, url: str, body: dict[str, Any], **headers: str) -> Any:
        return self.http.post(url, json=body, headers={"origin": ORIGIN, "x-csrf-token": self.csrf, **headers})


def another_browser(browser: Browser) -> Browser:
    """A second browser on the same console (its own cookies; the app's lifespan is the first one's)."""
    return Browser(TestClient(browser.http.app))


@contextlib.contextmanager
def console_for(hosts: str, **config: Any) -> Iterator[TestClient]:
    app = create_app(ConsoleConfig(hosts=hosts, allowed_hosts=["testserver"], **config))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def browser(node: ZoomqServer) -> Iterator[Browser]:
    with console_for(node.hosts) as client:
        yield Browser(client)


def test_browse_children_with_counts_and_data_text_or_hex(node: ZoomqServer, browser: Browser) -> None:
    zk = node.client()
    zk.create("/app/cfg", b"v1", makepath=True)
    zk.create("/app/bin", b"\x00\xff\x10")
    zk.create("/app/cfg/x", b"")
    listing = browser.get("/api/children", path="/app").json()
    assert [(c["name"], c["numChildren"], c["dataLength"]) for c in listing["children"]] == [
        ("bin", 0, 3),
        ("cfg", 1, 2),
    ]
    assert listing["total"] == 2
    root = browser.get("/api/children", path="/").json()
    assert {"app", "zookeeper"} <= {c["name"] for c in root["children"]}
    text = browser.get("/api/node", path="/app/cfg").json()
    assert text["data"] == {"encoding": "text", "value": "v1", "size": 2}
    assert text["stat"]["version"] == 0 and text["stat"]["numChildren"] == 1
    assert text["acls"] == [{"scheme": "world", "id": "anyone", "perms": "cdrwa", "permsList": ["ALL"]}]
    binary = browser.get("/api/node", path="/app/bin").json()
    assert binary["data"] == {"encoding": "hex", "value": "00 ff 10", "size": 3}
    missing = browser.get("/api/node", path="/nope")
    assert (missing.status_code, missing.json()["error"]) == (404, "NoNodeError")
    bad = browser.get("/api/node", path="no-slash")
    assert (bad.status_code, bad.json()["error"]) == (400, "BadPath")


def test_edit_with_version_check_and_stale_version_refused(node: ZoomqServer, browser: Browser) -> None:
    zk = node.client()
    zk.create("/cfg", b"one")
    loaded = browser.get("/api/node", path="/cfg").json()["stat"]["version"]
    r = browser.post("/api/node/set", {"path": "/cfg", "data": "two", "encoding": "text", "version": loaded})
    assert r.status_code == 200 and r.json()["stat"]["version"] == 1
    assert zk.get("/cfg")[0] == b"two"
    # Someone else writes; the page still holds version 1.
    zk.set("/cfg", b"theirs")
    r = browser.post("/api/node/set", {"path": "/cfg", "data": "mine", "encoding": "text", "version": 1})
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "BadVersionError" and body["version"] == 1 and body["currentVersion"] == 2
    assert zk.get("/cfg")[0] == b"theirs"  # refused: nothing written
    r = browser.post("/api/node/set", {"path": "/cfg", "data": "de ad", "encoding": "hex", "version": 2})
    assert r.status_code == 200 and zk.get("/cfg")[0] == b"\xde\xad"


def test_create_kinds(node: ZoomqServer, browser: Browser) -> None:
    zk = node.client()
    zk.create("/p", b"")
    r = browser.post("/api/node/create", {"parent": "/p", "name": "plain", "data": "hi", "kind": "persistent"})
    assert r.json() == {"path": "/p/plain"} and zk.get("/p/plain")[0] == b"hi"
    r = browser.post("/api/node/create", {"parent": "/p", "name": "seq-", "kind": "sequential"})
    assert r.json()["path"].startswith("/p/seq-00000")
    r = browser.post("/api/node/create", {"parent": "/p", "name": "box", "kind": "container"})
    assert r.status_code == 200 and zk.exists("/p/box") is not None
    r = browser.post("/api/node/create", {"parent": "/p", "name": "ttl", "kind": "ttl", "ttl_ms": 60000})
    assert r.status_code == 200 and zk.exists("/p/ttl") is not None
    r = browser.post("/api/node/create", {"parent": "/p", "name": "plain", "kind": "persistent"})
    assert (r.status_code, r.json()["error"]) == (409, "NodeExistsError")
    r = browser.post("/api/node/create", {"parent": "/p", "name": "t2", "kind": "ttl"})
    assert (r.status_code, r.json()["error"]) == (400, "BadRequest")
    assert zk.exists("/p/plain").ephemeralOwner == 0  # never ephemeral: the console's session is not the owner's


def test_noauth_node_shown_as_noauth_until_login(node: ZoomqServer, browser: Browser) -> None:
    zk = node.client()
    zk.create("/locked", b"top secret", acl=[make_digest_acl("alice", "pw", all=True)])
    node_view = browser.get("/api/node", path="/locked")
    assert node_view.status_code == 200
    body = node_view.json()
    assert body["noauth"] is True and body["data"] is None and body["dataError"]["error"] == "NoAuthError"
    listed = {c["name"]: c for c in browser.get("/api/children", path="/").json()["children"]}
    assert listed["locked"]["noauth"] is True  # listed, marked, not an error
    assert "top secret" not in node_view.text
    r = browser.post("/api/node/set", {"path": "/locked", "data": "x", "version": 0})
    assert (r.status_code, r.json()["error"]) == (403, "NoAuthError")
    # Wrong password: still NoAuth. Right one: readable, in this browser session only.
    assert browser.post("/api/login", {"user": "alice", "password": "nope"}).status_code == 200
    assert browser.get("/api/node", path="/locked").json()["noauth"] is True
    r = browser.post("/api/login", {"user": "alice", "password": "pw"})
    assert r.status_code == 200 and "digest:alice" in r.json()["identities"]
    assert browser.get("/api/node", path="/locked").json()["data"]["value"] == "top secret"
    assert "pw" not in json.dumps(browser.get("/api/session").json())  # identities name the user only
    other = another_browser(browser)  # another browser: another zoomq session
    assert other.get("/api/node", path="/locked").json()["noauth"] is True
    # Logging out closes this session's client: NoAuth again.
    r = browser.post("/api/logout", {})
    browser.csrf = r.json()["csrf"]
    assert browser.get("/api/node", path="/locked").json()["noauth"] is True


def test_command_line_credentials_apply_to_every_session(node: ZoomqServer) -> None:
    zk = node.client()
    zk.create("/ops", b"ok", acl=[make_digest_acl("ops", "s3", read=True)])
    with console_for(node.hosts, auth=[("digest", "ops:s3")]) as client:
        browser = Browser(client)
        assert browser.get("/api/node", path="/ops").json()["data"]["value"] == "ok"
        assert browser.get("/api/session").json()["commandLineIdentities"] == ["digest:ops"]


def test_recursive_delete_needs_a_confirmation_with_the_count(node: ZoomqServer, browser: Browser) -> None:
    zk = node.client()
    for path in ("/tree/a/1", "/tree/a/2", "/tree/b"):
        zk.create(path, b"", makepath=True)
    r = browser.post("/api/node/delete", {"path": "/tree", "version": -1})
    assert (r.status_code, r.json()["error"]) == (409, "NotEmptyError")
    r = browser.post("/api/node/delete", {"path": "/tree", "recursive": True})
    assert (r.status_code, r.json()["error"]) == (428, "ConfirmationRequired")
    r = browser.post("/api/node/delete", {"path": "/tree", "recursive": True, "confirm": "made-up"})
    assert r.status_code == 428 and zk.exists("/tree") is not None
    plan = browser.post("/api/node/delete-plan", {"path": "/tree"}).json()
    assert (
        plan["count"] == 5
        and plan["sample"][0] == "/tree"
        and set(plan["sample"]) == {"/tree", "/tree/a", "/tree/b", "/tree/a/1", "/tree/a/2"}
    )
    zk.create("/tree/c", b"")  # the subtree grows between the count and the confirmation
    r = browser.post("/api/node/delete", {"path": "/tree", "recursive": True, "confirm": plan["token"]})
    assert r.status_code == 409 and r.json()["error"] == "SubtreeChanged" and r.json()["count"] == 6
    assert zk.exists("/tree/a/1") is not None  # nothing deleted
    r = browser.post("/api/node/delete", {"path": "/tree", "recursive": True, "confirm": r.json()["token"]})
    assert r.json() == {"path": "/tree", "deleted": 6} and zk.exists("/tree") is None
    zk.create("/leaf", b"")
    assert browser.post("/api/node/delete", {"path": "/leaf", "version": 3}).json()["error"] == "BadVersionError"
    assert browser.post("/api/node/delete", {"path": "/leaf", "version": 0}).json() == {"path": "/leaf", "deleted": 1}
    assert browser.post("/api/node/delete-plan", {"path": "/zookeeper"}).json()["error"] == "Protected"


def test_csrf_and_cross_origin_are_refused_before_the_ensemble(node: ZoomqServer, browser: Browser) -> None:
    zk = node.client()
    zk.create("/guarded", b"original")
    attempts = [
        ({"origin": ORIGIN}, "CsrfTokenMissing"),  # no token
        ({"origin": ORIGIN, "x-csrf-token": "forged"}, "CsrfTokenInvalid"),
        ({"origin": "http://evil.example", "x-csrf-token": browser.csrf}, "CrossOrigin"),
        ({"origin": "null", "x-csrf-token": browser.csrf}, "CrossOrigin"),
        ({"x-csrf-token": browser.csrf, "sec-fetch-site": "cross-site", "origin": ORIGIN}, "CrossSite"),
    ]
    body = {"path": "/guarded", "data": "pwned", "version": -1}
    for headers, error in attempts:
        r = browser.http.post("/api/node/set", json=body, headers=headers)
        assert (r.status_code, r.json()["error"]) == (403, error), headers
        r = browser.http.post("/api/node/delete", json={"path": "/guarded"}, headers=headers)
        assert r.status_code == 403
    r = browser.http.post(
        "/api/node/set", json=body, headers={"origin": ORIGIN, "x-csrf-token": browser.csrf, "host": "evil.example"}
    )
    assert (r.status_code, r.json()["error"]) == (403, "BadHost")
    assert zk.get("/guarded")[0] == b"original" and zk.get("/guarded")[1].version == 0
    # Another browser session's token is no good here either.
    other = another_browser(browser)
    r = browser.http.post("/api/node/set", json=body, headers={"origin": ORIGIN, "x-csrf-token": other.csrf})
    assert r.status_code == 403
    assert zk.get("/guarded")[0] == b"original"


def test_script_in_names_and_data_travels_as_json_text(node: ZoomqServer, browser: Browser) -> None:
    zk = node.client()
    r = browser.post(
        "/api/node/create", {"parent": "/", "name": SCRIPT.replace("/", "∕"), "data": SCRIPT, "kind": "persistent"}
    )
    assert r.status_code == 200
    created = r.json()["path"]
    listing = browser.get("/api/children", path="/")
    assert listing.headers["content-type"].startswith("application/json")
    assert listing.headers["x-content-type-options"] == "nosniff"
    assert created in [c["path"] for c in listing.json()["children"]]
    view = browser.get("/api/node", path=created)
    assert view.headers["content-type"].startswith("application/json")
    assert view.json()["data"] == {"encoding": "text", "value": SCRIPT, "size": len(SCRIPT.encode())}
    assert zk.get(created)[0] == SCRIPT.encode()
    page = browser.http.get("/tree", params={"path": created})
    assert SCRIPT not in page.text and "<script>" not in page.text  # the page is static: no value is ever put in it


def test_ensemble_endpoint_on_a_standalone_node(node: ZoomqServer, browser: Browser) -> None:
    zk = node.client()
    zk.create("/m", b"")
    first = browser.get("/api/ensemble").json()
    (row,) = first["hosts"]
    assert row["ok"] and row["role"] == "standalone" and row["host"] == node.hosts and first["leader"] == node.hosts
    assert row["znodes"] >= 2 and row["zxid"].startswith("0x") and row["sessions"] >= 1
    for i in range(20):
        zk.set("/m", str(i).encode())

    def rated() -> Any:
        sample = browser.get("/api/ensemble").json()
        return sample if sample["hosts"][0]["receivedPerSecond"] is not None else None

    assert (
        wait_for(rated, timeout=10, what="a packets/s rate from two samples", interval=0.6)["hosts"][0][
            "receivedPerSecond"
        ]
        >= 0
    )


@pytest.mark.timeout(180)
def test_ensemble_endpoint_shows_a_new_leader_after_a_kill(tmp_path: Any) -> None:
    with ZoomqEnsemble(3, base_dir=tmp_path / "ens") as ens, console_for(ens.hosts) as client:
        browser = Browser(client)
        leader = ens.leader()
        sample = wait_for(
            lambda: (s := browser.get("/api/ensemble").json())["leader"] and s, timeout=20, what="a leader on the page"
        )
        assert sample["leader"] == leader.hosts and sorted(r["role"] for r in sample["hosts"]) == [
            "follower",
            "follower",
            "leader",
        ]
        leader.kill()
        new = ens.wait_leader(exclude=leader, timeout=30)

        def shows_new_leader() -> Any:
            s = browser.get("/api/ensemble").json()
            rows = {r["host"]: r for r in s["hosts"]}
            return s if s["leader"] == new.hosts and not rows[leader.hosts]["ok"] else None

        sample = wait_for(shows_new_leader, timeout=30, what="the new leader on the page", interval=0.3)
        assert sample["up"] == 2 and int(sample["hosts"][0]["epoch"] or 0) >= 0


def test_live_watch_stream(node: ZoomqServer) -> None:
    import httpx

    from zoomq.console.testing import ConsoleThread

    zk = node.client()
    zk.create("/live", b"v0")
    zk.create("/locked", b"", acl=[make_digest_acl("alice", "pw", all=True)])
    with ConsoleThread(node.hosts) as console, httpx.Client(base_url=console.url, timeout=10) as http:
        http.get("/api/session")
        events: list[tuple[str, dict[str, Any]]] = []
        with http.stream("GET", "/api/watch", params={"path": "/live"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()

            def next_event() -> tuple[str, dict[str, Any]]:
                kind = None
                for line in lines:
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind:
                        return kind, json.loads(line[6:])
                raise AssertionError("the stream ended")

            events.append(next_event())
            assert events[0][0] == "data" and events[0][1]["data"]["value"] == "v0"
            zk.set("/live", b"v1")
            kinds = {}
            while "data" not in kinds or kinds["data"]["stat"]["version"] < 1:
                kind, payload = next_event()
                kinds[kind] = payload
            assert kinds["data"]["data"]["value"] == "v1"
            zk.create("/live/kid", b"")
            while True:
                kind, payload = next_event()
                if kind == "children" and payload["children"] == ["kid"]:
                    break
        with http.stream("GET", "/api/watch", params={"path": "/locked"}) as stream:
            text = "".join(stream.iter_text())  # one error event, then the stream ends
        assert "event: error" in text and "NoAuthError" in text


def test_console_command_serves_and_stops(node: ZoomqServer) -> None:
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoomq", "console", "--hosts", node.hosts, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def up() -> Any:
            if proc.poll() is not None:
                raise AssertionError(f"zoomq console exited: {proc.stdout.read().decode()}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/tree", timeout=1)
            except httpx.HTTPError:
                return None

        page = wait_for(up, timeout=20, what="zoomq console serving", interval=0.1)
        assert page.status_code == 200 and "zoomq console" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert httpx.get(f"http://localhost:{port}/tree", timeout=5).status_code == 200
        refused = httpx.get(f"http://127.0.0.1:{port}/api/session", headers={"host": "evil.example"}, timeout=5)
        assert refused.status_code == 403
    finally:
        with contextlib.suppress(psutil.Error):
            tree = psutil.Process(proc.pid).children(recursive=True)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            for child in tree:
                with contextlib.suppress(psutil.Error):
                    child.kill()
        if proc.stdout is not None:
            proc.stdout.close()
