"""`zoomq ensemble up`, `status`, `add` and `remove`: an ensemble on one machine, for trying zoomq
out and for tests and benchmarks.

`up` writes one config per node (`<data_dir>/node<id>.toml`: client ports P..P+N-1, quorum ports
P+707.., election ports P+1707.. so that the default 2181 gives ZooKeeper's 2888/3888), starts
one `zoomq server` per node (each under its own supervisor, logs in `<data_dir>/node<id>.log`),
prints the connection string, and on SIGINT/SIGTERM stops them all: SIGTERM, then SIGKILL of
whatever is left of their process trees, by PID only.

`up --curve` turns CurveZMQ on: key pairs in `<data_dir>/keys` (`node<id>.key[_secret]`, kept
across restarts), and one client key pair the nodes admit (`keys/clients/client.key_secret`).
`up --zk-secure-base-port S` serves ZooKeeper's protocol with TLS: a test CA and certificates in
`<data_dir>/tls` (`node<id>.pem`, and `client.pem` / `client.key` for clients; kept across restarts).

`up` also turns reconfig on (`reconfig_enabled`) with a super user whose password it keeps in
`<data_dir>/super.password`: `add` writes a new node's config (`node<id>.toml`: the next id, the
ranges' next ports, the current members and itself), which the running `up` starts; once the
node follows the leader, a reconfig makes it a member. `remove ID` reconfigs it out and marks it
(`node<id>.removed`); `up` then stops it. A later `up` on the same data dir starts the added
nodes too, and not the removed ones.

`status` reads each node's `status.json` (role, pids, per-actor CPU and RSS) from its data dir
and asks it `mntr` (epoch, last zxid, sessions).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import psutil

from zoomq.admin import AdminError, ask, parse_mntr
from zoomq.security import make_digest_acl_credential

SUPER_USER = "super"
SUPER_PASSWORD_FILE = "super.password"
REMOVED_SUFFIX = ".removed"
QUORUM_OFFSET = 707  # 2181 -> 2888
ELECTION_OFFSET = 1707  # 2181 -> 3888
STOP_TIMEOUT_S = 10.0


def plan(
    n: int,
    observers: int,
    base_port: int,
    data_dir: Path,
    host: str = "127.0.0.1",
    tick_ms: int = 2000,
    quorum_base_port: int | None = None,
    election_base_port: int | None = None,
) -> list[dict[str, Any]]:
    """The config of each node (as TOML-ready dicts)."""
    total = n + observers
    quorum = quorum_base_port or base_port + QUORUM_OFFSET
    election = election_base_port or base_port + ELECTION_OFFSET
    servers = [
        {
            "id": i + 1,
            "host": host,
            "quorum_port": quorum + i,
            "election_port": election + i,
            "client_port": base_port + i,
            "role": "observer" if i >= n else "participant",
        }
        for i in range(total)
    ]
    return [
        {
            "sid": s["id"],
            "data_dir": str((data_dir / f"node{s['id']}").resolve()),
            "client_host": host,
            "client_port": s["client_port"],
            "tick_ms": tick_ms,
            "servers": servers,
        }
        for s in servers
    ]


def add_curve(configs: list[dict[str, Any]], data_dir: Path) -> Path:
    """Key pairs for every node (kept if they exist) and one admitted client; the configs get
    curve_secret_key, curve_client_keys, curve_peer_keys (keys/peers: where `add` puts a joining
    node's public key) and every member's curve_public_key. Returns keys/."""
    from runtime import curve

    keys = (data_dir / "keys").resolve()
    public = {}
    for cfg in configs:
        name = f"node{cfg['sid']}"
        if not (keys / f"{name}.key_secret").exists():
            curve.generate(keys, name)
        public[cfg["sid"]] = curve.public_key(str(keys / f"{name}.key")).decode()
    if not (keys / "clients" / "client.key_secret").exists():
        curve.generate(keys / "clients", "client")
    (keys / "peers").mkdir(exist_ok=True)
    for cfg in configs:
        cfg["curve_secret_key"] = str(keys / f"node{cfg['sid']}.key_secret")
        cfg["curve_client_keys"] = str(keys / "clients")
        cfg["curve_peer_keys"] = str(keys / "peers")
        cfg["servers"] = [{**entry, "curve_public_key": public[entry["id"]]} for entry in cfg["servers"]]
    return keys


def add_tls(configs: list[dict[str, Any]], data_dir: Path, secure_base_port: int) -> Path:
    """A test CA and a certificate per node (kept if they exist) plus one for clients; each
    config gets zk_secure_port and its certificate, and the CA verifies client certificates."""
    from zoomq.tlsgen import generate

    tls = (data_dir / "tls").resolve()
    names = [f"node{cfg['sid']}" for cfg in configs] + ["client"]
    missing = [name for name in names if not (tls / f"{name}.pem").exists()]
    if missing:
        generate(tls, missing, ["127.0.0.1", "localhost"])
    for i, cfg in enumerate(configs):
        cfg["zk_secure_port"] = secure_base_port + i
        cfg["zk_tls_cert"] = str(tls / f"node{cfg['sid']}.pem")
        cfg["zk_tls_key"] = str(tls / f"node{cfg['sid']}.key")
        cfg["zk_tls_ca"] = str(tls / "ca.pem")
    return tls


def curve_options(data_dir: Path, sid: int) -> dict[str, str]:
    """`ask`/Client keyword arguments for node `sid` of an ensemble started with --curve ({} without)."""
    keys = data_dir / "keys"
    secret = keys / "clients" / "client.key_secret"
    if not secret.exists() or not (keys / f"node{sid}.key").exists():
        return {}
    return {"curve_server_key": str(keys / f"node{sid}.key"), "curve_secret_key": str(secret)}


def connection_string(configs: list[dict[str, Any]]) -> str:
    return ",".join(f"{c['client_host']}:{c['client_port']}" for c in configs)


def write_configs(configs: list[dict[str, Any]], data_dir: Path) -> list[Path]:
    from zoomq.testing import to_toml

    data_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for cfg in configs:
        path = data_dir / f"node{cfg['sid']}.toml"
        path.write_text(to_toml(cfg))
        paths.append(path)
    return paths


def up(
    n: int,
    observers: int,
    base_port: int,
    data_dir: Path,
    tick_ms: int,
    log_level: str | None = None,
    curve: bool = False,
    zk_base_port: int | None = None,
    zk_secure_base_port: int | None = None,
    quorum_base_port: int | None = None,
    election_base_port: int | None = None,
    read_only_mode: bool = False,
) -> int:
    if n < 1 or observers < 0:
        print("zoomq ensemble up: -n must be >= 1 and --observers >= 0", file=sys.stderr)
        return 2
    configs = plan(
        n,
        observers,
        base_port,
        data_dir,
        tick_ms=tick_ms,
        quorum_base_port=quorum_base_port,
        election_base_port=election_base_port,
    )
    used = [c["client_port"] for c in configs] + [
        s[k] for s in configs[0]["servers"] for k in ("quorum_port", "election_port")
    ]
    if read_only_mode:
        for cfg in configs:
            cfg["read_only_mode"] = True
    if zk_base_port:
        for i, cfg in enumerate(configs):
            cfg["zk_port"] = zk_base_port + i
        used += [c["zk_port"] for c in configs]
    tls = None
    if zk_secure_base_port:
        from zoomq.tlsgen import TlsGenError

        try:
            tls = add_tls(configs, data_dir, zk_secure_base_port)
        except TlsGenError as exc:
            print(f"zoomq ensemble up: {exc}", file=sys.stderr)
            return 2
        used += [c["zk_secure_port"] for c in configs]
    if len(set(used)) != len(used):
        print(
            "zoomq ensemble up: the client, quorum, election and ZooKeeper port ranges overlap; choose other base ports",
            file=sys.stderr,
        )
        return 2
    keys = add_curve(configs, data_dir) if curve else None
    password = super_password(data_dir)
    for cfg in configs:
        cfg["reconfig_enabled"] = True  # `zoomq ensemble add / remove`, as the super user below
        cfg["super_digest"] = make_digest_acl_credential(SUPER_USER, password)
    paths = write_configs(configs, data_dir)
    stop = threading.Event()
    old = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: list[tuple[int, subprocess.Popen[bytes], Any]] = []

    def launch(sid: int, path: Path) -> None:
        log = open(data_dir / f"node{sid}.log", "ab")  # noqa: SIM115 - closed below
        argv = [sys.executable, "-m", "zoomq", "server", "--config", str(path)]
        if log_level:
            argv += ["--log-level", log_level]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        procs.append((sid, proc, log))

    try:
        for cfg, path in zip(configs, paths, strict=True):
            launch(cfg["sid"], path)
        for sid, path in _added_configs(data_dir, {cfg["sid"] for cfg in configs}):
            launch(sid, path)  # a node `ensemble add` made in an earlier run
        print(
            f"zoomq ensemble: {n} participants, {observers} observers; data and logs in {data_dir.resolve()}",
            flush=True,
        )
        print(f"connect with: {connection_string(configs)}", flush=True)
        if zk_base_port:
            zk_hosts = ",".join(f"{c['client_host']}:{c['zk_port']}" for c in configs)
            print(f"ZooKeeper clients (kazoo, zkCli.sh) connect with: {zk_hosts}", flush=True)
        if tls is not None:
            tls_hosts = ",".join(f"{c['client_host']}:{c['zk_secure_port']}" for c in configs)
            print(
                f"ZooKeeper clients with TLS: KazooClient({tls_hosts!r}, use_ssl=True, ca={str(tls / 'ca.pem')!r}, "
                f"certfile={str(tls / 'client.pem')!r}, keyfile={str(tls / 'client.key')!r})",
                flush=True,
            )
        if keys is not None:
            server_keys = {f"{c['client_host']}:{c['client_port']}": str(keys / f"node{c['sid']}.key") for c in configs}
            print(
                f"CURVE on: Client(hosts, curve_server_key={server_keys!r}, "
                f"curve_secret_key={str(keys / 'clients' / 'client.key_secret')!r}); "
                f"admit more clients by adding their .key files to {keys / 'clients'}",
                flush=True,
            )
        print(
            f"grow or shrink it with: zoomq ensemble add|remove --data-dir {data_dir} (reconfig as user "
            f"{SUPER_USER!r}, password in {data_dir / SUPER_PASSWORD_FILE})",
            flush=True,
        )
        print("Ctrl-C stops every node.", flush=True)
        running = {sid for sid, _, _ in procs}
        while not stop.wait(0.5):
            for sid, path in _added_configs(data_dir, {sid for sid, _, _ in procs}):
                print(f"node {sid} added: starting it", flush=True)
                launch(sid, path)
                running.add(sid)
            for sid, proc, _ in procs:
                if sid in running and (data_dir / f"node{sid}{REMOVED_SUFFIX}").exists():
                    running.discard(sid)
                    print(f"node {sid} removed from the ensemble: stopping it", flush=True)
                    _stop_all([proc])
                elif sid in running and proc.poll() is not None:
                    running.discard(sid)
                    print(
                        f"node {sid} exited with code {proc.returncode} (see node{sid}.log)",
                        file=sys.stderr,
                        flush=True,
                    )
            if not running:
                return 1
        return 0
    finally:
        _stop_all([proc for _, proc, _ in procs])
        for _, _, log in procs:
            log.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)


def super_password(data_dir: Path) -> str:
    """The local ensemble's super user password (`<data_dir>/super.password`, made once, 0600)."""
    path = data_dir / SUPER_PASSWORD_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(18) + "\n")
    return path.read_text().strip()


