"""The shell's pure half: tokenizing, parsing commands, ACLs, and zkCli's output formats."""

from __future__ import annotations

import io

import pytest

from zoomq.exceptions import NoNodeError
from zoomq.security import ACL, Id, Permissions
from zoomq.shell import (
    Command,
    ShellUsageError,
    format_acls,
    format_children,
    format_data,
    format_error,
    format_stat,
    parse_acl,
    parse_command,
    parse_line,
    run_commands,
    tokenize,
)
from zoomq.states import ZnodeStat

pytestmark = pytest.mark.timeout(10)


# --- tokens -----------------------------------------------------------------------------------


def test_tokens_follow_shell_quoting():
    assert tokenize("create /a 'x y'") == ["create", "/a", "x y"]
    assert tokenize('set /a "say \\"hi\\""') == ["set", "/a", 'say "hi"']
    assert tokenize("set /a a\\ b") == ["set", "/a", "a b"]
    assert tokenize('set /a ""') == ["set", "/a", ""]
    assert tokenize("set /a x#y") == ["set", "/a", "x#y"]


def test_an_unquoted_semicolon_separates_commands_and_a_quoted_one_does_not():
    assert tokenize("get /a;get /b") == ["get", "/a", None, "get", "/b"]
    assert tokenize("set /a ';'") == ["set", "/a", ";"]


@pytest.mark.parametrize("line", ["set /a 'x", 'set /a "x', 'set /a "x\\"'])
def test_an_unterminated_quote_is_a_usage_error(line):
    with pytest.raises(ShellUsageError, match="unterminated"):
        tokenize(line)


# --- commands ---------------------------------------------------------------------------------


def test_several_commands_on_one_line_in_order():
    assert parse_line("create /cfg hello; get /cfg;; ls /") == [
        Command("create", path="/cfg", data=b"hello"),
        Command("get", path="/cfg"),
        Command("ls", path="/"),
    ]


@pytest.mark.parametrize("line", ["", "   ", ";", " ; ;"])
def test_blank_lines_hold_no_command(line):
    assert parse_line(line) == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ls /", Command("ls", path="/")),
        ("ls -s -R /a", Command("ls", path="/a", stat=True, recursive=True)),
        ("ls -w /a", Command("ls", path="/a", watch=True)),
        ("get -s /a", Command("get", path="/a", stat=True)),
        ("get /a -s", Command("get", path="/a", stat=True)),
        ("set /a data", Command("set", path="/a", data=b"data")),
        ("set /a data 3", Command("set", path="/a", data=b"data", version=3)),
        ("set -v 3 /a data", Command("set", path="/a", data=b"data", version=3)),
        ("set -s /a -1", Command("set", path="/a", data=b"-1", stat=True)),
        ("set /a ''", Command("set", path="/a", data=b"")),
        ("set /a 'h\u00e9'", Command("set", path="/a", data="h\u00e9".encode())),
        ("create /a", Command("create", path="/a")),
        ("create /a x", Command("create", path="/a", data=b"x")),
        ("create -s -e /q/item- x", Command("create", path="/q/item-", data=b"x", sequence=True, ephemeral=True)),
        ("create -s /q/", Command("create", path="/q/", sequence=True)),
        ("create -c /box", Command("create", path="/box", container=True)),
        ("create -t 5000 /t x", Command("create", path="/t", data=b"x", ttl=5000)),
        ("create -s -t 5000 /t", Command("create", path="/t", sequence=True, ttl=5000)),
        (
            "create /a x world:anyone:r",
            Command("create", path="/a", data=b"x", acls=(ACL(Permissions.READ, Id("world", "anyone")),)),
        ),
        ("create /a -- -e", Command("create", path="/a", data=b"-e")),
        ("delete /a", Command("delete", path="/a")),
        ("delete -v 2 /a", Command("delete", path="/a", version=2)),
        ("deleteall /a", Command("deleteall", path="/a")),
        ("rmr /a", Command("deleteall", path="/a")),
        ("stat /a", Command("stat", path="/a")),
        ("sync /", Command("sync", path="/")),
        ("getAcl /a", Command("getAcl", path="/a")),
        ("getacl -s /a", Command("getAcl", path="/a", stat=True)),
        (
            "setAcl /a world:anyone:cdrwa",
            Command("setAcl", path="/a", acls=(ACL(Permissions.ALL, Id("world", "anyone")),)),
        ),
        (
            "setAcl -v 1 /a ip:10.0.0.1:rw",
            Command("setAcl", path="/a", version=1, acls=(ACL(3, Id("ip", "10.0.0.1")),)),
        ),
        ("addauth digest bob:secret", Command("addauth", scheme="digest", credential="bob:secret")),
        ("help", Command("help")),
        ("quit", Command("quit")),
        ("exit", Command("quit")),
    ],
)
def test_commands_parse_as_zkcli_reads_them(line, expected):
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("frobnicate /a", "unknown command"),
        ("ls", "usage: ls"),
        ("ls /a /b", "usage: ls"),
        ("get a", "must start with /"),
        ("get /a/", "must not end with /"),
        ("set /a", "usage: set"),
        ("set /a x notanumber", "version must be an integer"),
        ("set -v 1 /a x 2", "version once"),
        ("set /a x -v", "needs a value"),
        ("delete -v x /a", "version must be an integer"),
        ("create -c -e /a", "-c cannot be combined"),
        ("create -t 0 /a", "ttl must be > 0"),
        ("create -e -t 10 /a", "-t cannot be combined with -e"),
        ("create /a x world:anyone:q", "unknown permission"),
        ("setAcl /a world", "expected scheme:id:perms"),
        ("addauth digest", "usage: addauth"),
        ("get /a; get /b", "one command"),
        ("", "empty command"),
    ],
)
def test_bad_commands_say_what_is_wrong(line, message):
    with pytest.raises(ShellUsageError, match=message):
        parse_command(line)


