"""The client side of dynamic reconfiguration, without a node: `Client.reconfig` (kazoo's argument
checks and the request it makes), the asyncio face, the gateway's opcode 16 (ReconfigRequest in,
GetDataResponse out) against kazoo's own serializers, and the shell's and the CLI's reconfig
options down to the protocol.Reconfig they make."""

from __future__ import annotations

import argparse
import asyncio
import io
import struct
from typing import ClassVar

import msgspec
import pytest

from actors.gateway import jute
from zoomq import cli
from zoomq import protocol as p
from zoomq.aio import Client as AioClient
from zoomq.client import AsyncResult, Client
from zoomq.exceptions import (
    BadArgumentsError,
    BadVersionError,
    Codes,
    ConnectionClosedError,
    NewConfigNoQuorumError,
    NoAuthError,
    ReconfigDisabledError,
    ReconfigInProcessError,
)
from zoomq.shell import Command, ShellUsageError, help_text, parse_command, parse_line, reconfig_message, run_commands
from zoomq.states import ZnodeStat

pytestmark = pytest.mark.timeout(30)

STAT = ZnodeStat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
SPEC5 = "server.5=127.0.0.1:2888:3888:participant;127.0.0.1:2185"
SPEC6 = "server.6=127.0.0.1:2889:3889:observer;2186"
CONFIG = f"server.1=127.0.0.1:2887:3887:participant;127.0.0.1:2181\n{SPEC5}\nversion=100000003".encode()


# --- Client.reconfig: the request, the reply, kazoo's checks ----------------------------------------


class Captured:
    """A client that is never started: what it would send, and the parser for its reply."""

    def __init__(self) -> None:
        self.client = Client("127.0.0.1:1")
        self.sent: list[tuple[p.Msg, object]] = []

        def submit(msg, parse, watch=None, result=None):
            self.sent.append((msg, parse))
            return result or AsyncResult()

        self.client._submit = submit  # type: ignore[method-assign]

    def request(self, *args) -> p.Reconfig:
        self.client.reconfig_async(*args)
        msg, _parse = self.sent[-1]
        return msg

    def answer(self, reply: p.Reply):
        _msg, parse = self.sent[-1]
        return parse(reply)


def test_reconfig_sends_one_reconfig_write_with_a_fresh_xid():
    c = Captured()
    first = c.request(SPEC5, None, None, -1)
    second = c.request(None, "5", None, 0x100000003)
    assert first == p.Reconfig(first.xid, SPEC5, None, None, -1)
    assert second == p.Reconfig(second.xid, None, "5", None, 0x100000003)
    assert second.xid > first.xid > 0
    assert isinstance(first, p.WRITE_OPS)
    wire = msgspec.msgpack.Decoder(p.ClientMsg).decode(msgspec.msgpack.encode(second))
    assert wire == second


def test_reconfig_returns_the_new_config_and_its_stat():
    c = Captured()
    c.request(None, None, f"{SPEC5},{SPEC6}", -1)
    assert c.answer(p.Reply(1, 9, 0, p.DataResult(CONFIG, STAT))) == (CONFIG, STAT)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (Codes.NEWCONFIGNOQUORUM, NewConfigNoQuorumError),
        (Codes.RECONFIGINPROGRESS, ReconfigInProcessError),
        (Codes.BADVERSION, BadVersionError),
        (Codes.RECONFIGDISABLED, ReconfigDisabledError),
        (Codes.BADARGUMENTS, BadArgumentsError),
        (Codes.NOAUTH, NoAuthError),
    ],
)
def test_reconfig_errors_raise_kazoos_exceptions(code, error):
    c = Captured()
    c.request(SPEC5, None, None, -1)
    with pytest.raises(error):
        c.answer(p.Reply(1, 9, code))


def test_empty_lists_go_as_null_and_a_bool_version_as_an_int_as_kazoo_writes_them():
    c = Captured()
    assert c.request("", b"", None, True) == p.Reconfig(c.sent[-1][0].xid, None, None, None, 1)
    encoded = msgspec.msgpack.encode(c.sent[-1][0])
    assert msgspec.msgpack.Decoder(p.ClientMsg).decode(encoded).from_config == 1


BAD_ARGS = [
    ((b"server.5=x", None, None, -1), "Invalid type for 'joining' (string expected)"),
    ((None, 5, None, -1), "Invalid type for 'leaving' (string expected)"),
    ((None, None, ["server.5=x"], -1), "Invalid type for 'new_members' (string expected)"),
    ((None, "5", None, "-1"), "Invalid type for 'from_config' (int expected)"),
    ((None, "5", None, None), "Invalid type for 'from_config' (int expected)"),
    ((None, "5", None, 1.0), "Invalid type for 'from_config' (int expected)"),
]


