"""The console's web app (Starlette): pages, a JSON API, live watches as Server-Sent Events.

Routes (every API answer is JSON; errors are `{"error": <kazoo name or console reason>, "message": ...}`):

    GET  /                      -> redirect to /tree
    GET  /tree, /ensemble       the single page (static/index.html; the page's JS reads the URL)
    GET  /static/...            app.js, style.css
    GET  /api/session           this browser session: CSRF token, hosts, identities (starts a session)
    POST /api/login             {"user", "password"}: digest credentials added to the session's client
    POST /api/logout            the session's client is closed; a new session starts
    GET  /api/children?path=P   children with their child counts
    GET  /api/node?path=P       data (text or hex), Stat, ACLs; NoAuth shown in place (dataError)
    POST /api/node/set          {"path", "data", "encoding", "version"}: BadVersionError (409) when stale
    POST /api/node/create       {"parent", "name", "data", "encoding", "kind", "sequential", "ttl_ms", "acl"}
    POST /api/node/delete-plan  {"path"}: how many nodes a recursive delete takes, and a token to confirm it
    POST /api/node/delete       {"path", "version"} or {"path", "recursive": true, "confirm": token}
    GET  /api/watch?path=P      text/event-stream: events data / children / deleted / error
    GET  /api/ensemble          each host's role, zxid, epoch, sessions, znodes, rates, actors

Security (see `Guard`): every request must name an allowed Host (no DNS rebinding); a browser's
cross-site requests are refused (Sec-Fetch-Site); every POST needs the same Origin (or Referer)
as the Host it is sent to, a JSON body, the session cookie (HttpOnly, SameSite=Strict) and that
session's CSRF token in the X-CSRF-Token header; every answer carries a strict
Content-Security-Policy (scripts and styles from this origin only, nothing inline) and nosniff.
The page's JS builds the DOM with textContent only. No credential ever appears in a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from zoomq import exceptions as zx
from zoomq.console import core
from zoomq.console.core import ConsoleError, ConsoleSession, CreateRequest, SessionStore
from zoomq.console.monitor import EnsembleMonitor, parse_hosts

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
PAGES = ("/", "/tree", "/ensemble")
MAX_BODY = 5 * 2**20  # a 1 MiB value as hex, and then some
SAFE_METHODS = ("GET", "HEAD")


@dataclass
class ConsoleConfig:
    hosts: str
    auth: list[tuple[str, str]] = field(default_factory=list)  # --auth: every session's client has them
    curve_server_key: Any = None
    curve_secret_key: str | None = None
    allowed_hosts: list[str] = field(
        default_factory=lambda: ["127.0.0.1", "localhost"]
    )  # Host header names (port-less or host:port)
    idle_s: float = 900.0  # a browser session idle this long has its zoomq client closed
    max_sessions: int = 64
    session_timeout: float = 10.0  # the zoomq session's timeout
    connect_timeout: float = 15.0
    op_timeout: float = 10.0  # one request to the ensemble
    monitor_timeout: float = 1.5  # one `mntr` to one host
    stream_heartbeat_s: float = 15.0


def allowed_host_values(names: list[str], port: int) -> set[str]:
    """The Host header values to accept for these names on `port` ("name:port", and "name" on port 80)."""
    out = set()
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        if name == "*":
            out.add("*")
            continue
        if ":" in name and not name.startswith("[") and name.count(":") > 1:
            name = f"[{name}]"  # an IPv6 address
        if name.rsplit(":", 1)[-1].isdigit() and not name.endswith("]"):
            out.add(name)  # already host:port
            continue
        out.add(f"{name}:{port}")
        if port == 80:
            out.add(name)
    return out


class Console:
    """The app's state: the sessions, the ensemble monitor, the config."""

    def __init__(
        self,
        config: ConsoleConfig,
        client_factory: Callable[[list[tuple[str, str]]], Any] | None = None,
        allowed_hosts: set[str] | None = None,
    ) -> None:
        """`allowed_hosts`: the exact Host values to accept; None: config.allowed_hosts' names on any port."""
        self.config = config
        self.cookie = "zoomq_console_" + secrets.token_hex(4)  # per console: two consoles on one host do not collide
        self.any_port = allowed_hosts is None
        self.allowed = allowed_hosts if allowed_hosts is not None else {h.lower() for h in config.allowed_hosts}
        self.store = SessionStore(
            client_factory or self._make_client,
            idle_s=config.idle_s,
            max_sessions=config.max_sessions,
            connect_timeout=config.connect_timeout,
        )
        self.monitor = EnsembleMonitor(
            parse_hosts(config.hosts),
            timeout=config.monitor_timeout,
            curve_server_key=config.curve_server_key,
            curve_secret_key=config.curve_secret_key,
        )
        self.closing = threading.Event()  # live streams end when it is set

    def _make_client(self, extra_auth: list[tuple[str, str]]) -> Any:
        from zoomq import Client

        return Client(
            hosts=self.config.hosts,
            timeout=self.config.session_timeout,
            auth_data=[*self.config.auth, *extra_auth],
            curve_server_key=self.config.curve_server_key,
            curve_secret_key=self.config.curve_secret_key,
        )

    def host_allowed(self, host: str) -> bool:
        host = host.lower()
        if "*" in self.allowed or host in self.allowed:
            return True
        return self.any_port and host.rsplit(":", 1)[0] in self.allowed

    def close(self) -> None:
        self.closing.set()
        self.store.close_all()
        self.monitor.close()


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class Guard:
    """ASGI middleware: Host, cross-site, Origin and CSRF checks; the session cookie; the
    security headers on every answer."""

    def __init__(self, app: Any, console: Console) -> None:
        self.app = app
        self.console = console
        self.state = app.state  # as the Starlette app's

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope["method"]
        path = scope["path"]
        host = headers.get("host", "")
        if not self.console.host_allowed(host):
            await _refuse(
                scope,
                receive,
                send,
                403,
                "BadHost",
                "this console does not answer to that Host name (start it with --allow-host NAME to add one)",
            )
            return
        is_page = method in SAFE_METHODS and path in PAGES
        site = headers.get("sec-fetch-site")
        navigation = is_page and headers.get("sec-fetch-mode") == "navigate"
        if site is not None and site not in ("same-origin", "none") and not navigation:
            await _refuse(scope, receive, send, 403, "CrossSite", "cross-site requests are refused")
            return
        session = self.console.store.get(_cookie(headers, self.console.cookie))
        new_session = False
        if method not in SAFE_METHODS:
            expected = f"{scope.get('scheme', 'http')}://{host}".lower()
            origin = headers.get("origin")
            if origin is None and headers.get("referer"):
                origin = _origin_of(headers["referer"])
            if origin is None or origin.lower() != expected:
                await _refuse(
                    scope,
                    receive,
                    send,
                    403,
                    "CrossOrigin",
                    f"a state-changing request must come from this console's own pages (Origin {expected})",
                )
                return
            if session is None:
                await _refuse(
                    scope, receive, send, 401, "NoSession", "no console session (or it ended): reload the page"
                )
                return
            token = headers.get("x-csrf-token", "")
            if not hmac.compare_digest(token.encode(), session.csrf.encode()):
                await _refuse(
                    scope,
                    receive,
                    send,
                    403,
                    "CsrfTokenMissing" if not token else "CsrfTokenInvalid",
                    "the request lacks this session's CSRF token (X-CSRF-Token): reload the page",
                )
                return
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                await _refuse(
                    scope, receive, send, 415, "UnsupportedMediaType", "send JSON (Content-Type: application/json)"
                )
                return
        elif session is None and (is_page or path == "/api/session"):
            session = self.console.store.new()
            new_session = True
        elif session is None and path.startswith("/api/"):
            await _refuse(scope, receive, send, 401, "NoSession", "no console session (or it ended): reload the page")
            return
        scope.setdefault("state", {})["console_session"] = session
        cookie = None
        if new_session:
            secure = "; Secure" if scope.get("scheme") == "https" else ""
            cookie = f"{self.console.cookie}={session.id}; Path=/; HttpOnly; SameSite=Strict{secure}".encode()

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if not path.startswith("/static/"):
                    extra.append((b"cache-control", b"no-store"))
                if cookie is not None:
                    extra.append((b"set-cookie", cookie))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cookie(headers: Headers, name: str) -> str | None:
    for header in headers.getlist("cookie"):
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value
    return None


