"""Helpers shared by the integration and fault tests."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
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
