"""The follower actor's shell, in this process against a bare ROUTER standing in for the leader:
what goes on the channel, in what order."""

from __future__ import annotations

import time

import msgspec
import pytest
import structlog
import zmq

from actors.follower.follower_actor import FollowerActor
from actors.protocol import quorum as q
from actors.protocol.internal import LogReady
from runtime.channel import SEQ
from runtime.config import NodeConfig, ServerEntry
from runtime.roles import Role, write_role
from zoomq.testing import free_port

pytestmark = pytest.mark.timeout(30)


def test_follower_info_is_the_first_message_even_when_a_heartbeat_falls_due_in_the_same_batch(tmp_path):
    """The leader drops a channel whose first message is not FollowerInfo numbered 0. LogReady
    arriving in the batch where the heartbeat timer fires (a slow log actor on a loaded machine)
    must not put a Ping ahead of it."""
    port = free_port()
    ctx = zmq.Context.instance()
    leader = ctx.socket(zmq.ROUTER)
    leader.setsockopt(zmq.LINGER, 0)
    leader.bind(f"tcp://127.0.0.1:{port}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    servers = [ServerEntry(1, "127.0.0.1", port, free_port()), ServerEntry(2, "127.0.0.1", free_port(), free_port())]
    cfg = NodeConfig(sid=2, servers=servers, data_dir=str(tmp_path / "data"), tick_ms=2000)
    write_role(run_dir, Role("following", leader=1, epoch=1))
    actor = FollowerActor(cfg, str(run_dir), structlog.get_logger())
    try:
        now = time.monotonic()
        actor.on_start(now)
        later = now + 5.0  # the heartbeat is long due
        actor.on_message(LogReady(sid=2, last_zxid=0), later)
        actor.on_timer(later)
        actor.on_batch_end(later)
        actor.on_timer(later + 2.0)  # a heartbeat, now that the channel is open
        decoder = msgspec.msgpack.Decoder(q.ToLeader)
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            if leader.poll(200):
                _ident, seq, payload = leader.recv_multipart()
                got.append((SEQ.unpack(seq)[0], type(decoder.decode(payload)).__name__))
        assert got == [(0, "FollowerInfo"), (1, "Ping")]
    finally:
        actor.on_stop()
        for sock in actor._handlers:
            sock.close(linger=0)
        actor.bus.close()
        leader.close()
