"""`zoomq shell`: a zkCli-like shell over `zoomq.Client`, interactive or one-shot (`-c "CMD; CMD"`).

Parsing is pure (`tokenize`, `parse_line`, `parse_command`, `parse_acl`, `format_stat`, ...);
`execute` runs one parsed command on a client and prints what zkCli prints. In one-shot mode the
commands run in order and the first error stops them: the exit code is 0 when all succeeded, else
1 with `ExceptionName: detail` on stderr (kazoo's exception names).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from zoomq import protocol as p
from zoomq.paths import validate_path
from zoomq.security import ACL, Id, Permissions

HISTORY_FILE = "~/.zoomq_history"
HISTORY_LENGTH = 1000


class ShellUsageError(ValueError):
    """A command line the shell cannot parse; the message says how to use the command."""


@dataclass(frozen=True)
class Command:
    """One parsed shell command. `verb` is the canonical command name."""

    verb: str
    path: str = ""
    data: bytes = b""
    version: int = -1
    stat: bool = False  # -s of ls / get / set / getAcl / setAcl: print the Stat too
    watch: bool = False  # -w of ls / get / stat
    recursive: bool = False  # -R of ls
    ephemeral: bool = False
    sequence: bool = False  # -s of create
    container: bool = False
    ttl: int = 0  # ms; 0 = no TTL
    acls: tuple[ACL, ...] | None = None
    scheme: str = ""
    credential: str = ""
    # setquota: (kwarg, value) per limit given; delquota: the limits to drop (value -1)
    limits: tuple[tuple[str, int], ...] = ()
    reconfig: p.Reconfig | None = None  # reconfig: the request to make (its xid is the client's to give)


@dataclass(frozen=True)
class _Spec:
    usage: str
    flags: tuple[str, ...] = ()  # options without a value
    valued: tuple[str, ...] = ()  # options that take a value
    min_args: int = 0
    max_args: int = 0
    repeatable: tuple[str, ...] = ()  # valued options that may be given again: the values are joined with ','


SPECS: dict[str, _Spec] = {
    "ls": _Spec("ls [-s] [-w] [-R] path", ("-s", "-w", "-R"), (), 1, 1),
    "get": _Spec("get [-s] [-w] path", ("-s", "-w"), (), 1, 1),
    "set": _Spec("set [-s] [-v version] path data [version]", ("-s",), ("-v",), 2, 3),
    "create": _Spec("create [-s] [-e] [-c] [-t ttl] path [data] [acl]", ("-s", "-e", "-c"), ("-t",), 1, 3),
    "delete": _Spec("delete [-v version] path", (), ("-v",), 1, 1),
    "deleteall": _Spec("deleteall path", (), (), 1, 1),
    "stat": _Spec("stat [-w] path", ("-w",), (), 1, 1),
    "sync": _Spec("sync path", (), (), 1, 1),
    "getAcl": _Spec("getAcl [-s] path", ("-s",), (), 1, 1),
    "setAcl": _Spec("setAcl [-s] [-v version] path acl", ("-s",), ("-v",), 2, 2),
    "addauth": _Spec("addauth scheme auth", (), (), 2, 2),
    "setquota": _Spec("setquota [-n count] [-b bytes] [-N count] [-B bytes] path", (), ("-n", "-b", "-N", "-B"), 1, 1),
    "listquota": _Spec("listquota [path]", (), (), 0, 1),
    "config": _Spec("config [-c] [-s]", ("-c", "-s"), (), 0, 0),
    "reconfig": _Spec(
        "reconfig [-s] [-v version] [[-members serverSpec,...] | [-add serverSpec,...]* [-remove serverId,...]*]",
        ("-s",),
        ("-v", "-members", "-add", "-remove"),
        0,
        0,
        ("-add", "-remove"),
    ),
    "delquota": _Spec("delquota [-n] [-b] [-N] [-B] path", ("-n", "-b", "-N", "-B"), (), 1, 1),
    "help": _Spec("help"),
    "quit": _Spec("quit"),
}
_ALIASES = {"rmr": "deleteall", "exit": "quit", "close": "quit", "?": "help", "h": "help"}
_VERBS = {name.lower(): name for name in SPECS} | _ALIASES

_PERM_LETTERS = {
    "r": Permissions.READ,
    "w": Permissions.WRITE,
    "c": Permissions.CREATE,
    "d": Permissions.DELETE,
    "a": Permissions.ADMIN,
}


# --- parsing (pure) ---------------------------------------------------------------------------

SEPARATOR = None  # the token `tokenize` yields for an unquoted ';'


def tokenize(line: str) -> list[str | None]:
    """Split a line as a POSIX shell does (quotes, backslashes; `shlex`); an unquoted ';' becomes
    None. shlex hands back a quoted ';' and the separator alike: which one it was is read from the
    line's own text between the tokens."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=";")
    lex.whitespace_split = True
    lex.commenters = ""  # '#' is an ordinary character (paths and values may hold it)
    tokens: list[str | None] = []
    start = 0
    while True:
        try:
            token = lex.get_token()
        except ValueError as exc:  # shlex: "No closing quotation", "No escaped character"
            if "escaped" in str(exc):
                raise ShellUsageError("a trailing backslash escapes nothing") from None
            quote = "'" if line.count("'") % 2 else '"'
            raise ShellUsageError(f"unterminated {quote} quote") from None
        if token is None:
            return tokens
        end = lex.instream.tell() - len(lex._pushback_chars)  # what shlex read past the token
        raw = line[start:end].strip()
        start = end
        if raw and set(raw) == {";"}:
            tokens.extend([SEPARATOR] * len(raw))
        else:
            tokens.append(token)


