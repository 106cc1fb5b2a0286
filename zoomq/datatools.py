"""The data tools' command line: `zoomq backup`, `restore`, `export`, `import`, `log dump`,
`snapshot dump` (the work is in zoomq/backup.py and zoomq/dumps.py; the file format in
zoomq/datafile.py and docs/data-format.md). zoomq/cli.py registers them through `add`.

Exit codes: 0 done; 1 failed (said in one line: the kazoo exception name and ZooKeeper's code
for what a node or the file refused), or a restore that left nodes that already existed as they
were (NodeExistsError, without --overwrite); 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

EXIT_FAILED = 1
EXIT_USAGE = 2


def add(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the subcommand `name` (one of ADDERS) to the `zoomq` parser."""
    ADDERS[name](sub)


# --- the parsers ------------------------------------------------------------------------------


def _client_flags(p: argparse.ArgumentParser) -> None:
    from zoomq.cli import _add_curve_flags

    p.add_argument(
        "--auth",
        action="append",
        metavar="SCHEME:CREDENTIAL",
        help="authenticate the session first, e.g. digest:user:secret (repeatable)",
    )
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="session timeout in seconds (default 30)")
    p.add_argument(
        "--connect-timeout", type=float, default=15.0, metavar="S", help="seconds to wait to connect (default 15)"
    )
    _add_curve_flags(p)


def _quiet_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars (they are off anyway when stderr is not a terminal)",
    )


def _add_backup(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backup",
        help="write a subtree to a data file: from a live node (consistent at one zxid) or a stopped node's data dir",
        description="Back a subtree up into a JSON data file (docs/data-format.md). From a live node: one GetSubtree read, "
        "consistent at the zxid it reports (nodes the session may not READ are left out, and counted). From a data "
        "dir (--data-dir): the newest snapshot and the log after it, consistent at the last logged zxid; refused "
        "while a node runs on it. Ephemeral nodes are never included.",
    )
    p.add_argument(
        "hosts", nargs="?", metavar="HOST:PORT[/path]", help="host:port[,host:port...] of a live node; /path = --path"
    )
    p.add_argument(
        "--data-dir", metavar="DIR", help="read a stopped node's data dir (or its version-1) instead of a live node"
    )
    p.add_argument("--out", required=True, metavar="FILE", help="the data file to write (.gz: compressed; -: stdout)")
    p.add_argument("--path", metavar="P", help="the subtree (default /)")
    _client_flags(p)
    _quiet_flag(p)
    p.set_defaults(run=_run_backup)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="a zoomq subtree to a data file (the same as backup: for migrations)",
        description="Write the subtree at HOSTS/path of a live zoomq node into a data file, consistent at "
        "one zxid: `zoomq backup` under the name migrations look for.",
    )
    p.add_argument("hosts", metavar="HOST:PORT[/path]", help="host:port[,host:port...] and the subtree (default /)")
    p.add_argument("--out", required=True, metavar="FILE", help="the data file to write (.gz: compressed; -: stdout)")
    _client_flags(p)
    _quiet_flag(p)
    p.set_defaults(run=_run_backup, data_dir=None, path=None)


