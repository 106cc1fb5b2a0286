"""Small file helpers of the data dir: `acceptedEpoch` / `currentEpoch` (ZAB's persisted epochs)
and the numbered `log.*` / `snapshot.*` file names. Writes go through runtime/files.py."""

from __future__ import annotations

from pathlib import Path

from runtime.files import fsync_dir, write_atomic

__all__ = ["fsync_dir", "numbered_files", "read_epoch", "write_atomic", "write_epoch"]


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


def read_epoch(directory: Path, name: str) -> int:
    try:
        return int((Path(directory) / name).read_text().strip() or 0)
    except FileNotFoundError:
        return 0


def write_epoch(directory: Path, name: str, value: int) -> None:
    write_atomic(Path(directory) / name, f"{value}\n".encode())
