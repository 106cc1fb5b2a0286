"""Helpers shared by the integration and fault tests."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from zoomq.testing import ZoomqServer, wait_for


def kill_actor(node: ZoomqServer, name: str, sig: int = signal.SIGKILL) -> int:
    """Kill one actor of `node` by its PID and wait until the supervisor has started a new one."""
    old = node.actor_pids()[name]
    os.kill(old, sig)
    return wait_for(
        lambda: (pid := node.actor_pids().get(name)) and pid != old and pid,
        timeout=30,
        what=f"{name} restarted",
    )


def background(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `target` on a daemon thread; the returned dict gets its 'result' or 'error'."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def joined(t: threading.Thread, out: dict[str, Any], timeout: float = 20.0) -> Any:
    """Wait (bounded) for a `background` thread; its result, or its exception raised here."""
    t.join(timeout)
    assert not t.is_alive(), "thread did not finish"
    if "error" in out:
        raise out["error"]
    return out.get("result")


class Blocking:
    """Drives a `zoomq.aio` object from synchronous test code: every method runs on the event
    loop's thread, coroutines are awaited there, and the caller gets the result. With it, one test
    body checks both faces of the client (threaded and asyncio)."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(attr, *args, **kwargs)

        return call

    def _run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from zoomq import aio

        async def on_loop() -> Any:
            outcome = func(*args, **kwargs)
            return await outcome if inspect.isawaitable(outcome) else outcome

        value = asyncio.run_coroutine_threadsafe(on_loop(), self._loop).result(60)
        if isinstance(value, aio.AsyncRecipe | aio.TransactionRequest):
            return Blocking(value, self._loop)
        return value

    def __enter__(self) -> Any:
        return self._run(self._target.__aenter__)

    def __exit__(self, *exc: object) -> None:
        self._run(self._target.__aexit__, *exc)


@contextlib.contextmanager
def asyncio_client(hosts: str, **kwargs: Any) -> Iterator[Blocking]:
    """A started `zoomq.aio.Client` on a loop running in its own thread, behind `Blocking`."""
    from zoomq import aio

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    try:
        client = Blocking(asyncio.run_coroutine_threadsafe(_make(aio.Client, hosts, kwargs), loop).result(30), loop)
        client.start()
        try:
            yield client
        finally:
            client.stop()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _make(cls: Any, hosts: str, kwargs: dict[str, Any]) -> Any:
    return cls(hosts, **kwargs)


def node_with_super(tmp_path_factory: Any, name: str, password: str) -> Iterator[ZoomqServer]:
    """A started standalone node whose super user authenticates as `digest super:<password>`
    (for module-scoped fixtures); stopped afterwards."""
    from zoomq.security import make_digest_acl_credential

    server = ZoomqServer(data_dir=tmp_path_factory.mktemp(name) / "data",
                         super_digest=make_digest_acl_credential("super", password))
    server.start()
    try:
        yield server
    finally:
        server.stop()
