"""A short nemesis run on separate network hosts (bench/nemesis): namespaces, faults, workloads,
checks, report, and nothing left behind, also when the harness is stopped mid-run. Needs root,
iproute2 and nftables; skipped with the reason otherwise."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bench.nemesis.netns import PREFIX, missing_requirements
from zoomq.testing import wait_for

WHY = missing_requirements()
pytestmark = [pytest.mark.faults, pytest.mark.timeout(240), pytest.mark.skipif(WHY is not None, reason=WHY or "")]
REPO = Path(__file__).resolve().parents[2]


def ours(pid: int) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    run_ids = {p.stem for p in Path("/run/zoomq-nemesis").glob("*.pid") if p.read_text().strip() == str(pid)}
    return [line.split()[0] for line in out.splitlines() if any(line.startswith(f"{PREFIX}{r}-") for r in run_ids)]


def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)}


def test_a_short_run_passes_every_check_and_removes_what_it_made(tmp_path):
    before = namespaces()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "nemesis",
            "--faults",
            "5",
            "--fault-s",
            "1.5",
            "--rest-s",
            "1",
            "--tick-ms",
            "500",
            "--seed",
            "3",
            "--kinds",
            "isolate-leader,kill-leader,pause-follower,loss,clock-jump",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] and summary["lost_acknowledged_writes"] == 0 and summary["faults"] == 5
    assert summary["ops"]["register"]["ok"] > 0 and summary["ops"]["seq"]["ok"] > 0
    assert set(summary["checks"]) == {"register", "seq", "queue", "lock", "eph"}
    assert all(check["ok"] for check in summary["checks"].values())
    assert (tmp_path / "history.jsonl").stat().st_size > 0 and (tmp_path / "summary.md").exists()
    assert namespaces() <= before  # every namespace it made is gone


def test_a_harness_stopped_mid_run_tears_down_its_namespaces_and_processes(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench",
            "nemesis",
            "--faults",
            "50",
            "--fault-s",
            "2",
            "--rest-s",
            "1",
            "--tick-ms",
            "500",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        harness = psutil.Process(proc.pid)
        wait_for(lambda: (tmp_path / "worker.log").exists() and ours(proc.pid), timeout=120, what="the run to start")
        spawned = [p for p in harness.children(recursive=True)]
        names = ours(proc.pid)
        assert names
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert not set(names) & namespaces()
        assert not [p for p in spawned if alive(p)]
    finally:
        if proc.poll() is None:
            for p in psutil.Process(proc.pid).children(recursive=True):
                p.kill()
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.parametrize("delay_ms,observers", [("1", 0), (None, 1)], ids=["proxied", "straight+observer"])
def test_the_benchmark_runs_against_nodes_on_separate_network_hosts(tmp_path, delay_ms, observers):
    before = namespaces()
    out = tmp_path / "run.json"
    link = ["--link-delay-ms", delay_ms] if delay_ms else []
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--layout",
            "netns",
            *link,
            "--nodes",
            "3",
            "--observers",
            str(observers),
            "--workload",
            "set",
            "--clients",
            "1",
            "--depth",
            "8",
            "--duration",
            "1",
            "--warmup",
            "0.5",
            "--tick-ms",
            "500",
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["ops"] > 0 and result["errors_total"] == 0
    hosts = [n["hosts"].split(":")[0] for n in result["nodes_detail"]]
    if delay_ms:  # every link through the host's proxy, which listens on 127.0.1.<sid>
        assert set(hosts) == {"127.0.1.1", "127.0.1.2", "127.0.1.3"}
    else:  # straight to each node's own address on the bridge
        assert len(set(hosts)) == 3 + observers and not any(h.startswith("127.") for h in hosts)
    assert [n["role"] for n in result["nodes_detail"]].count("observer") == observers
    assert result["server_cpu_s"] > 0
    assert namespaces() <= before
