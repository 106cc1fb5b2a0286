"""A connection whose packets a partition drops is replaced instead of retransmitting on the
kernel's backoff (runtime.actor.limit_unacked, used by the election's peer sockets). Two network
hosts (bench/nemesis/netns.py); needs root, iproute2 and nftables, skipped with the reason
otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.nemesis.netns import Lab, missing_requirements

WHY = missing_requirements()
pytestmark = [pytest.mark.faults, pytest.mark.timeout(90), pytest.mark.skipif(WHY is not None, reason=WHY or "")]
REPO = Path(__file__).resolve().parents[2]

SERVER = """
import sys, zmq
router = zmq.Context.instance().socket(zmq.ROUTER)
router.bind(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
"""

# Connects, says "connected", waits for "go" (the partition is in place), sends, and reports
# whether the connection was closed under it within `deadline` seconds.
CLIENT = """
import sys, time, zmq, zmq.utils.monitor
from runtime.actor import limit_unacked
limited = sys.argv[2] == "limited"
sock = zmq.Context.instance().socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 0)
if limited:
    limit_unacked(sock)
mon = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
sock.connect(sys.argv[1])
def wait(event, deadline):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if mon.poll(200) and zmq.utils.monitor.recv_monitor_message(mon)["event"] == event:
            return True
    return False
assert wait(zmq.EVENT_HANDSHAKE_SUCCEEDED, 20), "no connection"
print("connected", flush=True)
sys.stdin.readline()
sock.send(b"vote")
print("closed" if wait(zmq.EVENT_DISCONNECTED, float(sys.argv[3])) else "still open", flush=True)
"""


def run_pair(lab: Lab, mode: str, deadline: float) -> str:
    address = f"tcp://{lab.addr(1)}:7111"
    server = lab.popen(
        1, [sys.executable, "-c", SERVER, address], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    client = lab.popen(
        "c",
        [sys.executable, "-c", CLIENT, address, mode, str(deadline)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        assert client.stdout.readline().strip() == "connected"
        lab.drop_between(1, ["c"])  # a partition: every packet between the two hosts is lost
        client.stdin.write("go\n")
        client.stdin.flush()
        return client.stdout.readline().strip()
    finally:
        lab.heal()
        for proc in (client, server):
            proc.kill()
            proc.wait(timeout=10)


def test_a_connection_cut_by_a_partition_is_replaced_not_left_to_the_kernels_backoff():
    with Lab(1) as lab:
        # Without the limit, the kernel retransmits for many minutes before giving up.
        assert run_pair(lab, "plain", deadline=4) == "still open"
        assert run_pair(lab, "limited", deadline=20) == "closed"
