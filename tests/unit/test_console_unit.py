"""The web console without a node: its security checks (Host, cross-site, Origin, CSRF, headers),
rendering and request parsing, the tree helpers against an in-memory fake client, the ensemble
figures parsed from mntr / srvr text, the CLI's flags, and the front end's rules (no innerHTML)."""

from __future__ import annotations

import argparse
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from zoomq import exceptions as zx
from zoomq.console import core
from zoomq.console.monitor import parse_hosts, parse_srvr, summarize
from zoomq.security import ACL, Id
from zoomq.states import ZnodeStat

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore:Using `httpx` with:UserWarning")]

starlette = pytest.importorskip("starlette", reason="the console extra (starlette) is not installed")


# --- a fake zoomq client: a dict tree, results with .get(timeout) ------------------------------------


class _Result:
    def __init__(self, fn):
        try:
            self.value, self.error = fn(), None
        except Exception as exc:  # noqa: BLE001
            self.value, self.error = None, exc

    def get(self, timeout=None):
        if self.error is not None:
            raise self.error
        return self.value


def _stat(version=0, children=0, length=0):
    return ZnodeStat(1, 2, 1_700_000_000_000, 1_700_000_000_000, version, 0, 0, 0, length, children, 3)


class FakeClient:
    """Just the async calls the console's core makes."""

    def __init__(self, tree: dict[str, bytes], unreadable: set[str] = frozenset()) -> None:
        self.tree = dict(tree)
        self.versions = dict.fromkeys(self.tree, 0)
        self.unreadable = set(unreadable)
        self.started = False
        self.stopped = False
        self.auth: list[tuple[str, str]] = []

    def _kids(self, path):
        prefix = path.rstrip("/") + "/"
        return [
            p[len(prefix) :] for p in self.tree if p.startswith(prefix) and "/" not in p[len(prefix) :] and p != path
        ]

    def _need(self, path):
        if path not in self.tree:
            raise zx.NoNodeError(path)

    def exists_async(self, path):
        def read():
            if path in self.unreadable:  # zoomq checks READ on exists too
                raise zx.NoAuthError(path)
            return (
                _stat(self.versions[path], len(self._kids(path)), len(self.tree[path])) if path in self.tree else None
            )

        return _Result(read)

    def get_async(self, path):
        def read():
            self._need(path)
            if path in self.unreadable:
                raise zx.NoAuthError(path)
            return self.tree[path], _stat(self.versions[path], len(self._kids(path)), len(self.tree[path]))

        return _Result(read)

    def get_acls_async(self, path):
        def read():
            self._need(path)
            if path in self.unreadable:
                raise zx.NoAuthError(path)
            return [ACL(31, Id("world", "anyone"))], _stat()

        return _Result(read)

    def get_children_async(self, path):
        def read():
            self._need(path)
            return self._kids(path)

        return _Result(read)

    def delete_async(self, path, version=-1):
        def delete():
            self._need(path)
            if self._kids(path):
                raise zx.NotEmptyError(path)
            del self.tree[path]
            return True

        return _Result(delete)

    def start(self, timeout=None):
        self.started = True

    def stop(self):
        self.stopped = True

    def close(self):
        pass


TREE = {"/": b"", "/a": b"hello", "/a/b": b"\x00\x01\xff", "/a/b/c": b"", "/a/d": b"x", "/secret": b"s"}


# --- rendering and parsing --------------------------------------------------------------------------


def test_render_data_text_or_hex():
    assert core.render_data(b"hello\nworld") == {"encoding": "text", "value": "hello\nworld", "size": 11}
    assert core.render_data(b"<script>alert(1)</script>")["encoding"] == "text"  # text stays text: the page escapes it
    assert core.render_data(b"\x00\x01\xff") == {"encoding": "hex", "value": "00 01 ff", "size": 3}
    assert core.render_data("é".encode())["value"] == "é"
    assert core.render_data(b"a\x07b")["encoding"] == "hex"  # a control character is not printable
    assert core.render_data(None) == {"encoding": "text", "value": "", "size": 0}


def test_parse_data():
    assert core.parse_data("00 01 ff", "hex") == b"\x00\x01\xff"
    assert core.parse_data("é", "text") == "é".encode()
    with pytest.raises(core.ConsoleError):
        core.parse_data("zz", "hex")
    with pytest.raises(core.ConsoleError):
        core.parse_data("x", "base64")
    with pytest.raises(core.ConsoleError):
        core.parse_data(5, "text")