def parse_line(line: str) -> list[Command]:
    """Every command of a line (commands separated by ';'); a blank line gives []."""
    commands: list[Command] = []
    group: list[str] = []
    for token in [*tokenize(line), SEPARATOR]:
        if token is SEPARATOR:
            if group:
                commands.append(parse_tokens(group))
            group = []
        else:
            group.append(token)
    return commands


def parse_command(line: str) -> Command:
    """Exactly one command."""
    commands = parse_line(line)
    if len(commands) != 1:
        raise ShellUsageError("expected one command" if commands else "empty command")
    return commands[0]


def parse_tokens(tokens: list[str]) -> Command:
    """One command from its tokens (the verb first)."""
    if not tokens:
        raise ShellUsageError("empty command")
    verb = _VERBS.get(tokens[0].lower()) or _VERBS.get(tokens[0])
    if verb is None:
        raise ShellUsageError(f"unknown command {tokens[0]!r}; try 'help'")
    spec = SPECS[verb]
    flags: set[str] = set()
    values: dict[str, str] = {}
    args: list[str] = []
    rest = iter(tokens[1:])
    only_args = False
    for token in rest:
        if only_args:
            args.append(token)
        elif token == "--":
            only_args = True
        elif token in spec.flags:
            flags.add(token)
        elif token in spec.valued:
            value = next(rest, None)
            if value is None:
                raise ShellUsageError(f"{token} needs a value; usage: {spec.usage}")
            if token in spec.repeatable and token in values:
                value = f"{values[token]},{value}"
            values[token] = value
        else:
            args.append(token)
    if not spec.min_args <= len(args) <= spec.max_args:
        raise ShellUsageError(f"usage: {spec.usage}")
    return _BUILDERS[verb](verb, spec, flags, values, args)


