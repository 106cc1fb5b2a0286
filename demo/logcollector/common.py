"""What the demo's processes share: znode paths, the log line format, JSON on znodes, durations,
and starting / stopping child processes (by PID only)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from demo.logcollector import ROOT

# --- znodes -------------------------------------------------------------------------------------

SOURCES = f"{ROOT}/sources"
COLLECTORS = f"{ROOT}/collectors"
TASKS = f"{ROOT}/tasks"
STATUS = f"{ROOT}/status"
OWNERS = f"{ROOT}/owners"
ELECTION = f"{ROOT}/election"
REASSIGNMENTS = f"{ROOT}/reassignments"
ALL_PATHS = (SOURCES, COLLECTORS, TASKS, STATUS, OWNERS, ELECTION, REASSIGNMENTS)


def encode(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes | None) -> dict[str, Any]:
    """A znode's JSON value; {} for an empty or unreadable one."""
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- log lines ----------------------------------------------------------------------------------
#
# "<line number, 8 digits> <unix time, microseconds> <source> <message>\n". Line numbers start at
# 1 and have no gaps; the sink de-duplicates by them, and measures delays with the timestamp.

_PATHS = ("/", "/api/items", "/api/orders", "/login", "/static/app.js", "/healthz")


def format_line(source: str, number: int, now: float) -> str:
    path = _PATHS[number % len(_PATHS)]
    status = 500 if number % 97 == 0 else 200
    return f"{number:08d} {now:.6f} {source} GET {path}/{number} {status}\n"


def line_number(line: str | bytes) -> int:
    """The number a log line starts with (ValueError if it has none)."""
    head = line[:8]
    return int(head)


def line_time(line: str | bytes) -> float:
    """The time a log line was produced at (its second field)."""
    return float(line.split(None, 2)[1])


def source_names(n: int) -> list[str]:
    return [f"src-{i}" for i in range(n)]


# --- command line values ------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds in "30s", "1.5s", "500ms", "2m" or "30" (seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (try 30s, 500ms, 2m)")
    value = float(match.group(1))
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]


# --- processes ----------------------------------------------------------------------------------

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # holds demo/ and zoomq/


def child_env() -> dict[str, str]:
    """The environment of a child process: this checkout importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `python -m demo.logcollector <args>` with its output in `log_path`. A session of its
    own: a Ctrl-C in the terminal reaches the runner only, which then stops the children itself."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "demo.logcollector", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=child_env(),
            start_new_session=True,
        )


def kill_tree(pid: int) -> None:
    """SIGKILL process `pid` and everything it started (a crash), by PID."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(tree, timeout=5.0)


def stop_trees(pids: list[int], timeout: float = 5.0) -> None:
    """SIGTERM each process in `pids`, give them `timeout` seconds to finish (together, not one
    after the other), then SIGKILL whatever is left of their process trees; by PID only."""
    roots: list[psutil.Process] = []
    trees: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = root.children(recursive=True)
        except psutil.Error:
            continue
        roots.append(root)
        trees.extend(tree)
        with contextlib.suppress(psutil.Error):
            root.send_signal(signal.SIGTERM)
    psutil.wait_procs(roots, timeout=timeout)
    for root in roots:  # what they started meanwhile, too
        with contextlib.suppress(psutil.Error):
            trees.extend(root.children(recursive=True))
    leftovers = [p for p in roots + trees if _running(p)]
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(leftovers, timeout=timeout)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class ParentWatch:
    """Tells a child process that the runner that started it is gone (its parent changed), so that
    it stops instead of running on as an orphan."""

    def __init__(self) -> None:
        self.parent = os.getppid()

    def orphaned(self) -> bool:
        return os.getppid() != self.parent


def log(who: str, message: str) -> None:
    """One line on stderr (a child's log file), stamped with the wall-clock time."""
    stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
    print(f"{stamp} {who}: {message}", file=sys.stderr, flush=True)