def _add_restore(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "restore",
        help="a data file into an empty data dir (then: zoomq server --data-dir DIR), or into a running ensemble",
        description="Restore a data file. --data-dir DIR: DIR (empty or new) becomes a node's data dir holding the tree, "
        "with the nodes' Stat kept; start a node on it (each node of an ensemble gets the same). --to HOSTS[/path]: "
        "create the nodes in a running ensemble, under /path (default: where they were), with multi in batches; "
        "types and ACLs kept; a node that exists is reported and kept (--overwrite: its data is set). The file is "
        "checked whole before anything is written.",
    )
    p.add_argument("file", metavar="FILE", help="a data file (-: stdin)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", metavar="DIR", help="an empty or new directory to make a node's data dir")
    where.add_argument("--to", metavar="HOST:PORT[/path]", help="a running ensemble, and where the subtree goes")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="--to: set the data of nodes that exist (default: report and keep them)",
    )
    _client_flags(p)
    _quiet_flag(p)
    p.set_defaults(run=_run_restore)


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="copy a live Apache ZooKeeper subtree (zk://HOST:PORT/path) into zoomq, or restore a data file",
        description="SOURCE zk://HOST:PORT[,HOST:PORT...][/path]: read that ZooKeeper subtree with kazoo (data, ACLs, "
        "persistent / sequential (under their final names) / container / TTL nodes; ephemerals are listed and "
        "skipped) and create it in zoomq (--to) and/or write it to a data file (--out). SOURCE a data file: the "
        "same as zoomq restore FILE --to.",
    )
    p.add_argument("source", metavar="SOURCE", help="zk://HOST:PORT[,HOST:PORT...][/path], or a data file")
    p.add_argument(
        "--to",
        metavar="HOST:PORT[/path]",
        help="the zoomq ensemble, and where the subtree goes (default: its own path)",
    )
    p.add_argument("--out", metavar="FILE", help="zk:// only: also (or instead) write the data file")
    p.add_argument(
        "--zk-auth",
        action="append",
        metavar="SCHEME:CREDENTIAL",
        help="authenticate the ZooKeeper session, e.g. digest:user:secret (repeatable)",
    )
    p.add_argument(
        "--zk-data-dir",
        metavar="DIR",
        help="the ZooKeeper server's dataDir (or dataLogDir; on this machine): which nodes are containers and "
        "TTL nodes, which ZooKeeper 3.6+ shows its clients as persistent ones",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="set the data of nodes that exist (default: report and keep them)"
    )
    _client_flags(p)
    _quiet_flag(p)
    p.set_defaults(run=_run_import)


def _add_log(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "log",
        help="the on-disk txn log: zoomq log dump DIR",
        description="Tools for a node's transaction log (log.* files under DIR/version-1).",
    )
    actions = p.add_subparsers(dest="log_command", metavar="dump")
    dump = actions.add_parser(
        "dump",
        help="print every txn: zxid, time, session, cxid and the op (as ZooKeeper's TxnLogToolkit)",
        description="Print the txns of a data dir's log (DIR: a data dir, its version-1, or one log file), "
        "in order; a torn or corrupt tail is reported where it starts.",
    )
    dump.add_argument("dir", metavar="DIR")
    dump.add_argument("--json", action="store_true", help="JSON lines: a file, txn, torn and end object per line")
    dump.add_argument(
        "--max-data", type=int, default=256, metavar="N", help="bytes of a value shown (0 = all; text output)"
    )
    dump.set_defaults(run=_run_log_dump)
    p.set_defaults(run=lambda args: (p.print_help(sys.stderr), EXIT_USAGE)[1])


def _add_snapshot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "snapshot",
        help="the on-disk snapshots: zoomq snapshot dump DIR",
        description="Tools for a node's snapshots (snapshot.* files under DIR/version-1).",
    )
    actions = p.add_subparsers(dest="snapshot_command", metavar="dump")
    dump = actions.add_parser(
        "dump",
        help="print a snapshot: zxid, sessions, each znode with its stat, ACL and data",
        description="Print the newest valid snapshot of a data dir (DIR: a data dir or its version-1; "
        "invalid ones are reported and skipped), or the snapshot file named.",
    )
    dump.add_argument("dir", metavar="DIR")
    dump.add_argument("--json", action="store_true", help="JSON lines: the snapshot, then one object per znode")
    dump.add_argument(
        "--max-data", type=int, default=256, metavar="N", help="bytes of a value shown (0 = all; text output)"
    )
    dump.set_defaults(run=_run_snapshot_dump)
    p.set_defaults(run=lambda args: (p.print_help(sys.stderr), EXIT_USAGE)[1])


ADDERS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "backup": _add_backup,
    "restore": _add_restore,
    "export": _add_export,
    "import": _add_import,
    "log": _add_log,
    "snapshot": _add_snapshot,
}


