"""ACL types and helpers with kazoo's names (`kazoo.security`).

Permissions are ZooKeeper's bits; a digest id is `user:base64(sha1("user:password"))`.
"""

from __future__ import annotations

import base64
import hashlib
from typing import NamedTuple


class Permissions:
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


class Id(NamedTuple):
    scheme: str
    id: str


class ACL(NamedTuple):
    perms: int
    id: Id

    @property
    def acl_list(self) -> list[str]:
        names = [("READ", 1), ("WRITE", 2), ("CREATE", 4), ("DELETE", 8), ("ADMIN", 16)]
        if self.perms == Permissions.ALL:
            return ["ALL"]
        return [name for name, bit in names if self.perms & bit]


ANYONE_ID_UNSAFE = Id("world", "anyone")
AUTH_IDS = Id("auth", "")
OPEN_ACL_UNSAFE = [ACL(Permissions.ALL, ANYONE_ID_UNSAFE)]
CREATOR_ALL_ACL = [ACL(Permissions.ALL, AUTH_IDS)]
READ_ACL_UNSAFE = [ACL(Permissions.READ, ANYONE_ID_UNSAFE)]


def make_digest_acl_credential(username: str, password: str) -> str:
    """`user:base64(sha1("user:password"))`, the id a digest ACL names."""
    raw = f"{username}:{password}".encode()
    return f"{username}:{base64.b64encode(hashlib.sha1(raw).digest()).decode()}"  # noqa: S324 - ZooKeeper's scheme


def make_acl(
    scheme: str,
    credential: str,
    read: bool = False,
    write: bool = False,
    create: bool = False,
    delete: bool = False,
    admin: bool = False,
    all: bool = False,  # noqa: A002 - kazoo's keyword
) -> ACL:
    if all:
        perms = Permissions.ALL
    else:
        perms = (
            (Permissions.READ if read else 0)
            | (Permissions.WRITE if write else 0)
            | (Permissions.CREATE if create else 0)
            | (Permissions.DELETE if delete else 0)
            | (Permissions.ADMIN if admin else 0)
        )
    return ACL(perms, Id(scheme, credential))


def make_digest_acl(
    username: str,
    password: str,
    read: bool = False,
    write: bool = False,
    create: bool = False,
    delete: bool = False,
    admin: bool = False,
    all: bool = False,  # noqa: A002
) -> ACL:
    cred = make_digest_acl_credential(username, password)
    return make_acl("digest", cred, read=read, write=write, create=create, delete=delete, admin=admin, all=all)
