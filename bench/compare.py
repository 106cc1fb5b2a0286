"""`python -m bench compare`: the same workload against zoomq and Apache ZooKeeper, side by side.

```bash
python -m bench compare --nodes 3 --workload set --clients 2 --depth 128 --duration 5 --rounds 3 --out /tmp/cmp-set
```

Flags as `run` (without --target) plus `--rounds R` and `--out DIR`. Rounds alternate the targets
(zoomq, ZooKeeper, zoomq, ZooKeeper, ...), each a fresh start of the target, so that a drift of
the machine (page cache, thermal, other load) touches both alike. For every figure it prints the
median over the rounds of each target and the ratio zoomq / ZooKeeper, and writes
DIR/results.json (every run, and per figure both medians and the ratio), DIR/results.md (the
table) and DIR/throughput.png, DIR/latency.png (with matplotlib). Without ZooKeeper installed it
says how to install it and runs zoomq alone.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from bench import run as run_mod
from bench.report import ProgressBar, describe, markdown_table, plots
from bench.targets import INSTALL_HINT, zookeeper_available

HEADER = (
    "ratio = zoomq / ZooKeeper (medians over the rounds). Throughput: ratio > 1 means zoomq does more. "
    "Latency, CPU per op and memory: ratio < 1 means zoomq is faster / cheaper."
)

# (key in a run's result, label, which way is better)
FIGURES = [
    ("ops_per_s", "throughput, ops/s", "higher"),
    ("p50_ms", "latency p50, ms", "lower"),
    ("p90_ms", "latency p90, ms", "lower"),
    ("p99_ms", "latency p99, ms", "lower"),
    ("p999_ms", "latency p99.9, ms", "lower"),
    ("max_ms", "latency max, ms", "lower"),
    ("server_cpu_s_per_1k_ops", "server CPU, s per 1,000 ops", "lower"),
    ("client_cpu_s_per_1k_ops", "client CPU, s per 1,000 ops", "lower"),
    ("rss_mib_total", "RSS of all nodes, MiB", "lower"),
    ("pss_mib_total", "PSS of all nodes, MiB", "lower"),
    ("errors_total", "errors", "lower"),
]
EXTRA_FIGURES = {  # per workload, from a run's "extra"
    "lock": [("fairness", "fairness (min/max acquisitions per client)", "higher")],
    "churn": [("sessions_per_s", "sessions opened and closed per s", "higher")],
    "watch": [("writes_per_s", "writer's sets per s", "higher")],
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    run_mod.add_arguments(p, target_flag=False)
    p.add_argument("--rounds", type=int, default=3, help="runs per target, alternating")
    p.add_argument("--out", default="bench-compare", help="directory for results.json, results.md and the plots")


def _value(run: dict[str, Any], key: str) -> Any:
    return run[key] if key in run else (run.get("extra") or {}).get(key)


def _median(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def summarise(runs: dict[str, list[dict[str, Any]]], workload: str) -> list[dict[str, Any]]:
    """Per figure: the rounds' values and median of each target, and the ratio zoomq / ZooKeeper."""
    out = []
    for key, label, better in FIGURES + EXTRA_FIGURES.get(workload.split(":")[0], []):
        rounds = {t: [_value(r, key) for r in rs] for t, rs in runs.items()}
        med = {t: _median(v) for t, v in rounds.items()}
        z, k = med.get("zoomq"), med.get("zookeeper")
        ratio = round(z / k, 3) if z is not None and k else None
        out.append(
            {"key": key, "label": label, "better": better, "zoomq": z, "zookeeper": k, "ratio": ratio, "rounds": rounds}
        )
    return out


def _canonical(label: str, runs_nodes: list[dict[str, Any]]) -> str:
    """`node3:leader/session` -> `leader/session`, `node1:follower/log` -> `follower1/log`: the same
    name in every round whichever node happened to lead."""
    node, _, rest = label.partition(":")
    role, _, name = rest.partition("/")
    same = [n["node"] for n in runs_nodes if n["role"] == role]
    tag = role if len(same) <= 1 else f"{role}{same.index(node) + 1 if node in same else '?'}"
    return f"{tag}/{name}"


