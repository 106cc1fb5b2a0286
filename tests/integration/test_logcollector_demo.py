"""The log-collector demo end to end (demo/logcollector): a 3-node ensemble, 3 sources, 3
collectors, 2 collectors SIGKILLed mid-run. Every line must reach the sink exactly once, every kill
must make the coordinator move the dead collector's sources, and no process of the run may be left."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
RATE = 40  # lines per second per source
DURATION = 12  # seconds of production: kills at 5 s and 10 s


def _still_running(entry: dict) -> bool:
    """The very process the run started (same PID and start time) is still alive."""
    try:
        proc = psutil.Process(entry["pid"])
        return proc.create_time() == entry["create_time"] and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_demo_loses_and_duplicates_nothing_and_reassigns_after_every_kill(tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "demo.logcollector",
            "run",
            "--sources",
            "3",
            "--collectors",
            "3",
            "--kill-every",
            "5s",
            "--kills",
            "2",
            "--duration",
            f"{DURATION}s",
            "--rate",
            str(RATE),
            "--drain-timeout",
            "40s",
            "--seed",
            "7",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(summary_file),
        ],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr (tail):\n{run.stderr[-6000:]}"
    summary = json.loads(summary_file.read_text())

    assert summary["lines_produced"] == 3 * RATE * DURATION
    assert summary["lines_collected"] == summary["lines_produced"]
    assert summary["lost"] == 0
    assert summary["duplicates"] == 0
    assert summary["unexpected_lines"] == 0
    assert summary["all_collected_in_time"]
    assert all(row["in_order"] for row in summary["per_source"].values())

    kills = summary["kills"]
    assert len(kills) == 2
    assert summary["reassignments"] >= len(kills)
    for kill in kills:  # the dead collector's sources moved to others
        assert kill["held"] and kill["reassigned"] >= 1, kill

    assert "lost" in run.stdout and "OK" in run.stdout
    left = [entry for entry in summary["processes"] if entry["create_time"] is not None and _still_running(entry)]
    assert not left, f"processes of the run still running: {left}"
