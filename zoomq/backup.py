"""The data tools' work: read a subtree (a live zoomq node, a stopped node's data dir, a live
Apache ZooKeeper) into data-file entries (zoomq/datafile.py), and write entries out (a data file,
an empty data dir a node then serves, a live ensemble). `zoomq/datatools.py` is their command line.

Rules:
- A live zoomq subtree is read with one GetSubtree: consistent at the zxid it reports. A data dir
  is read as a node reads it at start (the newest valid snapshot, then the log after it:
  consistent at its last logged zxid), under a shared flock of its `zoomq.pid`, so a data dir a
  running node holds is refused and no node can start on it meanwhile. ZooKeeper is read node by
  node through kazoo (pipelined): no single point it is consistent at.
- Ephemeral nodes are never written anywhere (listed as skipped).
- A restore into a data dir needs an empty (or missing) dir; it writes a snapshot and the epoch
  files as a node writes them (actors/log/snapshot.py, epochs.py), at zxids of an epoch after the
  source's: the nodes keep their Stat (versions; sequence numbering continues after cversion).
- A restore into a live ensemble creates the nodes (types and ACLs kept) with `multi`, in batches,
  parents first. A node that exists is reported (NodeExistsError) and kept, or with `overwrite`
  its data is set. A node whose final ACL would keep the restoring session from creating its
  children is first created with an ACL only this session matches (a random digest identity),
  and given its own ACL once everything is created. ZooKeeper's system nodes (/zookeeper,
  /zookeeper/quota, /zookeeper/config) are never created or changed; quota nodes below
  /zookeeper/quota are restored when the subtree stays at its own path.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from actors.protocol.txn import CreateTxn, Txn
from actors.protocol.zxid import epoch_of, make
from zoomq import protocol as p
from zoomq.datafile import DataFileError, Entry, Header, encode, entry_from_stat, is_masked
from zoomq.exceptions import NoAuthError, NodeExistsError, RolledBackError, ZookeeperError
from zoomq.quota import QUOTA_ROOT, STATS_NODE, quota_target
from zoomq.security import ACL, OPEN_ACL_UNSAFE, Id, Permissions, make_digest_acl_credential

VERSION_DIR = "version-1"
PID_FILE = "zoomq.pid"
SYSTEM_PATHS = frozenset({"/zookeeper", QUOTA_ROOT, "/zookeeper/config"})
BATCH_OPS = 500  # creates per multi
BATCH_BYTES = 512 * 1024  # ... and about this many bytes of values (a node's frame limit is 2 x max_data_bytes + 1 MiB)
IN_FLIGHT = 1000  # pipelined requests (exists, set, setACL, ZooKeeper reads)
WAIT_S = 120.0  # the longest wait for any one answer
ANYONE = Id("world", "anyone")


class ToolError(Exception):
    """A failure said in one line (the command prints it and exits 1)."""


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error_text(exc: BaseException) -> str:
    """`NoNodeError (-101): /x`: the kazoo name, ZooKeeper's code when it has one, the detail."""
    code = getattr(exc, "code", None)
    name = type(exc).__name__
    head = f"{name} ({code})" if isinstance(code, int) else name
    detail = str(exc)
    return f"{head}: {detail}" if detail else head