def _int(text: str, what: str, usage: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ShellUsageError(f"{what} must be an integer, not {text!r}; usage: {usage}") from None


def _path(text: str, *, sequential: bool = False) -> str:
    problem = validate_path(text, sequential=sequential)
    if problem is not None:
        raise ShellUsageError(f"invalid path {text!r}: {problem}")
    return text


def _version(values: dict[str, str], args: list[str], at: int, spec: _Spec) -> int:
    if "-v" in values and len(args) > at:
        raise ShellUsageError(f"give the version once; usage: {spec.usage}")
    if "-v" in values:
        return _int(values["-v"], "version", spec.usage)
    if len(args) > at:
        return _int(args[at], "version", spec.usage)
    return -1


def _build_path_only(verb: str, spec: _Spec, flags: set[str], values: dict[str, str], args: list[str]) -> Command:
    return Command(
        verb,
        path=_path(args[0]),
        stat="-s" in flags,
        watch="-w" in flags,
        recursive="-R" in flags,
        version=_version(values, args, 1, spec),
    )


def _build_set(verb: str, spec: _Spec, flags: set[str], values: dict[str, str], args: list[str]) -> Command:
    return Command(
        verb,
        path=_path(args[0]),
        data=args[1].encode(),
        version=_version(values, args, 2, spec),
        stat="-s" in flags,
    )


def _build_create(verb: str, spec: _Spec, flags: set[str], values: dict[str, str], args: list[str]) -> Command:
    sequence, ephemeral, container = "-s" in flags, "-e" in flags, "-c" in flags
    ttl = _int(values["-t"], "ttl", spec.usage) if "-t" in values else 0
    if "-t" in values and ttl <= 0:
        raise ShellUsageError("ttl must be > 0 (milliseconds)")
    if container and (sequence or ephemeral or ttl):
        raise ShellUsageError("-c cannot be combined with -s, -e or -t")
    if ttl and ephemeral:
        raise ShellUsageError("-t cannot be combined with -e (ephemeral nodes have no TTL)")
    return Command(
        verb,
        path=_path(args[0], sequential=sequence),
        data=args[1].encode() if len(args) > 1 else b"",
        acls=tuple(parse_acl(args[2])) if len(args) > 2 else None,
        sequence=sequence,
        ephemeral=ephemeral,
        container=container,
        ttl=ttl,
    )


def _build_set_acl(verb: str, spec: _Spec, flags: set[str], values: dict[str, str], args: list[str]) -> Command:
    return Command(
        verb,
        path=_path(args[0]),
        acls=tuple(parse_acl(args[1])),
        version=_int(values["-v"], "version", spec.usage) if "-v" in values else -1,
        stat="-s" in flags,
    )


def _build_addauth(verb: str, spec: _Spec, flags: set[str], values: dict[str, str], args: list[str]) -> Command:
    return Command(verb, scheme=args[0], credential=args[1])


# zkCli's quota options: -n / -b soft count / bytes, -N / -B hard count / bytes
_QUOTA_FLAGS = {"-n": "count", "-b": "bytes", "-N": "count_hard", "-B": "bytes_hard"}


def _build_setquota(verb: str, spec: _Spec, flags: set[str], values: dict[str, str], args: list[str]) -> Command:
    if not values:
        raise ShellUsageError(f"give at least one limit; usage: {spec.usage}")
    limits = []
    for flag, name in _QUOTA_FLAGS.items():
        if flag in values:
            value = _int(values[flag], f"{flag} ({name})", spec.usage)
            if value <= 0:
                raise ShellUsageError(f"{flag} ({name}) must be > 0")
            limits.append((name, value))
    return Command(verb, path=_path(args[0]), limits=tuple(limits))


def _build_delquota(verb: str, spec: _Spec, flags: set[str], values: dict[str, str], args: list[str]) -> Command:
    return Command(
        verb, path=_path(args[0]), limits=tuple((name, -1) for flag, name in _QUOTA_FLAGS.items() if flag in flags)
    )


def _build_listquota(verb: str, spec: _Spec, flags: set[str], values: dict[str, str], args: list[str]) -> Command:
    return Command(verb, path=_path(args[0]) if args else "")


def _build_reconfig(verb: str, spec: _Spec, flags: set[str], values: dict[str, str], args: list[str]) -> Command:
    msg = reconfig_message(
        add=values.get("-add"),
        remove=values.get("-remove"),
        members=values.get("-members"),
        version=values.get("-v"),
        usage=spec.usage,
    )
    return Command(verb, stat="-s" in flags, reconfig=msg)


def reconfig_message(
    add: str | Sequence[str] | None = None,
    remove: str | Sequence[str] | None = None,
    members: str | None = None,
    version: str | None = None,
    *,
    usage: str = "",
) -> p.Reconfig:
    """zkCli's reconfig options -> the request to make (xid 0: the client numbers it).

    `add`: server specs to add (`server.<id>=<host>:<quorum port>:<election port>[:participant|observer];
    [<client host>:]<client port>`, comma-separated), `remove`: server ids to remove (comma-separated);
    each may be several such values, joined with ','. Or `members`: the whole new membership (specs,
    comma-separated), never with `add` / `remove`. `version`: the config version it must still be,
    in hex as /zookeeper/config's `version=` line shows it (zkCli's -v reads hex too; a 0x prefix
    is fine), None for any. The lists are lowercased, as zkCli does. ShellUsageError when they do
    not make a reconfig."""
    suffix = f"; usage: {usage}" if usage else ""

    def joined(value: str | Sequence[str] | None, what: str) -> str | None:
        if value is None:
            return None
        text = value if isinstance(value, str) else ",".join(value)
        if not text.strip():
            raise ShellUsageError(f"empty list of {what}{suffix}")
        if any(not item.strip() for item in text.split(",")):
            raise ShellUsageError(f"an empty item in the list of {what}: {text!r}{suffix}")
        return text.lower()

    joining, leaving = joined(add, "servers to add"), joined(remove, "server ids to remove")
    new_members = joined(members, "new members")
    if new_members is None and joining is None and leaving is None:
        raise ShellUsageError(f"reconfig needs the new members, or servers to add and/or ids to remove{suffix}")
    if new_members is not None and (joining is not None or leaving is not None):
        raise ShellUsageError(
            "the new members cannot be given with servers to add or remove "
            f"(incremental and non-incremental reconfig do not mix){suffix}"
        )
    from_config = -1
    if version is not None:
        text = version.strip().lower()
        if text != "-1" and (re.fullmatch(r"(0x)?[0-9a-f]{1,16}", text) is None or int(text, 16) >= 2**63):
            raise ShellUsageError(
                f"the config version must be hex (a 64-bit zxid), as the version= line of /zookeeper/config "
                f"shows it, or -1 for any; not {version!r}{suffix}"
            )
        from_config = int(text, 16)
    return p.Reconfig(0, joining, leaving, new_members, from_config)


def _build_bare(verb: str, spec: _Spec, flags: set[str], values: dict[str, str], args: list[str]) -> Command:
    return Command(verb)


_BUILDERS: dict[str, Callable[[str, _Spec, set[str], dict[str, str], list[str]], Command]] = {
    "ls": _build_path_only,
    "get": _build_path_only,
    "set": _build_set,
    "create": _build_create,
    "delete": _build_path_only,
    "deleteall": _build_path_only,
    "stat": _build_path_only,
    "sync": _build_path_only,
    "getAcl": _build_path_only,
    "setAcl": _build_set_acl,
    "addauth": _build_addauth,
    "setquota": _build_setquota,
    "listquota": _build_listquota,
    "config": lambda verb, spec, flags, values, args: Command(verb, stat="-s" in flags, recursive="-c" in flags),
    "reconfig": _build_reconfig,
    "delquota": _build_delquota,
    "help": _build_bare,
    "quit": _build_bare,
}


def parse_perms(text: str) -> int:
    """zkCli's permission letters (`cdrwa`, any order) to ZooKeeper's bits."""
    perms = 0
    for letter in text.lower():
        bit = _PERM_LETTERS.get(letter)
        if bit is None:
            raise ShellUsageError(f"unknown permission {letter!r} in {text!r} (use c d r w a)")
        perms |= bit
    return perms


def format_perms(perms: int) -> str:
    return "".join(letter for letter, bit in (("c", 4), ("d", 8), ("r", 1), ("w", 2), ("a", 16)) if perms & bit)


def parse_acl(text: str) -> list[ACL]:
    """`scheme:id:perms[,scheme:id:perms...]`, e.g. `world:anyone:cdrwa,digest:bob:HASH=:r`."""
    acls = []
    for entry in text.split(","):
        scheme, sep, rest = entry.partition(":")
        ident, sep2, perms = rest.rpartition(":")
        if not scheme or not sep or not sep2:
            raise ShellUsageError(f"invalid acl {entry!r}: expected scheme:id:perms")
        acls.append(ACL(parse_perms(perms), Id(scheme, ident)))
    return acls


def format_acls(acls: list[ACL] | tuple[ACL, ...]) -> list[str]:
    """zkCli's getAcl lines: `'scheme,'id` then `: perms`, per entry."""
    lines = []
    for acl in acls:
        lines.append(f"'{acl.id.scheme},'{acl.id.id}")
        lines.append(f": {format_perms(acl.perms)}")
    return lines


def _time(ms: int) -> str:
    stamp = datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.UTC)
    return stamp.strftime("%a %b %d %H:%M:%S UTC %Y")