def test_render_stat_and_acls():
    stat = core.render_stat(_stat(version=4))
    assert stat["version"] == 4 and stat["czxidHex"] == "0x1" and stat["ctimeIso"].endswith("Z")
    acls = core.render_acls([ACL(31, Id("world", "anyone")), ACL(1 | 16, Id("digest", "u:x"))])
    assert acls[0]["perms"] == "cdrwa" and acls[1]["perms"] == "ra" and acls[1]["permsList"] == ["READ", "ADMIN"]


def test_create_request_parse():
    req = core.CreateRequest.parse({"parent": "/a", "name": "n", "kind": "ttl", "ttl_ms": "5000", "data": "v"})
    assert (req.path, req.kind, req.ttl_ms, req.sequential, req.data) == ("/a/n", "ttl", 5000, False, b"v")
    req = core.CreateRequest.parse({"parent": "/", "name": "", "kind": "sequential"})
    assert req.path == "/" and req.sequential and req.kind == "persistent"
    assert core.CreateRequest.parse({"parent": "/", "name": "q-", "kind": "sequential"}).path == "/q-"
    for bad in (
        {"parent": "/", "name": ""},
        {"parent": "/", "name": "a/b"},
        {"parent": "/", "name": "x", "kind": "ephemeral"},
        {"parent": "/", "name": "x", "kind": "ttl"},
        {"parent": "/", "name": "x", "kind": "container", "sequential": True},
        {"parent": "nope", "name": "x"},
        {"parent": "/", "name": "x", "acl": "all"},
    ):
        with pytest.raises(core.ConsoleError):
            core.CreateRequest.parse(bad)


def test_check_version_and_path():
    assert core.check_version(3) == 3 and core.check_version(-1) == -1
    for bad in (True, "3", -2, None):
        with pytest.raises(core.ConsoleError):
            core.check_version(bad)
    with pytest.raises(core.ConsoleError):
        core.check_path("/a//b")
    with pytest.raises(core.ConsoleError):
        core.check_deletable("/zookeeper/config")


def test_error_body_maps_kazoo_errors():
    assert core.error_body(zx.NoAuthError("/x")) == (403, {"error": "NoAuthError", "message": "/x"})
    assert core.error_body(zx.BadVersionError("/x"))[0] == 409
    assert core.error_body(zx.NoNodeError("/x"))[0] == 404
    assert core.error_body(zx.TimeoutError("slow"))[0] == 504


# --- the tree helpers on the fake client ------------------------------------------------------------


def test_list_children_and_read_node():
    client = FakeClient(TREE, unreadable={"/secret"})
    listing = core.list_children(client, "/a", 5)
    assert [(c["name"], c["numChildren"]) for c in listing["children"]] == [("b", 1), ("d", 0)]
    root = {c["name"]: c for c in core.list_children(client, "/", 5)["children"]}
    assert root["secret"]["noauth"] and root["secret"]["numChildren"] is None and not root["a"]["noauth"]
    node = core.read_node(client, "/a/b", 5)
    assert node["data"]["encoding"] == "hex" and node["stat"]["numChildren"] == 1 and not node["noauth"]
    secret = core.read_node(client, "/secret", 5)
    assert secret["noauth"] and secret["data"] is None and secret["dataError"]["error"] == "NoAuthError"
    assert secret["stat"] is None and secret["aclError"]["error"] == "NoAuthError"
    with pytest.raises(zx.NoNodeError):
        core.read_node(client, "/missing", 5)


def test_subtree_and_delete_tree():
    client = FakeClient(TREE)
    levels = core.subtree(client, "/a", 5)
    assert levels == [["/a"], ["/a/b", "/a/d"], ["/a/b/c"]]
    assert core.delete_tree(client, levels, 5) == 4
    assert sorted(client.tree) == ["/", "/secret"]
    with pytest.raises(core.ConsoleError):
        core.subtree(FakeClient(TREE), "/a", 5, limit=2)


def test_session_store_clients_idle_and_eviction():
    made: list[FakeClient] = []

    def factory(auth):
        made.append(FakeClient(TREE))
        made[-1].auth = auth
        return made[-1]

    store = core.SessionStore(factory, idle_s=0.0, max_sessions=2)
    s1 = store.new()
    assert store.client(s1) is store.client(s1) and made[0].started
    s1.last_used -= 10
    assert store.reap() == 1 and made[0].stopped and store.get(s1.id) is None
    with pytest.raises(core.ConsoleError):
        store.client(s1)  # an ended session gets no new client
    store.idle_s = 900
    a, b = store.new(), store.new()
    b.last_used -= 100  # b is the least recently used: the third session evicts it
    c = store.new()
    assert len(store) == 2 and store.get(b.id) is None and store.get(a.id) is a and store.get(c.id) is c