def _added_configs(data_dir: Path, known: set[int]) -> list[tuple[int, Path]]:
    """node<id>.toml files `ensemble add` wrote that are not started yet (nor removed since)."""
    out = []
    for path in data_dir.glob("node*.toml"):
        tail = path.stem[4:]
        if tail.isdigit() and int(tail) not in known and not (data_dir / f"node{tail}{REMOVED_SUFFIX}").exists():
            out.append((int(tail), path))
    return sorted(out)


def _admin_client(data_dir: Path, timeout: float) -> Any:
    """A client of the running nodes, as the super user."""
    from zoomq import Client

    running = [r for r in status(data_dir) if r["client"] and r["role"] not in ("down", None)]
    if not running:
        raise EnsembleError(
            f"no node of {data_dir} is running: start it with `zoomq ensemble up --data-dir {data_dir}`"
        )
    options: dict[str, Any] = {}
    keyed = {r["client"]: curve_options(data_dir, r["id"]) for r in running}
    if any(keyed.values()):  # CURVE: each node's own server key
        options = {
            "curve_server_key": {host: o["curve_server_key"] for host, o in keyed.items()},
            "curve_secret_key": next(o["curve_secret_key"] for o in keyed.values() if o),
        }
    client = Client(
        hosts=",".join(keyed), auth_data=[("digest", f"{SUPER_USER}:{super_password(data_dir)}")], **options
    )
    client.start(timeout=timeout)
    return client