def format_stat(stat: Any) -> list[str]:
    """A Stat as zkCli prints it, one field per line."""
    return [
        f"cZxid = {stat.czxid:#x}",
        f"ctime = {_time(stat.ctime)}",
        f"mZxid = {stat.mzxid:#x}",
        f"mtime = {_time(stat.mtime)}",
        f"pZxid = {stat.pzxid:#x}",
        f"cversion = {stat.cversion}",
        f"dataVersion = {stat.version}",
        f"aclVersion = {stat.aversion}",
        f"ephemeralOwner = {stat.ephemeralOwner:#x}",
        f"dataLength = {stat.dataLength}",
        f"numChildren = {stat.numChildren}",
    ]


def format_data(data: bytes | None) -> str:
    if data is None:
        return "null"
    return data.decode("utf-8", errors="backslashreplace")


def format_children(children: list[str]) -> str:
    return "[" + ", ".join(sorted(children)) + "]"


def format_error(exc: BaseException, cmd: Command | None = None) -> str:
    """`NoNodeError: /x`: the kazoo exception name and what it is about."""
    detail = str(exc) or (cmd.path if cmd is not None else "")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def help_text() -> str:
    lines = ["zoomq shell commands:"]
    lines += [f"  {spec.usage}" for spec in SPECS.values()]
    lines.append("  acl: scheme:id:perms[,...] with perms from cdrwa, e.g. world:anyone:cdrwa")
    lines.append(
        "  serverSpec (reconfig): server.<id>=<host>:<quorum port>:<election port>[:participant|observer];"
        "[<client host>:]<client port> (quote it: an unquoted ';' separates commands)"
    )
    lines.append("  reconfig -v: the config version in hex, as the version= line of `config` shows it (-1: any)")
    lines.append("  several commands may be given on one line, separated by ';'")
    return "\n".join(lines)


