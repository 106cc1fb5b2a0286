"""KazooRetry's handling of session expiry, as kazoo defines ignore_expire."""

import pytest

from zoomq.exceptions import ConnectionLoss, SessionExpiredError
from zoomq.retry import KazooRetry

pytestmark = pytest.mark.timeout(10)


def _flaky(exc: type[Exception], failures: int):
    calls = []

    def func():
        calls.append(1)
        if len(calls) <= failures:
            raise exc()
        return "ok"

    return func, calls


def test_ignore_expire_retries_a_session_expiry():
    func, calls = _flaky(SessionExpiredError, 1)
    assert KazooRetry(max_tries=3, ignore_expire=True, sleep_func=lambda _s: None)(func) == "ok"
    assert len(calls) == 2


def test_without_ignore_expire_a_session_expiry_is_raised():
    func, calls = _flaky(SessionExpiredError, 1)
    with pytest.raises(SessionExpiredError):
        KazooRetry(max_tries=3, ignore_expire=False, sleep_func=lambda _s: None)(func)
    assert len(calls) == 1


def test_connection_loss_is_always_retried():
    func, calls = _flaky(ConnectionLoss, 2)
    assert KazooRetry(max_tries=3, ignore_expire=False, sleep_func=lambda _s: None)(func) == "ok"
    assert len(calls) == 3
