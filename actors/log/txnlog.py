"""The transaction log: `log.<16-hex first zxid>` files of framed msgpack txns (actors/log/records.py).

One writer (the log actor) appends and fsyncs in groups; readers (the leader and session actors
rebuilding state) read concurrently and stop at a partially written tail, never truncating it.
`recover()` — run by the writer before anything else — cuts a torn or corrupt tail physically.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from actors.log import records
from actors.log.epochs import fsync_dir, numbered_files
from actors.protocol.txn import Txn
from actors.protocol.zxid import follows

PREFIX = "log."
ZERO_END = "bad length 0"  # what records.scan says at a preallocated (zero) tail
_decoder = msgspec.msgpack.Decoder(Txn)


def list_logs(directory: Path) -> list[tuple[int, Path]]:
    """(first zxid, path), oldest first."""
    return numbered_files(directory, PREFIX)


def _scan_file(path: Path) -> tuple[list[memoryview], int, str | None, int]:
    data = path.read_bytes()
    payloads, end, reason = records.scan(data)
    return payloads, end, reason, len(data)


def read_txns(directory: Path, after: int = 0, upto: int | None = None) -> Iterator[Txn]:
    """Txns with after < zxid <= upto, in order; stops at the first invalid frame."""
    logs = list_logs(directory)
    for i, (first, path) in enumerate(logs):
        nxt = logs[i + 1][0] if i + 1 < len(logs) else None
        if nxt is not None and nxt <= after + 1:
            continue  # every txn of this file is <= after
        if upto is not None and first > upto:
            return
        try:
            payloads, _end, reason, _size = _scan_file(path)
        except FileNotFoundError:
            continue  # purged meanwhile
        for payload in payloads:
            txn = _decoder.decode(payload)
            if txn.zxid <= after:
                continue
            if upto is not None and txn.zxid > upto:
                return
            yield txn
        if reason is not None and not (reason == ZERO_END and nxt is not None):
            return  # a torn tail (or the end of the log): nothing after it is valid


def _zero_from(path: Path, start: int, size: int) -> bool:
    """True if every byte of `path` from `start` on is zero."""
    with open(path, "rb") as f:
        f.seek(start)
        left = size - start
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk or chunk.count(0) != len(chunk):
                return False
            left -= len(chunk)
    return True


class TxnLog:
    def __init__(self, directory: Path, *, roll_bytes: int, log: Any) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.roll_bytes = roll_bytes
        self.log = log
        self.last_zxid = 0
        self.gap_opened = False  # the last append hit a hole that the one before did not: say so once
        self._refusing = False
        self._file: Any = None
        self._file_bytes = 0
        self._new_file = False
        self._roll_next = False
        self._encoder = msgspec.msgpack.Encoder()

    def recover(self) -> int:
        """Validate every log file; cut a torn/corrupt tail; return the last durable zxid."""
        last = 0
        logs = list_logs(self.dir)
        for i, (_first, path) in enumerate(logs):
            payloads, end, reason, size = _scan_file(path)
            if payloads:
                last = _decoder.decode(payloads[-1]).zxid
            if reason is not None or end < size:
                if _zero_from(path, end, size):
                    # The unused preallocated tail of a log file: a clean end, not damage.
                    with open(path, "r+b") as f:
                        f.truncate(end)
                        os.fsync(f.fileno())
                    continue
                with open(path, "r+b") as f:
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
                self.log.warning(
                    "log_tail_truncated",
                    file=path.name,
                    offset=end,
                    reason=reason or "trailing bytes",
                    dropped=size - end,
                )
                for _later_first, later in logs[i + 1 :]:
                    later.unlink()
                    self.log.warning("log_file_dropped", file=later.name)
                fsync_dir(self.dir)
                break
        for _first, path in list_logs(self.dir):
            if path.stat().st_size == 0:
                path.unlink()
        self.last_zxid = last
        self._roll_next = True
        return last

    def append(self, txns: list[Txn]) -> int:
        """Buffered append of the txns after `last_zxid` (earlier ones are skipped); returns how many.

        The log never has a hole: a txn that does not directly follow the last one (its messages
        were lost, e.g. with a previous log actor) stops the append there, and `gap_opened` says
        that a hole began (once, not for every later append): the log actor then tells the sender
        its durable end (LogReady), and the sender sends the missing txns again or starts over."""
        n = 0
        self.gap_opened = False
        for txn in txns:
            if txn.zxid <= self.last_zxid:
                continue
            if not follows(self.last_zxid, txn.zxid):
                if not self._refusing:
                    self.log.warning("log_gap_refused", last=hex(self.last_zxid), got=hex(txn.zxid))
                    self.gap_opened = self._refusing = True
                break
            self._refusing = False
            if self._file is None or self._roll_next or self._file_bytes >= self.roll_bytes:
                self._open(txn.zxid)
            frame = records.encode(self._encoder.encode(txn))
            self._file.write(frame)
            self._file_bytes += len(frame)
            self.last_zxid = txn.zxid
            n += 1
        return n

    def _open(self, first_zxid: int) -> None:
        if self._file is not None:
            self._file.flush()
            self._file.truncate(self._file_bytes)  # a rolled file ends where its last record ends
            os.fsync(self._file.fileno())
            self._file.close()
        path = self.dir / f"{PREFIX}{first_zxid:016x}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        # Preallocate (zeros, as ZooKeeper's preAllocSize): appends then never change the file's
        # size, so each fdatasync flushes data only. A zero length frame marks the end of the log.
        with contextlib.suppress(OSError):
            os.posix_fallocate(fd, 0, self.roll_bytes)
        self._file = os.fdopen(fd, "r+b", buffering=1 << 20)
        self._file_bytes = 0
        self._new_file = True
        self._roll_next = False

    def sync(self) -> None:
        if self._file is None:
            return
        self._file.flush()
        os.fdatasync(self._file.fileno())
        if self._new_file:
            fsync_dir(self.dir)
            self._new_file = False

    def roll(self) -> None:
        self._roll_next = True

    def read_after(self, zxid: int, upto: int | None = None) -> Iterator[Txn]:
        return read_txns(self.dir, zxid, upto)

    def truncate_after(self, zxid: int) -> None:
        """Drop every txn > zxid, durably (ZAB's TRUNC)."""
        self.close()
        for first, path in list_logs(self.dir):
            if first > zxid:
                path.unlink()
                continue
            payloads, end, _reason, size = _scan_file(path)
            keep = 0
            pos = 0
            for payload in payloads:
                pos += records.HEADER.size + len(payload)
                if _decoder.decode(payload).zxid <= zxid:
                    keep = pos
            if keep < size:
                with open(path, "r+b") as f:
                    f.truncate(keep)
                    os.fsync(f.fileno())
        fsync_dir(self.dir)
        self.last_zxid = min(self.last_zxid, zxid)
        self._roll_next = True

    def purge(self, keep_from_zxid: int) -> list[Path]:
        """Delete log files whose every txn is <= keep_from_zxid (never the file being written)."""
        logs = list_logs(self.dir)
        removed = []
        for i, (_first, path) in enumerate(logs):
            nxt = logs[i + 1][0] if i + 1 < len(logs) else None
            if nxt is None or nxt > keep_from_zxid + 1:
                break
            path.unlink()
            removed.append(path)
        return removed

    def close(self) -> None:
        if self._file is not None:
            self.sync()
            self._file.truncate(self._file_bytes)  # drop the unused preallocated tail
            self._file.close()
            self._file = None
