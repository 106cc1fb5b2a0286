"""The supervisor with dummy actors: start, restart with backoff, node restart, stop, give up.

Each test runs a real supervisor process (`python -c SUPERVISOR`) whose actors are tiny Python
scripts (`DUMMY_ACTOR`), steered through files in a control directory:
`fail-<name>` makes that actor exit with code 3 at once, `stubborn-<name>` makes it ignore
SIGTERM, `child-<name>` makes it start a grandchild. Every actor appends its pid to
`<ctl>/pids-<name>` and its grandchild's to `<ctl>/grandchildren`, so the test knows every process
that ever existed and can check that none is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from runtime.config import NodeConfig, from_json, to_json
from runtime.supervisor import EXIT_DATA_DIR_IN_USE, EXIT_GAVE_UP, PID_FILE
from zoomq.testing import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
ACTORS = ["a", "b", "c"]

DUMMY_ACTOR = r"""
import json, os, signal, subprocess, sys, time
from pathlib import Path
name, config_path, run_dir, ctl = sys.argv[1:5]
ctl = Path(ctl)
with open(ctl / f"pids-{name}", "a") as f:
    f.write(f"{os.getpid()}\n")
cfg = json.loads(Path(config_path).read_bytes())
assert cfg["run_dir"] == run_dir, (cfg["run_dir"], run_dir)
if (ctl / f"fail-{name}").exists():
    sys.exit(3)
if (ctl / f"child-{name}").exists():
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: signal.pause()"
    child = subprocess.Popen([sys.executable, "-c", code, str(ctl)])
    with open(ctl / "grandchildren", "a") as f:
        f.write(f"{child.pid}\n")
if (ctl / f"stubborn-{name}").exists():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
(Path(run_dir) / f"{name}.ready").write_text(str(os.getpid()))
while True:
    signal.pause()
