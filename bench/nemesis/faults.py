"""The faults, each with a start and an end, chosen from a seed (leader faults most often).

| kind | start | end |
|---|---|---|
| isolate-leader / isolate-follower | the node drops every packet from and to every other host (clients too) | rules removed |
| partition | nodes split into a majority and a minority side (random); clients reach both | healed |
| bridge | 5+ nodes: two sides that only one node in the middle sees both of | healed |
| deaf-leader | the leader drops what its peers send it (it can still send) | healed |
| mute-leader | the leader drops what it sends its peers (it can still receive) | healed |
| loss | every node drops 20% of the packets it receives (nftables `numgen random`) | healed |
| kill-leader / kill-follower | SIGKILL of the node's whole process tree | started again |
| pause-leader / pause-follower | SIGSTOP of the node's process tree | SIGCONT |
| kill-actor | SIGKILL of one actor process of a node (zoomq; its supervisor restarts it) | - |
| clock-jump | one node's wall clock jumps by minutes, forwards or back (libfaketime) | back to true time |
| delay | every link (peers and clients) 20-100 ms slower, with jitter (the proxies) | cleared |
| slow-leader | the leader's links 100-300 ms slower with jitter and 256 KB/s | cleared |
| stall-follower | a follower's links hold every byte (TCP stays open, nothing moves) | delivered |
"""

from __future__ import annotations

import random
from typing import Any

from bench.nemesis.cluster import Cluster

WEIGHTS = {
    "isolate-leader": 3,
    "isolate-follower": 2,
    "partition": 2,
    "bridge": 1,
    "deaf-leader": 2,
    "mute-leader": 2,
    "loss": 1,
    "kill-leader": 3,
    "kill-follower": 2,
    "pause-leader": 2,
    "pause-follower": 1,
    "kill-actor": 2,
    "clock-jump": 1,
    "delay": 1,
    "slow-leader": 2,
    "stall-follower": 1,
}
LINK_KINDS = ("delay", "slow-leader", "stall-follower")
KINDS = tuple(WEIGHTS)


def available(nodes: int) -> list[str]:
    """The kinds a run of `nodes` participants draws from: the same for both targets, so one seed
    gives both the same schedule (a kind a target cannot take is recorded as skipped there)."""
    return [k for k in KINDS if k != "bridge" or nodes >= 5]


def unsupported(cluster: Cluster, kind: str) -> str | None:
    if kind == "kill-actor" and cluster.name != "zoomq":
        return "a ZooKeeper node is one process"
    if kind == "clock-jump" and not cluster.faketime:
        return "no libfaketime under these nodes"
    if kind in LINK_KINDS and not cluster.proxied:
        return "the links have no proxy (--no-proxy)"
    return None


def schedule(seed: int, count: int, kinds: list[str]) -> list[str]:
    rng = random.Random(seed)
    return rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds], k=count)


