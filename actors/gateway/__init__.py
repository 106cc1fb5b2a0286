"""ZooKeeper's wire protocol (jute over TCP) for ZooKeeper clients, translated to the native one."""

GATEWAY_ENDPOINT = "session-gw"  # the session actor's ROUTER for the gateway, in the run dir (ipc)
GATEWAY_RID_PREFIX = b"gw-"  # routing ids of the gateway's connections to the session actor
