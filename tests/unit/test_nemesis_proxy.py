"""The fault-injection TCP proxy (bench/nemesis/proxy.py), run as a subprocess in front of an echo server."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.nemesis.proxy import ProxyError, control
from zoomq.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
IO_TIMEOUT = 10.0


class EchoServer:
    """Echoes every connection until EOF, then closes it; runs in threads."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                return

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for conn in self.conns:
            conn.close()


class ProxyProcess:
    def __init__(self, proc: subprocess.Popen, ctl: str, ports: list[int]) -> None:
        self.proc, self.ctl, self.ports = proc, ctl, ports

    def command(self, **cmd: object) -> dict:
        return control(self.ctl, cmd)

    def connect(self, index: int = 0) -> socket.socket:
        sock = socket.create_connection((HOST, self.ports[index]), timeout=IO_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def wait_ready(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    out = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in out:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"proxy not ready in {timeout}s (got {out!r})"
            if sel.select(remaining):
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, f"proxy exited with {proc.wait(timeout=5)} before ready"
                out += chunk
    assert out == b"ready\n"


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def start_proxy() -> Iterator[Callable[..., ProxyProcess]]:
    tmp = tempfile.mkdtemp(prefix="nmp", dir="/tmp")  # a short path: Unix socket paths are limited to 107 bytes
    procs: list[subprocess.Popen] = []

    def start(*target_ports: int) -> ProxyProcess:
        ctl = os.path.join(tmp, f"ctl{len(procs)}.sock")
        ports = [free_port() for _ in target_ports]
        args = [sys.executable, "-m", "bench.nemesis.proxy", "--control", ctl]
        for port, target in zip(ports, target_ports, strict=True):
            args += ["--route", f"{HOST}:{port}={HOST}:{target}"]
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE)
        procs.append(proc)
        wait_ready(proc)
        return ProxyProcess(proc, ctl, ports)

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            proc.stdout.close()
        shutil.rmtree(tmp, ignore_errors=True)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(min(65536, size - len(buf)))
        assert chunk, f"EOF after {len(buf)} of {size} bytes"
        buf += chunk
    return bytes(buf)


def recv_to_eof(sock: socket.socket) -> bytes:
    buf = bytearray()
    while chunk := sock.recv(65536):
        buf += chunk
    return bytes(buf)


def send_in_thread(sock: socket.socket, data: bytes, then_shutdown: bool = False) -> threading.Thread:
    def run() -> None:
        sock.sendall(data)
        if then_shutdown:
            sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def poll(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)  # the polling interval; the deadline above bounds the wait


def round_trip_on(sock: socket.socket, message: bytes) -> None:
    sock.sendall(message)
    assert recv_exactly(sock, len(message)) == message


def round_trip(proxy: ProxyProcess, message: bytes = b"ping") -> None:
    with proxy.connect() as sock:
        round_trip_on(sock, message)


def sees_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


@pytest.mark.timeout(30)
def test_megabytes_pass_through_unchanged_both_ways_and_are_counted(echo, start_proxy):
    proxy = start_proxy(echo.port)
    data = os.urandom(4 * 1024 * 1024)
    with proxy.connect() as sock:
        sender = send_in_thread(sock, data, then_shutdown=True)
        assert recv_to_eof(sock) == data
        sender.join(IO_TIMEOUT)
    target = f"{HOST}:{echo.port}"
    poll(lambda: proxy.command(op="stats")["bytes"][target] == 2 * len(data))
    poll(lambda: proxy.command(op="stats")["connections"] == 0)


@pytest.mark.timeout(30)
def test_many_small_messages_arrive_in_order_under_jitter(echo, start_proxy):
    proxy = start_proxy(echo.port)
    proxy.command(op="set", peer=HOST, delay_ms=5, jitter_ms=5)
    messages = [b"message %05d;" % i for i in range(2000)]
    with proxy.connect() as sock:
        for message in messages:
            sock.sendall(message)
        assert recv_exactly(sock, sum(map(len, messages))) == b"".join(messages)


@pytest.mark.timeout(30)
def test_delay_makes_a_round_trip_at_least_twice_the_delay(echo, start_proxy):
    proxy = start_proxy(echo.port)
    proxy.command(op="set", peer="*", delay_ms=150, jitter_ms=50)
    with proxy.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        assert time.monotonic() - start >= 2 * 0.100
        proxy.command(op="set", peer=HOST, delay_ms=0, jitter_ms=0, bandwidth_bps=100_000)
        data = os.urandom(50_000)
        start = time.monotonic()
        sender = send_in_thread(sock, data)
        assert recv_exactly(sock, len(data)) == data
        assert time.monotonic() - start >= 0.95 * len(data) / 100_000
        sender.join(IO_TIMEOUT)


@pytest.mark.timeout(30)
def test_stall_holds_bytes_and_release_delivers_them_all_in_order(echo, start_proxy):
    proxy = start_proxy(echo.port)
    with proxy.connect() as sock:
        round_trip_on(sock, b"before")
        proxy.command(op="set", peer=HOST, stall=True)
        messages = [b"held %03d;" % i for i in range(100)]
        for message in messages:
            sock.sendall(message)
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(65536)
        sock.settimeout(IO_TIMEOUT)
        proxy.command(op="set", peer="*", stall=False)
        assert recv_exactly(sock, sum(map(len, messages))) == b"".join(messages)
        proxy.command(op="set", peer="*", stall=True)
        sock.sendall(b"after")
        proxy.command(op="clear")
        assert recv_exactly(sock, 5) == b"after"


@pytest.mark.timeout(30)
def test_reset_closes_current_connections_and_new_ones_work(echo, start_proxy):
    proxy = start_proxy(echo.port)
    with proxy.connect() as first, proxy.connect() as second:
        round_trip_on(first, b"one")
        round_trip_on(second, b"two")
        assert proxy.command(op="reset", peer=HOST)["reset"] == 2
        assert sees_closed(first)
        assert sees_closed(second)
    round_trip(proxy)
    with proxy.connect() as third:
        round_trip_on(third, b"three")
        proxy.command(op="reset", peer="*")
        assert sees_closed(third)
    poll(lambda: proxy.command(op="stats")["connections"] == 0)
    round_trip(proxy)


@pytest.mark.timeout(30)
def test_a_refusing_target_closes_the_clients_connection(echo, start_proxy):
    proxy = start_proxy(free_port(), echo.port)
    with proxy.connect(0) as sock:
        assert sees_closed(sock)
    with proxy.connect(1) as sock:  # the other route is unaffected
        round_trip_on(sock, b"still fine")


@pytest.mark.timeout(30)
def test_bad_control_commands_are_refused_and_the_proxy_keeps_running(echo, start_proxy):
    proxy = start_proxy(echo.port)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as ctl:
        ctl.settimeout(IO_TIMEOUT)
        ctl.connect(proxy.ctl)
        reader = ctl.makefile("rb")
        for line in (b"not json\n", b"[1, 2]\n", b'{"op": "fly"}\n', b'{"op": "set", "peer": "*", "delay_ms": -1}\n'):
            ctl.sendall(line)
            reply = json.loads(reader.readline())
            assert reply["ok"] is False and reply["error"]
        ctl.sendall(b'{"op": "stats"}\n')
        assert json.loads(reader.readline())["ok"] is True
    for bad in ({"op": "set", "peer": HOST, "stall": "yes"}, {"op": "set", "peer": HOST, "color": 1}, {"op": "reset"}):
        with pytest.raises(ProxyError):
            control(proxy.ctl, bad)
    round_trip(proxy)


@pytest.mark.timeout(30)
def test_control_without_a_proxy_raises_proxy_error(tmp_path):
    with pytest.raises(ProxyError):
        control(str(tmp_path / "nobody.sock"), {"op": "stats"}, timeout=1.0)


@pytest.mark.timeout(30)
def test_sigterm_exits_cleanly_with_open_connections(echo, start_proxy):
    proxy = start_proxy(echo.port)
    with proxy.connect() as sock:
        round_trip_on(sock, b"open")
        proxy.command(op="set", peer="*", stall=True)
        sock.sendall(b"queued")
        proxy.proc.send_signal(signal.SIGTERM)
        assert proxy.proc.wait(timeout=10) == 0
        assert sees_closed(sock)
    assert not os.path.exists(proxy.ctl)
