"""`python -m bench run`: a multi-process load generator against zoomq or Apache ZooKeeper.

```bash
python -m bench run --target zoomq --nodes 3 --workload set --clients 2 --depth 128 --duration 5
python -m bench run --target zookeeper --nodes 3 --workload mixed:90 --clients 4 --json out.json
```

The harness starts the target (bench/targets.py) in temp dirs on free ports, starts `--clients`
client processes (`python -m bench.loadgen`, each with its own session on one node: nodes that
do not lead first, round robin), and collects their reports on a ZeroMQ PULL socket on
127.0.0.1. Every client loads the target from the same instant; what completes during the
`--warmup` seconds is not counted. Around the `--duration` window the harness samples the CPU
time of every process of every node's tree (psutil; zoomq's actors by name from status.json),
and afterwards their memory. Then it stops the clients and the target, by PID.

Reported: ops/s, latency p50/p90/p99/p99.9/max (ms, HdrHistograms merged across the load processes), errors by
exception kind, server CPU seconds per 1,000 ops (every node process), client CPU seconds per
1,000 ops, RSS and PSS per node, CPU per process (per actor for zoomq). `--json FILE` writes the
whole result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import zmq

from bench.hist import Histogram
from bench.report import ProgressBar, format_run
from bench.targets import (
    INSTALL_HINT,
    TARGETS,
    Target,
    cpu_seconds,
    four_letter,
    make_target,
    memory_mib,
    zookeeper_available,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120.0  # every client connected and prepared
RESULT_GRACE_S = 90.0  # after the window: the clients drain, stop and report
POLL_MS = 100

Progress = Callable[[float, str], None]  # (fraction of this run, what happens now)


def workload_arg(value: str) -> str:
    base = value.split(":", 1)[0]
    if base == "mixed":
        try:
            pct = float(value.split(":", 1)[1])
        except (IndexError, ValueError):
            raise argparse.ArgumentTypeError("mixed:R needs R, the percentage of reads (0..100)") from None
        if not 0 <= pct <= 100:
            raise argparse.ArgumentTypeError("mixed:R: R must be within 0..100")
        return value
    if value not in ("create", "set", "get", "exists", "get-lin", "sync-get", "churn", "watch", "lock"):
        raise argparse.ArgumentTypeError(f"unknown workload {value!r}")
    return value


def add_arguments(p: argparse.ArgumentParser, target_flag: bool = True) -> None:
    if target_flag:
        p.add_argument("--target", choices=TARGETS, default="zoomq")
    p.add_argument("--nodes", type=int, choices=(1, 3, 5), default=1, help="participants: 1 = standalone")
    p.add_argument("--observers", type=int, default=0, help="observers besides the participants")
    p.add_argument(
        "--workload",
        type=workload_arg,
        default="set",
        help="create | set | get | exists | get-lin (linearizable get) | sync-get | mixed:R (R %% reads) | churn | watch | lock",
    )
    p.add_argument("--clients", type=int, default=1, help="client processes (watch: watchers, plus one writer)")
    p.add_argument("--depth", type=int, default=64, help="requests in flight per client (churn: znodes per session)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the measurement")
    p.add_argument("--value-size", type=int, default=100, help="bytes per value")
    p.add_argument("--tick-ms", type=int, default=2000, help="the target's tick (ZooKeeper's tickTime)")
    p.add_argument(
        "--connect",
        choices=("spread", "followers", "leader"),
        default="spread",
        help="which nodes the clients use (spread: all, the non-leaders first)",
    )
    p.add_argument(
        "--client",
        choices=("native", "kazoo"),
        default="native",
        help="zoomq's own client, or kazoo through zoomq's ZooKeeper-protocol port (ZooKeeper is always driven by kazoo)",
    )
    p.add_argument("--session-timeout", type=float, default=30.0, help="client session timeout, s")
    p.add_argument(
        "--layout",
        choices=("local", "netns"),
        default="local",
        help="local: every node on 127.0.0.1; netns: each node on its own network host (root; bench/nemesis)",
    )
    p.add_argument(
        "--link-delay-ms",
        type=float,
        default=0.0,
        help="with --layout netns: delay added to every peer and client link (jitter: a fifth of it)",
    )
    p.add_argument("--json", metavar="FILE", default=None, help="write the result as JSON to FILE")


class RunError(RuntimeError):
    """A client process failed or the target did not come up; the message says which and why."""


def run_once(target_name: str, opts: argparse.Namespace, progress: Progress | None = None) -> dict[str, Any]:
    """Start the target, load it, stop it; the result dict (see the module docstring)."""
    say = progress or (lambda fraction, text: None)
    say(0.0, f"{target_name}: starting {opts.nodes + opts.observers} node(s)")
    if getattr(opts, "layout", "local") == "netns":
        from bench.nemesis.layout import NetnsTarget

        target: Target = NetnsTarget(target_name, opts.nodes, opts.observers, opts.tick_ms, opts.link_delay_ms)
    else:
        target = make_target(
            target_name, opts.nodes, opts.observers, opts.tick_ms, client=getattr(opts, "client", "native")
        )
    try:
        target.start(timeout=120.0)
        result = measure(target, opts, say)
    finally:
        say(1.0, f"{target_name}: stopping")
        target.stop()
    return result


def _client_specs(target: Target, opts: argparse.Namespace, endpoint: str) -> list[dict[str, Any]]:
    hosts = target.client_hosts(opts.connect)
    watch = opts.workload == "watch"
    n = opts.clients + (1 if watch else 0)  # watch: the writer is the last process
    specs = []
    for i in range(n):
        role = ("writer" if i == opts.clients else "watcher") if watch else "client"
        specs.append(
            {
                "id": i,
                "role": role,
                "target": target.name,
                "hosts": hosts[i % len(hosts)],
                "endpoint": endpoint,
                "workload": opts.workload,
                "depth": opts.depth,
                "value_size": opts.value_size,
                "session_timeout": opts.session_timeout,
                "client": "kazoo" if target.name == "zookeeper" else getattr(opts, "client", "native"),
            }
        )
    return specs


class _Clients:
    """The client processes and the PULL socket they report to."""

    def __init__(
        self,
        specs_for: Callable[[str], list[dict[str, Any]]],
        prefix: list[str] | None = None,
        endpoint: str | None = None,
    ) -> None:
        """`prefix`: what runs each client process (e.g. `ip netns exec NS`); `endpoint`: where
        they report (default: a free tcp://127.0.0.1 port)."""
        self.ctx = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        if endpoint is None:
            endpoint = f"tcp://127.0.0.1:{self.pull.bind_to_random_port('tcp://127.0.0.1')}"
        else:
            self.pull.bind(endpoint)
        self.specs = specs_for(endpoint)
        self.logdir = Path(tempfile.mkdtemp(prefix="bench-clients-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.messages: dict[str, dict[int, dict[str, Any]]] = {"ready": {}, "result": {}}
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            for spec in self.specs:
                log = open(self.logdir / f"client{spec['id']}.log", "wb")  # noqa: SIM115 - the child owns it
                try:
                    self.procs.append(
                        subprocess.Popen(
                            [*(prefix or []), sys.executable, "-m", "bench.loadgen", json.dumps(spec)],
                            cwd=REPO_ROOT,
                            env=env,
                            stdin=subprocess.PIPE,
                            stdout=log,
                            stderr=log,
                            start_new_session=True,
                        )
                    )
                finally:
                    log.close()
        except BaseException:
            self.close()  # the ones already started
            raise

    def log_tail(self, i: int, size: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return (self.logdir / f"client{i}.log").read_text(errors="replace")[-size:]
        return ""

    def poll(self, until: float) -> None:
        """Receive reports until monotonic time `until`; RunError on a failed or vanished client."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            if self.pull.poll(min(POLL_MS, max(1, int(left * 1000)))):
                for _ in range(1000):
                    try:
                        msg = self.pull.recv_json(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if msg["kind"] == "failed":
                        raise RunError(f"client {msg.get('id')} failed:\n{msg.get('error')}")
                    self.messages[msg["kind"]][int(msg["id"])] = msg
            for i, proc in enumerate(self.procs):
                code = proc.poll()
                if code not in (None, 0) or (code == 0 and i not in self.messages["result"]):
                    # A clean exit delivers its result first; give the socket one more look.
                    if code == 0 and self.pull.poll(200):
                        continue
                    raise RunError(f"client {i} exited with code {code}; its log:\n{self.log_tail(i)}")

    def wait_for(
        self, kind: str, timeout: float, progress: Callable[[int], None] | None = None
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.messages[kind]) < len(self.procs):
            if time.monotonic() >= deadline:
                missing = sorted(set(range(len(self.procs))) - set(self.messages[kind]))
                raise RunError(
                    f"no {kind!r} from clients {missing} within {timeout:g} s; first log:\n{self.log_tail(missing[0])}"
                )
            self.poll(min(deadline, time.monotonic() + POLL_MS / 1000))
            if progress is not None:
                progress(len(self.messages[kind]))
        return [self.messages[kind][i] for i in range(len(self.procs))]

    def go(self, start_ns: int, end_ns: int) -> None:
        line = (json.dumps({"start": start_ns, "end": end_ns}) + "\n").encode()
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(line)
            proc.stdin.flush()

    def close(self) -> None:
        """Wait (bounded) for the clients to exit; kill the trees of those that do not, by PID."""
        for proc in self.procs:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
        deadline = time.monotonic() + 15.0
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                tree: list[psutil.Process] = []
                with contextlib.suppress(psutil.Error):
                    tree = psutil.Process(proc.pid).children(recursive=True)
                proc.kill()
                for p in tree:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10.0)
        self.pull.close()
        self.ctx.term()
        shutil.rmtree(self.logdir, ignore_errors=True)


def _sample_cpu(procs: dict[str, psutil.Process]) -> dict[int, tuple[str, float]]:
    return {p.pid: (label, cpu_seconds(p)) for label, p in procs.items()}


def server_version(target: Target) -> str | None:
    if target.name == "zoomq":
        import zoomq

        return zoomq.__version__
    node = target.nodes()[0]
    host, _, port = node.hosts.rpartition(":")
    with contextlib.suppress(OSError):
        first = four_letter(host, int(port), "srvr").splitlines()[0]  # "Zookeeper version: 3.8.0-..., built on ..."
        return first.split(":", 1)[1].split(",")[0].split("-")[0].strip()
    return None


def measure(target: Target, opts: argparse.Namespace, say: Progress) -> dict[str, Any]:
    """Load a started target with the clients of `opts` and return the result."""
    clients = _Clients(
        lambda endpoint: _client_specs(target, opts, endpoint),
        prefix=getattr(target, "client_prefix", list)(),
        endpoint=getattr(target, "report_endpoint", lambda: None)(),
    )
    n = len(clients.procs)
    try:
        clients.wait_for("ready", READY_TIMEOUT_S, lambda k: say(0.02, f"{target.name}: {k}/{n} clients ready"))
        go = time.monotonic_ns()
        start_ns = go + int(opts.warmup * 1e9)
        end_ns = start_ns + int(opts.duration * 1e9)
        clients.go(start_ns, end_ns)
        procs = target.processes()
        total_s = (end_ns - go) / 1e9

        def tick_until(t_ns: int, phase: str) -> None:
            for _ in range(1_000_000):
                now = time.monotonic_ns()
                if now >= t_ns:
                    return
                say(
                    0.05 + 0.9 * (now - go) / 1e9 / total_s,
                    f"{target.name}: {phase} {(now - go) / 1e9:.1f}/{total_s:.1f} s",
                )
                clients.poll(time.monotonic() + min(0.2, (t_ns - now) / 1e9))

        tick_until(start_ns, "warm-up")
        cpu0 = _sample_cpu(procs)
        tick_until(end_ns, "measuring")
        cpu1 = _sample_cpu({**procs, **target.processes()})  # with any process started meanwhile
        memory = []
        for node in target.nodes():
            tree = [p for label, p in procs.items() if label.startswith(node.label + ":")]
            rss, pss = memory_mib(tree)
            memory.append(
                {
                    "node": node.label,
                    "role": node.role,
                    "hosts": node.hosts,
                    "rss_mib": round(rss, 1),
                    "pss_mib": round(pss, 1),
                }
            )
        say(0.96, f"{target.name}: draining")
        results = clients.wait_for("result", RESULT_GRACE_S)
    finally:
        clients.close()
    return _aggregate(target, opts, results, cpu0, cpu1, memory)


def _aggregate(
    target: Target,
    opts: argparse.Namespace,
    results: list[dict[str, Any]],
    cpu0: dict[int, tuple[str, float]],
    cpu1: dict[int, tuple[str, float]],
    memory: list[dict[str, Any]],
) -> dict[str, Any]:
    hist = Histogram()
    by_kind: dict[str, Histogram] = {}
    errors: dict[str, int] = {}
    extra_hists: dict[str, Histogram] = {}
    extra: dict[str, Any] = {}
    for r in results:
        hist.merge(Histogram.from_dict(r["hist"]))
        for kind, h in r.get("by_kind", {}).items():
            by_kind.setdefault(kind, Histogram()).merge(Histogram.from_dict(h))
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
        for k, v in (r.get("extra") or {}).items():
            if k.endswith("_hist"):
                extra_hists.setdefault(k, Histogram()).merge(Histogram.from_dict(v))
            elif isinstance(v, int | float):
                extra[k] = extra.get(k, 0) + v
    ops = sum(r["ops"] for r in results)
    duration = opts.duration
    per_1k = (lambda s: round(s / ops * 1000.0, 5)) if ops else (lambda s: None)
    cpu_per_process = {}
    for pid, (label, after) in sorted(cpu1.items(), key=lambda kv: kv[1][0]):
        before = cpu0.get(pid, (label, 0.0))[1]
        spent = max(0.0, after - before)
        cpu_per_process[label] = {"cpu_s": round(spent, 3), "s_per_1k_ops": per_1k(spent)}
    server_cpu = sum(v["cpu_s"] for v in cpu_per_process.values())
    client_cpu = sum(r["cpu_s"] for r in results)
    for k, h in extra_hists.items():
        extra[k[: -len("_hist")] + "_latency_ms"] = h.summary_ms()
    if opts.workload == "lock":
        counts = [r["ops"] for r in results]
        extra["acquisitions_per_client"] = counts
        extra["fairness"] = round(min(counts) / max(counts), 3) if max(counts) else 0.0
    if "sessions" in extra:
        extra["sessions_per_s"] = round(extra["sessions"] / duration, 1)
    if "writes" in extra:
        extra["writes_per_s"] = round(extra["writes"] / duration, 1)
    return {
        "target": target.name,
        "client": "kazoo" if target.name == "zookeeper" else getattr(opts, "client", "native"),
        "server_version": server_version(target),
        "nodes": opts.nodes,
        "observers": opts.observers,
        "workload": opts.workload,
        "clients": opts.clients,
        "depth": opts.depth,
        "duration_s": duration,
        "warmup_s": opts.warmup,
        "value_size": opts.value_size,
        "tick_ms": opts.tick_ms,
        "connect": opts.connect,
        "ops": ops,
        "ops_per_s": round(ops / duration, 1),
        **hist.summary_ms(),
        "latency_by_kind": {k: h.summary_ms() for k, h in sorted(by_kind.items())},
        "errors": errors,
        "errors_total": sum(errors.values()),
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_s_per_1k_ops": per_1k(server_cpu),
        "client_cpu_s": round(client_cpu, 3),
        "client_cpu_s_per_1k_ops": per_1k(client_cpu),
        "rss_mib_total": round(sum(m["rss_mib"] for m in memory), 1),
        "pss_mib_total": round(sum(m["pss_mib"] for m in memory), 1),
        "nodes_detail": memory,
        "cpu_per_process": cpu_per_process,
        "clients_detail": [
            {
                "id": r["id"],
                "role": r["role"],
                "hosts": r["hosts"],
                "ops": r["ops"],
                "cpu_s": round(r["cpu_s"], 3),
                "errors": r["errors"],
            }
            for r in results
        ],
        "extra": extra,
        "histogram_us": hist.to_dict(),
    }


def run(args: argparse.Namespace) -> int:
    if args.target == "zookeeper" and not zookeeper_available():
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    bar = ProgressBar(1)
    try:
        result = run_once(args.target, args, lambda fraction, text: bar.update(0, fraction, text))
    except RunError as exc:
        bar.close()
        print(f"run failed: {exc}", file=sys.stderr)
        return 1
    bar.update(1, 0.0, "done", force=True)
    bar.close()
    print(format_run(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


__all__ = ["RunError", "add_arguments", "measure", "run", "run_once", "workload_arg"]
