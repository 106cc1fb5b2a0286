"""The disk format: framing, torn-tail recovery, rolls, purge, snapshots, epochs, state rebuild."""

from __future__ import annotations

import os

import pytest
import structlog

from actors.log import epochs, records, snapshot
from actors.log.recovery import load_state, resume_state
from actors.log.txnlog import TxnLog, list_logs, read_txns
from actors.protocol.txn import CreateTxn, SetDataTxn, Txn
from actors.session.tree import DataTree

pytestmark = pytest.mark.timeout(60)
LOG = structlog.get_logger()


def create(zxid: int, name: str | None = None) -> Txn:
    return Txn(zxid, 1000 + zxid, 0, zxid, CreateTxn(f"/{name or f'n{zxid}'}", b"v%d" % zxid, []))


def write(directory, zxids, roll_bytes=1 << 20) -> TxnLog:
    log = TxnLog(directory, roll_bytes=roll_bytes, log=LOG)
    log.recover()
    log.append([create(z) for z in zxids])
    log.sync()
    return log


def test_frame_round_trip_and_reasons():
    buf = records.encode(b"abc") + records.encode(b"defg")
    payloads, end, reason = records.scan(buf)
    assert [bytes(p) for p in payloads] == [b"abc", b"defg"] and end == len(buf) and reason is None
    bad = bytearray(buf)
    bad[9] ^= 0xFF  # inside the first payload
    payloads, end, reason = records.scan(bytes(bad))
    assert payloads == [] and end == 0 and reason == "bad checksum"
    assert records.scan(b"\x00" * 16)[2].startswith("bad length")


def test_a_torn_tail_at_every_offset_is_cut_and_nothing_before_it_is_lost(tmp_path):
    base = tmp_path / "base"
    write(base, range(1, 4)).close()
    path = list_logs(base)[0][1]
    data = path.read_bytes()
    payloads, _, _ = records.scan(data)
    two_end = sum(records.HEADER.size + len(p) for p in payloads[:2])
    for cut in range(two_end + 1, len(data)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / path.name).write_bytes(data[:cut])
        log = TxnLog(d, roll_bytes=1 << 20, log=LOG)
        assert log.recover() == 2
        assert (d / path.name).stat().st_size == two_end
        assert [t.zxid for t in read_txns(d)] == [1, 2]
        log.append([create(3)])
        log.sync()
        assert [t.zxid for t in read_txns(d)] == [1, 2, 3]
        log.close()


def test_corruption_in_the_middle_drops_everything_after_it(tmp_path):
    write(tmp_path, range(1, 6)).close()
    path = list_logs(tmp_path)[0][1]
    data = bytearray(path.read_bytes())
    payloads, _, _ = records.scan(bytes(data))
    pos = sum(records.HEADER.size + len(p) for p in payloads[:2]) + records.HEADER.size + 2
    data[pos] ^= 0x55
    path.write_bytes(bytes(data))
    log = TxnLog(tmp_path, roll_bytes=1 << 20, log=LOG)
    assert log.recover() == 2


def test_appends_skip_what_is_already_logged(tmp_path):
    log = write(tmp_path, range(1, 4))
    assert log.append([create(2), create(3), create(4)]) == 1
    log.sync()
    assert [t.zxid for t in read_txns(tmp_path)] == [1, 2, 3, 4]


def test_roll_read_across_files_and_purge(tmp_path):
    log = TxnLog(tmp_path, roll_bytes=1 << 20, log=LOG)
    log.recover()
    for start in (1, 11, 21):
        log.roll()
        log.append([create(z) for z in range(start, start + 10)])
        log.sync()
    assert [f for f, _ in list_logs(tmp_path)] == [1, 11, 21]
    assert [t.zxid for t in read_txns(tmp_path, after=8, upto=13)] == [9, 10, 11, 12, 13]
    removed = log.purge(15)  # a snapshot at 15 needs 16.. : the file starting at 11 stays
    assert [p.name for p in removed] == [f"log.{1:016x}"]
    assert [t.zxid for t in read_txns(tmp_path, after=15)] == list(range(16, 31))


def test_truncate_after_drops_later_txns_durably(tmp_path):
    log = write(tmp_path, range(1, 8))
    log.truncate_after(4)
    assert [t.zxid for t in read_txns(tmp_path)] == [1, 2, 3, 4]
    log.append([create(5, "again")])
    log.sync()
    assert [t.op.path for t in read_txns(tmp_path)][-1] == "/again"


def test_snapshots_are_atomic_and_a_broken_newest_falls_back(tmp_path):
    snapshot.write_snapshot(tmp_path, 5, b"five")
    snapshot.write_snapshot(tmp_path, 9, b"nine")
    assert snapshot.load_newest_valid(tmp_path) == (9, b"nine")
    newest = tmp_path / f"snapshot.{9:016x}"
    newest.write_bytes(newest.read_bytes()[:-3])  # truncated
    (tmp_path / f"snapshot.{12:016x}.tmp123").write_bytes(b"half")
    assert snapshot.load_newest_valid(tmp_path) == (5, b"five")
    assert snapshot.remove_temp_files(tmp_path) == 1