def progress(total: int | None, desc: str, quiet: bool, unit: str = "znode") -> Any:
    """A tqdm bar on stderr; off with `quiet` or when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
        dynamic_ncols=True,
        leave=False,
    )


def split_target(text: str) -> tuple[str, str | None]:
    """`host:port[,host:port...][/path]` -> (hosts, path or None)."""
    hosts, sep, path = text.partition("/")
    if not sep:
        return hosts, None
    path = "/" + path.strip("/")
    return hosts, path


# --- reading --------------------------------------------------------------------------------


def from_subtree(result: p.SubtreeResult, path: str, source: dict[str, Any]) -> tuple[Header, list[Entry]]:
    """A GetSubtree's answer as a data file's header and entries."""
    entries = []
    for node in result.nodes:
        entry = entry_from_stat(node.path, node.data, node.acl, node.stat)
        if entry is not None:  # the node leaves ephemerals out already
            entries.append(entry)
    header = Header(
        path=path,
        source=source,
        zxid=result.zxid,
        created=now_iso(),
        count=len(entries),
        ephemerals=list(result.ephemerals),
        unreadable=result.unreadable,
        acl_masked=result.masked,
    )
    return header, entries


def read_live(client: Any, path: str, hosts: str) -> tuple[Header, list[Entry]]:
    """The subtree at `path` of a live zoomq node, consistent at one zxid (GetSubtree)."""
    return from_subtree(client.get_subtree(path), path, {"kind": "zoomq", "hosts": hosts})


@dataclass
class DataDir:
    root: Path  # the data dir (where zoomq.pid is)
    version_dir: Path  # its version-1


def find_data_dir(text: str | Path) -> DataDir:
    """A data dir given as itself or as its version-1 directory. ToolError if it holds no zoomq data."""
    given = Path(text)
    if not given.exists():
        raise ToolError(f"{given}: no such directory")
    if not given.is_dir():
        raise ToolError(f"{given}: not a directory")
    if (given / VERSION_DIR).is_dir():
        return DataDir(given, given / VERSION_DIR)
    if given.name == VERSION_DIR or any(given.glob("log.*")) or any(given.glob("snapshot.*")):
        return DataDir(given.parent if given.name == VERSION_DIR else given, given)
    raise ToolError(f"{given}: not a zoomq data dir (no {VERSION_DIR}/ with log.* or snapshot.* files)")


@contextlib.contextmanager
def unused(data_dir: DataDir) -> Iterator[None]:
    """Hold a shared lock on the data dir's zoomq.pid: refused (ToolError) while a node holds it,
    and no node starts on the dir until released."""
    pid_file = data_dir.root / PID_FILE
    try:
        fd = os.open(pid_file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield  # no node ran here since its last clean stop
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ToolError(
                f"{data_dir.root} is in use by a running zoomq node (pid {owner}; {PID_FILE} is locked): "
                "back it up through the node (zoomq backup HOST:PORT) or stop the node first"
            ) from None
        yield
    finally:
        os.close(fd)


class _StderrLog:
    """What load_state logs: warnings (an invalid snapshot skipped) go to stderr, the rest nowhere."""

    def info(self, event: str, **kw: Any) -> None:
        pass

    debug = info

    def warning(self, event: str, **kw: Any) -> None:
        detail = " ".join(f"{k}={v}" for k, v in kw.items())
        print(f"zoomq: {event} {detail}".rstrip(), file=sys.stderr)

    error = warning


def read_data_dir(data_dir: DataDir, path: str) -> tuple[Header, list[Entry]]:
    """The subtree at `path` of a stopped node's data dir, consistent at its last logged zxid."""
    from actors.log.recovery import load_state
    from actors.session.reads import subtree_result
    from actors.session.session import SUPER
    from zoomq.exceptions import error_for

    with unused(data_dir):
        tree = load_state(data_dir.version_dir, log=_StderrLog())
        err, result = subtree_result(tree, [SUPER], path, limit=1 << 62)
    if err:
        raise error_for(err, path)
    return from_subtree(result, path, {"kind": "zoomq-data-dir", "data_dir": str(data_dir.root.resolve())})