@pytest.mark.parametrize(("args", "message"), BAD_ARGS)
def test_argument_types_are_checked_at_once_with_kazoos_words(args, message):
    c = Captured()
    with pytest.raises(TypeError) as raised:
        c.client.reconfig_async(*args)
    assert str(raised.value) == message
    with pytest.raises(TypeError):
        c.client.reconfig(*args)
    assert c.sent == []


@pytest.mark.parametrize(("args", "message"), BAD_ARGS)
def test_the_type_checks_match_kazoos_own(args, message):
    kazoo_client = pytest.importorskip("kazoo.client", reason="kazoo is a test dependency")
    kz = kazoo_client.KazooClient(hosts="127.0.0.1:1")
    with pytest.raises(TypeError) as theirs:
        kz.reconfig_async(*args)
    assert str(theirs.value) == message


def test_the_signatures_are_kazoos():
    import inspect

    assert list(inspect.signature(Client.reconfig).parameters) == [
        "self",
        "joining",
        "leaving",
        "new_members",
        "from_config",
    ]
    assert inspect.signature(Client.reconfig).parameters["from_config"].default == -1
    assert list(inspect.signature(Client.reconfig_async).parameters) == [
        "self",
        "joining",
        "leaving",
        "new_members",
        "from_config",
    ]
    assert not hasattr(Client("127.0.0.1:1").transaction(), "reconfig")  # kazoo's transactions have none


def test_reconfig_on_a_client_never_started_fails_as_every_request_does():
    with pytest.raises(ConnectionClosedError):
        Client("127.0.0.1:1").reconfig(SPEC5, None, None)


# --- the asyncio face ---------------------------------------------------------------------------


def test_the_aio_client_sends_the_same_request_and_returns_the_same_value():
    async def run():
        zk = AioClient("127.0.0.1:1")
        sent = []

        def submit(msg, parse, watch=None, result=None):
            sent.append(msg)
            done = AsyncResult()
            try:
                done.set(parse(p.Reply(msg.xid, 9, 0, p.DataResult(CONFIG, STAT))))
            except Exception as exc:  # noqa: BLE001
                done.set_exception(exc)
            return done

        zk.engine._submit = submit
        value = await zk.reconfig(None, "5", None)
        with pytest.raises(TypeError, match="'joining'"):
            await zk.reconfig(42, None, None)
        return value, sent

    value, sent = asyncio.run(run())
    assert value == (CONFIG, STAT)
    assert sent == [p.Reconfig(sent[0].xid, None, "5", None, -1)]


def test_the_aio_client_raises_the_nodes_error():
    async def run():
        zk = AioClient("127.0.0.1:1")

        def submit(msg, parse, watch=None, result=None):
            done = AsyncResult()
            try:
                done.set(parse(p.Reply(msg.xid, 9, Codes.RECONFIGINPROGRESS)))
            except Exception as exc:  # noqa: BLE001
                done.set_exception(exc)
            return done

        zk.engine._submit = submit
        await zk.reconfig(SPEC5, None, None, 7)

    with pytest.raises(ReconfigInProcessError):
        asyncio.run(run())


# --- the gateway: opcode 16 -----------------------------------------------------------------------


def _decode(payload: bytes) -> jute.Request:
    counter = iter(range(100, 200))
    return jute.decode_request(payload, lambda: next(counter))


def _reconfig_frame(xid: int, joining, leaving, members, config_id: int) -> bytes:
    return (
        jute.Writer()
        .int(xid)
        .int(jute.RECONFIG)
        .ustring(joining)
        .ustring(leaving)
        .ustring(members)
        .long(config_id)
        .bytes()
    )


def test_opcode_16_is_reconfig():
    assert jute.RECONFIG == 16


@pytest.mark.parametrize(
    ("fields", "expect"),
    [
        ((SPEC5, None, None, -1), p.Reconfig(100, SPEC5, None, None, -1)),
        ((None, "2,3", None, 0x100000003), p.Reconfig(100, None, "2,3", None, 0x100000003)),
        ((SPEC6, "1", None, 7), p.Reconfig(100, SPEC6, "1", None, 7)),
        ((None, None, f"{SPEC5},{SPEC6}", -1), p.Reconfig(100, None, None, f"{SPEC5},{SPEC6}", -1)),
        (("", None, None, -1), p.Reconfig(100, "", None, None, -1)),  # an empty string is not a null one
        ((None, None, None, 2**63 - 1), p.Reconfig(100, None, None, None, 2**63 - 1)),
    ],
)
def test_a_reconfig_request_decodes_to_the_native_message(fields, expect):
    req = _decode(_reconfig_frame(9, *fields))
    assert (req.xid, req.opcode, req.msg, req.multi_types) == (9, jute.RECONFIG, expect, None)
    assert isinstance(req.msg, p.WRITE_OPS)  # numbered and ordered like setData


