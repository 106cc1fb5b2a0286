"""One client process against a standalone node (`--nodes 1`) or an ensemble it starts
(`--nodes 3`, client connected to a follower or the leader, `--connect`): pipelined throughput and
synchronous latency.

For each workload (set, get, create-sequential) it keeps `--depth` async requests in flight for
`--duration` seconds, then runs a synchronous client for latency. CPU seconds per actor of the
node (psutil) name the bottleneck. Numbers go to stdout as a markdown table (and JSON with --json).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque
from typing import Any

import psutil

from zoomq import Client
from zoomq.testing import ZoomqEnsemble, ZoomqServer

WORKLOADS = ("set", "get", "create")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list of set,get,create")
    p.add_argument("--depth", type=int, default=128, help="async requests in flight")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per pipelined workload")
    p.add_argument("--sync-ops", type=int, default=2000, help="synchronous ops per latency run")
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--hosts", default=None, help="use a running node instead of starting one")
    p.add_argument("--nodes", type=int, default=1, help="1 = standalone; 3, 5 = an ensemble (participants)")
    p.add_argument(
        "--connect",
        choices=("follower", "leader"),
        default="follower",
        help="with --nodes > 1: the node the client uses",
    )
    p.add_argument("--tick-ms", type=int, default=2000, help="with --nodes > 1: the ensemble's tick")
    p.add_argument("--json", action="store_true")


def _cpu(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for name, proc in procs.items():
        try:
            t = proc.cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            out[name] = 0.0
    return out


def _pipelined(zk: Client, workload: str, depth: int, duration: float, value: bytes) -> tuple[int, float]:
    inflight: deque[Any] = deque()
    done = 0
    start = time.perf_counter()
    deadline = start + duration
    i = 0
    while True:
        now = time.perf_counter()
        if now >= deadline and not inflight:
            break
        while now < deadline and len(inflight) < depth:
            i += 1
            if workload == "set":
                inflight.append(zk.set_async("/bench/k", value))
            elif workload == "get":
                inflight.append(zk.get_async("/bench/k"))
            else:
                inflight.append(zk.create_async("/bench/c/n-", value, sequence=True))
        inflight.popleft().get(timeout=30)
        done += 1
    return done, time.perf_counter() - start


def _sync_latency(zk: Client, workload: str, n: int, value: bytes) -> list[float]:
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        if workload == "set":
            zk.set("/bench/k", value)
        elif workload == "get":
            zk.get("/bench/k")
        else:
            zk.create("/bench/s/n-", value, sequence=True)
        lat.append(time.perf_counter() - t)
    lat.sort()
    return lat


def _pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1000.0


def run(args: argparse.Namespace) -> int:
    value = b"x" * args.value_size
    server: Any = None
    if args.hosts is not None:
        hosts, procs = args.hosts, {}
    elif args.nodes <= 1:
        server = ZoomqServer().start()
        hosts = server.hosts
        procs = {name: psutil.Process(pid) for name, pid in server.actor_pids().items()}
    else:
        server = ZoomqEnsemble(args.nodes, tick_ms=args.tick_ms).start()
        leader = server.leader()
        target = leader if args.connect == "leader" else next(n for n in server.nodes if n is not leader)
        hosts = target.hosts
        procs = {}
        for node in server.nodes:
            role = server.role_of(node)
            mark = "*" if node is target else ""  # * = the node the client talks to
            for name, pid in node.actor_pids().items():
                if name != "election":
                    procs[f"{role}{node.config_overrides['sid']}{mark}/{name}"] = psutil.Process(pid)
    results = []
    try:
        zk = Client(hosts=hosts, timeout=30.0)
        zk.start()
        zk.ensure_path("/bench/c")
        zk.ensure_path("/bench/s")
        if not zk.exists("/bench/k"):
            zk.create("/bench/k", value)
        me = psutil.Process()
        for workload in args.workloads.split(","):
            cpu0, me0 = _cpu(procs), me.cpu_times()
            n, elapsed = _pipelined(zk, workload, args.depth, args.duration, value)
            cpu1, me1 = _cpu(procs), me.cpu_times()
            per_actor = {k: round((cpu1[k] - cpu0[k]) / n * 1e6, 1) for k in cpu0}
            lat = _sync_latency(zk, workload, args.sync_ops, value)
            results.append(
                {
                    "workload": workload,
                    "ops_per_s": round(n / elapsed),
                    "sync_ops_per_s": round(len(lat) / sum(lat)),
                    "sync_p50_ms": round(_pct(lat, 0.50), 3),
                    "sync_p99_ms": round(_pct(lat, 0.99), 3),
                    "server_cpu_us_per_op": per_actor,
                    "client_cpu_us_per_op": round(((me1.user + me1.system) - (me0.user + me0.system)) / n * 1e6, 1),
                }
            )
        zk.stop()
        zk.close()
    finally:
        if server is not None:
            server.stop()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"| workload | pipelined ops/s (depth {args.depth}) | sync ops/s | sync p50 ms | sync p99 ms | client CPU µs/op | node CPU µs/op per actor |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in results:
            actors = ", ".join(f"{k} {v}" for k, v in sorted(r["server_cpu_us_per_op"].items()))
            print(
                f"| {r['workload']} | {r['ops_per_s']} | {r['sync_ops_per_s']} | {r['sync_p50_ms']} | "
                f"{r['sync_p99_ms']} | {r['client_cpu_us_per_op']} | {actors} |"
            )
    return 0
