"""Quotas as ZooKeeper keeps them (3.7+, hard limits included), shared by the node and the client.

A quota on `/app` is two znodes under `/zookeeper/quota/app`:
- `zookeeper_limits`, written by the client: `count=N,bytes=B[,byteHardLimit=..,countHardLimit=..]`
  (ZooKeeper's StatsTrack text: count and bytes first, other keys sorted; -1 = no limit). `count`
  and `bytes` are soft limits (exceeding one is logged by the leader), the hard ones refuse the
  write with QuotaExceededError (-125).
- `zookeeper_stats`, kept by the node from the txns it applies: `count=N,bytes=B`, the znodes of
  the subtree (itself included) and the bytes of their data.
One quota per root-to-leaf path: none under another quota's path or above it; none under
/zookeeper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

QUOTA_ROOT = "/zookeeper/quota"
QUOTA_PREFIX = QUOTA_ROOT + "/"
LIMITS_NODE = "zookeeper_limits"
STATS_NODE = "zookeeper_stats"
COUNT, BYTES, COUNT_HARD, BYTES_HARD = "count", "bytes", "countHardLimit", "byteHardLimit"


def quota_path(path: str) -> str:
    """Where the quota of `path` lives: /zookeeper/quota + path."""
    return QUOTA_ROOT + path


def limits_path(path: str) -> str:
    return f"{QUOTA_ROOT}{path}/{LIMITS_NODE}"


def stats_path(path: str) -> str:
    return f"{QUOTA_ROOT}{path}/{STATS_NODE}"


def quota_target(node_path: str) -> tuple[str, str] | None:
    """(the path a quota is about, LIMITS_NODE or STATS_NODE) for a limits or stats znode's
    path; None for any other path."""
    if not node_path.startswith(QUOTA_PREFIX):
        return None
    head, _, name = node_path.rpartition("/")
    if name not in (LIMITS_NODE, STATS_NODE) or len(head) <= len(QUOTA_ROOT):
        return None
    return head[len(QUOTA_ROOT) :], name


def parse_stats(data: bytes | str | None) -> dict[str, int]:
    """`key=value,...` (ZooKeeper's StatsTrack) to a dict; raises ValueError on anything else."""
    if data is None:
        return {}
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    out: dict[str, int] = {}
    if not text:
        return out
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"invalid quota text {text!r}: expected key=value[,key=value...]")
        out[key] = int(value.strip())
    return out


def format_stats(values: dict[str, int]) -> bytes:
    """The StatsTrack text: count and bytes first (-1 when absent), the other keys sorted."""
    parts = [f"{COUNT}={values.get(COUNT, -1)}", f"{BYTES}={values.get(BYTES, -1)}"]
    parts += [f"{key}={values[key]}" for key in sorted(values) if key not in (COUNT, BYTES)]
    return ",".join(parts).encode()


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """The limits of one quota; -1 = none."""

    count: int = -1
    bytes: int = -1
    count_hard: int = -1
    bytes_hard: int = -1

    @classmethod
    def parse(cls, data: bytes | str | None) -> QuotaLimits:
        values = parse_stats(data)
        return cls(values.get(COUNT, -1), values.get(BYTES, -1), values.get(COUNT_HARD, -1), values.get(BYTES_HARD, -1))

    def to_bytes(self) -> bytes:
        values = {COUNT: self.count, BYTES: self.bytes}
        if self.count_hard != -1:
            values[COUNT_HARD] = self.count_hard
        if self.bytes_hard != -1:
            values[BYTES_HARD] = self.bytes_hard
        return format_stats(values)

    def any(self) -> bool:
        return any(v != -1 for v in (self.count, self.bytes, self.count_hard, self.bytes_hard))


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """What the subtree holds now: znodes (the quota's own path included) and data bytes."""

    count: int
    bytes: int