def test_a_reconfig_request_built_by_kazoo_decodes_and_its_reply_parses_with_kazoo():
    ks = pytest.importorskip("kazoo.protocol.serialization", reason="kazoo is a test dependency")
    request = ks.Reconfig(SPEC5, None, "", 0x100000003)  # kazoo writes "" as null
    req = _decode(struct.pack(">ii", 4, request.type) + bytes(request.serialize()))
    assert (req.xid, req.opcode, req.msg) == (4, 16, p.Reconfig(100, SPEC5, None, None, 0x100000003))
    frame = jute.encode_reply(4, jute.RECONFIG, p.Reply(100, 77, 0, p.DataResult(CONFIG, STAT)))
    assert struct.unpack(">i", frame[:4])[0] == len(frame) - 4
    assert struct.unpack(">iqi", frame[4:20]) == (4, 77, 0)
    assert ks.Reconfig.deserialize(frame[20:], 0) == (CONFIG, STAT)


def test_the_reply_is_a_get_data_response_and_an_error_has_no_record():
    frame = jute.encode_reply(4, jute.RECONFIG, p.Reply(100, 77, 0, p.DataResult(CONFIG, STAT)))
    r = jute.Reader(frame[20:])
    assert (
        r.buffer(),
        ZnodeStat(
            *[r.long(), r.long(), r.long(), r.long(), r.int(), r.int(), r.int(), r.long(), r.int(), r.int(), r.long()]
        ),
        r.left(),
    ) == (CONFIG, STAT, 0)
    for code in (
        Codes.NEWCONFIGNOQUORUM,
        Codes.RECONFIGINPROGRESS,
        Codes.BADVERSION,
        Codes.RECONFIGDISABLED,
        Codes.BADARGUMENTS,
        Codes.NOAUTH,
    ):
        frame = jute.encode_reply(4, jute.RECONFIG, p.Reply(100, 77, code))
        assert frame == struct.pack(">iiqi", 16, 4, 77, code)


def test_a_truncated_reconfig_request_is_malformed():
    whole = _reconfig_frame(9, SPEC5, None, None, -1)
    for cut in (8, 12, len(whole) - 8, len(whole) - 1):
        with pytest.raises(jute.JuteError):
            _decode(whole[:cut])


def test_reconfig_is_no_read_for_multi_read_and_no_op_of_a_multi():
    header = struct.pack(">ii", 3, jute.MULTI_READ)
    body = struct.pack(">i?i", jute.RECONFIG, False, -1) + _reconfig_frame(0, SPEC5, None, None, -1)[8:]
    with pytest.raises(jute.Unsupported) as raised:
        _decode(header + body + struct.pack(">i?i", -1, True, -1))
    assert raised.value.code == Codes.MARSHALLINGERROR  # as a setData in a multiRead
    with pytest.raises(jute.JuteError):  # ZooKeeper's multi has no reconfig op either
        _decode(struct.pack(">ii", 3, jute.MULTI) + body + struct.pack(">i?i", -1, True, -1))


# --- the shell --------------------------------------------------------------------------------------


def test_shell_reconfig_incremental_with_repeated_add_and_remove():
    cmd = parse_command(f"reconfig -s -v 100000003 -add '{SPEC5}' -remove 2 -add '{SPEC6}' -remove 3,4")
    assert cmd == Command("reconfig", stat=True, reconfig=p.Reconfig(0, f"{SPEC5},{SPEC6}", "2,3,4", None, 0x100000003))


def test_shell_reconfig_whole_membership_and_version_forms():
    cmd = parse_command(f"reconfig -members '{SPEC5},{SPEC6}'")
    assert cmd == Command("reconfig", reconfig=p.Reconfig(0, None, None, f"{SPEC5},{SPEC6}", -1))
    assert parse_command("reconfig -remove 3 -v 0x1F").reconfig.from_config == 31  # hex, as zkCli reads it
    assert parse_command("reconfig -remove 3 -v 10").reconfig.from_config == 16
    assert parse_command("reconfig -remove 3 -v -1").reconfig.from_config == -1


