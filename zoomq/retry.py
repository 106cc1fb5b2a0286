"""kazoo's retry helper: `KazooRetry` retries an operation on connection trouble with backoff."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from zoomq.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    OperationTimeoutError,
    SessionExpiredError,
)


class ForceRetryError(Exception):
    """Raised by an operation to ask for another try."""


class RetryFailedError(KazooException):
    """The retries ran out."""


class InterruptedError(RetryFailedError):  # noqa: A001 - kazoo's name
    """The retry was interrupted by its `interrupt` callable."""


class KazooRetry:
    RETRY_EXCEPTIONS = (ConnectionLoss, OperationTimeoutError, ForceRetryError)
    EXPIRED_EXCEPTIONS = (SessionExpiredError,)

    def __init__(
        self,
        max_tries: int | None = 1,
        delay: float = 0.1,
        backoff: float = 2,
        max_jitter: float = 0.4,
        max_delay: float = 60.0,
        ignore_expire: bool = True,
        sleep_func: Callable[[float], Any] = time.sleep,
        deadline: float | None = None,
        interrupt: Callable[[], bool] | None = None,
    ) -> None:
        self.max_tries = -1 if max_tries is None else max_tries
        self.delay = delay
        self.backoff = backoff
        self.max_jitter = max(min(max_jitter, 1.0), 0.0)
        self.max_delay = float(max_delay)
        self.sleep_func = sleep_func
        self.deadline = deadline
        self.interrupt = interrupt
        # kazoo: ignore_expire=True treats a session expiry as retryable, like a connection loss.
        self.retry_exceptions = (
            self.RETRY_EXCEPTIONS + self.EXPIRED_EXCEPTIONS if ignore_expire else self.RETRY_EXCEPTIONS
        )
        self._attempts = 0
        self._cur_delay = delay

    def reset(self) -> None:
        self._attempts = 0
        self._cur_delay = self.delay

    def copy(self) -> KazooRetry:
        obj = KazooRetry(
            max_tries=self.max_tries,
            delay=self.delay,
            backoff=self.backoff,
            max_jitter=self.max_jitter,
            max_delay=self.max_delay,
            sleep_func=self.sleep_func,
            deadline=self.deadline,
            interrupt=self.interrupt,
        )
        obj.retry_exceptions = self.retry_exceptions
        return obj

    def __call__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.reset()
        stop_at = None if self.deadline is None else time.monotonic() + self.deadline
        while True:
            try:
                return func(*args, **kwargs)
            except ConnectionClosedError:
                raise
            except self.retry_exceptions:
                if self._attempts == self.max_tries:
                    raise RetryFailedError("too many retry attempts") from None
                self._attempts += 1
                jitter = random.uniform(1.0 - self.max_jitter, 1.0 + self.max_jitter)  # noqa: S311
                sleep = min(self._cur_delay * jitter, self.max_delay)
                if stop_at is not None and time.monotonic() + sleep >= stop_at:
                    raise RetryFailedError("exceeded retry deadline") from None
                if self.interrupt is not None:
                    end = time.monotonic() + sleep
                    while time.monotonic() < end:
                        if self.interrupt():
                            raise InterruptedError() from None
                        self.sleep_func(min(0.1, end - time.monotonic()))
                else:
                    self.sleep_func(sleep)
                self._cur_delay = min(self._cur_delay * self.backoff, self.max_delay)
