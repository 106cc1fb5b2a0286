"""Exceptions with kazoo's names, and the one table from ZooKeeper error code to class.

The server sends an integer code (ZooKeeper's KeeperException.Code); `EXCEPTIONS[code]` is the
class the client raises. `Codes` names the codes for the server side, which imports this module
for the numbers only.
"""

from __future__ import annotations


class Codes:
    OK = 0
    SYSTEMERROR = -1
    RUNTIMEINCONSISTENCY = -2
    DATAINCONSISTENCY = -3
    CONNECTIONLOSS = -4
    MARSHALLINGERROR = -5
    UNIMPLEMENTED = -6
    OPERATIONTIMEOUT = -7
    BADARGUMENTS = -8
    UNKNOWNSESSION = -12
    NEWCONFIGNOQUORUM = -13
    RECONFIGINPROGRESS = -14
    APIERROR = -100
    NONODE = -101
    NOAUTH = -102
    BADVERSION = -103
    NOCHILDRENFOREPHEMERALS = -108
    NODEEXISTS = -110
    NOTEMPTY = -111
    SESSIONEXPIRED = -112
    INVALIDCALLBACK = -113
    INVALIDACL = -114
    AUTHFAILED = -115
    SESSIONMOVED = -118
    NOTREADONLY = -119
    EPHEMERALONLOCALSESSION = -120
    NOWATCHER = -121
    REQUESTTIMEOUT = -122
    RECONFIGDISABLED = -123
    SESSIONCLOSEDREQUIRESASLAUTH = -124
    QUOTAEXCEEDED = -125
    THROTTLEDOP = -127


class KazooException(Exception):
    """Root of every exception this client raises."""


class ZookeeperError(KazooException):
    """An error the server reported; `code` is ZooKeeper's error code."""

    code: int = Codes.APIERROR


class CancelledError(KazooException):
    """A recipe operation was cancelled."""


class ConfigurationError(KazooException):
    """Bad client configuration."""


class ZookeeperStoppedError(KazooException):
    """The client is stopped: call start() first."""


class ConnectionDropped(KazooException):
    """Internal: the connection went away."""


class LockTimeout(KazooException):
    """A lock was not acquired within the timeout."""


class WriterNotClosedException(KazooException):
    pass


class SASLException(KazooException):
    pass


class TimeoutError(KazooException):  # noqa: A001 - kazoo's handler timeout lives under this name here
    """Waiting for a result or a connection took longer than allowed."""


KazooTimeoutError = TimeoutError

EXCEPTIONS: dict[int, type[ZookeeperError]] = {}


def _code(code: int):
    def register(cls: type[ZookeeperError]) -> type[ZookeeperError]:
        cls.code = code
        EXCEPTIONS[code] = cls
        return cls

    return register


@_code(Codes.SYSTEMERROR)
class SystemZookeeperError(ZookeeperError):
    pass


@_code(Codes.RUNTIMEINCONSISTENCY)
class RuntimeInconsistency(ZookeeperError):
    pass


@_code(Codes.DATAINCONSISTENCY)
class DataInconsistency(ZookeeperError):
    pass


@_code(Codes.CONNECTIONLOSS)
class ConnectionLoss(ZookeeperError):
    pass


@_code(Codes.MARSHALLINGERROR)
class MarshallingError(ZookeeperError):
    pass


@_code(Codes.UNIMPLEMENTED)
class UnimplementedError(ZookeeperError):
    pass


@_code(Codes.OPERATIONTIMEOUT)
class OperationTimeoutError(ZookeeperError):
    pass


@_code(Codes.BADARGUMENTS)
class BadArgumentsError(ZookeeperError):
    pass


@_code(Codes.UNKNOWNSESSION)
class UnknownSessionError(ZookeeperError):
    pass


@_code(Codes.NEWCONFIGNOQUORUM)
class NewConfigNoQuorumError(ZookeeperError):
    pass


@_code(Codes.RECONFIGINPROGRESS)
class ReconfigInProcessError(ZookeeperError):
    pass


@_code(Codes.APIERROR)
class APIError(ZookeeperError):
    pass


@_code(Codes.NONODE)
class NoNodeError(ZookeeperError):
    pass


@_code(Codes.NOAUTH)
class NoAuthError(ZookeeperError):
    pass


@_code(Codes.BADVERSION)
class BadVersionError(ZookeeperError):
    pass


@_code(Codes.NOCHILDRENFOREPHEMERALS)
class NoChildrenForEphemeralsError(ZookeeperError):
    pass


@_code(Codes.NODEEXISTS)
class NodeExistsError(ZookeeperError):
    pass


@_code(Codes.NOTEMPTY)
class NotEmptyError(ZookeeperError):
    pass


@_code(Codes.SESSIONEXPIRED)
class SessionExpiredError(ZookeeperError):
    pass


@_code(Codes.INVALIDCALLBACK)
class InvalidCallbackError(ZookeeperError):
    pass


@_code(Codes.INVALIDACL)
class InvalidACLError(ZookeeperError):
    pass


@_code(Codes.AUTHFAILED)
class AuthFailedError(ZookeeperError):
    pass


@_code(Codes.SESSIONMOVED)
class SessionMovedError(ZookeeperError):
    pass


@_code(Codes.NOTREADONLY)
class NotReadOnlyCallError(ZookeeperError):
    pass


@_code(Codes.EPHEMERALONLOCALSESSION)
class EphemeralOnLocalSessionError(ZookeeperError):
    pass


@_code(Codes.NOWATCHER)
class NoWatcherError(ZookeeperError):
    pass


@_code(Codes.REQUESTTIMEOUT)
class RequestTimeoutError(ZookeeperError):
    pass


@_code(Codes.RECONFIGDISABLED)
class ReconfigDisabledError(ZookeeperError):
    pass


@_code(Codes.SESSIONCLOSEDREQUIRESASLAUTH)
class SessionClosedRequireSaslError(ZookeeperError):
    pass


@_code(Codes.QUOTAEXCEEDED)
class QuotaExceededError(ZookeeperError):
    pass


@_code(Codes.THROTTLEDOP)
class ThrottledOpError(ZookeeperError):
    pass


class RolledBackError(ZookeeperError):
    """In a failed transaction: this op was valid but the transaction was not applied."""

    code = Codes.OK


class ConnectionClosedError(SessionExpiredError):
    """The client was closed while the request was outstanding."""


# C-style aliases, as kazoo exports them.
NoNodeException = NoNodeError
NodeExistsException = NodeExistsError
NoAuthException = NoAuthError
NotEmptyException = NotEmptyError
BadVersionException = BadVersionError
NoChildrenForEphemeralsException = NoChildrenForEphemeralsError
InvalidACLException = InvalidACLError
AuthFailedException = AuthFailedError
SessionExpiredException = SessionExpiredError
MarshallingErrorException = MarshallingError
UnimplementedException = UnimplementedError
OperationTimeoutException = OperationTimeoutError
BadArgumentsException = BadArgumentsError
ConnectionLossException = ConnectionLoss


def error_for(code: int, path: str | None = None) -> ZookeeperError:
    """The exception instance for a server error code (code 0 is a rolled-back multi op)."""
    if code == Codes.OK:
        return RolledBackError()
    cls = EXCEPTIONS.get(code)
    if cls is None:
        exc = SystemZookeeperError(f"unknown error code {code}")
        exc.code = code
        return exc
    return cls(path) if path is not None else cls()
