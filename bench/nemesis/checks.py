"""What a nemesis run must show, as pure functions of its history, its faults and the final reads.

Each check returns a dict with `ok` (True / False / None when it could not decide) and figures.
`lost` counts acknowledged writes that are gone: an acknowledged sequential create missing from a
node's final listing, an acknowledged queue put neither consumed nor left in the queue.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

from bench.linearizability import CheckLimitExceeded, Op, check

Record = dict[str, Any]


def _of(history: list[Record], workload: str) -> list[Record]:
    return [r for r in history if r["w"] == workload]


def _healthy(final: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in final.values() if "error" not in v]


def register(history: list[Record], max_states: int = 2_000_000) -> dict[str, Any]:
    """sync + get / set / cas histories, linearizable per key (values are unique per write)."""
    ops = []
    for r in _of(history, "register"):
        out = (r["out"][0].encode() if r["out"][0] is not None else None, r["out"][1]) if r.get("out") else None
        ops.append(
            Op(
                client=r["c"],
                key=r["k"],
                kind=r["f"],
                arg=r["v"].encode() if r.get("v") else None,
                expect_version=r.get("ev") if r["f"] == "cas" else None,
                call=r["t0"],
                ret=r["t1"] if r["r"] != "info" else None,
                ok=r["r"] == "ok",
                out=out,
            )
        )
    initial = {op.key: (b"0", 0) for op in ops}
    try:
        ok, why = check(ops, initial, max_states=max_states)
    except CheckLimitExceeded as exc:
        return {"ok": None, "ops": len(ops), "why": f"undecided: {exc}"}
    return {"ok": ok, "ops": len(ops), "why": why}


def sequential(history: list[Record], final: dict[str, Any]) -> dict[str, Any]:
    """Every acknowledged name unique and listed on every node; nothing listed that nobody asked for."""
    recs = _of(history, "seq")
    acked = [r["path"].rsplit("/", 1)[1] for r in recs if r["r"] == "ok"]
    unknown = sum(1 for r in recs if r["r"] == "info")
    dupes = [name for name, n in Counter(acked).items() if n > 1]
    nodes = _healthy(final)
    lost = set()
    extra = 0
    for node in nodes:
        listed = set(node["seq"])
        lost |= set(acked) - listed
        extra = max(extra, len(listed - set(acked)))
    same = len({tuple(node["seq"]) for node in nodes}) <= 1
    ok = not dupes and not lost and extra <= unknown and same and bool(nodes)
    return {
        "ok": ok,
        "acked": len(acked),
        "unknown": unknown,
        "lost": len(lost),
        "duplicates": len(dupes),
        "unexplained": max(0, extra - unknown),
        "replicas_agree": same,
    }


def queue(history: list[Record], final: dict[str, Any]) -> dict[str, Any]:
    """Every acknowledged put consumed once or still queued; none consumed twice; none made up."""
    recs = _of(history, "queue")
    put_ok = {r["v"] for r in recs if r["f"] == "put" and r["r"] == "ok"}
    put_any = {r["v"] for r in recs if r["f"] == "put" and r["r"] in ("ok", "info")}
    taken = Counter(r["v"] for r in recs if r["f"] == "take" and r["r"] == "ok")
    maybe_taken = {r["v"] for r in recs if r["f"] == "take" and r["r"] == "info"}
    nodes = _healthy(final)
    remaining = set(nodes[0]["queue"].values()) if nodes else set()
    twice = [v for v, n in taken.items() if n > 1]
    resurrected = set(taken) & remaining
    lost = put_ok - set(taken) - remaining - maybe_taken
    made_up = (set(taken) | remaining) - put_any
    same = len({tuple(sorted(node["queue"].items())) for node in nodes}) <= 1
    ok = bool(nodes) and not twice and not resurrected and not lost and not made_up and same
    return {
        "ok": ok,
        "puts_acked": len(put_ok),
        "consumed": sum(taken.values()),
        "remaining": len(remaining),
        "lost": len(lost),
        "consumed_twice": len(twice) + len(resurrected),
        "made_up": len(made_up),
        "replicas_agree": same,
    }


def lock(history: list[Record]) -> dict[str, Any]:
    """Fencing: the tokens accepted by /fence's version check rise with its version; and clean holds
    (no connection state change while held) of two clients never overlap in time."""
    recs = _of(history, "lock")
    fences = sorted((r["version"], r["token"]) for r in recs if r["f"] == "fence" and r["r"] == "ok")
    versions = [v for v, _ in fences]
    out_of_order = sum(1 for (_, a), (_, b) in pairwise(fences) if b < a)
    holds = sorted((r["t0"], r["t1"], r["c"]) for r in recs if r["f"] == "hold" and r.get("clean"))
    overlaps = sum(1 for (s1, e1, c1), (s2, _, c2) in pairwise(holds) if s2 < e1 and c1 != c2)
    ok = len(set(versions)) == len(versions) and out_of_order == 0
    return {
        "ok": ok,
        "holds": sum(1 for r in recs if r["f"] == "hold"),
        "fenced_writes": len(fences),
        "fenced_out": sum(1 for r in recs if r["f"] == "fence" and r["r"] == "fail"),
        "tokens_out_of_order": out_of_order,
        "clean_holds_overlapping": overlaps,
    }


def ephemerals(history: list[Record], final: dict[str, Any]) -> dict[str, Any]:
    """An ephemeral exists whenever its live session looks (sync + exists); every one is gone once
    all sessions closed, on every node."""
    recs = _of(history, "eph")
    vanished = [r for r in recs if r["f"] == "check" and not r["exists"]]
    left = {name for node in _healthy(final) for name in node["eph"]}
    ok = not vanished and not left and bool(_healthy(final))
    return {
        "ok": ok,
        "sessions": sum(1 for r in recs if r["f"] == "create" and r["r"] == "ok"),
        "checks": sum(1 for r in recs if r["f"] == "check"),
        "vanished_while_alive": len(vanished),
        "left_after_close": len(left),
    }


WRITES = {("register", "set"), ("register", "cas"), ("seq", "create"), ("queue", "put")}


def availability(history: list[Record], faults: list[dict[str, Any]], end: float) -> dict[str, Any]:
    """Per fault: the longest stretch with no write acknowledged anywhere that overlaps it (from the
    later of the fault's start and the last write before it); per kind: the worst and the median."""
    acks = sorted(r["t1"] for r in history if r["r"] == "ok" and (r["w"], r["f"]) in WRITES)
    per_fault = []
    for f in faults:
        start, stop = f["start"], f.get("end") or end
        before = [t for t in acks if t < start]
        points = [max(before[-1], start) if before else start] + [t for t in acks if start <= t]
        gap = 0.0
        for a, b in pairwise(points):
            if a > stop:
                break
            gap = max(gap, b - a)
        if points[-1] <= stop:
            gap = max(gap, end - points[-1])
        per_fault.append({**f, "outage": round(gap, 3)})
    by_kind: dict[str, list[float]] = defaultdict(list)
    for f in per_fault:
        by_kind[f["kind"]].append(f["outage"])
    kinds = {
        k: {"count": len(v), "max_outage": max(v), "median_outage": sorted(v)[len(v) // 2]}
        for k, v in sorted(by_kind.items())
    }
    return {"faults": per_fault, "kinds": kinds}


def counts(history: list[Record]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in history:
        if r["f"] in ("hold", "close", "lost"):
            continue
        per = out.setdefault(r["w"], {"ok": 0, "fail": 0, "info": 0})
        per[r["r"]] += 1
    return out