_EVENT_NAMES = {
    "CREATED": "NodeCreated",
    "DELETED": "NodeDeleted",
    "CHANGED": "NodeDataChanged",
    "CHILD": "NodeChildrenChanged",
}


def format_event(event: Any) -> str:
    kind = _EVENT_NAMES.get(str(event.type), str(event.type))
    return f"\nWATCHER::\n\nWatchedEvent state:SyncConnected type:{kind} path:{event.path}"


# --- execution --------------------------------------------------------------------------------


class Quit(Exception):
    """`quit` was asked for."""


def execute(client: Any, cmd: Command, out: TextIO, on_event: Callable[[Any], None] | None = None) -> None:
    """Run one command on `client`, printing zkCli's output to `out`; errors are raised."""
    watch = on_event if cmd.watch else None
    match cmd.verb:
        case "ls":
            if cmd.recursive:
                for path in _walk(client, cmd.path):
                    print(path, file=out)
            elif cmd.stat:
                children, stat = client.get_children(cmd.path, watch=watch, include_data=True)
                print(format_children(children), file=out)
                _print_lines(format_stat(stat), out)
            else:
                print(format_children(client.get_children(cmd.path, watch=watch)), file=out)
        case "get":
            data, stat = client.get(cmd.path, watch=watch)
            print(format_data(data), file=out)
            if cmd.stat:
                _print_lines(format_stat(stat), out)
        case "set":
            stat = client.set(cmd.path, cmd.data, version=cmd.version)
            if cmd.stat:
                _print_lines(format_stat(stat), out)
        case "create":
            extra: dict[str, Any] = {}
            if cmd.container:
                extra["container"] = True
            if cmd.ttl:
                extra["ttl"] = cmd.ttl
            acl = list(cmd.acls) if cmd.acls is not None else None
            created = client.create(
                cmd.path, cmd.data, acl=acl, ephemeral=cmd.ephemeral, sequence=cmd.sequence, **extra
            )
            print(f"Created {created}", file=out)
        case "delete":
            client.delete(cmd.path, version=cmd.version)
        case "deleteall":
            client.delete(cmd.path, recursive=True)
        case "stat":
            stat = client.exists(cmd.path, watch=watch)
            if stat is None:
                from zoomq.exceptions import NoNodeError

                raise NoNodeError(cmd.path)
            _print_lines(format_stat(stat), out)
        case "sync":
            client.sync(cmd.path)
            print("Sync is OK", file=out)
        case "getAcl":
            acls, stat = client.get_acls(cmd.path)
            _print_lines(format_acls(acls), out)
            if cmd.stat:
                _print_lines(format_stat(stat), out)
        case "setAcl":
            stat = client.set_acls(cmd.path, list(cmd.acls or ()), version=cmd.version)
            if cmd.stat:
                _print_lines(format_stat(stat), out)
        case "addauth":
            client.add_auth(cmd.scheme, cmd.credential)
        case "setquota":
            client.set_quota(cmd.path, **dict(cmd.limits))
        case "listquota":
            _list_quota(client, cmd.path, out)
        case "config":  # -c (kept in `recursive`): zkCli's "version host:port,..." form
            data, stat = client.get_config()
            print(client_config(data) if cmd.recursive else format_data(data), file=out)
            if cmd.stat:
                _print_lines(format_stat(stat), out)
        case "reconfig":
            req = cmd.reconfig
            if req is None:  # only a Command made by hand lacks it
                raise ShellUsageError(f"usage: {SPECS['reconfig'].usage}")
            data, stat = client.reconfig(req.joining, req.leaving, req.new_members, req.from_config)
            print("Committed new configuration:", file=out)  # zkCli's words
            print(format_data(data), file=out)
            if cmd.stat:
                _print_lines(format_stat(stat), out)
        case "delquota":
            client.delete_quota(cmd.path, **{name: True for name, _ in cmd.limits})
        case "help":
            print(help_text(), file=out)
        case "quit":
            raise Quit
        case _:  # pragma: no cover - parse_tokens only builds the verbs above
            raise ShellUsageError(f"unknown command {cmd.verb!r}")


