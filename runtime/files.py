"""Every file the node writes whole goes through `write_atomic`: a temp file beside it, written,
fsynced (when `durable`), renamed over the target, and the directory fsynced, so that a crash
leaves either the old file or the new one, never a torn one (ZooKeeper's AtomicFileOutputStream).
Appends to the transaction log are the one exception (actors/log/txnlog.py: framed, checksummed
records and a torn-tail cut at recovery)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path


def fsync_dir(directory: str | Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: bytes | Iterable[bytes], *, durable: bool = True) -> Path:
    """Replace `path` with `data` (bytes, or chunks written in order) all at once. `durable`:
    fsync the file and its directory (data-dir files); off for run-dir files that a restart
    rewrites anyway (role.json, status.json)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            for chunk in (data,) if isinstance(data, bytes | bytearray | memoryview) else data:
                f.write(chunk)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path