# --- helpers ----------------------------------------------------------------------------------


class _Usage(Exception):
    pass


def _say(command: str, text: str) -> None:
    print(f"zoomq {command}: {text}", file=sys.stderr)


def _auth(values: list[str] | None) -> list[tuple[str, str]]:
    from zoomq.cli import parse_auth

    try:
        return parse_auth(values)
    except ValueError as exc:
        raise _Usage(str(exc)) from None


def _subtree_path(text: str | None) -> str:
    from zoomq.paths import validate_path

    path = text or "/"
    reason = validate_path(path)
    if reason is not None:
        raise _Usage(f"BadArgumentsError (-8): invalid path {path!r}: {reason}")
    return path


@contextlib.contextmanager
def _client(hosts: str, args: argparse.Namespace, command: str) -> Iterator[Any]:
    from zoomq import Client
    from zoomq.backup import ToolError, error_text

    try:
        client = Client(
            hosts=hosts,
            timeout=args.timeout,
            auth_data=_auth(args.auth),
            curve_server_key=args.curve_server_key,
            curve_secret_key=args.curve_secret_key,
        )
    except _Usage:
        raise
    except Exception as exc:  # noqa: BLE001 - bad hosts or keys: said plainly
        raise _Usage(error_text(exc)) from None
    try:
        try:
            client.start(timeout=args.connect_timeout)
        except Exception as exc:  # noqa: BLE001
            raise ToolError(f"cannot connect to {hosts}: {error_text(exc)}") from None
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.stop()
        with contextlib.suppress(Exception):
            client.close()


def _guarded(command: str, work: Callable[[], int]) -> int:
    """Run a command's work; every expected failure becomes one line and exit code 1 (2: usage)."""
    from zoomq.backup import ToolError, error_text
    from zoomq.datafile import DataFileError
    from zoomq.exceptions import KazooException

    # A one-shot process that builds up to millions of acyclic objects (znodes, entries): the
    # cyclic collector would walk them all again and again (a 1M-znode backup: 4 s of 5 decoding).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return work()
    except _Usage as exc:
        _say(command, str(exc))
        return EXIT_USAGE
    except (ToolError, DataFileError) as exc:
        _say(command, str(exc))
        return EXIT_FAILED
    except KazooException as exc:
        _say(command, error_text(exc))
        return EXIT_FAILED
    except BrokenPipeError:
        raise
    except OSError as exc:
        _say(command, f"{exc.filename or ''}{': ' if exc.filename else ''}{exc.strerror or exc}")
        return EXIT_FAILED
    finally:
        if collecting:
            gc.enable()


def _zxid(zxid: int | None) -> str:
    from actors.protocol.zxid import fmt

    return fmt(zxid) if zxid is not None else "no single zxid"


def _skipped_note(header: Any) -> str:
    parts = [f"{len(header.ephemerals)} ephemeral"]
    if header.unreadable:
        parts.append(f"{header.unreadable} unreadable (each with what is below it)")
    if header.vanished:
        parts.append(f"{header.vanished} deleted while read")
    return "skipped " + ", ".join(parts)


def _warn_masked(command: str, header: Any) -> None:
    if header.acl_masked:
        _say(
            command,
            f"warning: {header.acl_masked} nodes' digest ACL ids were shown as user:x (the session lacks ADMIN "
            "on them); restored, nobody would match them: back up as their owner or the super user",
        )
    if header.unreadable:
        _say(
            command,
            f"warning: {header.unreadable} nodes the session may not READ were left out with everything below "
            "them (authenticate with --auth as their owner or the super user)",
        )


# --- backup / export ------------------------------------------------------------------------


def _run_backup(args: argparse.Namespace) -> int:
    command = args.command
    return _guarded(command, lambda: _backup(args, command))