def client_config(data: bytes) -> str:
    """zkCli's `config -c`: the version, then the members' client addresses."""
    version, clients = "0", []
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith("version="):
            version = line.split("=", 1)[1]
        elif line.startswith("server.") and ";" in line:
            clients.append(line.rsplit(";", 1)[1])
    return f"{version} {','.join(clients)}"


def _list_quota(client: Any, path: str, out: TextIO) -> None:
    """zkCli's listquota lines for `path`, or for every quota when no path is given."""
    from zoomq.exceptions import NoNodeError
    from zoomq.quota import limits_path, usage_text

    found = {path: client.get_quota(path)} if path else client.list_quotas()
    if path and found[path] is None:
        raise NoNodeError(f"quota for {path} does not exist.")
    for where, (limits, usage) in found.items():
        print(f"absolute path is {limits_path(where)}", file=out)
        print(f"Output quota for {where} {limits.to_bytes().decode()}", file=out)
        print(f"Output stat for {where} {usage_text(usage).decode()}", file=out)


def _walk(client: Any, top: str) -> list[str]:
    """Every path of the subtree at `top`, depth first, parents before children (zkCli ls -R)."""
    out: list[str] = []
    stack = [top]
    while stack:
        path = stack.pop()
        out.append(path)
        children = sorted(client.get_children(path), reverse=True)
        base = "" if path == "/" else path
        stack.extend(f"{base}/{child}" for child in children)
    return out


