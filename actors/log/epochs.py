"""Small file helpers of the data dir: `acceptedEpoch` / `currentEpoch` (ZAB's persisted epochs),
atomic writes, and the numbered `log.*` / `snapshot.*` file names."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def numbered_files(directory: Path, prefix: str) -> list[tuple[int, Path]]:
    """`<prefix><16 hex digits>` files of `directory` as (number, path), ascending."""
    out = []
    for path in Path(directory).glob(prefix + "*"):
        suffix = path.name[len(prefix) :]
        if len(suffix) == 16:
            try:
                out.append((int(suffix, 16), path))
            except ValueError:
                continue
    out.sort()
    return out


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file, fsync it, rename over `path`, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_epoch(directory: Path, name: str) -> int:
    try:
        return int((Path(directory) / name).read_text().strip() or 0)
    except FileNotFoundError:
        return 0


def write_epoch(directory: Path, name: str, value: int) -> None:
    write_atomic(Path(directory) / name, f"{value}\n".encode())
