"""`python -m bench run` end to end against a standalone zoomq node it starts itself: the harness,
its client processes and their reports work, and a short run finishes without errors. No
ZooKeeper needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("workload", "clients", "client"),
    [
        ("set", 1, "native"),
        ("mixed:90", 1, "native"),
        ("lock", 2, "native"),
        ("set", 1, "kazoo"),
        ("get-lin", 1, "native"),
        ("sync-get", 1, "native"),
        ("sync-get", 1, "kazoo"),
    ],
)
def test_bench_run_reports(tmp_path: Path, workload: str, clients: int, client: str) -> None:
    if client == "kazoo":
        pytest.importorskip("kazoo")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--target",
            "zoomq",
            "--nodes",
            "1",
            "--workload",
            workload,
            "--clients",
            str(clients),
            "--depth",
            "8",
            "--duration",
            "1",
            "--warmup",
            "0.5",
            "--json",
            str(out),
            "--client",
            client,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["target"] == "zoomq" and result["workload"] == workload
    assert result["ops"] > 0 and result["ops_per_s"] > 0
    for field in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
        assert result[field] > 0, field
    assert result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["p999_ms"] <= result["max_ms"]
    assert result["errors"] == {} and result["errors_total"] == 0
    assert result["server_cpu_s_per_1k_ops"] > 0
    actors = {label.rsplit("/", 1)[1] for label in result["cpu_per_process"]}
    assert {"session", "log"} <= actors
    assert result["client"] == client
    if client == "kazoo":  # zoomq driven through its ZooKeeper-protocol gateway
        assert "gateway" in actors
    assert [n["node"] for n in result["nodes_detail"]] == ["node1"]
    if workload == "mixed:90":
        assert set(result["latency_by_kind"]) == {"read", "write"}
    if workload == "lock":
        assert len(result["extra"]["acquisitions_per_client"]) == clients
        assert 0 < result["extra"]["fairness"] <= 1