def test_delete_confirmation_tokens():
    session = core.SessionStore(lambda auth: FakeClient(TREE)).new()
    token = session.add_delete("/a", 4)
    with pytest.raises(core.ConsoleError) as info:
        session.take_delete(token, "/other")
    assert info.value.status == 428
    token = session.add_delete("/a", 4)
    assert session.take_delete(token, "/a").count == 4
    with pytest.raises(core.ConsoleError):
        session.take_delete(token, "/a")  # used once only


# --- ensemble figures ---------------------------------------------------------------------------------


def test_summarize_mntr_with_actor_lines():
    fields = {
        "zk_server_state": "leader",
        "zk_zxid": "0x300000007",
        "zk_epoch": "3",
        "zk_global_sessions": "4",
        "zk_num_alive_connections": "5",
        "zk_znode_count": "12",
        "zk_packets_received": "100",
        "zk_avg_latency": "0.42",
        "zoomq_actor_session_cpu_seconds": "1.5",
        "zoomq_actor_session_rss_bytes": "1048576",
        "zoomq_actor_session_restarts": "0",
        "zoomq_actor_log_writer_cpu_seconds": "0.25",
    }
    out = summarize(fields)
    assert (out["role"], out["zxid"], out["epoch"], out["sessions"], out["znodes"], out["avgLatencyMs"]) == (
        "leader",
        "0x300000007",
        3,
        4,
        12,
        0.42,
    )
    assert out["actors"] == {
        "session": {"cpuSeconds": 1.5, "rssBytes": 1048576, "restarts": 0},
        "log_writer": {"cpuSeconds": 0.25},
    }


def test_parse_srvr_fallback():
    text = (
        "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/1.5/9\nReceived: 10\nSent: 9\nConnections: 2\n"
        "Outstanding: 0\nZxid: 0x100000003\nMode: follower\nNode count: 7\n"
    )
    out = summarize(parse_srvr(text))
    assert (out["role"], out["zxid"], out["epoch"], out["znodes"], out["avgLatencyMs"]) == (
        "follower",
        "0x100000003",
        1,
        7,
        1.5,
    )


def test_parse_hosts():
    assert parse_hosts("127.0.0.1:2181, h2:2182/app") == [("127.0.0.1", 2181), ("h2", 2182)]
    assert parse_hosts("[::1]:5,h") == [("::1", 5), ("h", 2181)]


# --- the web app's guard -----------------------------------------------------------------------------


@pytest.fixture
def app_client():
    from starlette.testclient import TestClient

    from zoomq.console.app import ConsoleConfig, create_app

    made: list[FakeClient] = []

    def factory(auth):
        made.append(FakeClient(TREE, unreadable={"/secret"}))
        return made[-1]

    app = create_app(ConsoleConfig(hosts="127.0.0.1:1", allowed_hosts=["testserver"]), client_factory=factory)
    with TestClient(app) as client:
        client.made = made
        yield client
    assert all(c.stopped for c in made)  # the app closes every session's client when it stops


ORIGIN = {"origin": "http://testserver"}


def test_pages_carry_strict_headers_and_a_session_cookie(app_client):
    r = app_client.get("/tree")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert app_client.get("/", follow_redirects=False).headers["location"] == "/tree"
    assert app_client.get("/static/app.js").status_code == 200
    assert app_client.get("/static/style.css").status_code == 200


def test_state_changing_requests_need_origin_csrf_and_json(app_client):
    csrf = app_client.get("/api/session").json()["csrf"]
    body = {"path": "/a", "data": "x", "version": 0}
    r = app_client.post("/api/node/set", json=body)
    assert (r.status_code, r.json()["error"]) == (403, "CrossOrigin")
    r = app_client.post("/api/node/set", json=body, headers={"origin": "http://evil.example", "x-csrf-token": csrf})
    assert (r.status_code, r.json()["error"]) == (403, "CrossOrigin")
    r = app_client.post("/api/node/set", json=body, headers={"referer": "http://evil.example/x", "x-csrf-token": csrf})
    assert (r.status_code, r.json()["error"]) == (403, "CrossOrigin")
    r = app_client.post("/api/node/set", json=body, headers=ORIGIN)
    assert (r.status_code, r.json()["error"]) == (403, "CsrfTokenMissing")
    r = app_client.post("/api/node/set", json=body, headers={**ORIGIN, "x-csrf-token": csrf + "x"})
    assert (r.status_code, r.json()["error"]) == (403, "CsrfTokenInvalid")
    r = app_client.post(
        "/api/node/set",
        content=b"path=/a",
        headers={**ORIGIN, "x-csrf-token": csrf, "content-type": "application/x-www-form-urlencoded"},
    )
    assert (r.status_code, r.json()["error"]) == (415, "UnsupportedMediaType")
    assert app_client.made == []  # nothing reached the ensemble


