"""The simulated network: datagrams (election notifications) and channels (the quorum link, FIFO
like TCP), with delays, partitions (symmetric or one-way), and channels that break.

Every delivery is an event on the world's queue at a virtual time. A channel delivers in order:
each message is scheduled no earlier than the one before it in the same direction. While a
direction is blocked by a partition its messages wait (TCP keeps retransmitting) and go, in
order, when it heals; if the endpoints give up first (silence limits), the channel is closed and
what waited is lost. Closing a channel tells both ends after a short delay (a reset), unless the
end's node is dead or paused (then it learns nothing until it looks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Channel:
    cid: int
    a: int  # learner node sid
    b: int  # leader node sid
    a_tag: Any  # what the learner side knows it by (its role incarnation)
    b_tag: Any  # what the leader side knows it by (an ident)
    open: bool = True
    leader_term: tuple[int, int] = (0, 0)  # the leader's (node incarnation, role term) it reached
    last: dict[int, float] = field(default_factory=dict)  # direction (dest sid) -> last delivery time
    held: dict[int, list[Any]] = field(default_factory=dict)  # dest sid -> payloads waiting out a partition


class Net:
    def __init__(self, world: Any) -> None:
        self.world = world
        self.blocked: set[tuple[int, int]] = set()  # (src, dst): src's messages do not reach dst
        self.channels: dict[int, Channel] = {}
        self._next_cid = 0

    # --- partitions ---------------------------------------------------------------------------

    def reachable(self, src: int, dst: int) -> bool:
        return (src, dst) not in self.blocked

    def partition(self, pairs: set[tuple[int, int]]) -> None:
        self.blocked |= pairs

    def heal(self) -> None:
        self.blocked.clear()
        for ch in list(self.channels.values()):
            for dest, payloads in list(ch.held.items()):
                ch.held[dest] = []
                for payload in payloads:
                    self._schedule(ch, dest, payload)

    # --- datagrams ----------------------------------------------------------------------------

    def datagram(self, src: int, dst: int, deliver: Callable[[], None]) -> None:
        if not self.reachable(src, dst) or self.world.rng.random() < self.world.faults.datagram_loss:
            return
        self.world.at(self.world.now + self.world.delay(), deliver, f"dgram {src}->{dst}")

    # --- channels -----------------------------------------------------------------------------

    def open(self, a: int, b: int, a_tag: Any, b_tag: Any) -> Channel:
        self._next_cid += 1
        ch = Channel(self._next_cid, a, b, a_tag, b_tag)
        self.channels[ch.cid] = ch
        return ch

    def send(self, ch: Channel, src: int, payload: Any) -> None:
        if not ch.open:
            return
        dest = ch.b if src == ch.a else ch.a
        if not self.reachable(src, dest):
            ch.held.setdefault(dest, []).append(payload)
            return
        self._schedule(ch, dest, payload)

    def _schedule(self, ch: Channel, dest: int, payload: Any) -> None:
        when = max(self.world.now + self.world.delay(), ch.last.get(dest, 0.0))
        ch.last[dest] = when
        self.world.at(when, lambda: self._deliver(ch, dest, payload), f"chan{ch.cid} ->{dest}")

    def _deliver(self, ch: Channel, dest: int, payload: Any) -> None:
        if ch.open:
            self.world.nodes[dest].channel_message(ch, payload)

    def close(self, ch: Channel, why: str) -> None:
        """Break the channel: both ends hear of it shortly (a reset), what was in flight is lost."""
        if not ch.open:
            return
        ch.open = False
        ch.held.clear()
        self.channels.pop(ch.cid, None)
        for end in (ch.a, ch.b):
            self.world.at(
                self.world.now + self.world.delay(),
                lambda end=end: self.world.nodes[end].channel_closed(ch, why),
                f"chan{ch.cid} closed at {end}",
            )

    def close_all_of(self, sid: int, why: str) -> None:
        for ch in list(self.channels.values()):
            if sid in (ch.a, ch.b):
                self.close(ch, why)
