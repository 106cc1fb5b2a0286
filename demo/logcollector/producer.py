"""A log source: appends `count` numbered, timestamped lines to its log file at `rate` lines/s,
then writes `<file>.done` holding the count (written to a temporary name and renamed, so a reader
sees either no marker or the whole one)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from demo.logcollector.common import format_line, log


def done_marker(log_file: Path) -> Path:
    return log_file.with_name(log_file.name + ".done")


def produced_count(log_file: Path) -> int | None:
    """The final line count of a source whose producer has finished, else None."""
    try:
        return int(done_marker(log_file).read_text())
    except (OSError, ValueError):
        return None


def produce(name: str, log_file: Path, count: int, rate: float) -> int:
    interval = 1.0 / rate if rate > 0 else 0.0
    log(name, f"writing {count} lines to {log_file} at {rate:g} lines/s")
    next_at = time.monotonic()
    # Unbuffered appends: each line reaches the file in one write(), so a reader never sees a line
    # in two pieces from one write (it still reads only up to the last newline, to be safe).
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for number in range(1, count + 1):
            os.write(fd, format_line(name, number, time.time()).encode())
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing: the bounded rate
    finally:
        os.close(fd)
    marker = done_marker(log_file)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(str(count))
    tmp.replace(marker)
    log(name, f"done: {count} lines")
    return 0