def test_purge_snapshots_keeps_the_newest(tmp_path):
    for z in (1, 2, 3, 4, 5):
        snapshot.write_snapshot(tmp_path, z, b"x")
    assert snapshot.purge_snapshots(tmp_path, 3) == 3
    assert [z for z, _ in snapshot.list_snapshots(tmp_path)] == [5, 4, 3]


def test_epoch_files(tmp_path):
    assert epochs.read_epoch(tmp_path, "currentEpoch") == 0
    epochs.write_epoch(tmp_path, "currentEpoch", 7)
    assert epochs.read_epoch(tmp_path, "currentEpoch") == 7
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_state_is_snapshot_plus_log_replay(tmp_path):
    write(tmp_path, range(1, 6)).close()
    tree = DataTree()
    for txn in read_txns(tmp_path, upto=3):
        tree.apply(txn)
    snapshot.write_snapshot(tmp_path, 3, tree.to_snapshot())
    log = TxnLog(tmp_path, roll_bytes=1 << 20, log=LOG)
    log.recover()
    log.append([Txn(6, 2000, 0, 6, SetDataTxn("/n1", b"changed", 1))])
    log.sync()
    full = load_state(tmp_path, log=LOG)
    assert full.last_zxid == 6 and full.get("/n1").data == b"changed" and full.get("/n5") is not None
    partial = load_state(tmp_path, upto=4, log=LOG)
    assert partial.last_zxid == 4 and partial.get("/n5") is None
    replayed = DataTree()
    for txn in read_txns(tmp_path):
        replayed.apply(txn)
    assert replayed.digest() == full.digest()


def test_preallocated_files_end_cleanly_and_roll_without_losing_txns(tmp_path):
    log = TxnLog(tmp_path, roll_bytes=4096, log=LOG)
    log.recover()
    for z in range(1, 200):  # several rolls of 4 KiB preallocated files
        log.append([create(z)])
        log.sync()
    # A crash leaves the last file with its preallocated zero tail: it is a clean end.
    assert len(list_logs(tmp_path)) >= 2 and list_logs(tmp_path)[-1][1].stat().st_size >= 4096
    assert [t.zxid for t in read_txns(tmp_path)] == list(range(1, 200))
    again = TxnLog(tmp_path, roll_bytes=4096, log=LOG)
    assert again.recover() == 199
    again.append([create(200)])
    again.close()
    assert [t.zxid for t in read_txns(tmp_path)] == list(range(1, 201))
    for _, path in list_logs(tmp_path):
        payloads, end, _ = records.scan(path.read_bytes())
        assert end == path.stat().st_size  # closed and rolled files carry no zero tail


def test_the_log_refuses_a_hole_and_keeps_what_came_before(tmp_path):
    log = TxnLog(tmp_path, roll_bytes=1 << 20, log=LOG)
    log.recover()
    e1 = 1 << 32

    def t(z):
        return Txn(z, 0, 0, 0, CreateTxn(f"/n{z & 0xFFFF}", b"", []))

    assert log.append([t(e1 + 1), t(e1 + 2)]) == 2
    assert log.append([t(e1 + 5), t(e1 + 6)]) == 0  # 3 and 4 were lost on the way: no hole
    assert log.gap_opened  # the log actor tells the sender its end at once
    assert log.append([t(e1 + 7)]) == 0 and not log.gap_opened  # the same hole: said once only
    assert log.append([t(e1 + 3), t(e1 + 4), t(e1 + 5)]) == 3 and not log.gap_opened
    assert log.append([t((2 << 32) + 1)]) == 1  # the first txn of a new epoch follows any end
    log.sync()
    assert [x.zxid for x in read_txns(tmp_path)] == [e1 + 1, e1 + 2, e1 + 3, e1 + 4, e1 + 5, (2 << 32) + 1]
    log.close()


def test_a_preloaded_state_is_caught_up_unless_the_disk_moved_under_it(tmp_path):
    log = write(tmp_path, range(1, 11))
    preloaded = load_state(tmp_path, log=LOG)
    log.append([create(z) for z in range(11, 16)])
    log.sync()
    resumed = resume_state(preloaded, tmp_path, upto=15, log=LOG)
    assert resumed is not None and resumed.last_zxid == 15
    assert resumed.to_snapshot() == load_state(tmp_path, log=LOG).to_snapshot()

    stale = load_state(tmp_path, log=LOG)  # through 15; then 14 and 15 are truncated away and
    log.truncate_after(13)  # a new epoch's txns follow: a catch-up would apply them on top of 14, 15
    log.append([create((2 << 32) + 1, "e2")])
    log.sync()
    assert resume_state(stale, tmp_path, upto=(2 << 32) + 1, log=LOG) is None
    assert resume_state(load_state(tmp_path, log=LOG), tmp_path, upto=(2 << 32) + 1, log=LOG) is not None

    older = load_state(tmp_path, upto=12, log=LOG)  # a snapshot newer than it appears (SNAP installed)
    snapshot.write_snapshot(tmp_path, 13, load_state(tmp_path, upto=13, log=LOG).to_snapshot())
    assert resume_state(older, tmp_path, upto=(2 << 32) + 1, log=LOG) is None
    log.close()
