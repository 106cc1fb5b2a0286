"""`python -m bench nemesis` (also `zoomq bench nemesis`): Jepsen-style runs on separate network hosts.

An ensemble in network namespaces (bench/nemesis/netns.py, cluster.py), clients in their own
namespace (worker.py), one fault after another from a seed (faults.py), then every check
(checks.py) and a report in `--out`: `history.jsonl`, `faults.jsonl`, `summary.json`, `summary.md`
and `timeline.png` (throughput and latency over time, fault intervals shaded). Exit 0 only when
every check passes. Needs root, iproute2 and nftables; says why and exits 77 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.nemesis import checks
from bench.nemesis.cluster import ZooKeeperCluster, ZoomqCluster
from bench.nemesis.faults import Nemesis, available, schedule
from bench.nemesis.netns import Lab, LabError, missing_requirements

SKIPPED = 77
DEFAULT_WORKLOADS = "register=4,seq=2,queue=1,lock=2,eph=2"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=("zoomq", "zookeeper"), default="zoomq")
    p.add_argument("--nodes", type=int, default=3, help="participants (3 or 5)")
    p.add_argument("--observers", type=int, default=0)
    p.add_argument("--faults", type=int, default=30, help="how many faults, one after another")
    p.add_argument("--fault-s", type=float, default=3.0, help="how long each fault lasts")
    p.add_argument("--rest-s", type=float, default=2.0, help="healthy time between two faults")
    p.add_argument("--kinds", default="", help="comma-separated fault kinds (default: all that apply)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tick-ms", type=int, default=1000)
    p.add_argument("--workloads", default=DEFAULT_WORKLOADS, help=f"name=clients,... (default {DEFAULT_WORKLOADS})")
    p.add_argument("--no-clock", action="store_true", help="no libfaketime under the nodes (and no clock jumps)")
    p.add_argument(
        "--no-proxy", action="store_true", help="links straight, without the delay proxy (and no link faults)"
    )
    p.add_argument("--out", default="nemesis-out")


def run(args: argparse.Namespace) -> int:
    why = missing_requirements()
    if why:
        print(f"nemesis skipped: {why}", file=sys.stderr)
        return SKIPPED
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in ("history.jsonl", "faults.jsonl", "final.json", "stop"):
        (out / name).unlink(missing_ok=True)
    workloads = {k: int(v) for k, v in (item.split("=") for item in args.workloads.split(",") if item)}
    # The workers stop when the harness says so (the stop file); this deadline is only a backstop,
    # well past the schedule's own length (finding the leader, restarting nodes take time too).
    duration = 3 * (args.faults * (args.fault_s + args.rest_s) + args.rest_s) + 60
    cls = ZooKeeperCluster if args.target == "zookeeper" else ZoomqCluster
    started = time.monotonic()
    with Lab(args.nodes + args.observers) as lab:
        cluster = cls(
            lab,
            args.nodes,
            args.observers,
            out / "work",
            args.tick_ms,
            faketime=not args.no_clock,
            proxy=not args.no_proxy,
        )
        try:
            return _run(args, lab, cluster, out, workloads, duration, started)
        finally:
            cluster.stop_all()


def _run(
    args: argparse.Namespace,
    lab: Lab,
    cluster: Any,
    out: Path,
    workloads: dict[str, int],
    duration: float,
    started: float,
) -> int:
    if cluster.proxied:
        cluster.start_proxies()
    cluster.start_all()
    missing = cluster.wait_serving(90)
    if missing:
        print(f"nemesis: nodes {missing} did not start serving; logs in {out / 'work'}", file=sys.stderr)
        return 1
    spec = {
        "target": args.target,
        "hosts": cluster.hosts(),
        "duration": duration,
        "out": str(out),
        "stop_file": str(out / "stop"),
        "seed": args.seed,
        "workloads": workloads,
    }
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(spec))
    worker_cmd = [sys.executable, "-m", "bench.nemesis.worker", str(spec_path)]
    lab.run("c", [*worker_cmd, "setup"])
    spec["t_start"] = time.monotonic()
    spec_path.write_text(json.dumps(spec))
    worker_log = open(out / "worker.log", "ab")  # noqa: SIM115 - closed below
    worker = lab.popen("c", [*worker_cmd, "run"], stdout=worker_log, stderr=worker_log, stdin=subprocess.DEVNULL)
    kinds = [k for k in args.kinds.split(",") if k] or available(args.nodes)
    plan = schedule(args.seed, args.faults, kinds)
    nemesis = Nemesis(cluster, args.seed)
    faults: list[dict[str, Any]] = []
    try:
        time.sleep(args.rest_s)  # a healthy stretch first: the baseline
        for i, kind in enumerate(plan, 1):
            record = {"kind": kind, "start": time.monotonic()}
            record.update(nemesis.start(kind))
            _progress(out, started, i, len(plan), kind, record.get("target"))
            time.sleep(args.fault_s)
            nemesis.end()
            record["end"] = time.monotonic()
            faults.append(record)
            with open(out / "faults.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            time.sleep(args.rest_s)
    finally:
        nemesis.heal_all()
        (out / "stop").touch()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
        worker_log.close()
    end = time.monotonic()
    missing = cluster.wait_serving(90)
    if not missing:
        # waits for the workloads' sessions to end (past a session timeout), then reads every node
        with contextlib.suppress(LabError, subprocess.TimeoutExpired):
            lab.run("c", [*worker_cmd, "final"], timeout=300)
    return report(out, cluster, faults, end, args, missing)


def _progress(out: Path, started: float, i: int, total: int, kind: str, target: Any) -> None:
    try:
        counts = json.loads((out / "progress.json").read_text())
    except (OSError, ValueError):
        counts = {}
    ops = " ".join(f"{w} {c['ok']}/{c['fail']}/{c['info']}" for w, c in sorted(counts.items()))
    print(f"[{time.monotonic() - started:6.0f}s] fault {i}/{total} {kind} ({target}) | ok/fail/info: {ops}", flush=True)


def load_history(out: Path) -> list[dict[str, Any]]:
    path = out / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(
    out: Path, cluster: Any, faults: list[dict[str, Any]], end: float, args: argparse.Namespace, missing: list[int]
) -> int:
    history = load_history(out)
    try:
        final = json.loads((out / "final.json").read_text())
    except (OSError, ValueError):
        final = {}
    worker = (
        json.loads((out / "worker.json").read_text()) if (out / "worker.json").exists() else {"errors": ["no report"]}
    )
    results = {
        "register": checks.register(history),
        "seq": checks.sequential(history, final),
        "queue": checks.queue(history, final),
        "lock": checks.lock(history),
        "eph": checks.ephemerals(history, final),
    }
    for name in list(results):
        if not any(r["w"] == name for r in history):
            results[name] = {"ok": True, "skipped": "no such workload in this run"}
    avail = checks.availability(history, [f for f in faults if not f.get("skipped")], end)
    lost = results["seq"].get("lost", 0) + results["queue"].get("lost", 0)
    ok = (
        not missing
        and not worker["errors"]
        and all(r["ok"] for r in results.values())
        and all("error" not in v for v in final.values())
        and bool(final)
    )
    summary = {
        "target": cluster.name,
        "seed": args.seed,
        "nodes": args.nodes,
        "observers": args.observers,
        "faults": len(faults),
        "ok": ok,
        "lost_acknowledged_writes": lost,
        "checks": results,
        "ops": checks.counts(history),
        "availability": avail["kinds"],
        "worker": worker,
        "nodes_not_serving_at_end": missing,
        "final_errors": {h: v["error"] for h, v in final.items() if "error" in v},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(summary_md(summary))
    with open(out / "faults_outage.jsonl", "w") as f:
        f.writelines(json.dumps(rec) + "\n" for rec in avail["faults"])
    plot(out, history, avail["faults"])
    print(summary_md(summary))
    if not ok:
        print(f"nemesis FAILED (seed {args.seed}); history and node logs kept in {out}", file=sys.stderr)
    return 0 if ok else 1


def summary_md(s: dict[str, Any]) -> str:
    lines = [
        f"# nemesis: {s['target']}, {s['nodes']} nodes + {s['observers']} observers, seed {s['seed']}",
        "",
        (
            f"**{'PASS' if s['ok'] else 'FAIL'}**: {s['faults']} faults, "
            f"{s['lost_acknowledged_writes']} acknowledged writes lost"
        ),
        "",
        "| check | ok | figures |",
        "|---|---|---|",
    ]
    for name, r in s["checks"].items():
        figures = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("ok", "why"))
        lines.append(f"| {name} | {r['ok']} | {figures} |")
    lines += ["", "| workload | ok | fail | info (indeterminate) |", "|---|---|---|---|"]
    for w, c in sorted(s["ops"].items()):
        lines.append(f"| {w} | {c['ok']} | {c['fail']} | {c['info']} |")
    lines += [
        "",
        "Longest stretch with no write acknowledged anywhere, per fault kind (s):",
        "",
        "| fault | count | max | median |",
        "|---|---|---|---|",
    ]
    for kind, a in s["availability"].items():
        lines.append(f"| {kind} | {a['count']} | {a['max_outage']:.2f} | {a['median_outage']:.2f} |")
    why = s["checks"]["register"].get("why")
    if why:
        lines += ["", "register: " + why]
    if s["worker"].get("errors") or s["worker"].get("stuck"):
        lines += ["", f"worker errors: {s['worker'].get('errors')}, stuck threads: {s['worker'].get('stuck')}"]
    return "\n".join(lines) + "\n"


def plot(out: Path, history: list[dict[str, Any]], faults: list[dict[str, Any]]) -> None:
    """timeline.png: acknowledged ops per second and write latency (p50 / max per second), faults shaded."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    done = [r for r in history if r["r"] == "ok" and r.get("t1") and r["f"] not in ("hold", "close", "lost")]
    if not done:
        return
    t0 = min(r["t0"] for r in history)
    buckets: dict[int, list[float]] = {}
    for r in done:
        buckets.setdefault(int(r["t1"] - t0), []).append(r["t1"] - r["t0"])
    every = range(min(buckets), max(buckets) + 1)  # a second with nothing acknowledged shows as 0
    xs = sorted(buckets)
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(12, 6))
    ax1.plot(list(every), [len(buckets.get(x, ())) for x in every], lw=0.8)
    ax1.set_ylabel("acked ops / s")
    ax2.plot(
        xs, [sorted(buckets[x])[len(buckets[x]) // 2] * 1000 for x in xs], lw=0.8, marker=".", ms=2, ls="", label="p50"
    )
    ax2.plot(xs, [max(buckets[x]) * 1000 for x in xs], lw=0, marker=".", ms=2, label="max")
    ax2.set_yscale("log")
    ax2.set_ylabel("latency (ms)")
    ax2.set_xlabel("s")
    ax2.legend(loc="upper right")
    kinds = sorted({f["kind"] for f in faults})
    colors = plt.get_cmap("tab20")
    for f in faults:
        for ax in (ax1, ax2):
            ax.axvspan(f["start"] - t0, f["end"] - t0, color=colors(kinds.index(f["kind"]) % 20), alpha=0.25, lw=0)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors(i % 20), alpha=0.4) for i in range(len(kinds))]
    ax1.legend(handles, kinds, fontsize=6, ncol=4, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "timeline.png", dpi=110)
    plt.close(fig)
