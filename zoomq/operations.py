"""The client's operations: kazoo's KazooClient methods, each a request and how to read its reply.

Mixed into `zoomq.Client`, which provides the plumbing: `_next_xid`, `_submit` (queue a request;
its outcome arrives in the returned AsyncResult), `_new_result`, `_spawn` (a helper thread, for
what needs more round trips than the I/O thread may wait for), `_engine_call`, `_wake`, and the
chroot (`_path`, `_unchroot`). Argument errors are raised at once, as kazoo raises them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from zoomq import protocol as p
from zoomq.engine import with_chroot, without_chroot
from zoomq.exceptions import Codes, NodeExistsError, NoNodeError, error_for
from zoomq.security import ACL, OPEN_ACL_UNSAFE, Id
from zoomq.states import AddWatchMode, WatchedEvent, WatcherType, ZnodeStat

if TYPE_CHECKING:
    from zoomq.client import AsyncResult


class Operations:
    """kazoo's operations, as requests (see the module's docstring for what the client provides)."""

    chroot: str
    default_acl: list[ACL] | None
    _engine: Any
    _next_xid: Callable[[], int]
    _submit: Callable[..., AsyncResult]
    _new_result: Callable[[], AsyncResult]
    _spawn: Callable[..., None]
    _engine_call: Callable[..., Any]
    _wake: Callable[..., None]

    def _path(self, path: Any) -> str:
        if not isinstance(path, str):
            raise TypeError("path must be a string")
        if not path.startswith("/"):
            path = "/" + path
        if len(path) > 1 and "//" in path:
            path = "/" + "/".join(x for x in path.split("/") if x)
        return with_chroot(self.chroot, path)

    def _unchroot(self, path: str) -> str:
        return without_chroot(self.chroot, path)

    def unchroot(self, path: str) -> str:
        return self._unchroot(path)

    @staticmethod
    def _check(reply: p.Reply, path: str | None = None) -> None:
        if reply.err:
            raise error_for(reply.err, path)

    def _acl(self, acl: Any) -> list[ACL]:
        if acl is None:
            return list(self.default_acl or OPEN_ACL_UNSAFE)
        if isinstance(acl, ACL):
            acl = [acl]
        if not isinstance(acl, (list, tuple)):
            raise TypeError("acl must be a list of ACL")
        return [ACL(a.perms, Id(a.id.scheme, a.id.id)) for a in acl]

    def create_async(
        self,
        path: str,
        value: bytes = b"",
        acl: Any = None,
        ephemeral: bool = False,
        sequence: bool = False,
        makepath: bool = False,
        include_data: bool = False,
        container: bool = False,
        ttl: int = 0,
    ) -> AsyncResult:
        if value is not None and not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        if not isinstance(ephemeral, bool) or not isinstance(sequence, bool) or not isinstance(makepath, bool):
            raise TypeError("ephemeral, sequence and makepath must be bool")
        if ttl and (ephemeral or container):
            raise TypeError("ttl only applies to persistent nodes")
        if container:
            flags = p.CONTAINER
        elif ttl:
            flags = p.PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else p.PERSISTENT_WITH_TTL
        else:
            flags = (p.EPHEMERAL if ephemeral else 0) | (p.PERSISTENT_SEQUENTIAL if sequence else 0)
        full = self._path(path)
        msg = p.Create(self._next_xid(), full, value, self._acl(acl), flags, ttl)

        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            created = self._unchroot(reply.body.path)
            return (created, reply.body.stat) if include_data else created

        if not makepath:
            return self._submit(msg, parse)
        outer = self._new_result()

        def first(result: AsyncResult) -> None:
            if isinstance(result.exception, NoNodeError):
                parent = path.rsplit("/", 1)[0]
                if parent:
                    try:
                        self.ensure_path(parent, acl)
                    except Exception as exc:  # noqa: BLE001
                        outer.set_exception(exc)
                        return
                retry = self.create_async(path, value, acl, ephemeral, sequence, False, include_data, container, ttl)
                retry.rawlink(lambda r: outer.set_exception(r.exception) if r.exception else outer.set(r.value))
            elif result.exception is not None:
                outer.set_exception(result.exception)
            else:
                outer.set(result.value)

        inner = self._submit(msg, parse)
        # makepath may need more round trips: finish on a helper thread, never the I/O thread.
        inner.rawlink(lambda r: self._spawn(first, r) if r.exception else first(r))
        return outer

    def create(
        self,
        path: str,
        value: bytes = b"",
        acl: Any = None,
        ephemeral: bool = False,
        sequence: bool = False,
        makepath: bool = False,
        include_data: bool = False,
        container: bool = False,
        ttl: int = 0,
    ) -> Any:
        return self.create_async(path, value, acl, ephemeral, sequence, makepath, include_data, container, ttl).get()

    def ensure_path(self, path: str, acl: Any = None) -> bool | str:
        if self.exists(path):
            return True
        parts = [x for x in path.split("/") if x]
        current = ""
        for part in parts:
            current += "/" + part
            try:
                self.create(current, b"", acl=acl)
            except NodeExistsError:
                pass
        return True

    def ensure_path_async(self, path: str, acl: Any = None) -> AsyncResult:
        result = self._new_result()

        def run() -> None:
            try:
                result.set(self.ensure_path(path, acl))
            except Exception as exc:  # noqa: BLE001
                result.set_exception(exc)

        self._spawn(run)
        return result

    def _watch_arg(self, watch: Any) -> None:
        if watch is not None and not callable(watch):
            raise TypeError("watch must be callable")

    def exists_async(self, path: str, watch: Callable | None = None, *, linearizable: bool = False) -> AsyncResult:
        """`linearizable=True`: the answer is at least as new as every write acknowledged before
        the call (the node waits for a commit index the leader confirmed with a quorum; nothing
        is written). Also on get and get_children."""
        self._watch_arg(watch)
        full = self._path(path)

        def parse(reply: p.Reply) -> Any:
            if reply.err == Codes.NONODE:
                return None
            self._check(reply, path)
            return reply.body.stat

        msg = p.Exists(self._next_xid(), full, watch is not None, bool(linearizable))
        return self._submit(msg, parse, ("data", path, watch) if watch else None)

    def exists(self, path: str, watch: Callable | None = None, *, linearizable: bool = False) -> ZnodeStat | None:
        return self.exists_async(path, watch, linearizable=linearizable).get()

    def get_async(self, path: str, watch: Callable | None = None, *, linearizable: bool = False) -> AsyncResult:
        self._watch_arg(watch)
        full = self._path(path)

        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return reply.body.data, reply.body.stat

        msg = p.GetData(self._next_xid(), full, watch is not None, bool(linearizable))
        return self._submit(msg, parse, ("data", path, watch) if watch else None)

    def get(self, path: str, watch: Callable | None = None, *, linearizable: bool = False) -> tuple[bytes, ZnodeStat]:
        return self.get_async(path, watch, linearizable=linearizable).get()

    def get_children_async(
        self, path: str, watch: Callable | None = None, include_data: bool = False, *, linearizable: bool = False
    ) -> AsyncResult:
        self._watch_arg(watch)
        full = self._path(path)

        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return (reply.body.children, reply.body.stat) if include_data else reply.body.children

        msg = p.GetChildren(self._next_xid(), full, watch is not None, include_data, bool(linearizable))
        return self._submit(msg, parse, ("child", path, watch) if watch else None)

    def get_children(
        self, path: str, watch: Callable | None = None, include_data: bool = False, *, linearizable: bool = False
    ) -> Any:
        return self.get_children_async(path, watch, include_data, linearizable=linearizable).get()

    def set_async(self, path: str, value: bytes | None, version: int = -1) -> AsyncResult:
        if value is not None and not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        if not isinstance(version, int):
            raise TypeError("version must be an int")

        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return reply.body.stat

        return self._submit(p.SetData(self._next_xid(), self._path(path), value, version), parse)

    def set(self, path: str, value: bytes | None, version: int = -1) -> ZnodeStat:
        return self.set_async(path, value, version).get()

    def delete_async(self, path: str, version: int = -1) -> AsyncResult:
        if not isinstance(version, int):
            raise TypeError("version must be an int")

        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return True

        return self._submit(p.Delete(self._next_xid(), self._path(path), version), parse)

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> Any:
        if not recursive:
            return self.delete_async(path, version).get()
        try:
            for child in self.get_children(path):
                self.delete(path.rstrip("/") + "/" + child, recursive=True)
            self.delete(path, version)
        except NoNodeError:
            pass
        return True

    def get_acls_async(self, path: str) -> AsyncResult:
        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return list(reply.body.acl), reply.body.stat

        return self._submit(p.GetACL(self._next_xid(), self._path(path)), parse)

    def get_acls(self, path: str) -> tuple[list[ACL], ZnodeStat]:
        return self.get_acls_async(path).get()

    def set_acls_async(self, path: str, acls: Any, version: int = -1) -> AsyncResult:
        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return reply.body.stat

        return self._submit(p.SetACL(self._next_xid(), self._path(path), self._acl(acls), version), parse)

    def set_acls(self, path: str, acls: Any, version: int = -1) -> ZnodeStat:
        return self.set_acls_async(path, acls, version).get()

    def add_auth_async(self, scheme: str, credential: str) -> AsyncResult:
        if not isinstance(scheme, str) or not isinstance(credential, str):
            raise TypeError("scheme and credential must be strings")
        result = self._new_result()
        self._engine_call(self._engine.add_auth, scheme, credential, result)
        self._wake()
        return result

    def add_auth(self, scheme: str, credential: str) -> bool:
        return self.add_auth_async(scheme, credential).get()

    def sync_async(self, path: str) -> AsyncResult:
        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return self._unchroot(reply.body.path)

        return self._submit(p.Sync(self._next_xid(), self._path(path)), parse)

    def sync(self, path: str) -> str:
        return self.sync_async(path).get()

    def add_watch(
        self,
        path: str,
        watch: Callable[[WatchedEvent], Any],
        mode: int | None = None,
        *,
        recursive: bool = False,
        since_zxid: int | None = None,
    ) -> None:
        self.add_watch_async(path, watch, mode, recursive=recursive, since_zxid=since_zxid).get()

    def add_watch_async(
        self,
        path: str,
        watch: Callable[[WatchedEvent], Any],
        mode: int | None = None,
        *,
        recursive: bool = False,
        since_zxid: int | None = None,
    ) -> AsyncResult:
        """A persistent watch: `watch(event)` on every change of `path` until removed (created,
        deleted, data and children changed); `recursive=True` (or kazoo's
        `mode=AddWatchMode.PERSISTENT_RECURSIVE`) on `path` and everything below it (created,
        deleted, data changed). Kept across reconnects, and nothing is missed meanwhile: the
        node sends again, in order, every change after the last zxid the client saw.
        `since_zxid`: also every change after that zxid (each event's `zxid` says where it stands:
        keep the last one handled to resume from it later, in another client too). A node whose
        history window (`watch_history_txns`) no longer reaches back that far sends one event of
        type RESYNC instead: read the state afresh."""
        if since_zxid is not None and (
            isinstance(since_zxid, bool) or not isinstance(since_zxid, int) or since_zxid < 0
        ):
            raise ValueError(f"since_zxid must be a zxid (an int >= 0), not {since_zxid!r}")
        if mode is None:
            mode = AddWatchMode.PERSISTENT_RECURSIVE if recursive else AddWatchMode.PERSISTENT
        if mode not in (AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE):
            raise ValueError(f"unknown watch mode {mode!r}")
        if not callable(watch):
            raise TypeError("watch must be callable")
        kind = "recursive" if mode == AddWatchMode.PERSISTENT_RECURSIVE else "persistent"

        def parse(reply: p.Reply) -> None:
            self._check(reply, path)

        msg = p.AddWatch(self._next_xid(), self._path(path), mode, -1 if since_zxid is None else since_zxid)
        return self._submit(msg, parse, (kind, path, watch))

    def remove_watches(self, path: str, watcher_type: int = WatcherType.ANY) -> None:
        self.remove_watches_async(path, watcher_type).get()

    def remove_watches_async(self, path: str, watcher_type: int = WatcherType.ANY) -> AsyncResult:
        """Remove this client's watches on `path` of `watcher_type` (CHILDREN, DATA, or ANY,
        which includes persistent ones); NoWatcherError if there were none on the node."""

        def parse(reply: p.Reply) -> None:
            self._check(reply, path)

        self._engine_call(self._engine.remove_watches, path, watcher_type)
        return self._submit(p.RemoveWatches(self._next_xid(), self._path(path), watcher_type), parse)

    def get_children_count(self, path: str) -> int:
        return self.get_children_count_async(path).get()

    def get_children_count_async(self, path: str) -> AsyncResult:
        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            return reply.body.count

        return self._submit(p.GetAllChildrenNumber(self._next_xid(), self._path(path)), parse)

    def get_ephemerals(self, prefix: str = "/") -> list[str]:
        return self.get_ephemerals_async(prefix).get()

    def get_ephemerals_async(self, prefix: str = "/") -> AsyncResult:
        def parse(reply: p.Reply) -> Any:
            self._check(reply, prefix)
            return sorted(self._unchroot(n) for n in reply.body.names)

        return self._submit(p.GetEphemerals(self._next_xid(), self._path(prefix)), parse)

    def get_subtree(self, path: str = "/") -> p.SubtreeResult:
        """Every znode at and below `path` with its data, ACL and Stat, read by the node in one
        step: consistent at `result.zxid` (zoomq only; what `zoomq backup` uses). `result.nodes`
        (protocol.SubtreeNode: path, data, acl, stat) has parents before children; nodes this
        session may not READ are left out with everything below them (`result.unreadable`
        counts them), ephemerals are left out (`result.ephemerals`), and `result.masked`
        counts nodes whose digest ACL ids are shown as `user:x` (no ADMIN on them). Raises
        NoNodeError, NoAuthError (no READ on `path`), BadArgumentsError (a bad path, or more
        znodes than the node's backup_max_znodes)."""
        return self.get_subtree_async(path).get()

    def get_subtree_async(self, path: str = "/") -> AsyncResult:
        full = self._path(path)

        def parse(reply: p.Reply) -> Any:
            self._check(reply, path)
            body = reply.body
            if not self.chroot:
                return body
            return p.SubtreeResult(
                body.zxid,
                [p.SubtreeNode(self._unchroot(n.path), n.data, n.acl, n.stat) for n in body.nodes],
                [self._unchroot(e) for e in body.ephemerals],
                body.unreadable,
                body.masked,
            )

        return self._submit(p.GetSubtree(self._next_xid(), full), parse)

    def command(self, cmd: bytes | str = b"ruok") -> str:
        return self.command_async(cmd).get(timeout=10)

    def command_async(self, cmd: bytes | str = b"ruok") -> AsyncResult:
        text = cmd.decode() if isinstance(cmd, bytes) else cmd

        def parse(reply: p.Reply) -> Any:
            self._check(reply)
            return reply.body.text

        return self._submit(p.AdminCommand(self._next_xid(), text), parse)

    def transaction(self) -> TransactionRequest:
        return TransactionRequest(self)

    def get_config(self) -> tuple[bytes, ZnodeStat]:
        """The ensemble's membership as /zookeeper/config holds it (ZooKeeper's getConfig): a
        `server.<id>=host:quorum:election:role;host:clientport` line per member, then
        `version=<hex>`; empty on a standalone node."""
        if self.chroot:
            raise ValueError("get_config reads /zookeeper/config: use a client without a chroot")
        return self.get("/zookeeper/config")

    def reconfig(
        self, joining: str | None, leaving: str | None, new_members: str | None, from_config: int = -1
    ) -> tuple[bytes, ZnodeStat]:
        """Change the ensemble's membership (ZooKeeper 3.5+ reconfig, kazoo's `reconfig`);
        returns the new /zookeeper/config content and its Stat.

        Incremental: `joining`, comma-separated server specs
        (`server.<id>=<host>:<quorum port>:<election port>[:participant|observer];[<client host>:]<client port>`),
        and/or `leaving`, comma-separated server ids. Whole: `new_members`, comma-separated specs
        (then joining and leaving are None). `from_config`: the config version it must still be
        (the `version=` line of /zookeeper/config, as an int: `int(hex_text, 16)`), -1 for any.
        Raises NewConfigNoQuorumError, ReconfigInProcessError, BadVersionError (from_config no
        longer current), BadArgumentsError, ReconfigDisabledError, NoAuthError (needs the super
        user, or WRITE on /zookeeper/config)."""
        return self.reconfig_async(joining, leaving, new_members, from_config).get()

    def reconfig_async(
        self, joining: str | None, leaving: str | None, new_members: str | None, from_config: int
    ) -> AsyncResult:
        """`reconfig` whose outcome arrives in the returned AsyncResult."""
        # kazoo's checks, word for word; a falsy value is sent as null, as kazoo writes it.
        if joining and not isinstance(joining, str):
            raise TypeError("Invalid type for 'joining' (string expected)")
        if leaving and not isinstance(leaving, str):
            raise TypeError("Invalid type for 'leaving' (string expected)")
        if new_members and not isinstance(new_members, str):
            raise TypeError("Invalid type for 'new_members' (string expected)")
        if not isinstance(from_config, int):
            raise TypeError("Invalid type for 'from_config' (int expected)")

        def parse(reply: p.Reply) -> Any:
            self._check(reply)
            return reply.body.data, reply.body.stat

        msg = p.Reconfig(self._next_xid(), joining or None, leaving or None, new_members or None, int(from_config))
        return self._submit(msg, parse)

    # --- quotas (zoomq/quota.py; ZooKeeper's setquota / listquota / delquota) ----------------------

    def set_quota(
        self,
        path: str,
        *,
        count: int | None = None,
        bytes: int | None = None,  # noqa: A002
        count_hard: int | None = None,
        bytes_hard: int | None = None,
    ) -> Any:
        """Soft (`count`, `bytes`) and hard (`count_hard`, `bytes_hard`) limits on the subtree at
        `path`: znodes (the path itself included) and data bytes. A write past a hard limit fails
        with QuotaExceededError; past a soft one the leader logs it. Limits not given are kept."""
        from zoomq import quota

        return quota.set_quota(self, path, count=count, bytes=bytes, count_hard=count_hard, bytes_hard=bytes_hard)

    def get_quota(self, path: str) -> Any:
        """(QuotaLimits, QuotaUsage) of `path`'s quota, or None."""
        from zoomq import quota

        return quota.get_quota(self, path)

    def list_quotas(self) -> Any:
        """{path: (QuotaLimits, QuotaUsage)} for every quota."""
        from zoomq import quota

        return quota.list_quotas(self)

    def delete_quota(
        self,
        path: str,
        *,
        count: bool = False,
        bytes: bool = False,  # noqa: A002
        count_hard: bool = False,
        bytes_hard: bool = False,
    ) -> bool:
        """Drop the named limits of `path`'s quota, or all of it when none is named."""
        from zoomq import quota

        return quota.delete_quota(self, path, count=count, bytes=bytes, count_hard=count_hard, bytes_hard=bytes_hard)

    def _multi_async(self, ops: list[Any]) -> AsyncResult:
        def parse(reply: p.Reply) -> list[Any]:
            self._check(reply)
            results = reply.body.results
            if any(r.err for r in results):
                return [error_for(r.err) for r in results]
            out: list[Any] = []
            for op, r in zip(ops, results, strict=False):
                if isinstance(op, p.Create):
                    out.append(self._unchroot(r.path))
                elif isinstance(op, p.SetData):
                    out.append(r.stat)
                else:
                    out.append(True)
            return out

        return self._submit(p.Multi(self._next_xid(), ops), parse)


class TransactionRequest:
    """kazoo's TransactionRequest: ops collected, then committed atomically."""

    def __init__(self, client: Operations) -> None:
        self.client = client
        self.operations: list[Any] = []
        self.committed = False

    def create(
        self, path: str, value: bytes = b"", acl: Any = None, ephemeral: bool = False, sequence: bool = False
    ) -> None:
        if not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        flags = (p.EPHEMERAL if ephemeral else 0) | (p.PERSISTENT_SEQUENTIAL if sequence else 0)
        self._add(p.Create(0, self.client._path(path), value, self.client._acl(acl), flags))

    def delete(self, path: str, version: int = -1) -> None:
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        self._add(p.Delete(0, self.client._path(path), version))

    def set_data(self, path: str, value: bytes, version: int = -1) -> None:
        if not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        self._add(p.SetData(0, self.client._path(path), value, version))

    def check(self, path: str, version: int) -> None:
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        self._add(p.Check(0, self.client._path(path), version))

    def _add(self, op: Any) -> None:
        self._check_tx_state()
        self.operations.append(op)

    def _check_tx_state(self) -> None:
        if self.committed:
            raise ValueError("Transaction already committed")  # kazoo's words

    def commit_async(self) -> AsyncResult:
        self._check_tx_state()
        self.committed = True
        return self.client._multi_async(self.operations)

    def commit(self) -> list[Any]:
        return self.commit_async().get()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
