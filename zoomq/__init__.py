"""zoomq: a replicated coordination service in the spirit of Apache ZooKeeper, with a
kazoo-compatible client. `from zoomq import Client` is the entry point."""

from zoomq.client import Client, KazooClient, TransactionRequest
from zoomq.retry import KazooRetry
from zoomq.states import AddWatchMode, EventType, KazooState, KeeperState, WatchedEvent, WatcherType, ZnodeStat

__version__ = "0.1.0"
__all__ = [
    "AddWatchMode",
    "Client",
    "EventType",
    "KazooClient",
    "KazooRetry",
    "KazooState",
    "KeeperState",
    "TransactionRequest",
    "WatchedEvent",
    "WatcherType",
    "ZnodeStat",
    "__version__",
]