"""

SUPERVISOR = r"""
import sys
from pathlib import Path
from runtime.config import from_json
from runtime.supervisor import Supervisor
config_file, ctl, dummy, stop_timeout = sys.argv[1:5]
cfg = from_json(Path(config_file).read_bytes())
argv = lambda name, config_path, run_dir: [sys.executable, "-c", dummy, name, config_path, run_dir, ctl]
sys.exit(Supervisor(cfg, actors=["a", "b", "c"], argv=argv, stop_timeout_s=float(stop_timeout)).run())
"""


class Node:
    """A supervisor process with dummy actors, and everything the test needs to watch it."""

    def __init__(self, tmp_path: Path, *, run_dir: str = "", stop_timeout_s: float = 5.0, **cfg: object) -> None:
        self.ctl = tmp_path / "ctl"
        self.ctl.mkdir(exist_ok=True)
        self.data_dir = tmp_path / "data"
        self.run_dir = run_dir
        defaults = {"restart_max": 5, "restart_window_s": 30.0, "restart_backoff_s": 0.05, "restart_backoff_max_s": 1.0}
        self.cfg = NodeConfig(data_dir=str(self.data_dir), run_dir=run_dir, log_json=True, **(defaults | cfg))
        self.config_file = tmp_path / f"node-{os.getpid()}-{id(self)}.json"
        self.config_file.write_bytes(to_json(self.cfg))
        self.log_file = tmp_path / f"supervisor-{id(self)}.log"
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    SUPERVISOR,
                    str(self.config_file),
                    str(self.ctl),
                    DUMMY_ACTOR,
                    str(self.stop_timeout_s),
                ],
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        return self

    # --- what the test looks at -----------------------------------------------------------

    def events(self, name: str | None = None) -> list[dict]:
        out = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                out.append(event)
        return out

    def started_run_dir(self) -> Path:
        return Path(wait_for(lambda: self.events("supervisor_started"), what="supervisor_started")[0]["run_dir"])

    def status(self) -> dict:
        try:
            return json.loads((self.started_run_dir() / "status.json").read_bytes())
        except (OSError, ValueError):
            return {}

    def actor_pids(self) -> dict[str, int]:
        """{name: pid} once every actor is running (pid alive), else {}."""
        actors = self.status().get("actors", {})
        pids = {name: a.get("pid") for name, a in actors.items()}
        if sorted(pids) == ACTORS and all(pid and psutil.pid_exists(pid) for pid in pids.values()):
            return pids
        return {}

    def all_pids_seen(self) -> set[int]:
        pids: set[int] = set()
        for path in self.ctl.glob("pids-*"):
            pids.update(int(x) for x in path.read_text().split())
        grandchildren = self.ctl / "grandchildren"
        if grandchildren.exists():
            pids.update(int(x) for x in grandchildren.read_text().split())
        return pids

    def wait_running(self) -> dict[str, int]:
        return wait_for(self.actor_pids, timeout=20, what="all actors running")

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        """Whatever the test did: no process of this node survives it."""
        procs = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                procs = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.Error:
                pass
            self.proc.terminate()  # the graceful way first: it removes its run dir too
            try:
                self.proc.wait(self.stop_timeout_s + 5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass
        for pid in self.all_pids_seen():
            try:
                proc = psutil.Process(pid)
                if str(self.ctl) in proc.cmdline():
                    proc.kill()
                    procs.append(proc)
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=10)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _gone(pids: set[int]) -> bool:
    return not any(_alive(pid) for pid in pids)


@pytest.fixture
def short_run_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="zq-", dir="/tmp")
    try:
        yield path
    finally:
        import shutil

        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator:
    made: list[Node] = []

    def make(**kw: object) -> Node:
        node = Node(tmp_path, **kw)
        made.append(node)
        return node

    yield make
    for node in made:
        node.cleanup()


def test_starts_every_actor_and_reports_them(node_factory, short_run_dir):
    node = node_factory(run_dir=short_run_dir).start()
    pids = node.wait_running()
    assert set(pids) == set(ACTORS)
    status = node.status()
    assert status["pid"] == node.proc.pid
    assert status["state"] == "running"
    assert all(status["actors"][name]["restarts"] == 0 for name in ACTORS)
    # each actor got the resolved config (the dummy asserts run_dir), and its pid is its own child
    children = {p.pid for p in psutil.Process(node.proc.pid).children()}
    assert set(pids.values()) <= children
    for name in ACTORS:
        assert wait_for(lambda n=name: (Path(short_run_dir) / f"{n}.ready").exists(), what=f"{name} ready")
    cfg = from_json((Path(short_run_dir) / "config.json").read_bytes())
    assert cfg.run_dir == short_run_dir and Path(cfg.data_dir) == node.data_dir.resolve()
    assert (node.data_dir / PID_FILE).read_text().strip() == str(node.proc.pid)
    started = [e["name"] for e in node.events("actor_started")]
    assert started == ACTORS  # in order


def test_a_sigkilled_actor_is_restarted_with_a_new_pid_after_a_growing_backoff(node_factory):
    node = node_factory().start()
    first = node.wait_running()
    os.kill(first["b"], signal.SIGKILL)
    second = wait_for(lambda: (p := node.actor_pids()) and p["b"] != first["b"] and p, timeout=20, what="b restarted")
    assert second["a"] == first["a"] and second["c"] == first["c"]  # the others were left alone
    os.kill(second["b"], signal.SIGKILL)
    third = wait_for(lambda: (p := node.actor_pids()) and p["b"] != second["b"] and p, timeout=20, what="b again")
    assert third["a"] == first["a"]
    exits = node.events("actor_exited")
    assert [(e["name"], e["pid"], e["signal"]) for e in exits] == [
        ("b", first["b"], "SIGKILL"),
        ("b", second["b"], "SIGKILL"),
    ]
    delays = [e["delay_s"] for e in node.events("restarting_actor")]
    assert delays == [0.05, 0.1]
    assert node.status()["actors"]["b"]["restarts"] == 2
    assert not node.events("restarting_node")


def test_an_actor_exit_code_is_logged(node_factory):
    node = node_factory().start()
    pids = node.wait_running()
    (node.ctl / "fail-c").touch()  # the restarted c exits 3 at once; the node then restarts
    os.kill(pids["c"], signal.SIGKILL)
    wait_for(lambda: any(e.get("code") == 3 for e in node.events("actor_exited")), what="exit code 3 logged")
    (node.ctl / "fail-c").unlink()


def test_too_many_restarts_in_the_window_restart_the_whole_set(node_factory):
    node = node_factory(restart_max=2).start()
    pids = node.wait_running()
    original = dict(pids)
    for _ in range(2):  # two restarts of b: within the limit
        os.kill(pids["b"], signal.SIGKILL)
        old = pids["b"]
        pids = wait_for(lambda o=old: (p := node.actor_pids()) and p["b"] != o and p, timeout=20, what="b restarted")
        assert pids["a"] == original["a"]
    # the third restart (of another actor, one started before those still running): more than
    # restart_max=2 restarts of the node in the window
    os.kill(pids["a"], signal.SIGKILL)
    wait_for(lambda: node.events("restarting_node"), timeout=20, what="restarting_node")
    before = pids
    after = wait_for(
        lambda: (p := node.actor_pids()) and all(p[n] != before[n] for n in ACTORS) and p,
        timeout=20,
        what="every actor restarted",
    )
    assert _gone({before["b"], before["c"]})  # the old ones were stopped, not left behind
    # the actors stopped for the node restart are not counted as exits
    assert [e["name"] for e in node.events("actor_exited")] == ["b", "b", "a"]
    # after the node restart the history starts afresh: one more kill is a plain actor restart
    os.kill(after["a"], signal.SIGKILL)
    wait_for(lambda: (p := node.actor_pids()) and p["a"] != after["a"], timeout=20, what="a restarted")
    assert len(node.events("restarting_node")) == 1


def test_sigterm_stops_every_process_and_removes_what_it_created(node_factory):
    node = node_factory(stop_timeout_s=1.0)
    (node.ctl / "stubborn-a").touch()  # ignores SIGTERM: needs the SIGKILL after the deadline
    (node.ctl / "child-b").touch()  # has a grandchild that ignores SIGTERM
    node.start()
    node.wait_running()
    run_dir = node.started_run_dir()
    assert str(run_dir).startswith("/tmp/zq-")
    wait_for(lambda: all((run_dir / f"{n}.ready").exists() for n in ACTORS), what="actors set up")
    seen = node.all_pids_seen()
    assert len(seen) == 4  # three actors and b's grandchild
    node.proc.send_signal(signal.SIGTERM)
    assert node.wait_exit(30) == 0
    assert _gone(seen), [p for p in seen if _alive(p)]
    assert not run_dir.exists()  # the run dir it created is removed
    assert not (node.data_dir / PID_FILE).exists()
    assert [e["name"] for e in node.events("actor_killed")] == ["a"]
    assert node.events("descendants_killed")


def test_sigint_stops_the_node_too(node_factory):
    node = node_factory().start()
    pids = node.wait_running()
    node.proc.send_signal(signal.SIGINT)
    assert node.wait_exit(30) == 0
    assert _gone(set(pids.values()))


def test_gives_up_and_exits_non_zero_when_node_restarts_do_not_help(node_factory):
    node = node_factory(restart_max=2, restart_backoff_s=0.01, restart_backoff_max_s=0.05)
    (node.ctl / "fail-b").touch()  # like a session actor whose port is taken: it never stays up
    node.start()
    assert node.wait_exit(45) == EXIT_GAVE_UP
    assert len(node.events("restarting_node")) == 3
    assert node.events("giving_up")
    assert _gone(node.all_pids_seen())
    assert not (node.data_dir / PID_FILE).exists()


def test_a_second_node_on_the_same_data_dir_is_refused(node_factory):
    first = node_factory().start()
    first.wait_running()
    second = node_factory()
    second.start()
    assert second.wait_exit(20) == EXIT_DATA_DIR_IN_USE
    assert second.events("data_dir_in_use")
    assert first.proc.poll() is None
    assert (first.data_dir / PID_FILE).read_text().strip() == str(first.proc.pid)


def test_zoomq_server_on_a_port_in_use_fails_at_once_with_a_clear_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "zoomq", "server", "--port", str(port), "--data-dir", str(tmp_path / "d")],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            check=False,
        )
    assert out.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in out.stderr
    assert "in use" in out.stderr
