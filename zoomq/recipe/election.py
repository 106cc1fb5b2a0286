"""Election with kazoo's name and signature: contenders queue on a Lock; the holder leads.

`run(func, *args, **kwargs)` blocks until this contender is elected, calls `func`, and gives
leadership up when `func` returns (or raises). `cancel()` withdraws a waiting contender: its
`run` then returns without calling `func`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoomq.exceptions import CancelledError
from zoomq.recipe.lock import Lock


class Election:
    def __init__(self, client: Any, path: str, identifier: str | None = None) -> None:
        self.lock = Lock(client, path, identifier)

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Wait to be elected, then lead: call `func(*args, **kwargs)`; step down when it returns."""
        if not callable(func):
            raise ValueError("leader function is not callable")  # noqa: TRY004 - kazoo raises ValueError
        try:
            with self.lock:
                func(*args, **kwargs)
        except CancelledError:
            pass

    def cancel(self) -> None:
        """Stop waiting to be elected (a leader's func is not interrupted)."""
        self.lock.cancel()

    def contenders(self) -> list[str]:
        """Identifiers of the leader and those waiting, leader first."""
        return self.lock.contenders()
