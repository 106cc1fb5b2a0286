"""The quorum channel's bookkeeping (runtime/channel.py), the same at both ends."""

from __future__ import annotations

import pytest

from runtime.channel import SEQ, ChannelState

pytestmark = pytest.mark.timeout(30)


def test_messages_are_numbered_and_taken_only_in_sequence():
    sender = ChannelState(0.0, silence_s=1.0, heartbeat_s=0.5)
    receiver = ChannelState(0.0, silence_s=1.0, heartbeat_s=0.5)
    first, second, third = (sender.frame(p) for p in (b"a", b"b", b"c"))
    assert receiver.accept(first, 0.1) == b"a"
    assert receiver.accept(third, 0.2) is None  # "b" was lost: a gap breaks the channel
    assert receiver.in_seq == 1 and receiver.last_heard == 0.1
    assert receiver.accept(second, 0.3) == b"b"


@pytest.mark.parametrize("frames", [[b"x"], [b"123", b"x"], [SEQ.pack(0), b"x", b"y"]])
def test_malformed_frames_are_refused(frames):
    assert ChannelState(0.0, silence_s=1.0, heartbeat_s=0.5).accept(frames, 0.0) is None


def test_a_silent_peer_is_dead_and_heartbeats_are_due_on_schedule():
    ch = ChannelState(10.0, silence_s=1.0, heartbeat_s=0.4, in_seq=1)
    assert ch.heartbeat_due(10.0) and not ch.heartbeat_due(10.3) and ch.heartbeat_due(10.4)
    assert not ch.dead(10.99) and ch.dead(11.0)
    assert ch.deadline() == pytest.approx(10.8)
    ch.accept([SEQ.pack(1), b"ping"], 10.9)
    assert not ch.dead(11.5)
