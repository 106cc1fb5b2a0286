"""Pure cores stay pure: only shells may touch sockets, clocks, processes and the disk.

Shells are `*_actor.py`, `runtime/`, the file adapters of `actors/log/`, and the client-side
modules that own a connection or a process (client, testing, cli, shell, bench). Every other
module of `actors/` and `zoomq/` is a pure core and may not import what reads the outside world.
"""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"zmq", "socket", "time", "os", "psutil", "signal", "threading", "random", "subprocess", "asyncio"}
SHELL_FILES = {
    "actors/log/txnlog.py",
    "actors/log/snapshot.py",
    "actors/log/recovery.py",
    "actors/log/epochs.py",
    "zoomq/client.py",
    "zoomq/testing.py",
    "zoomq/cli.py",
    "zoomq/shell.py",
    "zoomq/__main__.py",
    "zoomq/aio.py",
    "zoomq/retry.py",
    "zoomq/admin.py",
    "zoomq/ensemble.py",
    "zoomq/backup.py",  # the data tools: files, a data dir's lock, the clients they drive
}


SHELL_PACKAGES = ("zoomq/console/",)  # the web console: an HTTP server, its sessions' clients, a clock


def _core_modules() -> list[Path]:
    out = []
    for package in ("actors", "zoomq"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if (
                path.name.endswith("_actor.py")
                or rel in SHELL_FILES
                or "/recipe/" in rel
                or rel.startswith(SHELL_PACKAGES)
            ):
                continue
            out.append(path)
    return out


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_there_are_cores_to_check():
    assert len(_core_modules()) >= 5


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_core_module_does_not_touch_the_outside_world(path: Path):
    bad = _imports(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: move that into its *_actor.py shell"
