"""Node configuration: one msgspec Struct, loaded from TOML, overridden by command-line flags.

Defaults make `zoomq server` alone work: 127.0.0.1:2181, data in ./zoomq-data. Times are in
milliseconds like ZooKeeper's (tickTime); min/max session timeout default to 2x / 20x the tick.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import msgspec

from runtime.files import write_atomic

DEFAULT_CLIENT_PORT = 2181
MAX_DATA_BYTES = 1024 * 1024


class ServerEntry(msgspec.Struct, frozen=True):
    """One member of an ensemble (ZooKeeper's `server.N=host:quorum:election[:observer]`)."""

    id: int
    host: str = "127.0.0.1"
    quorum_port: int = 2888
    election_port: int = 3888
    client_port: int = DEFAULT_CLIENT_PORT
    role: str = "participant"  # or "observer"
    # This member's CurveZMQ public key (z85, 40 characters, or a .key file): required for every
    # member when the nodes use curve_secret_key; a peer must present one of these keys.
    curve_public_key: str = ""
    client_host: str = ""  # where clients reach it, when not `host` (a spec's `;<client host>:<port>`)

    @property
    def voter(self) -> bool:
        return self.role != "observer"

    def spec(self) -> str:
        """ZooKeeper's dynamic-config form of this member (a line of /zookeeper/config)."""
        return (
            f"server.{self.id}={self.host}:{self.quorum_port}:{self.election_port}:{self.role};"
            f"{self.client_host or self.host}:{self.client_port}"
        )


def membership_text(servers: list[ServerEntry], version: int = 0) -> bytes:
    """The ensemble as ZooKeeper 3.5+ shows it in /zookeeper/config: a line per member,
    `server.<id>=<host>:<quorum port>:<election port>:<participant|observer>;<host>:<client port>`,
    then `version=<hex>` (the zxid of the reconfig that made it; 0 = the configured one). Empty for
    a standalone node (as ZooKeeper's)."""
    if not servers:
        return b""
    lines = [s.spec() for s in sorted(servers, key=lambda s: s.id)]
    return ("\n".join([*lines, f"version={version:x}"])).encode()


class SpecError(ValueError):
    """A server spec, id list or membership that a reconfig cannot take."""


def parse_spec(text: str) -> ServerEntry:
    """One server spec, as ZooKeeper's dynamic config and reconfig take it:
    `server.<id>=<host>:<quorum port>:<election port>[:participant|observer][;[<client host>:]<client port>]`."""
    key, eq, value = text.strip().partition("=")
    if not eq or not key.startswith("server."):
        raise SpecError(f"not a server spec (server.<id>=<host>:<port>:<port>[:role][;[host:]port]): {text!r}")
    sid = _number(key[len("server.") :], "server id", text)
    server, _, client = value.partition(";")
    parts = server.split(":")
    if len(parts) not in (3, 4) or not parts[0]:
        raise SpecError(f"server {sid}: expected <host>:<quorum port>:<election port>[:role], got {server!r}")
    role = parts[3] if len(parts) == 4 else "participant"
    if role not in ("participant", "observer"):
        raise SpecError(f"server {sid}: role must be participant or observer, not {role!r}")
    client_host, client_port = "", DEFAULT_CLIENT_PORT
    if client:
        chost, colon, cport = client.rpartition(":")
        client_host = chost if colon else ""
        if colon and not chost:
            raise SpecError(f"server {sid}: empty client host in {client!r}")
        client_port = _port(cport, text)
    entry = ServerEntry(
        sid,
        parts[0],
        _port(parts[1], text),
        _port(parts[2], text),
        client_port,
        role,
        client_host="" if client_host == parts[0] else client_host,
    )
    if entry.quorum_port == entry.election_port:
        raise SpecError(f"server {sid}: the quorum and election ports must differ")
    return entry


def _number(value: str, what: str, text: str) -> int:
    if not value.strip().isdigit():
        raise SpecError(f"{what} must be a non-negative integer in {text!r}")
    return int(value)


def _port(value: str, text: str) -> int:
    port = _number(value, "a port", text)
    if not 0 < port < 65536:
        raise SpecError(f"port {port} out of range in {text!r}")
    return port


def _split_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").replace("\n", ",").split(",") if item.strip()]


def reconfigured(
    current: list[ServerEntry], joining: str | None, leaving: str | None, new_members: str | None
) -> list[ServerEntry]:
    """The membership a reconfig asks for, as ZooKeeper's: either whole (`new_members`) or
    `current` with `joining` added (a joining id already there is replaced: how a participant
    becomes an observer and back) and the `leaving` ids removed. SpecError if it cannot be."""
    if new_members and (joining or leaving):
        raise SpecError("a reconfig is either incremental (joining / leaving) or whole (new members), not both")
    if new_members:
        servers = [parse_spec(item) for item in _split_list(new_members)]
        if len({s.id for s in servers}) != len(servers):
            raise SpecError("new members name a server id twice")
    else:
        if not joining and not leaving:
            raise SpecError("a reconfig needs joining, leaving or new members")
        adds = [parse_spec(item) for item in _split_list(joining)]
        gone = {_number(item, "a leaving server id", leaving or "") for item in _split_list(leaving)}
        if len({s.id for s in adds}) != len(adds) or gone & {s.id for s in adds}:
            raise SpecError("a server id is named twice among joining and leaving")
        unknown = gone - {s.id for s in current}
        if unknown:
            raise SpecError(f"leaving servers not in the configuration: {sorted(unknown)}")
        replaced = {s.id for s in adds} | gone
        servers = [s for s in current if s.id not in replaced] + adds
    if not any(s.voter for s in servers):
        raise SpecError("the new configuration has no participant")
    return sorted(keep_curve_keys(servers, current), key=lambda s: s.id)


def keep_curve_keys(servers: list[ServerEntry], known: list[ServerEntry]) -> list[ServerEntry]:
    """`servers` (a reconfig's: server specs carry no CURVE key) with the keys `known` has for
    their ids; a server `known` has no key for keeps none."""
    keys = {s.id: s.curve_public_key for s in known}
    return [msgspec.structs.replace(s, curve_public_key=s.curve_public_key or keys.get(s.id, "")) for s in servers]


def membership_from_text(text: bytes) -> Membership:
    """`membership_text`'s output (/zookeeper/config) read back. SpecError if it is not one."""
    servers: list[ServerEntry] = []
    version = 0
    try:
        lines = text.decode().splitlines()
    except UnicodeDecodeError as exc:
        raise SpecError(f"not text: {exc}") from exc
    for line in lines:
        if line.startswith("version="):
            try:
                version = int(line[len("version=") :], 16)
            except ValueError as exc:
                raise SpecError(f"bad version line {line!r}") from exc
        elif line.strip():
            servers.append(parse_spec(line))
    return Membership(servers, version)


def with_own_entry(servers: list[ServerEntry], current: list[ServerEntry], sid: int) -> list[ServerEntry]:
    """`servers`, plus this node's entry from `current` when `servers` leaves it out: a node that
    is not a member (not added yet, or removed) goes on as a non-voting learner in its own place."""
    if any(s.id == sid for s in servers):
        return list(servers)
    return [*servers, *(s for s in current if s.id == sid)]


MEMBERSHIP_FILE = "membership.json"  # in the data dir: the membership reconfigs made, and its version


class Membership(msgspec.Struct, frozen=True):
    servers: list[ServerEntry]
    version: int  # the zxid of the reconfig that made it


class ReconfigOutcome(msgspec.Struct, frozen=True):
    """What a committed reconfig means for one node (`applied`)."""

    keep: Membership | None  # what the data dir keeps; None: the node is not a member
    servers: list[ServerEntry]  # in force on the node from now on (its own entry kept if left out)
    election: list[ServerEntry]  # what its election counts: a non-member's own entry left out
    role_changed: bool  # a member that stays one changed between participant and observer


def applied(current: list[ServerEntry], sid: int, servers: list[ServerEntry], version: int) -> ReconfigOutcome:
    """Node `sid`, configured with `current`, applies the membership `servers` of reconfig
    `version`: the CURVE keys it knows are kept; a member keeps the membership in its data dir; a
    node the membership leaves out (one about to be added, or one removed) goes on in its own
    place as a non-voting learner, as ZooKeeper's, and keeps nothing (a kept membership without it
    would stop a joining node from starting again)."""
    servers = keep_curve_keys(servers, current)
    before = next((s for s in current if s.id == sid), None)
    after = next((s for s in servers if s.id == sid), None)
    in_force = with_own_entry(servers, current, sid)
    return ReconfigOutcome(
        keep=Membership(servers, version) if after is not None else None,
        servers=in_force,
        election=in_force if after is not None else [s for s in in_force if s.id != sid],
        role_changed=after is not None and before is not None and after.role != before.role,
    )


def read_membership(data_dir: str | Path) -> Membership | None:
    """The membership a committed reconfig left in `data_dir` (None: there was none)."""
    try:
        return msgspec.json.decode(Path(data_dir, MEMBERSHIP_FILE).read_bytes(), type=Membership)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError) as exc:
        raise ConfigError(f"cannot read {Path(data_dir, MEMBERSHIP_FILE)}: {exc}") from exc