def test_cross_site_and_foreign_host_are_refused(app_client):
    r = app_client.get("/api/node?path=/a", headers={"sec-fetch-site": "cross-site"})
    assert (r.status_code, r.json()["error"]) == (403, "CrossSite")
    r = app_client.get("/api/session", headers={"host": "attacker.example"})  # DNS rebinding
    assert (r.status_code, r.json()["error"]) == (403, "BadHost")
    # A top-level navigation from elsewhere may open the page (it carries no session cookie).
    assert (
        app_client.get("/tree", headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}).status_code
        == 200
    )


def test_api_without_a_session_is_refused():
    from starlette.testclient import TestClient

    from zoomq.console.app import ConsoleConfig, create_app

    app = create_app(
        ConsoleConfig(hosts="127.0.0.1:1", allowed_hosts=["testserver"]), client_factory=lambda auth: FakeClient(TREE)
    )
    with TestClient(app) as client:
        r = client.get("/api/node?path=/a")
        assert (r.status_code, r.json()["error"]) == (401, "NoSession")


def test_reads_noauth_and_recursive_delete_on_fake(app_client):
    csrf = app_client.get("/api/session").json()["csrf"]
    h = {**ORIGIN, "x-csrf-token": csrf}
    r = app_client.get("/api/node?path=/secret")
    assert r.status_code == 200 and r.json()["noauth"] is True
    r = app_client.post("/api/node/delete", json={"path": "/a", "recursive": True}, headers=h)
    assert (r.status_code, r.json()["error"]) == (428, "ConfirmationRequired")
    plan = app_client.post("/api/node/delete-plan", json={"path": "/a"}, headers=h).json()
    assert plan["count"] == 4 and plan["sample"][0] == "/a"
    r = app_client.post("/api/node/delete", json={"path": "/a", "recursive": True, "confirm": plan["token"]}, headers=h)
    assert r.json() == {"path": "/a", "deleted": 4}
    r = app_client.post("/api/node/delete", json={"path": "/", "recursive": True, "confirm": "x"}, headers=h)
    assert r.json()["error"] == "Protected"


def test_logout_starts_a_new_session(app_client):
    csrf = app_client.get("/api/session").json()["csrf"]
    app_client.get("/api/node?path=/a")
    assert len(app_client.made) == 1
    r = app_client.post("/api/logout", json={}, headers={**ORIGIN, "x-csrf-token": csrf})
    assert r.status_code == 200 and r.json()["csrf"] != csrf and app_client.made[0].stopped
    r = app_client.post("/api/logout", json={}, headers={**ORIGIN, "x-csrf-token": csrf})
    assert r.status_code == 403  # the old token belongs to the ended session


# --- the front end and the CLI -------------------------------------------------------------------------


def _static(name: str) -> str:
    return resources.files("zoomq.console").joinpath("static", name).read_text()


def test_front_end_never_writes_html():
    js = _static("app.js")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
    html = _static("index.html")
    assert (
        "<script>" not in html and not re.search(r"\son[a-z]+=", html) and "style=" not in html
    )  # the CSP allows none inline
    assert Path(resources.files("zoomq.console").joinpath("static", "style.css")).is_file()


def test_cli_flags_and_curve_keys():
    from zoomq.cli import build_parser
    from zoomq.console.cli import allowed_names, curve_server_keys

    args = build_parser().parse_args(["console", "--hosts", "h:1", "--auth", "digest:u:p", "--auth", "digest:v:q"])
    assert (args.host, args.port, args.auth) == ("127.0.0.1", 8080, ["digest:u:p", "digest:v:q"])
    assert curve_server_keys(["KEY"]) == "KEY"
    assert curve_server_keys(["h:1=A", "h:2=B"]) == {"h:1": "A", "h:2": "B"}
    assert "127.0.0.1" in allowed_names("127.0.0.1", []) and "proxy.example" in allowed_names(
        "127.0.0.1", ["proxy.example"]
    )


def test_missing_extra_is_said_plainly(monkeypatch, capsys):
    import builtins

    from zoomq.console import cli as console_cli

    real_import = builtins.__import__

    def no_uvicorn(name: str, *a: Any, **kw: Any):
        if name == "uvicorn" or name.startswith("uvicorn."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_uvicorn)
    code = console_cli.run(argparse.Namespace(hosts="h:1"))
    assert code == 2
    err = capsys.readouterr().err
    assert "pip install 'zoomq[console]'" in err and "uvicorn" in err
