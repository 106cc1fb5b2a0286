"""The nemesis's clients: `python -m bench.nemesis.worker SPEC.json`, run in the clients' namespace.

One process, one thread per client, each with its own session (zoomq.Client, or kazoo's
KazooClient for `--target zookeeper`: the same API, so the same code). Every operation is written to
`history.jsonl` as one JSON line once it ends:

    {"w": workload, "c": client, "f": op, "k": key, "v": value, "t0": call, "t1": return or null,
     "r": "ok" | "fail" | "info", ...}

`t0`/`t1` are `time.monotonic()` (one clock for every process of the machine, so the harness's fault
times compare). "fail" is a definite refusal (BadVersion, NoNode, NodeExists); "info" is an
outcome nobody knows (connection loss, timeout, session expired): the write may or may not have
happened, as Jepsen counts it. The workloads:

- register: sync + get / set / cas on a few keys (a fresh set of keys every KEY_EPOCH_S), each client
  on one node; checked for linearizability.
- seq: sequential creates under /seq; every acknowledged name must be there at the end.
- queue: producers create /queue/q-NNN with a unique value, consumers get and delete the oldest;
  every acknowledged put consumed once (or still there at the end), none twice.
- lock: kazoo's Lock recipe on /lock; a holder writes its lock node's sequence number (the fencing
  token) to /fence with a version check, unless a newer token is there already.
- eph: a session makes an ephemeral node and checks (sync + exists) that it stays while the session
  lives; a new session after an expiry; all sessions close at the end.

The run ends when `stop_file` appears or at `deadline`; then `final` mode (`--final`) reads what
each node holds, one client per node, into `final.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEY_EPOCH_S = 10.0
KEYS_PER_EPOCH = 3
OP_TIMEOUT_S = 5.0
DEFINITE = {"BadVersionError", "NoNodeError", "NodeExistsError", "NotEmptyError"}


def client_class(target: str) -> Any:
    if target == "zookeeper":
        from kazoo.client import KazooClient

        return KazooClient
    from zoomq import Client

    return Client


def reg_key(epoch: int, j: int) -> str:
    return f"/reg/e{epoch}k{j}"


def reg_epochs(duration_s: float) -> int:
    return int(duration_s / KEY_EPOCH_S) + 2


class History:
    """history.jsonl, appended by every thread; counts per workload for the progress file."""

    def __init__(self, out: Path) -> None:
        self._f = open(out / "history.jsonl", "a", buffering=1 << 16)  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()
        self.counts: dict[str, dict[str, int]] = {}

    def add(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, separators=(",", ":"))
        with self._lock:
            self._f.write(line + "\n")
            per = self.counts.setdefault(rec["w"], {"ok": 0, "fail": 0, "info": 0})
            if rec.get("r") in per:
                per[rec["r"]] += 1

    def flush(self) -> None:
        with self._lock:
            self._f.flush()

    def close(self) -> None:
        with self._lock:
            self._f.close()


class Worker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.out = Path(spec["out"])
        self.cls = client_class(spec["target"])
        self.hosts: list[str] = spec["hosts"]
        self.deadline = time.monotonic() + spec["duration"]
        self.stop_file = Path(spec["stop_file"])
        self.stopping = threading.Event()
        self.history = History(self.out)
        self.errors: list[str] = []

    # --- helpers ---------------------------------------------------------------------------------

    def done(self) -> bool:
        return self.stopping.is_set()

    def connect(self, hosts: str, listener: Callable | None = None) -> Any:
        """A started client (retried until it connects or the run ends)."""
        while not self.done():
            client = self.cls(hosts=hosts, timeout=10.0)
            if listener is not None:
                client.add_listener(listener)
            try:
                client.start(timeout=5.0)
                return client
            except Exception:  # noqa: BLE001 - nothing reachable yet: try again
                self.close(client)
                self.stopping.wait(0.2)
        return None

    @staticmethod
    def close(client: Any) -> None:
        if client is None:
            return
        with contextlib.suppress(Exception):
            client.stop()
        with contextlib.suppress(Exception):
            client.close()

    def call(self, async_result: Any) -> tuple[str, Any]:
        """("ok", value) / ("fail", error name) / ("info", error name)."""
        try:
            return "ok", async_result.get(timeout=OP_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - classified by name: both libraries use kazoo's names
            name = type(exc).__name__
            return ("fail" if name in DEFINITE else "info"), name

    def record(self, w: str, c: int, f: str, t0: float, r: str, **extra: Any) -> None:
        t1 = time.monotonic() if r != "info" else None
        self.history.add({"w": w, "c": c, "f": f, "t0": t0, "t1": t1, "r": r, **extra})

    def wait_connected(self, client: Any) -> None:
        while not self.done() and not client.connected:
            self.stopping.wait(0.05)

    # --- workloads -------------------------------------------------------------------------------

    def register(self, c: int, host: str, rng: random.Random) -> None:
        client = self.connect(host)
        start = self.spec["t_start"]
        seen: dict[str, int] = {}
        n = 0
        while client is not None and not self.done():
            key = reg_key(
                min(int((time.monotonic() - start) / KEY_EPOCH_S), reg_epochs(self.spec["duration"]) - 1),
                rng.randrange(KEYS_PER_EPOCH),
            )
            kind = rng.choice(("get", "get", "set", "cas"))
            t0 = time.monotonic()
            if kind == "get":
                r, out = self.call(client.sync_async(key))
                if r == "ok":
                    r, out = self.call(client.get_async(key))
                if r == "ok":
                    data, stat = out
                    seen[key] = stat.version
                    self.record(
                        "register",
                        c,
                        "get",
                        t0,
                        "ok",
                        k=key,
                        out=[data.decode() if data is not None else None, stat.version],
                    )
                else:
                    self.record("register", c, "get", t0, "fail", k=key)
            else:
                n += 1
                value = f"{c}-{n}"
                ev = -1 if kind == "set" else seen.get(key, 0) + rng.choice((0, 0, 1))
                r, out = self.call(client.set_async(key, value.encode(), ev))
                if r == "ok":
                    seen[key] = out.version
                self.record(
                    "register",
                    c,
                    kind,
                    t0,
                    r,
                    k=key,
                    v=value,
                    ev=ev if kind == "cas" else None,
                    err=out if r != "ok" else None,
                )
                if r == "info":
                    self.wait_connected(client)
        self.close(client)

    def seq(self, c: int, hosts: str, rng: random.Random) -> None:
        self._creates(c, hosts, "seq", "create", "/seq/s-", lambda: 0.0)

    def produce(self, c: int, hosts: str, rng: random.Random) -> None:
        # producers a little slower than consumers
        self._creates(c, hosts, "queue", "put", "/queue/q-", lambda: rng.uniform(0, 0.02))

    def _creates(self, c: int, hosts: str, workload: str, op: str, prefix: str, pause: Callable[[], float]) -> None:
        """Sequential creates under `prefix`, each with a unique value, one at a time."""
        client = self.connect(hosts)
        n = 0
        while client is not None and not self.done():
            n += 1
            value = f"{c}-{n}"
            t0 = time.monotonic()
            r, out = self.call(client.create_async(prefix, value.encode(), sequence=True))
            self.record(
                workload, c, op, t0, r, v=value, **({"path": out if r == "ok" else None} if workload == "seq" else {})
            )
            if r == "info":
                self.wait_connected(client)
            if wait := pause():
                self.stopping.wait(wait)
        self.close(client)

    def consume(self, c: int, hosts: str, rng: random.Random) -> None:
        client = self.connect(hosts)
        while client is not None and not self.done():
            r, children = self.call(client.get_children_async("/queue"))
            if r != "ok" or not children:
                if r == "info":
                    self.wait_connected(client)
                self.stopping.wait(0.01)
                continue
            for name in sorted(children)[:2]:
                path = f"/queue/{name}"
                r, out = self.call(client.get_async(path))
                if r != "ok":
                    continue
                value = out[0].decode()
                t0 = time.monotonic()
                r, _ = self.call(client.delete_async(path))
                self.record("queue", c, "take", t0, r, v=value)
                if r == "info":
                    self.wait_connected(client)
        self.close(client)

    def lock(self, c: int, hosts: str, rng: random.Random) -> None:
        changes: list[float] = []
        client = self.connect(hosts, listener=lambda state: changes.append(time.monotonic()))
        while client is not None and not self.done():
            lock = client.Lock("/lock", f"w{c}")
            t0 = time.monotonic()
            try:
                got = lock.acquire(timeout=OP_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001
                self.record("lock", c, "acquire", t0, "info", err=type(exc).__name__)
                with contextlib.suppress(Exception):
                    lock.cancel()
                self.wait_connected(client)
                continue
            if not got:
                self.record("lock", c, "acquire", t0, "fail")
                continue
            held_at = time.monotonic()
            token = int(lock.node[-10:])
            before = len(changes)
            self.fence(client, c, token)
            self.stopping.wait(rng.uniform(0, 0.05))
            released_at = time.monotonic()
            try:
                lock.release()
                released = True
            except Exception:  # noqa: BLE001
                released = False
            clean = released and len(changes) == before
            self.history.add(
                {
                    "w": "lock",
                    "c": c,
                    "f": "hold",
                    "t0": held_at,
                    "t1": released_at,
                    "r": "ok",
                    "token": token,
                    "clean": clean,
                }
            )
        self.close(client)

    def fence(self, client: Any, c: int, token: int) -> None:
        for _ in range(5):
            t0 = time.monotonic()
            r, out = self.call(client.get_async("/fence"))
            if r != "ok":
                return
            data, stat = out
            current = int(data or b"0")
            if current > token:
                self.record("lock", c, "fence", t0, "fail", token=token, seen=current)
                return
            r, out = self.call(client.set_async("/fence", str(token).encode(), stat.version))
            self.record("lock", c, "fence", t0, r, token=token, version=out.version if r == "ok" else None)
            if r != "fail":
                return

    def eph(self, c: int, hosts: str, rng: random.Random) -> None:
        gen = 0
        while not self.done():
            lost = threading.Event()
            client = self.connect(
                hosts, listener=lambda state, lost=lost: lost.set() if str(state).endswith("LOST") else None
            )
            if client is None:
                return
            gen += 1
            path = f"/eph/{c}-{gen}"
            sid = client.client_id[0] if client.client_id else 0
            t0 = time.monotonic()
            r, _ = self.call(client.create_async(path, b"", ephemeral=True))
            self.record("eph", c, "create", t0, r, path=path, sid=sid)
            while r == "ok" and not self.done() and not lost.is_set():
                self.stopping.wait(rng.uniform(0.05, 0.2))
                t0 = time.monotonic()
                r2, out = self.call(client.sync_async(path))
                if r2 == "ok":
                    r2, out = self.call(client.exists_async(path))
                now_sid = client.client_id[0] if client.client_id else -1
                if r2 == "ok" and now_sid == sid and not lost.is_set():
                    self.record("eph", c, "check", t0, "ok", path=path, sid=sid, exists=out is not None)
            self.record("eph", c, "lost" if lost.is_set() else "close", time.monotonic(), "ok", path=path, sid=sid)
            self.close(client)

    # --- the run ---------------------------------------------------------------------------------

    def threads(self) -> list[threading.Thread]:
        w = self.spec["workloads"]
        rng = random.Random(self.spec["seed"])
        all_hosts = ",".join(self.hosts)
        plan: list[tuple[Callable, str]] = []
        for i in range(w.get("register", 0)):
            plan.append((self.register, self.hosts[i % len(self.hosts)]))
        plan += [(self.seq, all_hosts)] * w.get("seq", 0)
        plan += [(self.produce, all_hosts)] * w.get("queue", 0)
        plan += [(self.consume, all_hosts)] * w.get("queue", 0)
        plan += [(self.lock, all_hosts)] * w.get("lock", 0)
        plan += [(self.eph, all_hosts)] * w.get("eph", 0)
        return [
            threading.Thread(
                target=self._guard,
                args=(fn, c, hosts, random.Random(rng.random())),
                name=f"{fn.__name__}-{c}",
                daemon=True,
            )
            for c, (fn, hosts) in enumerate(plan)
        ]

    def _guard(self, fn: Callable, c: int, hosts: str, rng: random.Random) -> None:
        try:
            fn(c, hosts, rng)
        except Exception as exc:  # noqa: BLE001 - reported, and the run is marked failed
            self.errors.append(f"{fn.__name__}-{c}: {type(exc).__name__}: {exc}")

    def run(self) -> int:
        threads = self.threads()
        for t in threads:
            t.start()
        while time.monotonic() < self.deadline and not self.stop_file.exists():
            self._progress()
            time.sleep(0.5)  # the run's own clock: the progress file's period
        self.stopping.set()
        for t in threads:
            t.join(timeout=OP_TIMEOUT_S * 3)
        self._progress()
        self.history.close()
        # A thread still inside a client call (e.g. a lock release retrying) is reported; its last
        # operation has no record, which the checks treat as never having been asked.
        stuck = [t.name for t in threads if t.is_alive()]
        (self.out / "worker.json").write_text(json.dumps({"errors": self.errors, "stuck": stuck}))
        return 1 if self.errors else 0

    def _progress(self) -> None:
        self.history.flush()
        tmp = self.out / "progress.json.tmp"
        tmp.write_text(json.dumps(self.history.counts))
        tmp.replace(self.out / "progress.json")


def setup(spec: dict[str, Any]) -> int:
    """The znodes the workloads need, before the clock starts."""
    client = client_class(spec["target"])(hosts=",".join(spec["hosts"]), timeout=10.0)
    client.start(timeout=60)
    try:
        for path in ("/seq", "/queue", "/eph", "/reg"):
            client.ensure_path(path)
        if not client.exists("/fence"):
            client.create("/fence", b"0")
        for epoch in range(reg_epochs(spec["duration"])):
            for j in range(KEYS_PER_EPOCH):
                if not client.exists(reg_key(epoch, j)):
                    client.create(reg_key(epoch, j), b"0")
    finally:
        Worker.close(client)
    return 0


def wait_sessions_gone(spec: dict[str, Any], timeout: float = 45.0) -> None:
    """The workloads' sessions closed, or will expire if their Close did not get through: wait
    (at most `timeout`, past any session timeout) until their ephemerals are gone."""
    client = client_class(spec["target"])(hosts=",".join(spec["hosts"]), timeout=10.0)
    deadline = time.monotonic() + timeout
    try:
        client.start(timeout=30)
        while time.monotonic() < deadline:
            client.sync("/eph")
            if not client.get_children("/eph"):
                return
            time.sleep(0.5)  # polling the ensemble's own expiry, with a deadline
    except Exception:  # noqa: BLE001 - the per-node reads below report what is wrong
        return
    finally:
        Worker.close(client)


def final(spec: dict[str, Any]) -> int:
    """What each node holds now (a client on that node alone, after a sync), into final.json."""
    wait_sessions_gone(spec)
    result: dict[str, Any] = {}
    cls = client_class(spec["target"])
    for host in spec["hosts"]:
        client = cls(hosts=host, timeout=10.0)
        try:
            client.start(timeout=30)
            client.sync("/")
            queue = {}
            for name in client.get_children("/queue"):
                with contextlib.suppress(Exception):
                    queue[name] = client.get(f"/queue/{name}")[0].decode()
            seq = client.get_children("/seq")
            regs = {}
            for epoch in range(reg_epochs(spec["duration"])):
                for j in range(KEYS_PER_EPOCH):
                    data, stat = client.get(reg_key(epoch, j))
                    regs[reg_key(epoch, j)] = [data.decode() if data is not None else None, stat.version]
            result[host] = {
                "seq": sorted(seq),
                "queue": queue,
                "eph": sorted(client.get_children("/eph")),
                "fence": client.get("/fence")[0].decode(),
                "reg": regs,
            }
        except Exception as exc:  # noqa: BLE001 - a node that cannot answer is reported as such
            result[host] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            Worker.close(client)
    (Path(spec["out"]) / "final.json").write_text(json.dumps(result))
    return 0 if all("error" not in v for v in result.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nemesis.worker")
    parser.add_argument("spec")
    parser.add_argument("mode", choices=("setup", "run", "final"))
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    if args.mode == "setup":
        return setup(spec)
    if args.mode == "final":
        return final(spec)
    return Worker(spec).run()


if __name__ == "__main__":
    sys.exit(main())
