"""Helpers shared by the integration and fault tests."""

from __future__ import annotations

import os
import signal

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
