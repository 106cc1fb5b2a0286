"""Watches that miss nothing, on real nodes: a persistent recursive watcher cut off from its node
while 1,000 writes happen gets all 1,000 events, in order and once, after it reconnects to
another node; a new client resumes a watch from the zxid of the last event another one handled;
a resume older than the node's window gets one RESYNC event; a TreeCache follows changes made
while it was disconnected."""

from __future__ import annotations

import threading

import pytest

from zoomq import Client
from zoomq.states import EventType, WatchedEvent
from zoomq.testing import ZoomqEnsemble, ZoomqServer, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

WRITES = 1_000


class Recorder:
    def __init__(self) -> None:
        self.events: list[WatchedEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: WatchedEvent) -> None:
        with self.lock:
            self.events.append(event)

    def created(self) -> list[str]:
        with self.lock:
            return [e.path for e in self.events if e.type == EventType.CREATED]


def test_a_watcher_cut_off_through_1000_writes_gets_all_of_them_in_order_from_another_node(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path) as ens:
        setup = ens.client()
        setup.create("/feed", b"")
        watched, other = ens.followers()[:2]
        writer_node = next(n for n in ens.nodes if n is not watched and n is not other)
        watcher = Client(hosts=f"{watched.hosts},{other.hosts}", randomize_hosts=False, timeout=3.0)
        watcher.start(timeout=30)
        got = Recorder()
        try:
            watcher.add_watch("/feed", got, recursive=True)
            writer = ens.client(hosts=writer_node.hosts)
            writer.create("/feed/before", b"")
            wait_for(lambda: got.created() == ["/feed/before"], 30, "the first event live")
            watched.pause()  # the watcher's node stops: its connection dies, it moves to `other`
            try:
                for i in range(WRITES):
                    writer.create(f"/feed/n{i:04d}", b"")
                expected = ["/feed/before", *[f"/feed/n{i:04d}" for i in range(WRITES)]]
                wait_for(lambda: len(got.created()) >= len(expected), 90, "every event after the reconnect")
            finally:
                watched.resume()
            assert got.created() == expected  # all, in order, once
            zxids = [e.zxid for e in got.events]
            assert zxids == sorted(zxids) and len(set(zxids)) == len(zxids)
            assert not [e for e in got.events if e.type == EventType.RESYNC]
        finally:
            watcher.stop()


def test_a_new_client_resumes_from_the_last_zxid_another_handled_and_an_old_one_gets_resync(tmp_path):
    with ZoomqServer(data_dir=tmp_path / "data", watch_history_txns=50) as node:
        first = node.client()
        first.create("/cfg", b"0")
        got = Recorder()
        first.add_watch("/cfg", got)
        first.set("/cfg", b"1")
        wait_for(lambda: len(got.events) == 1, 10, "the first change")
        handled = got.events[-1].zxid
        first.stop()  # a program that restarts: it kept `handled`
        writer = node.client()
        for i in range(2, 12):
            writer.set("/cfg", str(i).encode())
        later = Recorder()
        second = node.client()
        second.add_watch("/cfg", later, since_zxid=handled)
        wait_for(lambda: len(later.events) == 10, 10, "the ten changes after the handled one")
        assert [e.type for e in later.events] == [EventType.CHANGED] * 10
        assert all(e.zxid > handled for e in later.events)
        for i in range(100):  # past the window of 50
            writer.set("/cfg", b"x")
        too_old = Recorder()
        second.add_watch("/cfg", too_old, since_zxid=handled)
        wait_for(lambda: too_old.events, 10, "a RESYNC")
        assert [(e.type, e.path) for e in too_old.events] == [(EventType.RESYNC, "/cfg")]
        with pytest.raises(ValueError):
            second.add_watch("/cfg", too_old, since_zxid=-5)


def test_a_tree_cache_follows_changes_made_while_it_was_disconnected(tmp_path):
    with ZoomqEnsemble(3, base_dir=tmp_path) as ens:
        watched, other = ens.followers()[:2]
        client = Client(hosts=f"{watched.hosts},{other.hosts}", randomize_hosts=False, timeout=3.0)
        client.start(timeout=30)
        try:
            writer = ens.client(hosts=ens.leader().hosts)
            writer.create("/tc/a", b"1", makepath=True)
            cache = client.TreeCache("/tc")
            cache.start()
            watched.pause()
            try:
                writer.set("/tc/a", b"2")
                writer.create("/tc/b", b"3")
                writer.delete("/tc/a")
                wait_for(
                    lambda: cache.get_data("/tc/b") is not None and cache.get_data("/tc/a") is None,
                    60,
                    "the cache caught up through the other node",
                )
            finally:
                watched.resume()
            assert cache.get_data("/tc/b").data == b"3"
            assert cache.get_children("/tc") == frozenset({"b"})
            cache.close()
        finally:
            client.stop()
