"""A quorum channel's bookkeeping (leader <-> one learner incarnation), the same at both ends.

Pure: the actor shells own the sockets and the clock; this only numbers, checks and times.
Rules (the design's "Paranoid Pirate" channel, etcd's progress tracking in spirit):
- every message goes as `[seq, payload]`, seq an 8-byte big-endian counter per direction;
- the receiver takes exactly the next number: anything else is a gap, the channel is broken and
  the learner synchronizes again from scratch (ZeroMQ's reconnect is not delivery);
- the peer is dead after `silence_s` without a message from it; a heartbeat is due every
  `heartbeat_s` (both ends send them, so a live but idle channel never looks dead).
"""

from __future__ import annotations

import struct

SEQ = struct.Struct(">Q")


class ChannelState:
    __slots__ = ("out_seq", "in_seq", "last_heard", "next_heartbeat", "silence_s", "heartbeat_s")

    def __init__(self, now: float, *, silence_s: float, heartbeat_s: float, in_seq: int = 0) -> None:
        self.out_seq = 0
        self.in_seq = in_seq  # the number the next message from the peer must carry
        self.last_heard = now
        self.next_heartbeat = now
        self.silence_s = silence_s
        self.heartbeat_s = heartbeat_s

    def frame(self, payload: bytes) -> list[bytes]:
        """The multipart for `payload`, numbered."""
        seq = self.out_seq
        self.out_seq += 1
        return [SEQ.pack(seq), payload]

    def accept(self, frames: list[bytes], now: float) -> bytes | None:
        """The payload of the next message, or None if `frames` is malformed or out of sequence
        (the channel is then broken)."""
        if len(frames) != 2 or len(frames[0]) != SEQ.size:
            return None
        (seq,) = SEQ.unpack(frames[0])
        if seq != self.in_seq:
            return None
        self.in_seq += 1
        self.last_heard = now
        return frames[1]

    def dead(self, now: float) -> bool:
        return now >= self.last_heard + self.silence_s  # the very expression deadline() gives

    def heartbeat_due(self, now: float) -> bool:
        """True (and the next one scheduled) when a heartbeat should go now."""
        if now < self.next_heartbeat:
            return False
        self.next_heartbeat = now + self.heartbeat_s
        return True

    def deadline(self) -> float:
        """When the channel next needs attention: a heartbeat or the peer's silence limit."""
        return min(self.next_heartbeat, self.last_heard + self.silence_s)