async def _refuse(scope: dict[str, Any], receive: Any, send: Any, status: int, name: str, message: str) -> None:
    response = JSONResponse(
        {"error": name, "message": message},
        status_code=status,
        headers={k.decode(): v.decode() for k, v in SECURITY_HEADERS} | {"cache-control": "no-store"},
    )
    await response(scope, receive, send)


# --- handlers --------------------------------------------------------------------------------------


def _console(request: Request) -> Console:
    return request.app.state.console


def _session(request: Request) -> ConsoleSession:
    session = request.scope.get("state", {}).get("console_session")
    if session is None:
        raise ConsoleError("NoSession", "no console session: reload the page", status=401)
    return session


async def _json_body(request: Request) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise ConsoleError("TooLarge", f"request body over {MAX_BODY} bytes", status=413)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ConsoleError("TooLarge", f"request body over {MAX_BODY} bytes", status=413)
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ConsoleError("BadRequest", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ConsoleError("BadRequest", "the body must be a JSON object")
    return body


async def _answer(work: Callable[[], Any]) -> Response:
    try:
        return JSONResponse(await run_in_threadpool(work))
    except Exception as exc:  # noqa: BLE001 - every failure is a JSON answer the page shows
        status, body = core.error_body(exc)
        return JSONResponse(body, status_code=status)


def _api(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """A handler whose ConsoleError / kazoo errors before the work starts become JSON answers too."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:  # noqa: BLE001
            status, body = core.error_body(exc)
            return JSONResponse(body, status_code=status)

    wrapped.__name__ = handler.__name__
    return wrapped


def _query_path(request: Request) -> str:
    return core.check_path(request.query_params.get("path", "/"))


async def index(request: Request) -> Response:
    return RedirectResponse("/tree", status_code=303)


_PAGE_CACHE: dict[str, bytes] = {}


async def page(request: Request) -> Response:
    if "index" not in _PAGE_CACHE:
        _PAGE_CACHE["index"] = resources.files("zoomq.console").joinpath("static/index.html").read_bytes()
    return Response(_PAGE_CACHE["index"], media_type="text/html; charset=utf-8")


@_api
async def api_session(request: Request) -> Response:
    console, session = _console(request), _session(request)
    cli_identities = []
    for scheme, credential in console.config.auth:
        user = credential.split(":", 1)[0] if scheme == "digest" else ""
        cli_identities.append(f"{scheme}:{user}" if user else scheme)
    return JSONResponse(
        {
            "csrf": session.csrf,
            "hosts": console.config.hosts,
            "identities": list(session.identities),
            "commandLineIdentities": cli_identities,
            "connected": session.client is not None and bool(getattr(session.client, "connected", False)),
            "idleTimeoutS": console.config.idle_s,
        }
    )


@_api
async def api_login(request: Request) -> Response:
    console, session = _console(request), _session(request)
    body = await _json_body(request)
    user, password = body.get("user"), body.get("password")
    if not isinstance(user, str) or not user or ":" in user or not isinstance(password, str):
        raise ConsoleError("BadRequest", "digest login needs a user name (without ':') and a password")

    def work() -> dict[str, Any]:
        console.store.login(session, "digest", f"{user}:{password}", console.config.op_timeout)
        return {"identities": list(session.identities)}

    return await _answer(work)


@_api
async def api_logout(request: Request) -> Response:
    console, session = _console(request), _session(request)
    await run_in_threadpool(console.store.end, session)
    fresh = console.store.new()
    secure = "; Secure" if request.url.scheme == "https" else ""
    response = JSONResponse({"csrf": fresh.csrf, "identities": []})
    response.headers.append("set-cookie", f"{console.cookie}={fresh.id}; Path=/; HttpOnly; SameSite=Strict{secure}")
    return response


@_api
async def api_children(request: Request) -> Response:
    console, session = _console(request), _session(request)
    path = _query_path(request)
    timeout = console.config.op_timeout
    return await _answer(lambda: core.list_children(console.store.client(session), path, timeout))


@_api
async def api_node(request: Request) -> Response:
    console, session = _console(request), _session(request)
    path = _query_path(request)
    timeout = console.config.op_timeout
    return await _answer(lambda: core.read_node(console.store.client(session), path, timeout))


@_api
async def api_set(request: Request) -> Response:
    console, session = _console(request), _session(request)
    body = await _json_body(request)
    path = core.check_path(body.get("path"))
    version = core.check_version(body.get("version"))
    data = core.parse_data(body.get("data"), body.get("encoding", "text"))
    timeout = console.config.op_timeout

    def work() -> dict[str, Any]:
        client = console.store.client(session)
        try:
            stat = client.set_async(path, data, version).get(timeout=timeout)
        except zx.BadVersionError:
            current = client.exists_async(path).get(timeout=timeout)
            now = current.version if current is not None else None
            raise ConsoleError(
                "BadVersionError",
                f"{path} changed since it was loaded: the edit was made on version {version}, "
                f"the node is now at version {now}; reload it and edit again",
                status=409,
                path=path,
                version=version,
                currentVersion=now,
            ) from None
        return {"path": path, "stat": core.render_stat(stat)}

    return await _answer(work)


@_api
async def api_create(request: Request) -> Response:
    console, session = _console(request), _session(request)
    req = CreateRequest.parse(await _json_body(request))
    timeout = console.config.op_timeout

    def work() -> dict[str, Any]:
        client = console.store.client(session)
        created = client.create_async(
            req.path,
            req.data,
            acl=req.acl_list(),
            sequence=req.sequential,
            container=req.kind == "container",
            ttl=req.ttl_ms,
        ).get(timeout=timeout)
        return {"path": created}

    return await _answer(work)


@_api
async def api_delete_plan(request: Request) -> Response:
    console, session = _console(request), _session(request)
    body = await _json_body(request)
    path = core.check_path(body.get("path"))
    core.check_deletable(path)
    timeout = console.config.op_timeout

    def work() -> dict[str, Any]:
        levels = core.subtree(console.store.client(session), path, timeout)
        count = sum(len(level) for level in levels)
        flat = [p for level in levels for p in level]
        token = session.add_delete(path, count)
        return {"path": path, "count": count, "token": token, "sample": flat[:50], "expiresInS": core.DELETE_CONFIRM_S}

    return await _answer(work)


@_api
async def api_delete(request: Request) -> Response:
    console, session = _console(request), _session(request)
    body = await _json_body(request)
    path = core.check_path(body.get("path"))
    core.check_deletable(path)
    recursive = body.get("recursive", False) is True
    timeout = console.config.op_timeout
    if not recursive:
        version = core.check_version(body.get("version", -1))

        def work() -> dict[str, Any]:
            client = console.store.client(session)
            try:
                client.delete_async(path, version).get(timeout=timeout)
            except zx.NotEmptyError:
                raise ConsoleError(
                    "NotEmptyError",
                    f"{path} has children: delete it recursively (a confirmation shows how many nodes go)",
                    status=409,
                    path=path,
                ) from None
            return {"path": path, "deleted": 1}

        return await _answer(work)
    pending = session.take_delete(body.get("confirm"), path)

    def work_recursive() -> dict[str, Any]:
        client = console.store.client(session)
        levels = core.subtree(client, path, timeout)
        count = sum(len(level) for level in levels)
        if count != pending.count:
            token = session.add_delete(path, count)
            raise ConsoleError(
                "SubtreeChanged",
                f"{path} now has {count} nodes (the confirmation was for {pending.count}): confirm again",
                status=409,
                path=path,
                count=count,
                token=token,
            )
        return {"path": path, "deleted": core.delete_tree(client, levels, timeout)}

    return await _answer(work_recursive)


@_api
async def api_ensemble(request: Request) -> Response:
    console = _console(request)
    _session(request)
    return JSONResponse(await run_in_threadpool(console.monitor.sample))


@_api
async def api_watch(request: Request) -> Response:
    """Server-Sent Events for one node: `data` (its value and Stat, now and after each change),
    `children` (the child names, after each change), `deleted`, and `error` (then the stream ends)."""
    console, session = _console(request), _session(request)
    path = _query_path(request)
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=256)
    done = threading.Event()
    children_on = threading.Event()

    def put(kind: str, payload: dict[str, Any]) -> None:
        def deliver() -> None:
            with contextlib.suppress(asyncio.QueueFull):  # each event carries the whole state: a later one catches up
                events.put_nowait((kind, payload))

        with contextlib.suppress(RuntimeError):  # the loop is gone: the stream has ended
            loop.call_soon_threadsafe(deliver)

    def on_children(children: list[str]) -> bool | None:
        if done.is_set() or console.closing.is_set():
            return False
        put("children", {"path": path, "children": sorted(children)})
        return None

    def start_children(client: Any) -> None:
        if children_on.is_set():
            return
        children_on.set()
        try:
            client.ChildrenWatch(path, on_children)
        except Exception as exc:  # noqa: BLE001 - e.g. NoAuth on the children: said in the stream
            children_on.clear()
            put("error", {"path": path, "error": type(exc).__name__, "message": str(exc), "final": False})

    def on_data(data: bytes | None, stat: Any) -> bool | None:
        if done.is_set() or console.closing.is_set():
            return False
        if stat is None:
            children_on.clear()  # a ChildrenWatch ends with its node
            put("deleted", {"path": path})
            return None
        put("data", {"path": path, "data": core.render_data(data), "stat": core.render_stat(stat)})
        if not children_on.is_set():
            threading.Thread(target=start_children, args=(client_ref[0],), daemon=True).start()
        return None

    client_ref: list[Any] = [None]

    def setup() -> None:
        client = console.store.client(session)
        client_ref[0] = client
        client.DataWatch(path, on_data)

    try:
        await run_in_threadpool(setup)
        first_error = None
    except Exception as exc:  # noqa: BLE001 - NoAuth and the like: one error event, then the end
        done.set()
        _, first_error = core.error_body(exc)

    async def stream() -> AsyncIterator[str]:
        session.streams += 1
        try:
            yield "retry: 5000\n\n"
            if first_error is not None:
                yield _sse("error", {"path": path, **first_error, "final": True})
                return
            idle = 0.0
            while not console.closing.is_set():
                try:
                    kind, payload = await asyncio.wait_for(events.get(), timeout=1.0)
                except TimeoutError:
                    idle += 1.0
                    if idle >= console.config.stream_heartbeat_s:
                        idle = 0.0
                        session.touch()
                        yield ": keep-alive\n\n"
                    continue
                idle = 0.0
                session.touch()
                yield _sse(kind, payload)
        finally:
            done.set()
            session.streams -= 1

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"cache-control": "no-store", "x-accel-buffering": "no"}
    )


def _sse(kind: str, payload: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(payload)}\n\n"


def create_app(
    config: ConsoleConfig,
    *,
    port: int | None = None,
    client_factory: Callable[[list[tuple[str, str]]], Any] | None = None,
) -> Starlette:
    """The console as an ASGI app. `port`: the port it is served on (the Host header must name
    one of config.allowed_hosts with it); None accepts the names with any port or none
    (TestClient's "testserver")."""
    allowed = None
    if port is not None:
        allowed = allowed_host_values(config.allowed_hosts, port)
    console = Console(config, client_factory, allowed)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def reaper() -> None:
            every = max(1.0, min(30.0, config.idle_s / 4))
            while True:
                await asyncio.sleep(every)
                await run_in_threadpool(console.store.reap)

        task = asyncio.create_task(reaper())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await run_in_threadpool(console.close)

    routes = [
        Route("/", index),
        Route("/tree", page),
        Route("/ensemble", page),
        Route("/api/session", api_session),
        Route("/api/login", api_login, methods=["POST"]),
        Route("/api/logout", api_logout, methods=["POST"]),
        Route("/api/children", api_children),
        Route("/api/node", api_node),
        Route("/api/node/set", api_set, methods=["POST"]),
        Route("/api/node/create", api_create, methods=["POST"]),
        Route("/api/node/delete-plan", api_delete_plan, methods=["POST"]),
        Route("/api/node/delete", api_delete, methods=["POST"]),
        Route("/api/watch", api_watch),
        Route("/api/ensemble", api_ensemble),
        Mount("/static", app=StaticFiles(packages=[("zoomq.console", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.console = console
    return Guard(app, console)  # type: ignore[return-value]