# --- ACLs -------------------------------------------------------------------------------------


def test_acl_lists_with_digest_ids_that_contain_colons():
    assert parse_acl("world:anyone:cdrwa,digest:bob:Zm9vYmFy=:ra,auth::cdrwa") == [
        ACL(Permissions.ALL, Id("world", "anyone")),
        ACL(Permissions.READ | Permissions.ADMIN, Id("digest", "bob:Zm9vYmFy=")),
        ACL(Permissions.ALL, Id("auth", "")),
    ]


def test_acls_print_as_zkcli_prints_them():
    acls = [ACL(Permissions.ALL, Id("world", "anyone")), ACL(Permissions.READ, Id("digest", "bob:x="))]
    assert format_acls(acls) == ["'world,'anyone", ": cdrwa", "'digest,'bob:x=", ": r"]


# --- output -----------------------------------------------------------------------------------

STAT = ZnodeStat(
    czxid=0x100000002,
    mzxid=0x100000005,
    ctime=0,
    mtime=86_400_000,
    version=3,
    cversion=1,
    aversion=0,
    ephemeralOwner=0x1234,
    dataLength=5,
    numChildren=1,
    pzxid=0x100000004,
)


def test_stat_prints_one_field_per_line_in_zkcli_order():
    assert format_stat(STAT) == [
        "cZxid = 0x100000002",
        "ctime = Thu Jan 01 00:00:00 UTC 1970",
        "mZxid = 0x100000005",
        "mtime = Fri Jan 02 00:00:00 UTC 1970",
        "pZxid = 0x100000004",
        "cversion = 1",
        "dataVersion = 3",
        "aclVersion = 0",
        "ephemeralOwner = 0x1234",
        "dataLength = 5",
        "numChildren = 1",
    ]


def test_children_data_and_errors_print_like_zkcli():
    assert format_children(["b", "a"]) == "[a, b]"
    assert format_children([]) == "[]"
    assert format_data(None) == "null"
    assert format_data(b"\xff ok") == "\\xff ok"
    assert format_error(NoNodeError("/x")) == "NoNodeError: /x"
    assert format_error(NoNodeError(), Command("get", path="/y")) == "NoNodeError: /y"


# --- one-shot runs against a stand-in client ---------------------------------------------------


class FakeClient:
    """Just enough of the client API for the runner: a dict of path -> data."""

    def __init__(self) -> None:
        self.nodes: dict[str, bytes] = {"/": b""}
        self.calls: list[tuple] = []

    def create(self, path, value=b"", acl=None, ephemeral=False, sequence=False, **kw):
        self.calls.append(("create", path, value, ephemeral, sequence, kw))
        self.nodes[path] = value
        return path

    def get(self, path, watch=None):
        if path not in self.nodes:
            raise NoNodeError(path)
        return self.nodes[path], STAT

    def get_children(self, path, watch=None, include_data=False):
        base = path.rstrip("/") + "/"
        kids = [p[len(base) :] for p in self.nodes if p.startswith(base) and "/" not in p[len(base) :] and p != base]
        return (kids, STAT) if include_data else kids

    def delete(self, path, version=-1, recursive=False):
        self.calls.append(("delete", path, version, recursive))
        self.nodes.pop(path)


def test_one_shot_runs_in_order_and_stops_at_the_first_error():
    client, out, err = FakeClient(), io.StringIO(), io.StringIO()
    commands = parse_line("create /a hi; create -e /a/b; get /a; get /nope; create /never")
    assert run_commands(client, commands, out, err) == 1
    assert out.getvalue().splitlines() == ["Created /a", "Created /a/b", "hi"]
    assert err.getvalue().strip() == "NoNodeError: /nope"
    assert "/never" not in client.nodes
    assert client.calls[1] == ("create", "/a/b", b"", True, False, {})


def test_one_shot_ls_recursive_and_deleteall():
    client, out, err = FakeClient(), io.StringIO(), io.StringIO()
    commands = parse_line("create /a; create /a/x; create /a/y; create /b; ls -R /; ls /a; deleteall /b; quit; ls /")
    assert run_commands(client, commands, out, err) == 0, err.getvalue()
    assert out.getvalue().splitlines()[4:] == ["/", "/a", "/a/x", "/a/y", "/b", "[x, y]"]
    assert client.calls[-1] == ("delete", "/b", -1, True)


def test_container_and_ttl_reach_the_client_as_keywords():
    client, out, err = FakeClient(), io.StringIO(), io.StringIO()
    assert run_commands(client, parse_line("create -c /box; create -t 100 /t"), out, err) == 0
    assert client.calls[0][-1] == {"container": True}
    assert client.calls[1][-1] == {"ttl": 100}


def test_the_tokenizer_is_shlex_with_the_separator_told_from_a_quoted_semicolon():
    assert tokenize("set /a ';'; get /a") == ["set", "/a", ";", None, "get", "/a"]
    assert tokenize('create /a "x;y";;ls /') == ["create", "/a", "x;y", None, None, "ls", "/"]
    with pytest.raises(ShellUsageError, match="backslash"):
        tokenize("get /a\\")
