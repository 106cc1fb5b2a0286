"""Counter with kazoo's name and behaviour: a number kept in a node's data, changed atomically.

Each change reads the value and its version and writes the new value only at that version;
a concurrent change makes the write fail with BadVersionError and the change is retried, so no
change is lost. The type of `default` (int or float) is the counter's type. After a change,
`pre_value` and `post_value` hold the value before and after it.

    counter = Counter(client, "/hits")
    counter += 1
    counter -= 2
    counter.value
"""

from __future__ import annotations

import struct
from typing import Any

from zoomq.exceptions import BadVersionError
from zoomq.retry import ForceRetryError


class Counter:
    def __init__(self, client: Any, path: str, default: float = 0, support_curator: bool = False) -> None:
        self.client = client
        self.path = path
        self.default = default
        self.default_type = type(default)
        self.support_curator = support_curator  # Curator's layout: a 4-byte big-endian int
        self._ensured_path = False
        self.pre_value: int | float | None = None
        self.post_value: int | float | None = None
        if support_curator and not isinstance(default, int):
            raise TypeError(
                f"when support_curator is enabled the default type must be int, not {self.default_type.__name__}"
            )

    def _ensure_node(self) -> None:
        if not self._ensured_path:
            self.client.ensure_path(self.path)
            self._ensured_path = True

    def _decode(self, data: bytes) -> int | float:
        if not data:
            return self.default
        if self.support_curator:
            return struct.unpack(">i", data)[0]
        return self.default_type(data.decode("ascii"))

    def _encode(self, value: float) -> bytes:
        if self.support_curator:
            return struct.pack(">i", value)
        return repr(value).encode("ascii")

    def _value(self) -> tuple[int | float, int]:
        self._ensure_node()
        data, stat = self.client.get(self.path)
        return self._decode(data), stat.version

    @property
    def value(self) -> int | float:
        return self._value()[0]

    def _change(self, value: float) -> Counter:
        if not isinstance(value, self.default_type):
            raise TypeError("invalid type for value change")
        self.client.retry(self._inner_change, value)
        return self

    def _inner_change(self, value: float) -> None:
        self.pre_value, version = self._value()
        post_value = self.pre_value + value
        try:
            self.client.set(self.path, self._encode(post_value), version=version)
        except BadVersionError:
            self.post_value = None
            raise ForceRetryError() from None  # someone changed it in between: read again
        self.post_value = post_value

    def __add__(self, value: float) -> Counter:
        """`counter += n`: add n atomically."""
        return self._change(value)

    def __sub__(self, value: float) -> Counter:
        """`counter -= n`: subtract n atomically."""
        return self._change(-value)
