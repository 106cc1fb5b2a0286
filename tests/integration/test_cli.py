"""The command lines users and scripts depend on: `zoomq server` and `zoomq shell`."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def _shell(hosts: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoomq", "shell", hosts, "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _listed(line: str) -> list[str]:
    """The names of an `ls` line: `[a, b]`."""
    assert line.startswith("[") and line.endswith("]"), line
    return [name.strip() for name in line[1:-1].split(",") if name.strip()]


def test_shell_one_shot_commands(node):
    out = _shell(node.hosts, "create /cfg hello; get /cfg; set /cfg world; get /cfg; ls /")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == ["Created /cfg", "hello", "world"]
    assert "cfg" in _listed(lines[-1])


def test_shell_sequential_ephemeral_and_stat(node):
    out = _shell(node.hosts, "create /q; create -s /q/item- x; ls /q; stat /q")
    assert out.returncode == 0, out.stderr
    assert "item-0000000000" in out.stdout
    assert "numChildren = 1" in out.stdout


def test_shell_reports_errors_with_kazoo_names(node):
    out = _shell(node.hosts, "get /does-not-exist")
    assert out.returncode == 1
    assert "NoNodeError" in out.stdout + out.stderr


def test_shell_delete_and_deleteall(node):
    out = _shell(node.hosts, "create /d; create /d/e; create /d/e/f; ls /; deleteall /d; ls /")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "d" in _listed(lines[-2]) and "d" not in _listed(lines[-1])


def test_server_refuses_a_bad_config_file(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("client_port = 'not a number'\n")
    out = subprocess.run(
        [sys.executable, "-m", "zoomq", "server", "--config", str(cfg), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "config" in out.stderr.lower()
