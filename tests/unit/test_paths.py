"""zoomq.paths: ZooKeeper's path rules (PathUtils.validatePath) and kazoo-style helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zoomq.paths import basename, join, normpath, parent, prefix_root, strip_root, validate_path

pytestmark = pytest.mark.timeout(30)


VALID = [
    "/",
    "/a",
    "/a/b/c",
    "/zookeeper",
    "/a.b",
    "/.a",
    "/a/..b",
    "/a/b.",
    "/...",
    "/a b",
    "/ünïcödé/路径",
    "/a-0000000001",
    "/\u00a0",  # just above the C1 range
    "/\uf900",  # just above the private-use range
    "/\uffef",
]

INVALID = [
    ("", "length"),
    ("a", "start with /"),
    ("a/b", "start with /"),
    ("/a/", "end with /"),
    ("//", "end with /"),
    ("/a//b", "empty node name"),
    ("//a", "empty node name"),
    ("/.", "relative"),
    ("/..", "relative"),
    ("/a/./b", "relative"),
    ("/a/../b", "relative"),
    ("/a/.", "relative"),
    ("/a/..", "relative"),
    ("/nul\x00", "null character"),
    ("/tab\t", "invalid character"),
    ("/\x01", "invalid character"),
    ("/\x1f", "invalid character"),
    ("/\x7f", "invalid character"),
    ("/\x9f", "invalid character"),
    ("/\ud800", "invalid character"),
    ("/\ue000", "invalid character"),  # private use
    ("/\uf8ff", "invalid character"),
    ("/\ufff0", "invalid character"),
    ("/\uffff", "invalid character"),
    ("/emoji\U0001f600", "invalid character"),  # a surrogate pair in Java
]


@pytest.mark.parametrize("path", VALID)
def test_valid_paths_pass(path: str) -> None:
    assert validate_path(path) is None
    assert validate_path(path, sequential=True) is None


@pytest.mark.parametrize(("path", "reason"), INVALID)
def test_invalid_paths_give_a_precise_reason(path: str, reason: str) -> None:
    got = validate_path(path)
    assert got is not None and reason in got


@pytest.mark.parametrize("path", [None, 7, b"/a", ["/a"]])
def test_non_strings_are_refused_without_raising(path: object) -> None:
    assert validate_path(path) == "path must be a string"


def test_reason_reports_the_position() -> None:
    assert validate_path("/ab\x00") == "null character not allowed @3"
    assert validate_path("/a//b") == "empty node name specified @3"
    assert validate_path("/ab/./c") == "relative paths not allowed @4"


@pytest.mark.parametrize("path", ["/q/", "/", "/q/item-", "/a/.", "/a/.."])
def test_a_sequential_create_may_end_in_slash_or_dot(path: str) -> None:
    # The server appends digits: "/q/" -> "/q/0000000001", "/a/." -> "/a/.0000000001".
    assert validate_path(path, sequential=True) is None


@pytest.mark.parametrize("path", ["/q//", "q/", "/a/./", "/a\x00/", ""])
def test_a_sequential_create_still_follows_the_other_rules(path: str) -> None:
    assert validate_path(path, sequential=True) is not None


def test_parent_and_basename() -> None:
    assert parent("/a/b/c") == "/a/b"
    assert parent("/a") == "/"
    assert parent("/") == "/"
    assert basename("/a/b/c") == "c"
    assert basename("/a") == "a"
    assert basename("/") == ""


def test_join_like_kazoo() -> None:
    assert join("/a", "b", "c") == "/a/b/c"
    assert join("/", "b") == "/b"
    assert join("/a/", "b") == "/a/b"
    assert join("/a", "/b") == "/b"  # an absolute component resets
    assert join("", "b") == "b"
    assert join("/a") == "/a"
    assert join() == ""


def test_normpath_like_kazoo() -> None:
    assert normpath("/a//b///c") == "/a/b/c"
    assert normpath("/a/b/") == "/a/b"
    assert normpath("/a/b/", trailing=True) == "/a/b/"
    assert normpath("/") == "/"
    assert normpath("//") == "/"
    assert normpath("a//b") == "a/b"  # relative stays relative
    assert normpath("") == ""
    for bad in ("/a/./b", "/a/../b", "..", "/."):
        with pytest.raises(ValueError):
            normpath(bad)


def test_prefix_root_for_chroot() -> None:
    assert prefix_root("/app", "/x") == "/app/x"
    assert prefix_root("/app", "x") == "/app/x"
    assert prefix_root("app", "/x/y") == "/app/x/y"
    assert prefix_root("/app/", "/") == "/app"
    assert prefix_root("", "/x") == "/x"
    assert prefix_root("/", "/x") == "/x"
    assert prefix_root("/app", "/q/", trailing=True) == "/app/q/"
    with pytest.raises(ValueError):
        prefix_root("/app", "/../etc")


def test_strip_root_inverts_prefix_root() -> None:
    assert strip_root("/app", "/app/x/y") == "/x/y"
    assert strip_root("/app", "/app") == "/"
    assert strip_root("/app", "/app2/x") == "/app2/x"
    assert strip_root("", "/x") == "/x"


_names = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), min_size=1, max_size=8)


@given(st.lists(_names, min_size=1, max_size=5))
def test_validity_agrees_with_a_per_component_definition(names: list[str]) -> None:
    path = "/" + "/".join(names)

    def char_ok(c: str) -> bool:
        o = ord(c)
        return not (o <= 0x1F or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xF8FF or o >= 0xFFF0)

    expect = all(n not in (".", "..") and all(char_ok(c) for c in n) for n in names)
    assert (validate_path(path) is None) == expect
    if expect:
        assert parent(path) == ("/" + "/".join(names[:-1]) if len(names) > 1 else "/")
        assert basename(path) == names[-1]
        assert join(parent(path), basename(path)) == path
        assert normpath(path) == path