def check_limit(name: str, value: Any) -> int:
    """A limit given by a user: an int > 0 (ZooKeeper's CLI refuses 0 and negatives)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"the {name} limit must be an integer > 0, not {value!r}")
    return value


def usage_text(usage: QuotaUsage) -> bytes:
    return format_stats({COUNT: usage.count, BYTES: usage.bytes})


# --- the client side (zoomq.Client.set_quota / get_quota / delete_quota / list_quotas) ---------

MAX_RACES = 10  # a limits znode changed under us this often: give up with the last BadVersionError


def _quota_subject(client: Any, path: str) -> str:
    from zoomq.exceptions import BadArgumentsError
    from zoomq.paths import validate_path

    if getattr(client, "chroot", ""):
        raise ValueError("quotas are set on absolute paths: use a client without a chroot")
    problem = validate_path(path)
    if problem is not None:
        raise BadArgumentsError(f"invalid path {path!r}: {problem}")
    if path == "/" or path == "/zookeeper" or path.startswith("/zookeeper/"):
        raise BadArgumentsError(f"no quota can be set on {path} (the root and /zookeeper are not counted)")
    return path


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def _quota_below(client: Any, path: str) -> str | None:
    """A path below `path` that has a quota, if any (walks /zookeeper/quota/<path>)."""
    from zoomq.exceptions import NoNodeError

    stack = [quota_path(path)]
    for _ in range(1_000_000):
        if not stack:
            return None
        top = stack.pop()
        try:
            children = client.get_children(top)
        except NoNodeError:
            continue
        for child in children:
            if child == LIMITS_NODE and top != quota_path(path):
                return top[len(QUOTA_ROOT) :]
            if child not in (LIMITS_NODE, STATS_NODE):
                stack.append(f"{top}/{child}")
    return None


def set_quota(
    client: Any,
    path: str,
    *,
    count: int | None = None,
    bytes: int | None = None,  # noqa: A002 - ZooKeeper's names
    count_hard: int | None = None,
    bytes_hard: int | None = None,
) -> QuotaLimits:
    """Set (or change) the limits of `path`'s quota, as ZooKeeper's `setquota` does: the path
    must exist; no quota may be set above or below another; limits not given are kept. Returns
    the quota's limits now."""
    from zoomq.exceptions import BadArgumentsError, BadVersionError, NodeExistsError, NoNodeError

    given = {
        name: check_limit(name, value)
        for name, value in (("count", count), ("bytes", bytes), ("count_hard", count_hard), ("bytes_hard", bytes_hard))
        if value is not None
    }
    if not given:
        raise ValueError("give at least one limit: count, bytes, count_hard or bytes_hard")
    path = _quota_subject(client, path)
    if client.exists(path) is None:
        raise NoNodeError(f"{path} does not exist: a quota is set on an existing path")
    for above in _ancestors(path):
        if client.exists(limits_path(above)) is not None:
            raise BadArgumentsError(f"{path} is below {above}, which has a quota (one quota per path from the root)")
    below = _quota_below(client, path)
    if below is not None:
        raise BadArgumentsError(f"{below}, below {path}, has a quota (one quota per path from the root)")
    client.ensure_path(quota_path(path))
    last: Exception | None = None
    for _ in range(MAX_RACES):
        try:
            data, stat = client.get(limits_path(path))
        except NoNodeError:
            limits = QuotaLimits(**given)
            tx = client.transaction()
            tx.create(limits_path(path), limits.to_bytes())
            tx.create(stats_path(path), usage_text(QuotaUsage(0, 0)))
            results = tx.commit()
            if not any(isinstance(r, Exception) for r in results):
                return limits
            last = next(r for r in results if isinstance(r, Exception))
            if not isinstance(last, NodeExistsError):
                raise last from None
            continue  # set meanwhile by someone else: merge into theirs
        merged = QuotaLimits(**{**_as_dict(QuotaLimits.parse(data)), **given})
        try:
            client.set(limits_path(path), merged.to_bytes(), version=stat.version)
            return merged
        except (BadVersionError, NoNodeError) as exc:
            last = exc
    assert last is not None
    raise last


def _as_dict(limits: QuotaLimits) -> dict[str, int]:
    return {
        "count": limits.count,
        "bytes": limits.bytes,
        "count_hard": limits.count_hard,
        "bytes_hard": limits.bytes_hard,
    }


def get_quota(client: Any, path: str) -> tuple[QuotaLimits, QuotaUsage] | None:
    """(limits, usage) of `path`'s quota, or None if it has none."""
    from zoomq.exceptions import NoNodeError

    path = _quota_subject(client, path)
    try:
        limits = QuotaLimits.parse(client.get(limits_path(path))[0])
    except NoNodeError:
        return None
    try:
        used = parse_stats(client.get(stats_path(path))[0])
    except NoNodeError:
        used = {}
    return limits, QuotaUsage(used.get(COUNT, -1), used.get(BYTES, -1))


def list_quotas(client: Any) -> dict[str, tuple[QuotaLimits, QuotaUsage]]:
    """Every quota of the tree: {path: (limits, usage)}."""
    from zoomq.exceptions import NoNodeError

    out: dict[str, tuple[QuotaLimits, QuotaUsage]] = {}
    stack = [QUOTA_ROOT]
    for _ in range(1_000_000):
        if not stack:
            break
        top = stack.pop()
        try:
            children = client.get_children(top)
        except NoNodeError:
            continue
        if LIMITS_NODE in children and top != QUOTA_ROOT:
            found = get_quota(client, top[len(QUOTA_ROOT) :])
            if found is not None:
                out[top[len(QUOTA_ROOT) :]] = found
        stack.extend(f"{top}/{c}" for c in children if c not in (LIMITS_NODE, STATS_NODE))
    return dict(sorted(out.items()))


def delete_quota(
    client: Any,
    path: str,
    *,
    count: bool = False,
    bytes: bool = False,  # noqa: A002
    count_hard: bool = False,
    bytes_hard: bool = False,
) -> bool:
    """Remove the named limits of `path`'s quota (ZooKeeper's `delquota -n|-b|-N|-B`), or the
    whole quota when none is named or none would be left. NoNodeError if there is no quota."""
    from zoomq.exceptions import BadVersionError, NoNodeError, NotEmptyError

    path = _quota_subject(client, path)
    drop = {
        name
        for name, flag in (("count", count), ("bytes", bytes), ("count_hard", count_hard), ("bytes_hard", bytes_hard))
        if flag
    }
    for _ in range(MAX_RACES):
        try:
            data, stat = client.get(limits_path(path))
        except NoNodeError:
            raise NoNodeError(f"{path} has no quota") from None
        left = QuotaLimits(**{**_as_dict(QuotaLimits.parse(data)), **dict.fromkeys(drop, -1)})
        if drop and left.any():
            try:
                client.set(limits_path(path), left.to_bytes(), version=stat.version)
                return True
            except BadVersionError:
                continue
        tx = client.transaction()
        tx.delete(limits_path(path), version=stat.version)
        if client.exists(stats_path(path)) is not None:
            tx.delete(stats_path(path))
        results = tx.commit()
        if any(isinstance(r, BadVersionError) for r in results):
            continue
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]
        # The quota path's own znodes, as far up as nothing else needs them.
        node = quota_path(path)
        while node != QUOTA_ROOT:
            try:
                client.delete(node)
            except (NotEmptyError, NoNodeError):
                break
            node = node.rsplit("/", 1)[0]
        return True
    raise BadVersionError(f"the quota of {path} kept changing")
