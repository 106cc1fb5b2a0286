"""The intra-node bus (runtime/localbus.py): order, big frames, a destination not up yet or
restarted, the queue bound, and bad input from a sender."""

from __future__ import annotations

import select
import socket
import time
from typing import Any

import pytest

from runtime.localbus import LEN, MAX_FRAME, LocalBus, bus_path

pytestmark = pytest.mark.timeout(30)


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.events.append((event, kw))

    info = warning

    def names(self) -> list[str]:
        return [e for e, _ in self.events]


class Node:
    """A bus and what it received."""

    def __init__(self, run_dir: str, name: str, **kw: Any) -> None:
        self.log = Log()
        self.bus = LocalBus(run_dir, name, self.log, **kw)
        self.got: list[bytes] = []

    def turn(self) -> None:
        self.bus.process(time.monotonic(), self.got.append)


def run_until(nodes: list[Node], done: Any, timeout: float = 10.0) -> None:
    """Drive the buses (waiting on their descriptors, and on the retry deadlines) until done()."""
    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, "condition not reached"
        live = [n for n in nodes if not n.bus.closed]
        dues = [d for n in live if (d := n.bus.next_deadline()) is not None]
        wait = 0.05 if not dues else max(0.0, min(dues) - time.monotonic())
        select.select([n.bus.fileno() for n in live], [], [], min(wait, 0.05))
        for n in live:
            n.turn()


def test_frames_arrive_in_order_and_batches_split_back_into_frames(tmp_path: Any) -> None:
    a, b = Node(str(tmp_path), "a"), Node(str(tmp_path), "b")
    sent = [f"m{i}".encode() for i in range(1000)]
    for i in range(0, 1000, 100):
        a.bus.send("b", sent[i : i + 100], time.monotonic())
    a.bus.send("b", [b""], time.monotonic())  # an empty frame is a frame
    run_until([a, b], lambda: len(b.got) == 1001)
    assert b.got == [*sent, b""]
    assert a.bus.pending() == 0


def test_a_frame_bigger_than_the_socket_buffers_arrives_whole(tmp_path: Any) -> None:
    a, b = Node(str(tmp_path), "a"), Node(str(tmp_path), "b")
    big = bytes(range(256)) * (32 * 1024)  # 8 MiB: many writes and reads
    a.bus.send("b", [b"before", big, b"after"], time.monotonic())
    run_until([a, b], lambda: len(b.got) == 3)
    assert b.got[0] == b"before" and b.got[1] == big and b.got[2] == b"after"
    assert a.bus.pending() == 0


def test_a_destination_not_up_yet_gets_what_was_sent_before_it_started(tmp_path: Any) -> None:
    a = Node(str(tmp_path), "a")
    a.bus.send("late", [b"1", b"2"], time.monotonic())
    assert a.bus.next_deadline() is not None  # it will try again
    assert a.bus.pending() == 2
    late = Node(str(tmp_path), "late")
    a.bus.send("late", [b"3"], time.monotonic())
    run_until([a, late], lambda: len(late.got) == 3)
    assert late.got == [b"1", b"2", b"3"]
    assert a.bus.next_deadline() is None


def test_a_restarted_destination_gets_what_is_sent_after_its_restart(tmp_path: Any) -> None:
    a, b = Node(str(tmp_path), "a"), Node(str(tmp_path), "b")
    a.bus.send("b", [b"to the first"], time.monotonic())
    run_until([a, b], lambda: b.got == [b"to the first"])
    b.bus.close()
    b2 = Node(str(tmp_path), "b")  # same name: binds over the stale socket file
    a.bus.send("b", [b"to the second"], time.monotonic())
    run_until([a, b2], lambda: b2.got == [b"to the second"])


def test_past_the_queue_limit_frames_are_dropped_with_a_log_line(tmp_path: Any) -> None:
    a = Node(str(tmp_path), "a", queue_limit=3)
    a.bus.send("absent", [b"1", b"2"], time.monotonic())
    a.bus.send("absent", [b"3", b"4", b"5"], time.monotonic())
    assert a.bus.pending() == 3
    assert a.log.names().count("send_dropped") == 1
    a.bus.send("absent", [b"6"], time.monotonic())
    assert a.log.names().count("send_dropped") == 1  # one line per overflow, not per frame
    late = Node(str(tmp_path), "absent")
    run_until([a, late], lambda: len(late.got) == 3)
    assert late.got == [b"1", b"2", b"3"]


def test_a_length_beyond_the_limit_closes_that_sender_only(tmp_path: Any) -> None:
    a, b = Node(str(tmp_path), "a"), Node(str(tmp_path), "b")
    rogue = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    rogue.connect(bus_path(str(tmp_path), "b"))
    rogue.sendall(LEN.pack(MAX_FRAME + 1) + b"xx")
    run_until([b], lambda: "bus_bad_frame" in b.log.names())
    rogue.settimeout(5)
    assert rogue.recv(10) == b""  # b closed it
    rogue.close()
    a.bus.send("b", [b"still served"], time.monotonic())
    run_until([a, b], lambda: b.got == [b"still served"])


def test_a_sender_dying_mid_frame_delivers_nothing_of_it(tmp_path: Any) -> None:
    b = Node(str(tmp_path), "b")
    rogue = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    rogue.connect(bus_path(str(tmp_path), "b"))
    rogue.sendall(LEN.pack(2) + b"ok" + LEN.pack(100) + b"partial")
    run_until([b], lambda: b.got == [b"ok"])
    rogue.close()
    run_until([b], lambda: not b.bus._ins)  # the connection is gone
    assert b.got == [b"ok"]