class EnsembleError(RuntimeError):
    """`ensemble add / remove` cannot do what was asked; the message says why."""


def _template(data_dir: Path) -> dict[str, Any]:
    configs = {}
    for path in data_dir.glob("node*.toml"):
        if path.stem[4:].isdigit():
            configs[int(path.stem[4:])] = tomllib.loads(path.read_text())
    if not configs:
        raise EnsembleError(f"no node<id>.toml in {data_dir}: was it made by `zoomq ensemble up`?")
    return configs[min(configs)] | {"_known": sorted(configs)}


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def add(data_dir: Path, observer: bool = False, timeout: float = 60.0) -> str:
    """Add a node to the running local ensemble: its config (the next id; ports continuing the
    ensemble's ranges; the current members and itself) as `<data_dir>/node<id>.toml`, which the
    `ensemble up` process starts; once it follows the leader, a reconfig makes it a member.
    Returns the new /zookeeper/config."""
    from runtime.config import ServerEntry, SpecError, membership_from_text
    from zoomq.exceptions import NewConfigNoQuorumError

    template = _template(data_dir)
    if template.get("curve_secret_key") and not template.get("curve_peer_keys"):
        raise EnsembleError(
            "this CURVE ensemble's nodes have no curve_peer_keys (they were set up by an older zoomq): "
            "stop it and run `zoomq ensemble up` again with the same data dir, which sets it, then add"
        )
    client = _admin_client(data_dir, min(timeout, 15.0))
    try:
        try:
            current = membership_from_text(client.get_config()[0])
        except SpecError as exc:
            raise EnsembleError(f"/zookeeper/config is not a membership: {exc}") from exc
        sid = max([s.id for s in current.servers] + template["_known"]) + 1
        me = next(s for s in template["servers"] if s["id"] == template["sid"])
        step = sid - template["sid"]
        entry = ServerEntry(
            sid,
            me.get("host", "127.0.0.1"),
            me["quorum_port"] + step,
            me["election_port"] + step,
            template["client_port"] + step,
            "observer" if observer else "participant",
        )
        ports = [entry.quorum_port, entry.election_port, entry.client_port]
        cfg = {k: v for k, v in template.items() if k != "_known"}
        cfg.update(sid=sid, data_dir=str((data_dir / f"node{sid}").resolve()), client_port=entry.client_port)
        for key in ("zk_port", "zk_secure_port"):
            if cfg.get(key):
                cfg[key] += step
                ports.append(cfg[key])
        if cfg.get("zk_secure_port"):
            _tls_join(cfg)
        busy = [port for port in ports if not _port_free(port)]
        if busy:
            raise EnsembleError(f"node {sid} would use ports {ports}, but {busy} are in use")
        cfg["servers"] = [msgspec.to_builtins(s) for s in [*current.servers, entry]]
        if cfg.get("curve_secret_key"):
            _curve_join(cfg, data_dir)
        write_configs([cfg], data_dir)
        deadline = time.monotonic() + timeout
        print(
            f"node {sid}: config written to {data_dir / f'node{sid}.toml'}; waiting for it to follow the leader",
            flush=True,
        )
        while _role(data_dir, sid) not in ("follower", "observer"):
            if time.monotonic() > deadline:
                raise EnsembleError(
                    f"node {sid} did not start following within {timeout:g}s (is `zoomq ensemble up "
                    f"--data-dir {data_dir}` running? see node{sid}.log)"
                )
            time.sleep(0.2)
        while True:  # following is not yet synchronized: the leader may not count it for a moment
            try:
                data, _ = client.reconfig(joining=entry.spec(), leaving=None, new_members=None)
                return data.decode()
            except NewConfigNoQuorumError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        client.stop()
        client.close()


