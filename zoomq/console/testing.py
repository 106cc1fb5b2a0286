"""The console served by uvicorn on a thread of this process, for tests and screenshots.

```python
from zoomq.console.testing import ConsoleThread

with ConsoleThread(hosts=server.hosts) as console:   # a free port on 127.0.0.1
    page.goto(console.url + "/tree")
```
Every wait is bounded: `start` raises if uvicorn is not serving within its timeout, and `stop`
ends the live streams, asks uvicorn to exit and joins its thread (bounded too).
"""

from __future__ import annotations

import threading
from typing import Any, Self

from zoomq.testing import free_port, wait_for


class ConsoleThread:
    def __init__(self, hosts: str, *, port: int | None = None, **config: Any) -> None:
        import uvicorn

        from zoomq.console.app import ConsoleConfig, create_app

        self.port = port or free_port()
        config.setdefault("allowed_hosts", ["127.0.0.1", "localhost"])
        self.config = ConsoleConfig(hosts=hosts, **config)
        self.app = create_app(self.config, port=self.port)
        self.console = self.app.console  # the Guard in front of the Starlette app holds it
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                timeout_graceful_shutdown=2,
                lifespan="on",
            )
        )
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self.error = exc

    def start(self, timeout: float = 15.0) -> Self:
        self.thread = threading.Thread(target=self._run, name=f"zoomq-console-{self.port}", daemon=True)
        self.thread.start()
        wait_for(
            lambda: self.server.started or self.error is not None or not self.thread.is_alive(),
            timeout=timeout,
            what=f"the console on port {self.port}",
        )
        if not self.server.started:
            raise RuntimeError(f"the console did not start on port {self.port}: {self.error!r}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.console.closing.set()  # live streams end within a second
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                self.server.force_exit = True
                self.thread.join(timeout)
        self.console.close()  # in case the lifespan's shutdown did not run

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["ConsoleThread"]