def test_shell_reconfig_lowercases_the_lists_as_zkcli_does():
    cmd = parse_command("reconfig -add 'server.7=Node7.Example:2888:3888:OBSERVER;2187'")
    assert cmd.reconfig.joining == "server.7=node7.example:2888:3888:observer;2187"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("reconfig", "needs the new members"),
        ("reconfig -s -v 1", "needs the new members"),
        (f"reconfig -members '{SPEC5}' -add '{SPEC6}'", "do not mix"),
        (f"reconfig -members '{SPEC5}' -remove 1", "do not mix"),
        ("reconfig -remove 1 -v xyz", "hex"),
        ("reconfig -remove 1 -v 8000000000000000", "hex"),
        ("reconfig -remove 1 -v -2", "hex"),
        ("reconfig -remove ''", "empty"),
        ("reconfig -remove 1,,2", "empty item"),
        ("reconfig -add", "needs a value"),
        ("reconfig -remove 1 extra", "usage"),
    ],
)
def test_shell_reconfig_usage_errors(line, why):
    with pytest.raises(ShellUsageError, match=why):
        parse_command(line)


def test_an_unquoted_semicolon_in_a_server_spec_ends_the_command():
    # zkCli's specs hold a ';' before the client port: in this shell they must be quoted.
    assert [c.verb for c in parse_line("reconfig -remove 3; config")] == ["reconfig", "config"]
    with pytest.raises(ShellUsageError):
        parse_line("reconfig -add server.5=h:1:2;2185")


class ConfigClient:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple] = []

    def reconfig(self, joining, leaving, new_members, from_config=-1):
        self.calls.append((joining, leaving, new_members, from_config))
        if self.error is not None:
            raise self.error
        return CONFIG, STAT

    def get_config(self):
        return CONFIG, STAT


def test_shell_reconfig_prints_the_committed_config_and_the_stat_with_s():
    client, out, err = ConfigClient(), io.StringIO(), io.StringIO()
    assert run_commands(client, parse_line("reconfig -remove 2 -v 100000003; reconfig -s -remove 3"), out, err) == 0, (
        err.getvalue()
    )
    assert client.calls == [(None, "2", None, 0x100000003), (None, "3", None, -1)]
    lines = out.getvalue().splitlines()
    config = CONFIG.decode().splitlines()
    assert lines[:4] == ["Committed new configuration:", *config]
    assert lines[4:8] == ["Committed new configuration:", *config]
    assert lines[8] == "cZxid = 0x1" and lines[-1] == "numChildren = 10"


def test_shell_reconfig_reports_the_nodes_error_by_name():
    client, out, err = ConfigClient(NewConfigNoQuorumError()), io.StringIO(), io.StringIO()
    assert run_commands(client, parse_line(f"reconfig -add '{SPEC5}'; config"), out, err) == 1
    assert err.getvalue().strip() == "NewConfigNoQuorumError"
    assert out.getvalue() == ""


def test_shell_config_still_works_and_help_lists_reconfig():
    assert parse_command("config -c -s") == Command("config", stat=True, recursive=True)
    client, out, err = ConfigClient(), io.StringIO(), io.StringIO()
    assert run_commands(client, parse_line("config; config -c"), out, err) == 0
    assert out.getvalue().splitlines() == [*CONFIG.decode().splitlines(), "100000003 127.0.0.1:2181,127.0.0.1:2185"]
    text = help_text()
    assert (
        "reconfig [-s] [-v version] [[-members serverSpec,...] | [-add serverSpec,...]* [-remove serverId,...]*]"
        in text
    )
    assert "config [-c] [-s]" in text


def test_reconfig_message_takes_lists_too():
    assert reconfig_message(add=[SPEC5, SPEC6], remove=["1", "2,3"]) == p.Reconfig(
        0, f"{SPEC5},{SPEC6}", "1,2,3", None, -1
    )
    assert reconfig_message(members=SPEC5, version="ff") == p.Reconfig(0, None, None, SPEC5, 255)
    with pytest.raises(ShellUsageError, match="usage: U"):
        reconfig_message(usage="U")


# --- the CLI ----------------------------------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["reconfig", *argv])