def write_membership(data_dir: str | Path, membership: Membership) -> None:
    write_atomic(Path(data_dir, MEMBERSHIP_FILE), msgspec.json.encode(membership))


class NodeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sid: int = 1  # this node's server id (ZooKeeper's myid)
    data_dir: str = "zoomq-data"
    client_host: str = "127.0.0.1"
    client_port: int = DEFAULT_CLIENT_PORT
    # ZooKeeper's own client protocol (jute over TCP) for kazoo, zkCli.sh, Curator...: the gateway
    # actor listens on this port (on client_host). 0 = off.
    zk_port: int = 0
    # The same protocol inside TLS (ZooKeeper's secureClientPort), e.g. kazoo's use_ssl=True. Needs
    # zk_tls_cert and zk_tls_key (PEM); zk_tls_ca (PEM) verifies client certificates, and a verified
    # client is authenticated as x509:<subject> (ZooKeeper's X509AuthenticationProvider).
    # zk_tls_client_auth as ZooKeeper's ssl.clientAuth: "need" (default with a CA), "want", "none".
    # `zoomq tls generate` makes a CA and certificates for a test ensemble.
    zk_secure_port: int = 0
    zk_tls_cert: str = ""
    zk_tls_key: str = ""
    zk_tls_ca: str = ""
    zk_tls_client_auth: str = ""
    # SASL DIGEST-MD5 users for ZooKeeper clients (kazoo's sasl_options), name -> password, as
    # ZooKeeper's JAAS user_<name>="<password>"; such a client is authenticated as sasl:<name>.
    # Empty = no SASL (a client that tries gets AuthFailed). Keep the config file private.
    sasl_users: dict[str, str] = {}
    run_dir: str = ""  # ipc sockets; empty = a short directory under /tmp chosen at start
    tick_ms: int = 2000
    init_limit: int = 10  # ticks a learner may take to connect and synchronize (ZooKeeper's initLimit)
    sync_limit: int = 5  # ticks of silence after which a peer is taken as lost (syncLimit)
    min_session_timeout_ms: int = 0  # 0 = 2 x tick_ms
    max_session_timeout_ms: int = 0  # 0 = 20 x tick_ms
    max_data_bytes: int = MAX_DATA_BYTES
    max_children_listed: int = 1_000_000
    # The most znodes one GetSubtree (what `zoomq backup` and `zoomq export` read, in one step of
    # the session actor so that it is consistent) may hold; a larger subtree is refused with
    # BadArgumentsError: back up its parts. 1M znodes of small values take the session actor about
    # two seconds (a frame of ~90 MB), during which it answers no other client.
    backup_max_znodes: int = 1_000_000
    snapshot_every: int = 100_000  # txns between snapshots
    snapshot_retain: int = 3  # newest snapshots (and the logs they need) kept by purge
    # Ensembles: the role actor started ahead of time also reads the state, so that a new leader
    # only catches up from the log (costs that process a copy of the tree until a role is taken).
    standby_preload: bool = True
    # ZooKeeper's readonlymode.enabled: a node cut off from the quorum goes on serving reads to
    # clients that asked for read-only (Client(read_only=True)), refusing writes with
    # NotReadOnlyCallError, until it rejoins. Off by default, as in ZooKeeper. Ensembles only.
    read_only_mode: bool = False
    # Operators' HTTP ports (actors/ops), on client_host, 0 = off (the default): Prometheus'
    # /metrics (ZooKeeper's metricsProvider.httpPort), and ZooKeeper's AdminServer JSON API
    # (`GET /commands/<name>`, admin.serverPort).
    metrics_port: int = 0
    admin_port: int = 0
    # ZooKeeper's reconfigEnabled: whether `reconfig` may change the membership of the running
    # ensemble (by a super user, or a session the ACL of /zookeeper/config lets WRITE). Off by
    # default, as in ZooKeeper (ReconfigDisabledError); `zoomq ensemble up` turns it on.
    reconfig_enabled: bool = False
    # How many of its latest txns (with watch events) a node keeps the events of, so that a
    # persistent watch resumed after a reconnect (or with since_zxid) gets every change it
    # missed in order; one further back gets a single RESYNC event. 0 = keep none.
    watch_history_txns: int = 100_000
    # How many of its latest txns a leader synchronizes a learner from without reading its log
    # (ZooKeeper's commitLogCount); a learner further behind gets the log after the newest
    # snapshot (DIFF) or the snapshot (SNAP). At most 20000.
    sync_memory_txns: int = 20_000
    log_roll_bytes: int = 64 * 1024 * 1024
    container_check_ms: int = 60_000  # how often containers and TTL nodes are checked
    restart_max: int = 5  # more than this many restarts of one node ...
    restart_window_s: float = 30.0  # ... within this window restarts the node's whole actor set
    restart_backoff_s: float = 0.1  # first restart delay, doubled per recent restart
    restart_backoff_max_s: float = 5.0
    log_level: str = "info"
    log_json: bool | None = None  # None = JSON when stderr is not a terminal
    servers: list[ServerEntry] = []  # empty = standalone
    # "super:<base64 sha1>" (zoomq.security.make_digest_acl_credential("super", pw)): a session that
    # authenticates with this digest bypasses every ACL check. Empty = no super user.
    super_digest: str = ""
    # CurveZMQ (runtime/curve.py): this node's key pair (a .key_secret file from `zoomq keys
    # generate`). Set, it encrypts and authenticates the client port and the quorum and election
    # ports. Empty = plain TCP.
    curve_secret_key: str = ""
    # Which clients may connect when CURVE is on: a directory of their public .key files (re-read
    # when it changes), or "*" = any client key (encryption without client authentication).
    curve_client_keys: str = ""
    # Public keys of servers that may join by a reconfig (CURVE on): a directory where server N's
    # key is the file `server.N.key`, re-read when it changes. Such a server is admitted on the
    # quorum and election ports, and connected to, without restarting the members. Empty = only
    # the keys in `servers`.
    curve_peer_keys: str = ""

    @property
    def gateway_on(self) -> bool:
        """Whether the node serves ZooKeeper's protocol (plain, TLS or both)."""
        return bool(self.zk_port or self.zk_secure_port)

    @property
    def min_timeout_ms(self) -> int:
        return self.min_session_timeout_ms or 2 * self.tick_ms

    @property
    def max_timeout_ms(self) -> int:
        return self.max_session_timeout_ms or 20 * self.tick_ms