def _backup(args: argparse.Namespace, command: str) -> int:
    from zoomq import backup
    from zoomq.exceptions import BadArgumentsError

    if (args.hosts is None) == (args.data_dir is None):
        raise _Usage("give HOST:PORT of a live node, or --data-dir DIR of a stopped one (one of them)")
    if args.data_dir is not None:
        path = _subtree_path(args.path)
        header, entries = backup.read_data_dir(backup.find_data_dir(args.data_dir), path)
        where = args.data_dir
    else:
        hosts, inline = backup.split_target(args.hosts)
        if inline is not None and args.path is not None:
            raise _Usage(f"the subtree is given twice: {args.hosts} and --path {args.path}")
        path = _subtree_path(inline or args.path)
        with _client(hosts, args, command) as client:
            try:
                header, entries = backup.read_live(client, path, hosts)
            except BadArgumentsError:
                try:
                    size = f"{client.get_children_count(path) + 1} znodes"
                except Exception:  # noqa: BLE001 - only for the message
                    size = "more znodes"
                raise backup.ToolError(
                    f"BadArgumentsError (-8): {path} holds {size}, more than the node's backup_max_znodes "
                    "lets one consistent read take: back up its parts (--path), or raise "
                    "backup_max_znodes in the node's config"
                ) from None
        where = hosts
    backup.write_file(args.out, header, entries, args.quiet)
    _warn_masked(command, header)
    out = "stdout" if args.out == "-" else args.out
    _say(command, f"{header.count} znodes of {where} {path} at {_zxid(header.zxid)} -> {out} ({_skipped_note(header)})")
    return 0


# --- restore / import -------------------------------------------------------------------------


def _run_restore(args: argparse.Namespace) -> int:
    return _guarded("restore", lambda: _restore_file(args, "restore", args.file, args.data_dir, args.to))


def _restore_file(args: argparse.Namespace, command: str, file: str, data_dir: str | None, to: str | None) -> int:
    from zoomq import backup
    from zoomq.datafile import DataFile

    if data_dir is not None:
        target = Path(data_dir)
        backup.check_empty(target)
        with backup.open_data_file(file) as stream:
            data = DataFile(stream, file)
            done = backup.restore_data_dir(data.header, data.entries(), target, args.quiet)
        _say(
            command,
            f"{done.created} znodes of {file} restored into {target} at zxid {_zxid(done.zxid)}"
            f"{f', {done.system} system nodes left as a new node has them' if done.system else ''}; "
            f"serve it with: zoomq server --data-dir {target}",
        )
        return 0
    assert to is not None
    hosts, dest = backup.split_target(to)
    if dest is not None:
        _subtree_path(dest)
    if file == "-":  # stdin is read once: held in memory to check it before writing
        with backup.open_data_file(file) as stream:
            data = DataFile(stream, file)
            held = list(data.entries())
        header, parents = data.header, data.parents

        def entries() -> Iterator[Any]:
            return iter(held)
    else:
        with backup.open_data_file(file) as stream:
            header, parents = backup.validated(stream, file)

        def entries() -> Iterator[Any]:
            with backup.open_data_file(file) as again:
                yield from DataFile(again, file).entries()

    return _restore_live(args, command, hosts, dest, header, entries(), parents, file)


def _restore_live(
    args: argparse.Namespace,
    command: str,
    hosts: str,
    dest: str | None,
    header: Any,
    entries: Any,
    parents: set[str],
    what: str,
) -> int:
    from zoomq import backup

    with _client(hosts, args, command) as client:
        done = backup.restore_live(
            client, header, entries, parents, dest, args.overwrite, args.quiet, lambda line: _say(command, line)
        )
    where = dest or header.path
    notes = []
    if done.existed:
        notes.append(
            f"{len(done.existed)} existed"
            + (" (data set)" if args.overwrite else " (kept; --overwrite sets their data)")
        )
    if done.system:
        notes.append(f"{done.system} ZooKeeper system nodes skipped")
    if header.ephemerals:
        notes.append(f"{len(header.ephemerals)} ephemeral nodes were not in the source's copy")
    _say(
        command,
        f"{done.created} znodes of {what} created under {hosts} {where}" + (f" ({'; '.join(notes)})" if notes else ""),
    )
    return EXIT_FAILED if done.existed and not args.overwrite else 0


