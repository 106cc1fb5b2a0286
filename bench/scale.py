"""`python -m bench scale --znodes 100000 [--target zoomq|zookeeper] [--nodes 1|3|5]`: many znodes.

One client creates `--znodes` znodes of `--value-size` bytes (`/scale/b<k>/n<i>`, 1,000 per
parent), `--depth` creates in flight. Then: the memory of every node (RSS and PSS of its process
tree) and the size of its data dir. Then every node is stopped (SIGTERM; `--crash`: SIGKILL) and
started again on the same data; the figure is the time from the start of the processes until
each node serves the last znode created (a session on that node reads it). `--wipe-follower`
(3+ nodes) then stops a follower, wipes its data and starts it while a client of the leader
creates znodes: its catch-up time (until it serves a znode created after its start), its memory
then, and the writer's longest pause meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from bench.loadgen import make_client, stop_client
from bench.targets import INSTALL_HINT, TARGETS, Target, make_target, memory_mib, zookeeper_available
from zoomq.testing import wait_for

PER_PARENT = 1000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=TARGETS, default="zoomq")
    p.add_argument("--znodes", type=int, default=100_000)
    p.add_argument("--nodes", type=int, choices=(1, 3, 5), default=1)
    p.add_argument("--depth", type=int, default=256, help="creates in flight")
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--tick-ms", type=int, default=2000)
    p.add_argument("--crash", action="store_true", help="SIGKILL the nodes instead of stopping them")
    p.add_argument(
        "--wipe-follower",
        action="store_true",
        help="then (3+ nodes): stop a follower, wipe its data, start it while writes go on; time its catch-up",
    )
    p.add_argument("--json", metavar="FILE", default=None)


def _path(i: int) -> str:
    return f"/scale/b{i // PER_PARENT}/n{i}"


def _create_all(zk: Any, n: int, depth: int, value: bytes) -> tuple[float, int]:
    """Pipelined creates; (seconds, errors)."""
    for k in range((n + PER_PARENT - 1) // PER_PARENT):
        zk.ensure_path(f"/scale/b{k}")
    inflight: deque[Any] = deque()
    errors = 0
    t0 = time.monotonic()
    for i in range(n):
        if len(inflight) >= depth:
            try:
                inflight.popleft().get(timeout=60)
            except Exception:  # noqa: BLE001 - counted
                errors += 1
        inflight.append(zk.create_async(_path(i), value))
    while inflight:
        try:
            inflight.popleft().get(timeout=60)
        except Exception:  # noqa: BLE001
            errors += 1
    return time.monotonic() - t0, errors


def _dir_mib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, f))
    return total / 2**20


def _memory(target: Target) -> list[dict[str, Any]]:
    procs = target.processes()
    out = []
    for node in target.nodes():
        rss, pss = memory_mib([p for label, p in procs.items() if label.startswith(node.label + ":")])
        out.append(
            {
                "node": node.label,
                "role": node.role,
                "rss_mib": round(rss, 1),
                "pss_mib": round(pss, 1),
                "data_mib": round(_dir_mib(node.data_dir), 1),
            }
        )
    return out


def _serves(target_name: str, hosts: str, path: str, deadline: float) -> float:
    """Until a session on `hosts` reads `path`; the monotonic time it did."""
    last: BaseException | None = None
    for _ in range(100_000):
        if time.monotonic() >= deadline:
            break
        zk = make_client(target_name, hosts, 30.0)
        try:
            zk.start(timeout=max(0.5, min(10.0, deadline - time.monotonic())))
            zk.get(path)
            return time.monotonic()
        except Exception as exc:  # noqa: BLE001 - not serving yet
            last = exc
            time.sleep(0.01)  # polling a restarting node, bounded by the deadline
        finally:
            with contextlib.suppress(Exception):
                stop_client(zk)
    raise TimeoutError(f"{hosts} did not serve {path}: {last!r}")


def _wipe_follower(args: argparse.Namespace, target: Target, value: bytes) -> dict[str, Any]:
    """A follower stopped, its data wiped (the node's id kept), and started again while one client
    of the leader creates znodes synchronously: the catch-up time (start until it serves a znode
    created after its start; the leader must send the whole state, ZooKeeper's SNAP), the
    follower's memory then, and the writer's longest pause meanwhile."""
    follower = next(n for n in target.nodes() if n.role == "follower")
    leader = target.leader()
    target.stop_node(follower.sid)
    for sub in ("version-1", "version-2"):  # zoomq's and ZooKeeper's; ZooKeeper's myid stays
        shutil.rmtree(follower.data_dir / sub, ignore_errors=True)
    zk = make_client(args.target, leader.hosts, 30.0)
    zk.start(timeout=30)
    zk.ensure_path("/wipe")
    acked: list[tuple[float, str]] = []
    stop = threading.Event()

    def write() -> None:
        for i in range(10_000_000):
            if stop.is_set():
                return
            path = zk.create(f"/wipe/w{i}", value)
            acked.append((time.monotonic(), path))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        started = time.monotonic()
        target.launch_node(follower.sid)
        deadline = started + 600
        target.wait_node(follower.sid, timeout=600)
        # a znode created after the start: served, the follower followed on
        after = wait_for(
            lambda: acked and acked[-1][0] > started and acked[-1][1],
            max(1.0, deadline - time.monotonic()),
            "a write acknowledged since the follower started",
        )
        served = _serves(args.target, follower.hosts, after, deadline)
    finally:
        stop.set()
        writer.join(60)
        stop_client(zk)
    during = [t for t, _ in acked if started <= t <= served]
    gaps = [b - a for a, b in itertools.pairwise([started, *during, served])]
    memory = next(m for m in _memory(target) if m["node"] == follower.label)
    return {
        "node": follower.label,
        "catch_up_s": round(served - started, 2),
        "writes_meanwhile": len(during),
        "longest_write_pause_s": round(max(gaps), 3),
        "rss_mib": memory["rss_mib"],
        "pss_mib": memory["pss_mib"],
    }


def run(args: argparse.Namespace) -> int:
    if args.target == "zookeeper" and not zookeeper_available():
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    value = b"x" * args.value_size
    target = make_target(args.target, args.nodes, 0, args.tick_ms)
    try:
        target.start(timeout=120)
        print(
            f"{args.target}: creating {args.znodes:,} znodes of {args.value_size} bytes ...",
            file=sys.stderr,
            flush=True,
        )
        zk = make_client(args.target, target.hosts, 30.0)
        zk.start(timeout=30)
        try:
            seconds, errors = _create_all(zk, args.znodes, args.depth, value)
        finally:
            stop_client(zk)
        loaded = _memory(target)
        last = _path(args.znodes - 1)
        print(f"{args.target}: restarting {len(loaded)} node(s) ...", file=sys.stderr, flush=True)
        for node in target.nodes():
            (target.kill_node if args.crash else target.stop_node)(node.sid)
        t0 = time.monotonic()
        for node in target.nodes():
            target.launch_node(node.sid)
        deadline = t0 + 600
        for node in target.nodes():
            target.wait_node(node.sid, timeout=max(1.0, deadline - time.monotonic()))
        recovered = {n.label: round(_serves(args.target, n.hosts, last, deadline) - t0, 3) for n in target.nodes()}
        after = _memory(target)
        wiped = _wipe_follower(args, target, value) if args.wipe_follower and args.nodes >= 3 else None
    finally:
        target.stop()
    result = {
        "target": args.target,
        "nodes": args.nodes,
        "znodes": args.znodes,
        "value_size": args.value_size,
        "create_s": round(seconds, 2),
        "creates_per_s": round(args.znodes / seconds),
        "errors": errors,
        "memory_loaded": loaded,
        "restart": "SIGKILL" if args.crash else "stop",
        "serving_after_restart_s": recovered,
        "memory_after_restart": after,
        "wiped_follower": wiped,
    }
    print(
        f"{args.target}, {args.nodes} node(s): {args.znodes:,} znodes x {args.value_size} B created in {seconds:.1f} s "
        f"({result['creates_per_s']:,}/s, {errors} errors)"
    )
    for m in loaded:
        print(
            f"  {m['node']} {m['role']}: RSS {m['rss_mib']:.0f} MiB (PSS {m['pss_mib']:.0f}), data dir {m['data_mib']:.0f} MiB"
        )
    print(
        f"  after {'SIGKILL' if args.crash else 'stop'} and start of every node, serving the last znode after: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in recovered.items())
    )
    print(
        "  memory after the restart: "
        + ", ".join(f"{m['node']} RSS {m['rss_mib']:.0f} (PSS {m['pss_mib']:.0f}) MiB" for m in after)
    )
    if wiped is not None:
        print(
            f"  {wiped['node']} wiped and started while writes went on: serving after {wiped['catch_up_s']:.2f} s, "
            f"RSS {wiped['rss_mib']:.0f} (PSS {wiped['pss_mib']:.0f}) MiB; {wiped['writes_meanwhile']} writes meanwhile, "
            f"longest pause {wiped['longest_write_pause_s']:.3f} s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


__all__ = ["add_arguments", "run"]