class ConfigError(ValueError):
    """The configuration file or flags are invalid."""


def load(path: str | Path | None = None, **overrides: Any) -> NodeConfig:
    """Read `path` (TOML; may be None), then apply non-None `overrides` (command-line flags)."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = msgspec.convert(raw, NodeConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid config: {exc}") from exc
    if not (0 < cfg.client_port < 65536):
        raise ConfigError(f"client_port out of range: {cfg.client_port}")
    if not (0 <= cfg.zk_port < 65536) or cfg.zk_port == cfg.client_port:
        raise ConfigError(f"zk_port must be 0 (off) or a port other than client_port, not {cfg.zk_port}")
    if not (0 <= cfg.zk_secure_port < 65536) or cfg.zk_secure_port in (cfg.client_port, cfg.zk_port or -1):
        raise ConfigError(
            f"zk_secure_port must be 0 (off) or a port other than client_port and zk_port, not {cfg.zk_secure_port}"
        )
    ports = [p for p in (cfg.client_port, cfg.zk_port, cfg.zk_secure_port, cfg.metrics_port, cfg.admin_port) if p]
    if not all(0 <= p < 65536 for p in (cfg.metrics_port, cfg.admin_port)) or len(set(ports)) != len(ports):
        raise ConfigError(
            f"metrics_port and admin_port must be 0 (off) or ports of their own, not {cfg.metrics_port} / {cfg.admin_port}"
        )
    cfg = _check_tls(cfg)
    if cfg.tick_ms <= 0 or cfg.min_timeout_ms > cfg.max_timeout_ms:
        raise ConfigError("tick_ms must be > 0 and min session timeout <= max")
    if cfg.super_digest and (cfg.super_digest.count(":") != 1 or not all(cfg.super_digest.split(":"))):
        raise ConfigError("super_digest must look like user:BASE64(SHA1(user:password))")
    if cfg.sync_memory_txns < 0:
        raise ConfigError("sync_memory_txns must be >= 0")
    if cfg.init_limit <= 0 or cfg.sync_limit <= 0:
        raise ConfigError("init_limit and sync_limit must be > 0 (ticks)")
    membership = read_membership(cfg.data_dir) if cfg.servers else None
    if membership is not None:
        # A reconfig changed the membership since the config file was written: the data dir's
        # copy wins (as ZooKeeper's dynamic config file), CURVE keys of known members kept.
        servers = keep_curve_keys(membership.servers, cfg.servers)
        if cfg.sid not in {s.id for s in servers}:
            raise ConfigError(
                f"server {cfg.sid} was removed from the ensemble by reconfig {membership.version:#x} "
                f"({cfg.data_dir}/{MEMBERSHIP_FILE}); start it with a new data dir to join again"
            )
        cfg = msgspec.structs.replace(cfg, servers=servers)
    if cfg.servers:
        ids = [s.id for s in cfg.servers]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"duplicate server ids in servers: {sorted(ids)}")
        if cfg.sid not in ids:
            raise ConfigError(f"sid {cfg.sid} is not one of the configured servers {sorted(ids)}")
        for entry in cfg.servers:
            if entry.role not in ("participant", "observer"):
                raise ConfigError(f"server {entry.id}: role must be participant or observer, not {entry.role!r}")
        if not any(s.role == "participant" for s in cfg.servers):
            raise ConfigError("an ensemble needs at least one participant")
        if len(cfg.servers) == 1 and membership is None:
            # A one-member list is this node alone: it serves standalone, as ZooKeeper does with a
            # single server entry (standaloneEnabled), instead of looking for peers forever.
            cfg = msgspec.structs.replace(cfg, servers=[])
    return _check_curve(cfg, added_by_reconfig=membership is not None)


def _check_tls(cfg: NodeConfig) -> NodeConfig:
    """The secure ZooKeeper port's files must load now, not in the gateway after start."""
    from actors.gateway import tls

    if not cfg.zk_secure_port:
        if cfg.zk_tls_cert or cfg.zk_tls_key or cfg.zk_tls_ca:
            raise ConfigError("zk_tls_cert / zk_tls_key / zk_tls_ca are set but zk_secure_port is not")
        return cfg
    if not cfg.zk_tls_cert or not cfg.zk_tls_key:
        raise ConfigError(
            "zk_secure_port needs zk_tls_cert and zk_tls_key (PEM files; `zoomq tls generate` makes them)"
        )
    files = {
        name: str(Path(getattr(cfg, name)).resolve()) if getattr(cfg, name) else ""
        for name in ("zk_tls_cert", "zk_tls_key", "zk_tls_ca")
    }
    try:
        tls.server_context(files["zk_tls_cert"], files["zk_tls_key"], files["zk_tls_ca"], cfg.zk_tls_client_auth)
    except tls.TlsError as exc:
        raise ConfigError(str(exc)) from exc
    return msgspec.structs.replace(cfg, **files)