def _print_lines(lines: list[str], out: TextIO) -> None:
    out.write("\n".join(lines) + "\n")


def run_commands(client: Any, commands: list[Command], out: TextIO, err: TextIO) -> int:
    """One-shot mode: run `commands` in order, stop at the first error; 0 if all succeeded."""
    for cmd in commands:
        try:
            execute(client, cmd, out)
        except Quit:
            return 0
        except Exception as exc:  # noqa: BLE001 - any failure is reported by name, not a traceback
            out.flush()
            print(format_error(exc, cmd), file=err)
            return 1
    return 0


# --- the program ------------------------------------------------------------------------------


def main(
    hosts: str,
    command: str | None = None,
    *,
    timeout: float = 10.0,
    connect_timeout: float = 15.0,
    curve_server_key: str | None = None,
    curve_secret_key: str | None = None,
) -> int:
    """`zoomq shell HOSTS [-c CMD]`; returns the exit code."""
    out, err = sys.stdout, sys.stderr
    commands: list[Command] = []
    if command is not None:
        try:
            commands = parse_line(command)
        except ShellUsageError as exc:
            print(f"zoomq shell: {exc}", file=err)
            return 1
        if all(cmd.verb in ("help", "quit") for cmd in commands):
            return run_commands(None, commands, out, err)
    from zoomq import Client

    try:
        client = Client(
            hosts=hosts, timeout=timeout, curve_server_key=curve_server_key, curve_secret_key=curve_secret_key
        )
    except Exception as exc:  # noqa: BLE001 - bad hosts or keys: said plainly
        print(f"zoomq shell: {format_error(exc)}", file=err)
        return 1
    try:
        client.start(timeout=connect_timeout)
    except Exception as exc:  # noqa: BLE001
        print(f"zoomq shell: cannot connect to {hosts}: {format_error(exc)}", file=err)
        with contextlib.suppress(Exception):
            client.close()
        return 1
    try:
        if command is not None:
            return run_commands(client, commands, out, err)
        return interactive(client, hosts, out, err)
    finally:
        with contextlib.suppress(Exception):
            client.stop()
        with contextlib.suppress(Exception):
            client.close()


def interactive(client: Any, hosts: str, out: TextIO, err: TextIO) -> int:
    """Read commands with input() (readline history in ~/.zoomq_history) until quit or EOF."""
    history = _setup_readline()

    def on_event(event: Any) -> None:
        print(format_event(event), file=out, flush=True)

    print(f"Connected to {hosts}; 'help' lists the commands.", file=out)
    count = 0
    try:
        while True:
            state = getattr(client, "state", "CONNECTED")
            try:
                line = input(f"[zoomq: {hosts}({state}) {count}] ")
            except EOFError:
                print(file=out)
                return 0
            except KeyboardInterrupt:
                print(file=out)
                continue
            count += 1
            try:
                commands = parse_line(line)
            except ShellUsageError as exc:
                print(str(exc), file=err)
                continue
            for cmd in commands:
                try:
                    execute(client, cmd, out, on_event)
                except Quit:
                    return 0
                except KeyboardInterrupt:
                    print("interrupted", file=err)
                    break
                except Exception as exc:  # noqa: BLE001
                    print(format_error(exc, cmd), file=err)
                    break
    finally:
        _save_readline(history)


def _setup_readline() -> str | None:
    try:
        import readline
    except ImportError:
        return None
    path = os.path.expanduser(HISTORY_FILE)
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(HISTORY_LENGTH)
    return path


def _save_readline(path: str | None) -> None:
    if path is None:
        return
    try:
        import readline
    except ImportError:
        return
    with contextlib.suppress(OSError):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(path)
