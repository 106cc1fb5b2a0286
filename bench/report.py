"""Presentation for the harness: a text progress bar on stderr, the summary of one run, the
markdown table of a comparison, and its PNG plots (matplotlib, when it is installed)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any


class ProgressBar:
    """`[#####.....]  3/6  zookeeper round 2: measuring 3.1/5 s` on stderr, redrawn in place.

    `steps` units of work (runs); `update(done, fraction_of_current, text)`."""

    WIDTH = 30

    def __init__(self, steps: int, stream: Any = None) -> None:
        self.steps = max(1, steps)
        self.stream = stream or sys.stderr
        self._last = 0.0
        self._width = 0

        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, done: int, fraction: float, text: str, force: bool = False) -> None:
        now = time.monotonic()
        # A terminal is redrawn 5 times a second; a file or pipe gets a line every 2 s.
        if not force and now - self._last < (0.2 if self._tty else 2.0):
            return
        self._last = now
        share = min(1.0, (done + max(0.0, min(1.0, fraction))) / self.steps)
        filled = int(share * self.WIDTH)
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{self.steps} {text}"
        if self._tty:
            pad = " " * max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write("\r" + line + pad)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")
        self.stream.flush()


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}".rstrip("0").rstrip(".") if v else "0"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def describe(r: dict[str, Any]) -> str:
    """One line naming the run's setup."""
    obs = f" + {r['observers']} observers" if r.get("observers") else ""
    procs = f"{r['clients']} watchers + 1 writer" if r["workload"] == "watch" else f"{r['clients']} client processes"
    return (
        f"{r['target']} {r.get('server_version') or ''}, {r['nodes']} node{'s' if r['nodes'] > 1 else ''}{obs}, "
        f"tick {r['tick_ms']} ms; workload {r['workload']}, {procs} x depth {r['depth']}, "
        f"{r['value_size']}-byte values, {r['duration_s']:g} s measured after {r['warmup_s']:g} s warm-up"
    )


def format_run(r: dict[str, Any]) -> str:
    """The human-readable summary of one run (bench/run.py's result)."""
    lines = [describe(r)]
    unit = {"lock": "acquisitions/s", "watch": "notifications/s", "churn": "ops/s (creates + deletes)"}.get(
        r["workload"], "ops/s"
    )
    lines.append(f"  throughput   {_num(float(r['ops_per_s']))} {unit}  ({r['ops']:,} ops)")
    lines.append(
        f"  latency ms   p50 {_num(r['p50_ms'])}  p90 {_num(r['p90_ms'])}  p99 {_num(r['p99_ms'])}  "
        f"p99.9 {_num(r['p999_ms'])}  max {_num(r['max_ms'])}  mean {_num(r['mean_ms'])}"
    )
    for kind, s in (r.get("latency_by_kind") or {}).items():
        lines.append(
            f"    {kind:<10} p50 {_num(s['p50_ms'])}  p99 {_num(s['p99_ms'])}  p99.9 {_num(s['p999_ms'])}  max {_num(s['max_ms'])}"
        )
    errors = r.get("errors") or {}
    lines.append("  errors       " + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) if errors else "none"))
    lines.append(
        f"  server CPU   {_num(r['server_cpu_s_per_1k_ops'], 4)} s per 1,000 ops ({_num(r['server_cpu_s'])} s in all); "
        f"client CPU {_num(r['client_cpu_s_per_1k_ops'], 4)} s per 1,000 ops ({_num(r['client_cpu_s'])} s)"
    )
    mem = ", ".join(f"{n['node']} {n['role']} {n['rss_mib']:.0f} ({n['pss_mib']:.0f})" for n in r["nodes_detail"])
    lines.append(f"  memory MiB   RSS (PSS) per node: {mem}")
    procs = r.get("cpu_per_process") or {}
    if procs:
        busy = sorted(procs.items(), key=lambda kv: -kv[1]["cpu_s"])
        lines.append(
            "  CPU per process, s per 1,000 ops: " + ", ".join(f"{k} {_num(v['s_per_1k_ops'], 4)}" for k, v in busy)
        )
    extra = r.get("extra") or {}
    shown = {k: v for k, v in extra.items() if not isinstance(v, dict | list)}
    if shown:
        lines.append("  " + ", ".join(f"{k} {_num(v)}" for k, v in shown.items()))
    for k, v in extra.items():
        if isinstance(v, dict) and "p50_ms" in v:
            lines.append(f"  {k}: p50 {_num(v['p50_ms'])}  p99 {_num(v['p99_ms'])}  max {_num(v['max_ms'])} ms")
    return "\n".join(lines)


def markdown_table(figures: list[dict[str, Any]], targets: list[str]) -> str:
    """| figure | zoomq | ZooKeeper | ratio | rounds ... |"""
    both = len(targets) > 1
    head = "| figure | zoomq (median) |" + (" ZooKeeper (median) | ratio zoomq/ZK | better |" if both else "")
    head += " zoomq per round |" + (" ZooKeeper per round |" if both else "")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for f in figures:
        z = f["zoomq"]
        row = f"| {f['label']} | {_num(z)} |"
        if both:
            better = ""
            if f["ratio"] is not None:
                wins = f["ratio"] > 1 if f["better"] == "higher" else f["ratio"] < 1
                better = "zoomq" if wins else ("ZooKeeper" if f["ratio"] != 1 else "=")
            row += f" {_num(f['zookeeper'])} | {_num(f['ratio'])} | {better} |"
        row += " " + " / ".join(_num(v) for v in f["rounds"]["zoomq"]) + " |"
        if both:
            row += " " + " / ".join(_num(v) for v in f["rounds"].get("zookeeper", [])) + " |"
        rows.append(row)
    return "\n".join(rows)


def plots(out: Path, runs: dict[str, list[dict[str, Any]]], title: str) -> list[Path] | str:
    """throughput.png (median ops/s per target, each round a dot) and latency.png (median
    percentiles per target, log scale). Returns the files, or why none were made."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no plots"
    import statistics

    colors = {"zoomq": "#2b7bba", "zookeeper": "#d95f02"}
    names = list(runs)
    made = []

    fig, ax = plt.subplots(figsize=(5, 4))
    medians = [statistics.median(r["ops_per_s"] for r in runs[t]) for t in names]
    ax.bar(names, medians, color=[colors.get(t, "grey") for t in names])
    for i, t in enumerate(names):
        ax.scatter([i] * len(runs[t]), [r["ops_per_s"] for r in runs[t]], color="black", s=12, zorder=3)
        ax.annotate(f"{medians[i]:,.0f}", (i, medians[i] / 2), ha="center", va="center", color="white", weight="bold")
    ax.set_ylabel("ops/s (median; dots = rounds)")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path = out / "throughput.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    made.append(path)

    fig, ax = plt.subplots(figsize=(6, 4))
    pcts = [("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max")]
    width = 0.8 / max(1, len(names))
    for j, t in enumerate(names):
        vals = [statistics.median(r[k] for r in runs[t]) for k, _ in pcts]
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(pcts))]
        ax.bar(xs, vals, width, label=t, color=colors.get(t, "grey"))
    ax.set_xticks(range(len(pcts)), [label for _, label in pcts])
    ax.set_yscale("log")
    ax.set_ylabel("latency, ms (median of rounds, log scale)")
    ax.set_title(title, fontsize=8)
    ax.legend()
    fig.tight_layout()
    path = out / "latency.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    made.append(path)
    return made


__all__ = ["ProgressBar", "describe", "format_run", "markdown_table", "plots"]