class Nemesis:
    """Starts and ends one fault at a time on `cluster`."""

    def __init__(self, cluster: Cluster, seed: int) -> None:
        self.cluster, self.lab = cluster, cluster.lab
        self.rng = random.Random(seed ^ 0x5EED)
        self._end: list[Any] = []

    def _pick(self, role: str) -> int:
        c = self.cluster
        leader = c.leader(timeout=5.0)
        voters = [s for s in c.participants() if c.alive(s) and s not in c.paused]
        if role == "leader" and leader is not None:
            return leader
        others = [s for s in voters if s != leader] or voters or c.participants()
        return self.rng.choice(others)

    def start(self, kind: str) -> dict[str, Any]:
        """Inject `kind`; returns what was done (target node, details)."""
        c, lab = self.cluster, self.lab
        skip = unsupported(c, kind)
        if skip:
            return {"skipped": skip}
        role = "leader" if kind.endswith("-leader") else "follower"
        everyone: list[int | str] = list(lab.all_hosts())
        if kind.startswith("isolate-"):
            sid = self._pick(role)
            lab.drop_between(sid, [h for h in everyone if h != sid])
            self._end.append(lab.heal)
            return {"target": sid}
        if kind in ("deaf-leader", "mute-leader"):
            sid = self._pick("leader")
            peers = [s for s in c.sids if s != sid]
            lab.drop_between(sid, peers, incoming=kind == "deaf-leader", outgoing=kind == "mute-leader")
            self._end.append(lab.heal)
            return {"target": sid}
        if kind == "partition":
            nodes = list(c.sids)
            self.rng.shuffle(nodes)
            minority = nodes[: (len(nodes) - 1) // 2 or 1]
            self._split([minority, [s for s in nodes if s not in minority]])
            return {"target": minority}
        if kind == "bridge":
            nodes = list(c.sids)
            self.rng.shuffle(nodes)
            middle, rest = nodes[0], nodes[1:]
            half = len(rest) // 2
            a, b = rest[:half], rest[half:]
            for sid in a:
                lab.drop_between(sid, b)
            for sid in b:
                lab.drop_between(sid, a)
            self._end.append(lab.heal)
            return {"target": middle, "sides": [a, b]}
        if kind == "loss":
            for sid in c.sids:
                lab.drop_between(sid, [h for h in everyone if h != sid], outgoing=False, percent=20)
            self._end.append(lab.heal)
            return {"target": "all", "percent": 20}
        if kind.startswith("kill-") and kind != "kill-actor":
            sid = self._pick(role)
            c.kill(sid)
            self._end.append(lambda: c.start(sid))
            return {"target": sid}
        if kind.startswith("pause-"):
            sid = self._pick(role)
            c.pause(sid)
            self._end.append(lambda: c.resume(sid))
            return {"target": sid}
        if kind == "kill-actor":
            sid = self.rng.choice([s for s in c.sids if c.alive(s) and s not in c.paused] or c.sids)
            actors = sorted(c.actor_pids(sid))
            name = self.rng.choice(actors) if actors else None
            killed = bool(name) and c.kill_actor(sid, name)  # type: ignore[attr-defined]
            return {"target": sid, "actor": name, "killed": killed}
        if kind == "clock-jump":
            sid = self.rng.choice(c.sids)
            offset = self.rng.choice((-300, -60, 60, 300, 3600))
            c.set_clock(sid, offset)
            self._end.append(lambda: c.set_clock(sid, 0))
            return {"target": sid, "offset_s": offset}
        if kind == "delay":
            delay = self.rng.choice((20, 50, 100))
            for host in everyone:
                c.link(host, "*", delay_ms=delay, jitter_ms=delay / 2)
            self._end.append(c.clear_links)
            return {"target": "all", "delay_ms": delay}
        if kind == "slow-leader":
            sid = self._pick("leader")
            delay = self.rng.choice((100, 200, 300))
            settings = {"delay_ms": delay, "jitter_ms": delay / 3, "bandwidth_bps": 256 * 1024}
            self._on_links_of(sid, settings)
            return {"target": sid, "delay_ms": delay}
        if kind == "stall-follower":
            sid = self._pick("follower")
            self._on_links_of(sid, {"stall": True})
            return {"target": sid}
        raise ValueError(f"unknown fault kind {kind!r}")

    def _on_links_of(self, sid: int, settings: dict[str, Any]) -> None:
        """Both ends of every link of node `sid`: its own proxy to everyone, everyone's to it."""
        c = self.cluster
        c.link(sid, "*", **settings)
        for host in self.lab.all_hosts():
            if host != sid:
                c.link(host, sid, **settings)
        self._end.append(c.clear_links)

    def _split(self, sides: list[list[int]]) -> None:
        for i, side in enumerate(sides):
            other = [s for j, o in enumerate(sides) if j != i for s in o]
            for sid in side:
                self.lab.drop_between(sid, other)
        self._end.append(self.lab.heal)

    def end(self) -> None:
        """End the current fault (heal, restart, resume, clock back)."""
        pending, self._end = self._end, []
        for fn in pending:
            fn()

    def heal_all(self) -> None:
        """Whatever happened: every rule gone, every node running and resumed, clocks true."""
        self.end()
        self.lab.heal()
        if self.cluster.proxied:
            self.cluster.clear_links()
        for sid in self.cluster.sids:
            self.cluster.resume(sid)
            self.cluster.set_clock(sid, 0)
            self.cluster.start(sid)
