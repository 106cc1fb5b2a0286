"""Writes-resumed time after SIGKILL of the leader (or of a follower) of an ensemble it starts.

One client creates sequential nodes synchronously; a node is killed (SIGKILL of its supervisor
and every actor); the figure is the longest time between two acknowledged writes around the kill.
`--victim leader` (the default): the client is connected to every node, the leader is killed, and
the figure covers the kill until writes resume; the old leader is restarted between runs (it
rejoins as a follower). `--victim follower`: the client is connected to the leader only, a
follower is killed, writes go on for a second without it, then it is restarted and synchronized
while writes go on; the figure covers all of it (the leader and the other follower are a quorum,
so writes should never stop for long). Finally every acknowledged write is checked on every node.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from typing import Any

from zoomq.testing import ZoomqEnsemble, wait_for


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, default=3, help="participants")
    p.add_argument("--runs", type=int, default=3, help="leader kills")
    p.add_argument("--tick-ms", type=int, default=2000)
    p.add_argument(
        "--victim",
        choices=("leader", "follower"),
        default="leader",
        help="which node is killed (a follower is restarted and synchronized while writes go on)",
    )
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    gaps: list[float] = []
    with ZoomqEnsemble(args.nodes, tick_ms=args.tick_ms) as ens:
        on_leader = args.victim == "follower"
        zk = ens.client(timeout=30.0, hosts=ens.leader().hosts if on_leader else None)
        zk.ensure_path("/failover")
        acked: list[tuple[float, str]] = []
        stop = threading.Event()

        def write() -> None:
            i = 0
            while not stop.is_set() and i < 10_000_000:
                path = zk.create("/failover/n-", str(i).encode(), sequence=True)
                acked.append((time.monotonic(), path))
                i += 1

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        for _ in range(args.runs):
            # Each kill hits a settled ensemble: the node restarted after the previous kill has its
            # standby role actor ready (what a node has within about 2 s of starting).
            ens.wait_standbys(120)
            n = len(acked)
            wait_for(lambda n=n: len(acked) >= n + 200, 60, "writes before the kill")
            victim = ens.followers()[0] if on_leader else ens.leader()
            killed_at = time.monotonic()
            victim.kill()
            if on_leader:
                wait_for(lambda: acked[-1][0] > killed_at + 1.0, 120, "writes a second after the kill")
                victim.start(timeout=120)
                n = len(acked)
                wait_for(lambda n=n: len(acked) >= n + 200, 120, "writes after the follower rejoined")
            else:
                wait_for(
                    lambda: any(t > killed_at for t, _ in acked[-5:]) and acked[-1][0] > killed_at + 0.05,
                    120,
                    "writes after the kill",
                )
            times = [t for t, _ in acked if t >= killed_at - 0.5]  # this kill only
            gaps.append(max(b - a for a, b in zip(times, times[1:], strict=False)))
            if not on_leader:
                victim.start(timeout=120)
        stop.set()
        writer.join(60)
        paths = {p for _, p in acked}
        for node in ens.nodes:
            reader = ens.client(hosts=node.hosts)
            reader.sync("/failover")
            have = {"/failover/" + c for c in reader.get_children("/failover")}
            missing = paths - have
            if missing:
                raise SystemExit(f"{node.hosts} lost {len(missing)} acknowledged writes")
    return report(args, gaps, len(paths))


def report(args: argparse.Namespace, gaps: list[float], acknowledged: int, label: str = "", **extra: Any) -> int:
    """Print the writes-resumed times (JSON with --json); `extra` fields go into the JSON and,
    as `key value`, after the sentence. Shared by both targets."""
    result = {
        **({"target": label.lower()} if label else {}),
        "nodes": args.nodes,
        "tick_ms": args.tick_ms,
        "victim": getattr(args, "victim", "leader"),
        "writes_resumed_s": [round(g, 3) for g in gaps],
        "median_s": round(statistics.median(gaps), 3),
        "acknowledged": acknowledged,
        **extra,
    }
    if args.json:
        print(json.dumps(result))
    else:
        tail = "".join(f"; {v} {k.replace('_', ' ')}" for k, v in extra.items())
        what = (
            "longest write gap around SIGKILL, restart and resync of a follower"
            if getattr(args, "victim", "leader") == "follower"
            else "writes resumed after SIGKILL of the leader in"
        )
        print(
            f"{label + ', ' if label else ''}{args.nodes} nodes, tick {args.tick_ms} ms: {what} "
            f"{', '.join(f'{g:.3f}' for g in gaps)} s (median {result['median_s']:.3f} s); "
            f"{acknowledged} acknowledged writes, all on every node{tail}"
        )
    return 0
