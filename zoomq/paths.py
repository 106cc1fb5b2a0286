"""Znode path rules and helpers, shared by the client and the server.

Rules (ZooKeeper's PathUtils.validatePath, §1.2 of the reference): a path is absolute, starts with
"/", has no empty component ("//"), no "." or ".." component, no trailing "/" (except the root "/";
a sequential create may end in "/" because the server appends the sequence number), and none of
the characters U+0000, U+0001-U+001F, U+007F-U+009F, U+D800-U+F8FF, U+FFF0-U+FFFF. Characters
above U+FFFF are refused too: Java stores them as surrogate pairs (U+D800-U+DFFF), which ZooKeeper
rejects, so a path ZooKeeper would refuse is refused here as well.

`validate_path` never raises: it returns None for a valid path, else a short reason. The
client-side helpers `normpath` and `prefix_root` follow kazoo's (collapse "//", keep relative
paths relative, refuse "."/".." with ValueError) so chroot handling matches kazoo's.
"""

from __future__ import annotations

from collections.abc import Iterator

import re

ROOT = "/"

# Any character ZooKeeper refuses, plus everything beyond the BMP (surrogate pairs in Java).
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")


def validate_path(path: object, *, sequential: bool = False) -> str | None:
    """None if `path` is a valid znode path, else why not (ZooKeeper's wording, shortened)."""
    if not isinstance(path, str):
        return "path must be a string"
    if not path:
        return "path length must be > 0"
    if path[0] != "/":
        return "path must start with / character"
    if len(path) == 1:
        return None
    if sequential:
        # The server appends digits: the path is checked as it will be (PathUtils does path + "1").
        path = path + "1"
    elif path[-1] == "/":
        return "path must not end with / character"
    bad = _BAD_CHAR.search(path)
    if bad is not None:
        at = bad.start()
        if bad.group() == "\x00":
            return f"null character not allowed @{at}"
        return f"invalid character @{at}"
    at = path.find("//")
    if at >= 0:
        return f"empty node name specified @{at + 1}"
    if "/." in path:
        start = 0
        for comp in path.split("/"):
            if comp == "." or comp == "..":
                return f"relative paths not allowed @{start}"
            start += len(comp) + 1
    return None


def parent(path: str) -> str:
    """The parent of an absolute path; the root is its own parent."""
    i = path.rfind("/")
    return path[:i] if i > 0 else ROOT


def lineage(path: str) -> Iterator[str]:
    """`path`, then each of its ancestors up to and including "/"."""
    while path != "/":
        yield path
        path = parent(path)
    yield "/"


def basename(path: str) -> str:
    """The last component ("" for the root)."""
    return path[path.rfind("/") + 1 :]


def join(*parts: str) -> str:
    """Join components with "/"; an absolute component discards what came before (kazoo's join)."""
    if not parts:
        return ""
    out = parts[0]
    for part in parts[1:]:
        if part.startswith("/"):
            out = part
        elif not out or out.endswith("/"):
            out += part
        else:
            out += "/" + part
    return out


def normpath(path: str, trailing: bool = False) -> str:
    """Collapse empty components; keep a leading "/" (and a trailing one if `trailing`).

    Raises ValueError on "." or ".." components, as kazoo does: relative paths are not allowed.
    """
    comps = []
    for comp in path.split("/"):
        if not comp:
            continue
        if comp == "." or comp == "..":
            raise ValueError("relative paths not allowed")
        comps.append(comp)
    out = "/".join(comps)
    if trailing and path.endswith("/"):
        out += "/"
    if path.startswith("/") and out != "/":
        return "/" + out
    return out


def prefix_root(root: str, path: str, trailing: bool = False) -> str:
    """`path` inside the chroot `root` ("" or "/" = no chroot), normalized: what the server sees."""
    base = normpath(join("/", root))
    return normpath(join(base, path.lstrip("/")), trailing=trailing)


def strip_root(root: str, path: str) -> str:
    """The client's view of a server path under the chroot `root` (inverse of `prefix_root`)."""
    base = normpath(join("/", root))
    if base == "/" or not path.startswith(base):
        return path
    rest = path[len(base) :]
    if not rest:
        return "/"
    if rest[0] != "/":
        return path  # "/app2" is not under "/app"
    return rest