def _tls_join(cfg: dict[str, Any]) -> None:
    """The joining node's certificate for ZooKeeper's TLS port, signed by the ensemble's CA (the
    one `up` made: its key must be beside ca.pem; a CA of the operator's is theirs to sign with)."""
    from zoomq.tlsgen import TlsGenError, generate

    tls = Path(cfg.get("zk_tls_ca") or cfg["zk_tls_cert"]).parent
    if not (tls / "ca.pem").exists() or not (tls / "ca.key").exists():
        raise EnsembleError(
            f"the new node needs a certificate for its TLS port, and {tls} holds no ca.pem + ca.key to sign "
            "one: make it with your CA, then add the node with `zoomq reconfig`"
        )
    name = f"node{cfg['sid']}"
    try:
        generate(tls, [name], ["127.0.0.1", "localhost"])
    except TlsGenError as exc:
        raise EnsembleError(str(exc)) from exc
    cfg["zk_tls_cert"], cfg["zk_tls_key"] = str(tls / f"{name}.pem"), str(tls / f"{name}.key")


def _curve_join(cfg: dict[str, Any], data_dir: Path) -> None:
    """A joining node's key pair (kept if it exists), its public key put in the members'
    curve_peer_keys (which they read again: no restart), and every server's public key that
    keys/ holds in its config."""
    from runtime import curve

    keys = (data_dir / "keys").resolve()
    sid = cfg["sid"]
    if not (keys / f"node{sid}.key_secret").exists():
        curve.generate(keys, f"node{sid}")
    curve.install_server_key(cfg["curve_peer_keys"], sid, keys / f"node{sid}.key")
    cfg["curve_secret_key"] = str(keys / f"node{sid}.key_secret")
    for entry in cfg["servers"]:
        public = keys / f"node{entry['id']}.key"
        if public.exists():
            entry["curve_public_key"] = curve.public_key(str(public)).decode()