def _run_import(args: argparse.Namespace) -> int:
    return _guarded("import", lambda: _import(args))


def _import(args: argparse.Namespace) -> int:
    from zoomq import backup

    source = args.source
    if not source.startswith("zk://"):
        if args.out is not None:
            raise _Usage("--out is for a zk:// source (a data file is one already)")
        if args.to is None:
            raise _Usage("import FILE needs --to HOST:PORT[/path]")
        return _restore_file(args, "import", source, None, args.to)
    if args.to is None and args.out is None:
        raise _Usage("import zk://... needs --to HOST:PORT[/path] and/or --out FILE")
    zk_hosts, path = backup.split_target(source[len("zk://") :])
    if not zk_hosts:
        raise _Usage(f"expected zk://HOST:PORT[/path], got {source!r}")
    path = _subtree_path(path)
    if args.to is not None:
        hosts, dest = backup.split_target(args.to)
        if dest is not None:
            _subtree_path(dest)
    types = None
    if args.zk_data_dir is not None:
        from zoomq.zkfiles import ZkFileError, node_types

        try:
            types = node_types(args.zk_data_dir)
        except (ZkFileError, OSError) as exc:
            raise backup.ToolError(f"--zk-data-dir: {exc}") from None
    header, entries = backup.read_zookeeper(
        zk_hosts,
        path,
        _auth(args.zk_auth),
        timeout=args.timeout,
        connect_timeout=args.connect_timeout,
        quiet=args.quiet,
        types=types,
    )
    kinds = [e.type for e in entries]
    if types is not None:
        _say(
            "import",
            f"types from ZooKeeper's files: {kinds.count('container')} container and {kinds.count('ttl')} TTL "
            "nodes in the subtree",
        )
    elif "container" not in kinds and "ttl" not in kinds:
        _say(
            "import",
            "note: ZooKeeper 3.6 and later show container and TTL nodes to clients as persistent ones "
            "(ephemeralOwner 0): give --zk-data-dir DIR (the server's dataDir) to carry those types over",
        )
    _warn_masked("import", header)
    _say("import", f"read {header.count} znodes of ZooKeeper {zk_hosts} {path} ({_skipped_note(header)})")
    for eph in header.ephemerals[:20]:
        _say("import", f"skipped ephemeral {eph}")
    if len(header.ephemerals) > 20:
        _say("import", f"... and {len(header.ephemerals) - 20} more ephemeral nodes skipped")
    if args.out is not None:
        backup.write_file(args.out, header, entries, args.quiet)
        _say("import", f"wrote {args.out}")
    if args.to is None:
        return 0
    parents = {e.path.rsplit("/", 1)[0] or "/" for e in entries if e.path != header.path}
    return _restore_live(args, "import", hosts, dest, header, entries, parents, f"ZooKeeper {zk_hosts} {path}")


# --- log / snapshot dump ----------------------------------------------------------------------


def _writer() -> Callable[[str], None]:
    out = sys.stdout

    def write(line: str) -> None:
        out.write(line + "\n")

    return write


def _run_log_dump(args: argparse.Namespace) -> int:
    from zoomq import dumps

    def work() -> int:
        dumps.dump_log(Path(args.dir), _writer(), as_json=args.json, limit=max(0, args.max_data))
        return 0

    return _quiet_pipe(lambda: _guarded("log dump", work))


def _run_snapshot_dump(args: argparse.Namespace) -> int:
    from zoomq import dumps

    def work() -> int:
        dumps.dump_snapshot(
            Path(args.dir),
            _writer(),
            lambda line: _say("snapshot dump", line),
            as_json=args.json,
            limit=max(0, args.max_data),
        )
        return 0

    return _quiet_pipe(lambda: _guarded("snapshot dump", work))


def _quiet_pipe(work: Callable[[], int]) -> int:
    """`zoomq log dump DIR | head` ends quietly when the reader goes away."""
    try:
        code = work()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - the interpreter's final flush goes there
        return 0