def _check_curve(cfg: NodeConfig, added_by_reconfig: bool = False) -> NodeConfig:
    """With CURVE on: the key files load, and every server has a key (its curve_public_key, or
    `server.<id>.key` in curve_peer_keys). `added_by_reconfig`: the servers come from the data
    dir's membership, where one added without its key yet is let be (the node starts, and
    connects to it once the key file is there) instead of keeping this member down."""
    from runtime import curve

    if not cfg.curve_secret_key:
        if cfg.curve_client_keys or cfg.curve_peer_keys or any(s.curve_public_key for s in cfg.servers):
            raise ConfigError(
                "curve_client_keys, curve_peer_keys and servers' curve_public_key need curve_secret_key "
                "(this node's key pair)"
            )
        return cfg
    secret_path = str(Path(cfg.curve_secret_key).resolve())
    try:
        own_public, _ = curve.secret_pair(secret_path)
    except curve.CurveError as exc:
        raise ConfigError(f"curve_secret_key: {exc}") from exc
    clients = cfg.curve_client_keys
    if not clients:
        raise ConfigError(
            'curve_secret_key needs curve_client_keys: a directory of client public keys, or "*" for any client'
        )
    if clients != curve.ANY_CLIENT:
        clients = str(Path(clients).resolve())
        if not Path(clients).is_dir():
            raise ConfigError(f"curve_client_keys: {clients} is not a directory")
    peer_dir = cfg.curve_peer_keys
    if peer_dir:
        peer_dir = str(Path(peer_dir).resolve())
        if not Path(peer_dir).is_dir():
            raise ConfigError(f"curve_peer_keys: {peer_dir} is not a directory")
    servers = []
    for entry in cfg.servers:
        value = entry.curve_public_key
        if not value and peer_dir and curve.server_key_file(peer_dir, entry.id).is_file():
            value = str(curve.server_key_file(peer_dir, entry.id))
        if not value:
            if added_by_reconfig and entry.id != cfg.sid:
                servers.append(entry)
                continue
            raise ConfigError(
                f"server {entry.id}: curve_public_key is required when CURVE is on "
                f"(or server.{entry.id}.key in curve_peer_keys)"
            )
        try:
            key = curve.public_key(value).decode()
        except curve.CurveError as exc:
            raise ConfigError(f"server {entry.id}: {exc}") from exc
        if entry.id == cfg.sid and key.encode() != own_public:
            raise ConfigError(f"server {entry.id}: curve_public_key is not the public half of curve_secret_key")
        servers.append(msgspec.structs.replace(entry, curve_public_key=key))
    return msgspec.structs.replace(
        cfg, curve_secret_key=secret_path, curve_client_keys=clients, curve_peer_keys=peer_dir, servers=servers
    )


def to_json(cfg: NodeConfig) -> bytes:
    return msgspec.json.encode(cfg)


def from_json(data: bytes) -> NodeConfig:
    return msgspec.json.decode(data, type=NodeConfig)