def remove(data_dir: Path, sid: int, timeout: float = 30.0) -> str:
    """Remove node `sid` from the running local ensemble by a reconfig; the `ensemble up`
    process then stops it (`<data_dir>/node<id>.removed` marks it). Returns the new config."""
    client = _admin_client(data_dir, min(timeout, 15.0))
    try:
        data, _ = client.reconfig(joining=None, leaving=str(sid), new_members=None)
    finally:
        client.stop()
        client.close()
    (data_dir / f"node{sid}{REMOVED_SUFFIX}").write_text(data.decode() + "\n")
    return data.decode()


def _role(data_dir: Path, sid: int) -> str | None:
    return next((r["role"] for r in status(data_dir) if r["id"] == sid), None)


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    trees: list[psutil.Process] = []
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                trees += psutil.Process(proc.pid).children(recursive=True)
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.1, deadline - time.monotonic()))
        if proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
    left = []
    for p in trees:
        with contextlib.suppress(psutil.Error):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                p.kill()
                left.append(p)
    psutil.wait_procs(left, timeout=STOP_TIMEOUT_S)


def node_dirs(data_dir: Path) -> list[Path]:
    dirs = [d for d in data_dir.glob("node*") if d.is_dir() and d.name[4:].isdigit()]
    return sorted(dirs, key=lambda d: int(d.name[4:]))


def status(data_dir: Path) -> list[dict[str, Any]]:
    """One entry per node found under `data_dir`."""
    out = []
    for d in node_dirs(data_dir):
        sid = int(d.name[4:])
        entry: dict[str, Any] = {
            "id": sid,
            "role": "down",
            "client": None,
            "pid": None,
            "epoch": None,
            "last_zxid": None,
            "sessions": None,
            "actors": {},
        }
        try:
            st = json.loads((d / "status.json").read_text())
        except (OSError, ValueError):
            if (data_dir / f"node{sid}{REMOVED_SUFFIX}").exists():
                entry["role"] = "removed"
            out.append(entry)
            continue
        pid = st.get("pid")
        if not pid or not psutil.pid_exists(pid):
            if (data_dir / f"node{sid}{REMOVED_SUFFIX}").exists():
                entry["role"] = "removed"
            out.append(entry)
            continue
        entry.update(
            role=st.get("role"),
            client=st.get("client"),
            pid=pid,
            leader=st.get("leader"),
            actors={
                k: {"pid": v.get("pid"), "cpu_s": v.get("cpu_s"), "rss": v.get("rss"), "restarts": v.get("restarts")}
                for k, v in (st.get("actors") or {}).items()
            },
        )
        host, _, port = (st.get("client") or ":").rpartition(":")
        try:
            mntr = parse_mntr(ask(host, int(port), "mntr", timeout=2.0, **curve_options(data_dir, sid)))
            entry.update(
                epoch=int(mntr.get("zk_epoch", 0)),
                last_zxid=mntr.get("zk_zxid"),
                sessions=int(mntr.get("zk_global_sessions", 0)),
                connections=int(mntr.get("zk_num_alive_connections", 0)),
            )
        except (AdminError, ValueError, OSError):
            pass
        out.append(entry)
    return out


def format_status(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'id':>3} {'role':<9} {'client':<21} {'pid':>7} {'epoch':>5} {'last zxid':<14} {'sessions':>8}  actors (cpu s / rss MiB)"
    ]
    for r in rows:
        actors = " ".join(
            f"{name}={a['cpu_s'] if a['cpu_s'] is not None else '-'}/{(a['rss'] or 0) / 2**20:.0f}"
            for name, a in r["actors"].items()
        )
        lines.append(
            f"{r['id']:>3} {r['role'] or '-':<9} {r['client'] or '-':<21} {r['pid'] or '-':>7} {r['epoch'] if r['epoch'] is not None else '-':>5} "
            f"{r['last_zxid'] or '-':<14} {r['sessions'] if r['sessions'] is not None else '-':>8}  {actors}"
        )
    return "\n".join(lines)


__all__ = [
    "EnsembleError",
    "add",
    "add_curve",
    "remove",
    "super_password",
    "connection_string",
    "curve_options",
    "format_status",
    "node_dirs",
    "plan",
    "status",
    "up",
    "write_configs",
]
