"""`run`: the whole demo in one command.

1. an ensemble of 3 zoomq nodes on 127.0.0.1 (zoomq.testing.ZoomqEnsemble, data in the work dir),
   or the one `--hosts` names;
2. the sink, then the collectors, which elect a coordinator and get every source assigned and
   owned; then one producer per source (`--rate` lines/s for `--duration`);
3. every `--kill-every`, a SIGKILL to a collector that holds sources (at most `--kills` of them),
   followed at once by a replacement collector. Optionally (`--freeze-every`), a SIGSTOP to one
   for longer than its session timeout, then SIGCONT: its session has expired meanwhile, so it
   must stop (and a batch it ships before noticing is refused by the sink's fencing). A collector
   that exits by itself is replaced. A progress view on stderr: per collector, the sources it
   holds and its lines/s;
4. once the producers are done, a wait (at most `--drain-timeout`) until the sink has every line;
5. the check (verify.py) and the summary: lines produced and collected, lost, duplicates in the
   output, reassignments, and the longest time a source went uncollected. Exit code 0 only when
   nothing was lost or duplicated.

Every process it starts is stopped at the end, on Ctrl-C too: SIGTERM, then SIGKILL of whatever
is left of its process tree, by PID only.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from demo.logcollector.common import (
    ALL_PATHS,
    COLLECTORS,
    OWNERS,
    REASSIGNMENTS,
    ROOT,
    SOURCES,
    STATUS,
    decode,
    encode,
    kill_tree,
    line_number,
    source_names,
    spawn,
    stop_trees,
)
from demo.logcollector.producer import produced_count
from demo.logcollector.sink import SinkClient, SinkUnavailable
from demo.logcollector.verify import check

TICK_S = 0.5  # how often the runner looks at the system (and redraws the view)


@dataclass
class Options:
    sources: int = 6
    collectors: int = 3
    duration: float = 30.0
    rate: float = 50.0
    kill_every: float = 5.0  # 0: no kills
    kills: int | None = None  # at most this many (None: as many as fit in the duration)
    freeze_every: float = 0.0  # 0: no freezes
    session_timeout: float = 2.0
    heartbeat: float = 0.5
    drain_timeout: float = 30.0
    hosts: str | None = None
    workdir: Path | None = None
    keep: bool = False
    json_path: Path | None = None
    seed: int | None = None


@dataclass
class Proc:
    role: str  # "sink", "producer", "collector"
    popen: subprocess.Popen[bytes]
    log: Path
    killed: bool = False  # by the runner, on purpose
    reported: bool = False  # its exit was noticed


class Runner:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.sources = source_names(options.sources)
        self.count = max(1, int(options.rate * options.duration))  # lines per source
        self.own_workdir = options.workdir is None
        self.workdir = options.workdir or Path(tempfile.mkdtemp(prefix="logcollector-"))
        self.logs_dir = self.workdir / "logs"
        self.sink_dir = self.workdir / "sink"
        self.procs_dir = self.workdir / "processes"
        self.procs: list[Proc] = []
        self.ensemble: Any = None
        self.client: Any = None
        self.sink: SinkClient | None = None
        self.view = ProgressView(sys.stderr)
        self.t0 = 0.0
        self.kills: list[dict[str, Any]] = []
        self.freezes: list[dict[str, Any]] = []
        self.frozen: dict[int, float] = {}  # pid -> when to SIGCONT it
        self.names: dict[int, str] = {}  # pid -> name of every collector seen registered
        self.restarts: list[dict[str, Any]] = []
        self.collector_serial = 0

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> int:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        summary: dict[str, Any] | None = None
        code = 1
        try:
            self._start()
            self._produce()
            drained = self._drain()
            summary = self._summarize(drained)
        except KeyboardInterrupt:
            self.view.event("interrupted: stopping every process")
            code = 130
        except Exception:  # noqa: BLE001 - reported, and everything is still stopped
            self.view.event("the run failed:\n" + traceback.format_exc())
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
            self._stop_all()
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if summary is None:
            if self.own_workdir and not self.o.keep and code == 130:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:
                print(f"logs, sink output and process logs kept in {self.workdir}", file=sys.stderr)
            return code
        print(format_summary(summary), flush=True)
        if self.o.json_path is not None:
            self.o.json_path.write_text(json.dumps(summary, indent=2) + "\n")
        if self.own_workdir and not self.o.keep and summary["ok"]:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            print(f"logs, sink output and process logs kept in {self.workdir}", file=sys.stderr)
        return 0 if summary["ok"] else 1

    def _start(self) -> None:
        from zoomq import Client

        for d in (self.logs_dir, self.sink_dir, self.procs_dir):
            d.mkdir(parents=True, exist_ok=True)
        hosts = self.o.hosts
        if hosts is None:
            from zoomq.testing import ZoomqEnsemble

            self.view.event("starting an ensemble of 3 zoomq nodes on 127.0.0.1")
            self.ensemble = ZoomqEnsemble(3, base_dir=self.workdir / "ensemble")
            self.ensemble.start()
            hosts = self.ensemble.hosts
        self.hosts = hosts
        self.view.event(f"ensemble: {hosts}; work dir {self.workdir}")
        self.client = Client(hosts=hosts, timeout=10.0)
        self.client.start(timeout=30)
        if self.client.exists(ROOT):
            self.client.delete(ROOT, recursive=True)  # a fresh tree for this run
        for path in ALL_PATHS:
            self.client.ensure_path(path)

        from zoomq.testing import free_port

        port = free_port()
        self.sink_address = f"tcp://127.0.0.1:{port}"
        self._spawn("sink", ["sink", "--dir", str(self.sink_dir), "--port", str(port)], "sink")
        self.sink = SinkClient(self.sink_address, timeout=1.0)
        self.sink.request({"op": "ping"}, attempts=15)
        for _ in range(self.o.collectors):
            self._spawn_collector()
        # The sources appear once every collector has registered, so that the first assignment is
        # already balanced (no moves at line 0 that would count as reassignments).
        self._wait(lambda: len(self.client.get_children(COLLECTORS)) >= self.o.collectors, 30.0, "the collectors")
        for src in self.sources:
            log_file = (self.logs_dir / f"{src}.log").resolve()
            self.client.create(f"{SOURCES}/{src}", encode({"file": str(log_file), "assigned": None, "moves": 0}))
        self.view.event(f"{self.o.collectors} collectors registered; waiting until every source is owned")
        self._wait(lambda: len(self._owners()) == len(self.sources), 30.0, "every source assigned and owned")
        for src in self.sources:
            self._spawn(
                "producer",
                [
                    "producer",
                    "--name",
                    src,
                    "--file",
                    str(self.logs_dir / f"{src}.log"),
                    "--count",
                    str(self.count),
                    "--rate",
                    str(self.o.rate),
                ],
                src,
            )
        self.t0 = time.monotonic()
        self.view.event(f"{len(self.sources)} sources producing {self.count} lines each at {self.o.rate:g} lines/s")

    def _produce(self) -> None:
        """Until the duration is over: watch, kill collectors on schedule, replace the lost."""
        next_kill = self.t0 + self.o.kill_every if self.o.kill_every > 0 else float("inf")
        # Freezes are offset by half a kill period, so that a freeze and a kill do not come together.
        next_freeze = self.t0 + self.o.freeze_every + self.o.kill_every / 2 if self.o.freeze_every > 0 else float("inf")
        while time.monotonic() < self.t0 + self.o.duration:
            self._replace_exited()
            self._thaw()
            due = time.monotonic() >= next_kill and (self.o.kills is None or len(self.kills) < self.o.kills)
            if due and self._kill_one():
                next_kill += self.o.kill_every
            if time.monotonic() >= next_freeze and self._freeze_one():
                next_freeze += self.o.freeze_every
            self._show()
            time.sleep(TICK_S)  # pacing of the runner's loop

    def _drain(self) -> bool:
        """Wait (bounded) for the producers to finish and the sink to have every line."""
        deadline = time.monotonic() + self.o.drain_timeout
        while time.monotonic() < deadline:
            self._replace_exited()
            self._thaw()
            self._show()
            producers_done = all(p.popen.poll() is not None for p in self.procs if p.role == "producer")
            if producers_done and self._all_collected():
                return True
            time.sleep(TICK_S)
        self.view.event(f"not everything was collected within --drain-timeout {self.o.drain_timeout:g}s")
        return False

    def _all_collected(self) -> bool:
        stats = self._sink_stats()
        for src in self.sources:
            total = produced_count(self.logs_dir / f"{src}.log")
            if total is None or stats.get(src, {}).get("next", 1) - 1 < total:
                return False
        return True

    # --- processes ----------------------------------------------------------------------------

    def _spawn(self, role: str, args: list[str], label: str) -> Proc:
        log = self.procs_dir / f"{role}-{label}.log"
        proc = Proc(role, spawn(args, log), log)
        self.procs.append(proc)
        return proc

    def _spawn_collector(self) -> Proc:
        self.collector_serial += 1
        args = [
            "collector",
            "--hosts",
            self.hosts,
            "--sink",
            self.sink_address,
            "--session-timeout",
            str(self.o.session_timeout),
            "--heartbeat",
            str(self.o.heartbeat),
        ]
        return self._spawn("collector", args, str(self.collector_serial))

    def _running_collectors(self) -> dict[int, Proc]:
        return {
            p.popen.pid: p
            for p in self.procs
            if p.role == "collector" and not p.killed and p.popen.poll() is None and p.popen.pid not in self.frozen
        }

    def _pick_victim(self) -> tuple[int, str, list[str]] | None:
        """A running collector that holds at least one source that is still assigned to it (not
        on its way to another collector): (pid, name, those sources)."""
        running = self._running_collectors()
        names = self._collector_names()  # pid -> name, of the registered ones
        holding: dict[str, list[str]] = {}
        for src, holder in self._owners().items():
            with contextlib.suppress(Exception):
                if decode(self.client.get(f"{SOURCES}/{src}")[0]).get("assigned") == holder:
                    holding.setdefault(holder, []).append(src)
        candidates = [pid for pid in running if names.get(pid) in holding]
        if not candidates:
            return None  # nobody holds anything right now (all moving): try again next tick
        pid = self.rng.choice(sorted(candidates))
        return pid, names[pid], sorted(holding[names[pid]])

    def _kill_one(self) -> bool:
        """SIGKILL a collector that holds at least one source, then start a replacement."""
        victim = self._pick_victim()
        if victim is None:
            return False
        pid, name, held = victim
        proc = self._running_collectors()[pid]
        proc.killed = True
        kill_tree(pid)
        proc.popen.wait()
        self.kills.append(
            {"t": round(time.monotonic() - self.t0, 2), "ts": time.time(), "collector": name, "pid": pid, "held": held}
        )
        self.view.event(f"SIGKILL {name} (pid {pid}) holding {', '.join(held)}; starting a replacement")
        self._spawn_collector()
        return True

    def _freeze_one(self) -> bool:
        """SIGSTOP a collector that holds sources, for longer than its session timeout."""
        victim = self._pick_victim()
        if victim is None:
            return False
        pid, name, held = victim
        pause = 2 * self.o.session_timeout + 1.0
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).suspend()
        self.frozen[pid] = time.monotonic() + pause
        self.freezes.append(
            {
                "t": round(time.monotonic() - self.t0, 2),
                "ts": time.time(),
                "collector": name,
                "pid": pid,
                "held": held,
                "frozen_s": pause,
            }
        )
        self.view.event(f"SIGSTOP {name} (pid {pid}) holding {', '.join(held)} for {pause:g}s: its session will expire")
        return True

    def _thaw(self, everyone: bool = False) -> None:
        for pid, at in list(self.frozen.items()):
            if everyone or time.monotonic() >= at:
                del self.frozen[pid]
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).resume()
                if not everyone:
                    self.view.event(f"SIGCONT pid {pid}: it must find its session gone and stop")

    def _replace_exited(self) -> None:
        for proc in list(self.procs):
            code = proc.popen.poll()
            if proc.role != "collector" or proc.killed or proc.reported or code is None:
                continue
            proc.reported = True
            why = "its session was lost" if code == 3 else f"exit code {code}"
            name = self.names.get(proc.popen.pid, "collector")
            self.restarts.append(
                {"t": round(time.monotonic() - self.t0, 2), "collector": name, "pid": proc.popen.pid, "code": code}
            )
            self.view.event(f"{name} (pid {proc.popen.pid}) exited ({why}; log {proc.log}); starting a replacement")
            self._spawn_collector()

    def _stop_all(self) -> None:
        """Collectors first (they give their sources back), then producers and the sink, then the
        ensemble; SIGTERM, then SIGKILL of what is left, by PID."""
        self._thaw(everyone=True)  # a stopped process would not act on SIGTERM
        for role in ("collector", "producer", "sink"):
            stop_trees([p.popen.pid for p in self.procs if p.role == role and p.popen.poll() is None], timeout=5.0)
            for p in self.procs:
                if p.role == role:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.popen.wait(1.0)
        if self.sink is not None:
            self.sink.close()
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.stop()
        if self.ensemble is not None:
            self.ensemble.stop()

    # --- what zoomq and the sink say ----------------------------------------------------------

    def _owners(self) -> dict[str, str]:
        out = {}
        for src in self.client.get_children(OWNERS):
            with contextlib.suppress(Exception):
                out[src] = self.client.get(f"{OWNERS}/{src}")[0].decode()
        return out

    def _collector_names(self) -> dict[int, str]:
        out = {}
        for name in self.client.get_children(COLLECTORS):
            with contextlib.suppress(Exception):
                out[int(decode(self.client.get(f"{COLLECTORS}/{name}")[0])["pid"])] = name
        self.names.update(out)
        return out

    def _statuses(self, names: list[str]) -> dict[str, dict[str, Any]]:
        out = {}
        for name in names:
            with contextlib.suppress(Exception):
                out[name] = decode(self.client.get(f"{STATUS}/{name}")[0])
        return out

    def _reassignments(self) -> list[dict[str, Any]]:
        out = []
        for child in sorted(self.client.get_children(REASSIGNMENTS)):
            with contextlib.suppress(Exception):
                out.append(decode(self.client.get(f"{REASSIGNMENTS}/{child}")[0]))
        return out

    def _sink_stats(self) -> dict[str, dict[str, Any]]:
        assert self.sink is not None
        try:
            return self.sink.request({"op": "stats"}, attempts=3).get("sources", {})
        except SinkUnavailable:
            return {}

    def _produced_so_far(self, src: str) -> int:
        """The number of the last complete line in a source's log (read from its tail)."""
        path = self.logs_dir / f"{src}.log"
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 256))
                lines = f.read().split(b"\n")[:-1]
            return line_number(lines[-1]) if lines else 0
        except (OSError, ValueError):
            return 0

    def _wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
            time.sleep(0.1)  # polling the system under test, bounded by the deadline

    # --- the view -----------------------------------------------------------------------------

    def _show(self) -> None:
        names = sorted(self.client.get_children(COLLECTORS))
        statuses = self._statuses(names)
        pids = {name: pid for pid, name in self._collector_names().items()}
        stats = self._sink_stats()
        produced = sum(self._produced_so_far(src) for src in self.sources)
        collected = sum(stats.get(src, {}).get("next", 1) - 1 for src in self.sources)
        moves = len(self.client.get_children(REASSIGNMENTS))
        elapsed = time.monotonic() - self.t0
        lines = [
            (
                f"t={elapsed:5.1f}s  produced {produced}  collected {collected}  behind {produced - collected}  "
                f"kills {len(self.kills)}  reassignments {moves}"
            ),
            f"  {'collector':<14}{'pid':>8}  {'lines/s':>8}  sources held",
        ]
        killed = {p.popen.pid for p in self.procs if p.killed}
        for name in names:
            st = statuses.get(name, {})
            mark = " (coordinator)" if st.get("coordinator") else ""
            if pids.get(name) in killed:
                mark += "  [killed: its session has not expired yet]"
            elif pids.get(name) in self.frozen:
                mark += "  [frozen]"
            held = ", ".join(st.get("held", [])) or "-"
            lines.append(f"  {name:<14}{pids.get(name, 0):>8}  {float(st.get('rate', 0.0)):>8.1f}  {held}{mark}")
        self.view.show(lines)

    # --- the summary --------------------------------------------------------------------------

    def _summarize(self, drained: bool) -> dict[str, Any]:
        stats = self._sink_stats()
        per_source = check(self.sources, self.logs_dir, self.sink_dir)
        records = self._reassignments()
        for src, row in per_source.items():
            sink = stats.get(src, {})
            row["longest_uncollected_s"] = sink.get("longest_uncollected_s", 0.0)
            row["duplicates_dropped_by_sink"] = sink.get("duplicates_dropped", 0)
            row["fenced_batches"] = sink.get("fenced", 0)
        for kill in self.kills + self.freezes:
            kill["reassigned"] = sum(
                1 for r in records if r.get("from") == kill["collector"] and r.get("ts", 0) >= kill["ts"]
            )
        by_reason: dict[str, int] = {}
        for record in records:
            by_reason[record.get("reason", "?")] = by_reason.get(record.get("reason", "?"), 0) + 1
        worst = max(per_source, key=lambda s: per_source[s]["longest_uncollected_s"])
        total = {
            key: sum(int(row[key]) for row in per_source.values())
            for key in (
                "produced",
                "collected",
                "lost",
                "duplicates",
                "unexpected",
                "duplicates_dropped_by_sink",
                "fenced_batches",
            )
        }
        ok = total["lost"] == 0 and total["duplicates"] == 0 and total["unexpected"] == 0
        return {
            "ok": ok,
            "sources": len(self.sources),
            "collectors": self.o.collectors,
            "duration_s": self.o.duration,
            "rate_per_source": self.o.rate,
            "session_timeout_s": self.o.session_timeout,
            "lines_produced": total["produced"],
            "lines_collected": total["collected"],
            "lost": total["lost"],
            "duplicates": total["duplicates"],
            "unexpected_lines": total["unexpected"],
            "all_collected_in_time": drained,
            "duplicates_dropped_by_sink": total["duplicates_dropped_by_sink"],
            "fenced_batches": total["fenced_batches"],
            "kills": self.kills,
            "freezes": self.freezes,
            "collector_restarts": self.restarts,
            "reassignments": len(records),
            "reassignments_by_reason": by_reason,
            "reassignment_log": records,
            "longest_uncollected_s": per_source[worst]["longest_uncollected_s"],
            "longest_uncollected_source": worst,
            "per_source": per_source,
            "elapsed_s": round(time.monotonic() - self.t0, 2),
            "processes": self._process_list(),
        }

    def _process_list(self) -> list[dict[str, Any]]:
        """Every process this run started (and the ensemble's nodes with their actors), with its
        start time: what `_stop_all` must leave none of."""
        out = [{"role": p.role, "pid": p.popen.pid} for p in self.procs]
        for node in self.ensemble.nodes if self.ensemble is not None else []:
            if node.pid is not None:
                out.append({"role": "zoomq node", "pid": node.pid})
                out.extend({"role": "zoomq actor", "pid": pid} for pid in node.actor_pids().values())
        for entry in out:
            try:
                entry["create_time"] = psutil.Process(entry["pid"]).create_time()
            except psutil.Error:
                entry["create_time"] = None  # already gone (killed on purpose)
        return out