def test_cli_reconfig_flags_make_the_request_and_the_auth_data():
    args = _args(
        "127.0.0.1:2181,127.0.0.1:2182",
        "--add",
        SPEC5,
        "--add",
        SPEC6,
        "--remove",
        "2",
        "--remove",
        "3,4",
        "--from-config",
        "100000003",
        "--auth",
        "digest:super:secret",
        "--auth",
        "ip:1.2.3.4",
    )
    request, auth = cli.reconfig_request(args)
    assert request == p.Reconfig(0, f"{SPEC5},{SPEC6}", "2,3,4", None, 0x100000003)
    assert auth == [("digest", "super:secret"), ("ip", "1.2.3.4")]
    assert args.hosts == "127.0.0.1:2181,127.0.0.1:2182"
    assert (args.timeout, args.connect_timeout, args.curve_server_key, args.curve_secret_key) == (
        10.0,
        15.0,
        None,
        None,
    )
    request, auth = cli.reconfig_request(_args("h:1", "--members", f"{SPEC5},{SPEC6}", "--from-config", "-1"))
    assert (request, auth) == (p.Reconfig(0, None, None, f"{SPEC5},{SPEC6}", -1), [])


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["h:1"], "needs the new members"),
        (["h:1", "--members", SPEC5, "--remove", "1"], "do not mix"),
        (["h:1", "--remove", "1", "--from-config", "12g"], "hex"),
        (["h:1", "--remove", "1", "--auth", "digest"], "SCHEME:CREDENTIAL"),
        (["h:1", "--remove", "1", "--auth", ":x"], "SCHEME:CREDENTIAL"),
    ],
)
def test_cli_reconfig_usage_errors_exit_2_before_connecting(argv, why, capsys, monkeypatch):
    import zoomq

    monkeypatch.setattr(zoomq, "Client", lambda **kw: pytest.fail("no client for a usage error"))
    assert cli.main(["reconfig", *argv]) == cli.EXIT_USAGE
    assert why in capsys.readouterr().err


class FakeCliClient:
    """Stands in for zoomq.Client in `zoomq reconfig`."""

    made: ClassVar[list[FakeCliClient]] = []
    start_error: ClassVar[Exception | None] = None
    reconfig_error: ClassVar[Exception | None] = None

    def __init__(self, **kw) -> None:
        self.kw = kw
        self.calls: list[tuple] = []
        self.stopped = False
        FakeCliClient.made.append(self)

    def start(self, timeout=15):
        self.start_timeout = timeout
        if self.start_error is not None:
            raise self.start_error

    def reconfig(self, joining, leaving, new_members, from_config=-1):
        self.calls.append((joining, leaving, new_members, from_config))
        if self.reconfig_error is not None:
            raise self.reconfig_error
        return CONFIG, STAT

    def stop(self):
        self.stopped = True

    def close(self):
        pass


@pytest.fixture
def fake_client(monkeypatch):
    import zoomq

    FakeCliClient.made, FakeCliClient.start_error, FakeCliClient.reconfig_error = [], None, None
    monkeypatch.setattr(zoomq, "Client", FakeCliClient)
    return FakeCliClient


def test_cli_reconfig_prints_the_new_config(fake_client, capsys):
    code = cli.main(
        [
            "reconfig",
            "127.0.0.1:2181",
            "--remove",
            "5",
            "--auth",
            "digest:super:secret",
            "--timeout",
            "4",
            "--connect-timeout",
            "3",
            "--curve-server-key",
            "K",
            "--curve-secret-key",
            "S",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out == CONFIG.decode() + "\n"
    (client,) = fake_client.made
    assert client.kw == {
        "hosts": "127.0.0.1:2181",
        "timeout": 4.0,
        "auth_data": [("digest", "super:secret")],
        "curve_server_key": "K",
        "curve_secret_key": "S",
    }
    assert client.start_timeout == 3.0
    assert client.calls == [(None, "5", None, -1)]
    assert client.stopped


@pytest.mark.parametrize(
    "error",
    [
        NewConfigNoQuorumError(),
        ReconfigInProcessError(),
        BadVersionError(),
        NoAuthError(),
        ReconfigDisabledError(),
        BadArgumentsError(),
    ],
)
def test_cli_reconfig_failure_exits_1_with_the_error_name(fake_client, capsys, error):
    fake_client.reconfig_error = error
    assert cli.main(["reconfig", "h:1", "--add", SPEC5, "--from-config", "0x100000003"]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip() == f"zoomq reconfig: {type(error).__name__}"
    assert fake_client.made[0].calls == [(SPEC5, None, None, 0x100000003)]
    assert fake_client.made[0].stopped


def test_cli_reconfig_that_cannot_connect_exits_1(fake_client, capsys):
    from zoomq.exceptions import TimeoutError as ZkTimeout

    fake_client.start_error = ZkTimeout("no node answered")
    assert cli.main(["reconfig", "h:1", "--remove", "1"]) == 1
    assert "cannot connect to h:1: TimeoutError: no node answered" in capsys.readouterr().err
    assert fake_client.made[0].calls == []