def process_profile(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median CPU seconds per 1,000 ops of each process (actor) over the rounds, busiest first."""
    per: dict[str, list[float]] = {}
    for r in runs:
        for label, v in (r.get("cpu_per_process") or {}).items():
            if v.get("s_per_1k_ops") is not None:
                per.setdefault(_canonical(label, r["nodes_detail"]), []).append(v["s_per_1k_ops"])
    med = {k: _median(v) for k, v in per.items()}
    return dict(sorted(med.items(), key=lambda kv: -(kv[1] or 0)))


def run(args: argparse.Namespace) -> int:
    targets = ["zoomq", "zookeeper"]
    if not zookeeper_available():
        print(INSTALL_HINT, file=sys.stderr)
        print("compare: running zoomq alone.", file=sys.stderr)
        targets = ["zoomq"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    order = [t for _ in range(args.rounds) for t in targets]  # A B A B ...
    bar = ProgressBar(len(order))
    try:
        for i, target in enumerate(order):
            n = len(runs[target]) + 1

            def progress(fraction: float, text: str, i: int = i, n: int = n) -> None:
                bar.update(i, fraction, f"round {n}/{args.rounds} {text}")

            runs[target].append(run_mod.run_once(target, args, progress))
        bar.update(len(order), 0.0, "done", force=True)
    except run_mod.RunError as exc:
        bar.close()
        print(f"compare failed: {exc}", file=sys.stderr)
        return 1
    bar.close()

    figures = summarise(runs, args.workload)
    command = (
        "python -m bench compare " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if sys.argv[1:2] == ["compare"]
        else None
    )
    setup = describe(runs["zoomq"][0])
    setup = re.sub(r"^zoomq \S+, ", "", setup)
    versions = {t: rs[0].get("server_version") for t, rs in runs.items()}
    profiles = {t: process_profile(rs) for t, rs in runs.items()}
    table = markdown_table(figures, targets)

    print(f"{setup}; {args.rounds} rounds per target, alternating")
    print(HEADER)
    print(table)
    for t, prof in profiles.items():
        print(f"{t}: CPU per process, s per 1,000 ops (median): " + ", ".join(f"{k} {v}" for k, v in prof.items()))

    title = f"{args.workload}, {args.nodes} node(s), {args.clients} x depth {args.depth}"
    made = plots(out, runs, title)
    plot_note = made if isinstance(made, str) else "plots: " + ", ".join(p.name for p in made)
    print(plot_note if isinstance(made, str) else f"{plot_note} in {out}")

    results = {
        "command": command,
        "setup": setup,
        "rounds": args.rounds,
        "versions": versions,
        "header": HEADER,
        "figures": {
            f["key"]: {k: f[k] for k in ("label", "better", "zoomq", "zookeeper", "ratio", "rounds")} for f in figures
        },
        "cpu_per_process_s_per_1k_ops": profiles,
        "runs": {t: [{k: v for k, v in r.items() if k != "histogram_us"} for r in rs] for t, rs in runs.items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    md = [f"# {title}", ""]
    if command:
        md += ["```bash", command, "```", ""]
    md += [
        f"{setup}; {args.rounds} rounds per target, alternating (versions: "
        + ", ".join(f"{t} {v}" for t, v in versions.items())
        + ").",
        "",
        HEADER,
        "",
        table,
        "",
    ]
    for t, prof in profiles.items():
        md.append(
            f"- {t}: CPU per process, s per 1,000 ops (median): " + ", ".join(f"{k} {v}" for k, v in prof.items())
        )
    md += ["", plot_note if isinstance(made, str) else "![throughput](throughput.png) ![latency](latency.png)", ""]
    (out / "results.md").write_text("\n".join(md))
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 0


__all__ = ["FIGURES", "HEADER", "add_arguments", "process_profile", "run", "summarise"]