def format_summary(s: dict[str, Any]) -> str:
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s["reassignments_by_reason"].items())) or "none"
    rows = [
        (
            f"log-collector demo: {s['sources']} sources, {s['collectors']} collectors, {s['duration_s']:g} s; "
            f"collector kills {len(s['kills'])}, freezes {len(s['freezes'])}, "
            f"collectors that stopped by themselves {len(s['collector_restarts'])}"
        ),
        f"  lines produced        {s['lines_produced']:>8}",
        f"  lines collected       {s['lines_collected']:>8}",
        f"  lost                  {s['lost']:>8}",
        (
            f"  duplicates in output  {s['duplicates']:>8}   (re-shipped lines the sink dropped: "
            f"{s['duplicates_dropped_by_sink']}; fenced batches: {s['fenced_batches']})"
        ),
        f"  reassignments         {s['reassignments']:>8}   ({reasons})",
        f"  longest uncollected   {s['longest_uncollected_s']:>8.2f} s ({s['longest_uncollected_source']})",
    ]
    if s["unexpected_lines"]:
        rows.append(f"  unexpected lines      {s['unexpected_lines']:>8}")
    if not s["all_collected_in_time"]:
        rows.append("  not everything was collected within the drain timeout")
    rows.append("OK: every line exactly once" if s["ok"] else "FAILED: lines were lost or duplicated")
    return "\n".join(rows)


class ProgressView:
    """The live view on stderr: redrawn in place on a terminal; elsewhere (a pipe, a file) printed
    every few seconds. `event()` lines (kills, restarts) go above it and stay."""

    PLAIN_EVERY_S = 3.0

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.drawn = 0
        self.last_plain = 0.0

    def _erase(self) -> None:
        if self.tty and self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def show(self, lines: list[str]) -> None:
        if self.tty:
            self._erase()
            self.stream.write("\n".join(lines) + "\n")
            self.drawn = len(lines)
        elif time.monotonic() - self.last_plain >= self.PLAIN_EVERY_S:
            self.last_plain = time.monotonic()
            self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def event(self, text: str) -> None:
        self._erase()
        self.stream.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        self.stream.flush()


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def run(options: Options) -> int:
    return Runner(options).run()