def read_zookeeper(
    hosts: str,
    path: str,
    auth: list[tuple[str, str]],
    *,
    timeout: float = 10.0,
    connect_timeout: float = 15.0,
    quiet: bool = False,
    types: dict[str, tuple[str, int]] | None = None,
) -> tuple[Header, list[Entry]]:
    """The subtree at `path` of a live Apache ZooKeeper, read with kazoo, node by node (pipelined).
    `types`: path -> (container | ttl, ttl ms) from ZooKeeper's own files (zoomq/zkfiles.py),
    for the nodes ZooKeeper 3.6+ shows its clients as persistent ones."""
    try:
        from kazoo.client import KazooClient
        from kazoo.exceptions import NoAuthError as KazooNoAuth
        from kazoo.exceptions import NoNodeError as KazooNoNode
    except ImportError:
        raise ToolError("reading ZooKeeper needs kazoo: pip install 'zoomq[migrate]'") from None
    zk = KazooClient(hosts=hosts, timeout=timeout, auth_data=auth or None)
    try:
        try:
            zk.start(timeout=connect_timeout)
        except Exception as exc:  # noqa: BLE001 - said in one line
            raise ToolError(f"cannot connect to ZooKeeper at {hosts}: {error_text(exc)}") from None
        found: dict[str, Entry] = {}
        kids: dict[str, list[str]] = {}
        ephemerals: list[str] = []
        unreadable = vanished = masked = 0
        bar = progress(None, "reading ZooKeeper", quiet)
        level = [path]
        try:
            while level:
                after: list[str] = []
                for at in range(0, len(level), IN_FLIGHT // 3):
                    chunk = level[at : at + IN_FLIGHT // 3]
                    asks = [
                        (node, zk.get_async(node), zk.get_acls_async(node), zk.get_children_async(node))
                        for node in chunk
                    ]
                    for node, got, acls, children in asks:
                        try:
                            data, stat = got.get(timeout=WAIT_S)
                            acl, _ = acls.get(timeout=WAIT_S)
                            names = children.get(timeout=WAIT_S)
                        except KazooNoNode:
                            vanished += 1  # deleted while the tree was read
                            continue
                        except KazooNoAuth:
                            if node == path:
                                raise ToolError(
                                    f"NoAuthError (-102): {path}: no READ on the subtree's root on ZooKeeper"
                                ) from None
                            unreadable += 1  # left out with what is below it
                            continue
                        entry = entry_from_stat(node, data, acl, stat)
                        bar.update(1)
                        if entry is None:
                            ephemerals.append(node)
                            continue
                        if types and entry.type == "persistent" and node in types:
                            entry.type, entry.ttl = types[node]
                        masked += is_masked(entry.acl)
                        found[node] = entry
                        base = node if node != "/" else ""
                        full = [f"{base}/{name}" for name in sorted(names)]
                        kids[node] = full
                        after.extend(full)
                level = after
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - kazoo's own errors (a timeout, a lost session), in one line
            raise ToolError(f"reading ZooKeeper at {hosts}: {error_text(exc)}") from None
        finally:
            bar.close()
    finally:
        with contextlib.suppress(Exception):
            zk.stop()
        with contextlib.suppress(Exception):
            zk.close()
    if path not in found and not ephemerals:
        raise ToolError(f"NoNodeError (-101): {path} does not exist on ZooKeeper at {hosts}")
    entries: list[Entry] = []
    stack = [path]
    while stack:
        at = stack.pop()
        entry = found.get(at)
        if entry is None:
            continue
        entries.append(entry)
        stack.extend(reversed(kids.get(at, ())))
    header = Header(
        path=path,
        source={"kind": "zookeeper", "hosts": hosts},
        zxid=None,
        created=now_iso(),
        count=len(entries),
        ephemerals=sorted(ephemerals),
        unreadable=unreadable,
        acl_masked=masked,
        vanished=vanished,
    )
    return header, entries


# --- writing a file ---------------------------------------------------------------------------


def write_file(out: str, header: Header, entries: Iterable[Entry], quiet: bool) -> None:
    """The data file at `out` ("-": stdout), replaced whole (a failed write leaves no partial
    file under its name); gzip-compressed when `out` ends in .gz."""
    from runtime.files import write_atomic

    bar = progress(header.count, "writing", quiet)

    def counted() -> Iterator[Entry]:
        for entry in entries:
            bar.update(1)
            yield entry

    try:
        chunks = encode(header, counted())
        if out == "-":
            sink = sys.stdout.buffer
            for chunk in chunks:
                sink.write(chunk)
            sink.flush()
        elif out.endswith(".gz"):
            import zlib

            def compressed() -> Iterator[bytes]:
                z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # wbits 16+: gzip's container
                for chunk in chunks:
                    part = z.compress(chunk)
                    if part:
                        yield part
                yield z.flush()

            write_atomic(out, compressed())
        else:
            write_atomic(out, chunks)
    finally:
        bar.close()


def open_data_file(path: str) -> IO[str]:
    """A data file to read, as text ("-": stdin; gzip-compressed ones too)."""
    import gzip
    import io

    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    try:
        raw = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise ToolError(f"{path}: {exc.strerror or exc}") from None
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8")
    return io.TextIOWrapper(raw, encoding="utf-8")


# --- restoring into a data dir ---------------------------------------------------------------


def check_empty(data_dir: Path) -> None:
    """ToolError unless `data_dir` is missing or an empty directory."""
    if not data_dir.exists():
        return
    if not data_dir.is_dir():
        raise ToolError(f"{data_dir} is not a directory")
    held = sorted(entry.name for entry in data_dir.iterdir())
    if held:
        shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
        raise ToolError(f"{data_dir} is not empty (holds {shown}): restore into an empty or new directory")


@dataclass
class Restored:
    created: int = 0
    existed: list[str] = field(default_factory=list)
    overwritten: int = 0
    system: int = 0
    zxid: int = 0
    provisional: int = 0


def _system(path: str, relocated: bool) -> bool:
    """ZooKeeper's own nodes, never created or changed by a restore (see the module's docstring)."""
    if path in SYSTEM_PATHS:
        return True
    return path.startswith("/zookeeper/") and (relocated or not path.startswith(QUOTA_ROOT + "/"))


def _is_stats(path: str) -> bool:
    about = quota_target(path)
    return about is not None and about[1] == STATS_NODE


def _next_creates(name_counts: int, cversion: int, children: Iterable[str]) -> int:
    """The child-create counter a restored node continues from: its Stat's (creates + deletes =
    cversion, children = creates - deletes), and past every 10-digit suffix among its
    children, so that a sequential create never lands on a restored name."""
    n = name_counts
    suffix = -1
    for name in children:
        tail = name[-10:]
        if len(name) >= 10 and tail.isdigit():
            suffix = max(suffix, int(tail))
    return max(n, (max(cversion, 0) + n + 1) // 2, suffix + 1)


def restore_data_dir(header: Header, entries: Iterable[Entry], target: Path, quiet: bool) -> Restored:
    """Write the entries into the empty data dir `target` as a snapshot a node serves. Nothing is
    written unless every entry was read and applied."""
    from actors.log import epochs, snapshot
    from actors.session.tree import DataTree, int32

    check_empty(target)
    epoch = epoch_of(header.zxid) + 1 if header.zxid else 1
    tree = DataTree()
    counter = 0
    done = Restored()
    cversions: dict[str, int] = {}

    def create(path: str, data: bytes | None, acl: list[ACL], owner: int, time_ms: int) -> None:
        nonlocal counter
        counter += 1
        tree.apply(Txn(make(epoch, counter), time_ms, 0, 0, CreateTxn(path, data, acl, owner)), results=False)

    # The subtree's own parents, as ensure_path makes them.
    parts = [x for x in header.path.split("/") if x][:-1]
    at = ""
    for part in parts:
        at += "/" + part
        if tree.get(at) is None:
            create(at, b"", list(OPEN_ACL_UNSAFE), 0, 0)
    bar = progress(header.count, "restoring", quiet)
    try:
        for entry in entries:
            bar.update(1)
            path = entry.path
            if path == "/":
                root = tree.nodes["/"]
                root.data, root.acl = entry.data, tree.intern_acl(entry.acl)
                root.ctime, root.mtime, root.version, root.aversion = (
                    entry.ctime,
                    entry.mtime,
                    entry.version,
                    entry.aversion,
                )
                cversions[path] = entry.cversion
                done.created += 1
                continue
            if _system(path, relocated=False):
                done.system += 1
                continue
            create(path, entry.data, entry.acl, entry.owner, entry.ctime)
            node = tree.nodes[path]
            node.mtime, node.version, node.aversion = entry.mtime, int32(entry.version), int32(entry.aversion)
            cversions[path] = entry.cversion
            done.created += 1
    finally:
        bar.close()
    for path, cversion in cversions.items():
        node = tree.nodes[path]
        node.creates = _next_creates(node.creates, cversion, node.children)
    if tree.last_zxid == 0:
        tree.last_zxid = make(epoch, 0)
    version_dir = target / VERSION_DIR
    version_dir.mkdir(parents=True, exist_ok=True)
    snapshot.write_snapshot(version_dir, tree.last_zxid, tree.to_snapshot())
    epochs.write_epoch(version_dir, "acceptedEpoch", epoch)
    epochs.write_epoch(version_dir, "currentEpoch", epoch)
    done.zxid = tree.last_zxid
    return done


# --- restoring into a live ensemble ----------------------------------------------------------


def _target_path(path: str, root: str, dest: str) -> str:
    suffix = (path if path != "/" else "") if root == "/" else path[len(root) :]
    return (dest.rstrip("/") + suffix) or "/"


def _wait(result: Any) -> Any:
    return result.get(timeout=WAIT_S)


def restore_live(
    client: Any,
    header: Header,
    entries: Iterable[Entry],
    parents: set[str],
    dest: str | None,
    overwrite: bool,
    quiet: bool,
    report: Callable[[str], None],
) -> Restored:
    """Create the entries in a live ensemble under `dest` (default: their own path). `parents`:
    the paths with children among the entries. Raises ToolError at the first error that is
    not NodeExistsError, saying which node (what was created so far stays)."""
    dest = dest or header.path
    relocated = dest != header.path
    done = Restored()
    secret = secrets.token_hex(16)
    client.add_auth("digest", f"zoomq-restore:{secret}")
    provisional = [ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("zoomq-restore", secret)))]
    fixes: dict[str, list[ACL]] = {}
    sets: list[tuple[str, bytes | None]] = []
    if dest != "/":
        parent = dest.rsplit("/", 1)[0] or "/"
        try:
            client.ensure_path(parent)
        except ZookeeperError as exc:
            raise ToolError(f"cannot make the destination's parent {parent}: {error_text(exc)}") from None
    batch: list[p.Create] = []
    size = 0

    def flush() -> None:
        nonlocal batch, size
        ops, batch, size = batch, [], 0
        run(ops)

    def run(ops: list[p.Create]) -> None:
        while ops:
            try:
                results = _wait(client._multi_async(ops))
            except ZookeeperError as exc:
                if len(ops) > 1:  # refused whole (e.g. a value over the node's max_data_bytes): find which
                    for op in ops:
                        run([op])
                    return
                hint = " (a value over the node's max_data_bytes?)" if exc.code == -8 else ""
                raise ToolError(
                    f"{type(exc).__name__} ({exc.code}): {ops[0].path}{hint} ({done.created} znodes restored before it)"
                ) from None
            failed = next((i for i, r in enumerate(results) if not isinstance(r, (RolledBackError, str))), None)
            if failed is None:
                done.created += len(ops)
                return
            error = results[failed]
            if not isinstance(error, NodeExistsError):
                raise ToolError(
                    f"{type(error).__name__} ({error.code}): {ops[failed].path} "
                    f"({done.created} znodes restored before it)"
                )
            asks = [client.exists_async(op.path) for op in ops]
            present = [_exists(ask) for ask in asks]
            kept = []
            for op, exists in zip(ops, present, strict=True):
                if not exists:
                    kept.append(op)
                    continue
                done.existed.append(op.path)
                fixes.pop(op.path, None)
                if overwrite and not _is_stats(op.path):  # the node keeps those itself
                    sets.append((op.path, op.data))
            if len(kept) == len(ops):  # it exists no more: a race with another client; say so
                raise ToolError(f"NodeExistsError (-110): {ops[failed].path} (it came and went while restoring)")
            ops = kept

    bar = progress(header.count, "restoring", quiet)
    try:
        for entry in entries:
            bar.update(1)
            target = _target_path(entry.path, header.path, dest)
            if _system(entry.path, relocated):
                done.system += 1
                continue
            if target == "/":
                if overwrite:
                    sets.append(("/", entry.data))
                continue
            acl = entry.acl
            if entry.path in parents and not any(a.id == ANYONE and a.perms & Permissions.CREATE for a in acl):
                fixes[target] = acl  # this session could not create its children: its own ACL comes last
                acl = provisional
            flags = {"persistent": p.PERSISTENT, "container": p.CONTAINER, "ttl": p.PERSISTENT_WITH_TTL}[entry.type]
            batch.append(p.Create(0, target, entry.data, acl, flags, entry.ttl if entry.type == "ttl" else 0))
            size += len(entry.data or b"") + len(target) + 64
            if len(batch) >= BATCH_OPS or size >= BATCH_BYTES:
                flush()
        flush()
    finally:
        bar.close()
    _pipelined(sets, lambda item: client.set_async(item[0], item[1]), "setting data of")
    done.overwritten = len(sets)
    _pipelined(list(fixes.items()), lambda item: client.set_acls_async(item[0], item[1]), "setting the ACL of")
    done.provisional = len(fixes)
    for path in done.existed[:20]:
        report(f"NodeExistsError (-110): {path}" + (" (data set)" if overwrite else " (kept as it is)"))
    if len(done.existed) > 20:
        report(f"... and {len(done.existed) - 20} more NodeExistsError")
    return done


def _exists(ask: Any) -> bool:
    try:
        return _wait(ask) is not None
    except NoAuthError:
        return True  # there, but not this session's to read


def _pipelined(items: list[Any], send: Callable[[Any], Any], what: str) -> None:
    for at in range(0, len(items), IN_FLIGHT):
        chunk = items[at : at + IN_FLIGHT]
        pending = [(item, send(item)) for item in chunk]
        for item, result in pending:
            try:
                _wait(result)
            except ZookeeperError as exc:
                raise ToolError(f"{what} {item[0]}: {error_text(exc)}") from None


def validated(stream: IO[str], name: str) -> tuple[Header, set[str]]:
    """Read a whole data file once, checking every node (DataFileError on bad input): its header
    and the paths that have children."""
    from zoomq.datafile import DataFile

    data = DataFile(stream, name)
    for _ in data.entries():
        pass
    return data.header, data.parents


__all__ = [
    "DataDir",
    "DataFileError",
    "Restored",
    "ToolError",
    "check_empty",
    "find_data_dir",
    "from_subtree",
    "open_data_file",
    "read_data_dir",
    "read_live",
    "read_zookeeper",
    "restore_data_dir",
    "restore_live",
    "split_target",
    "unused",
    "validated",
    "write_file",
]
