"""zoomq for asyncio: the same operations and recipes as `zoomq.Client`, as coroutines.

One protocol implementation serves both faces. `zoomq.aio.Client` drives a `zoomq.Client` (its
I/O thread owns the ZeroMQ socket, matches replies, reconnects, resumes the session and re-sends
what was in flight) and turns each of its asynchronous results into an awaitable: a request costs
no thread, and many coroutines can have requests in flight at once.

    import asyncio
    from zoomq.aio import Client

    async def main():
        async with Client("127.0.0.1:2181") as zk:
            await zk.ensure_path("/app")
            await zk.create("/app/node", b"hello")
            data, stat = await zk.get("/app/node", watch=on_change)
            async with zk.Lock("/app/lock", "worker-1"):
                ...

Callbacks (watches, state listeners, recipe callbacks) run on the event loop the client was
started from, in the order the node sent the events. A callback may be a plain function or a
coroutine function; a coroutine is started as a task, in order.

Recipes are the threaded ones behind an awaitable face: each blocking recipe call (acquire, wait,
get, run, ...) runs on a thread of its own, so the event loop never blocks. Cancelling the task
that awaits `acquire` cancels the acquisition (`cancel()` on the recipe), and a lock acquired in
that same instant is released, not leaked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self

from zoomq import client as engine
from zoomq.exceptions import ConnectionClosedError, NodeExistsError, NoNodeError
from zoomq.retry import InterruptedError, KazooRetry, RetryFailedError
from zoomq.security import ACL
from zoomq.states import WatchedEvent, WatcherType, ZnodeStat

__all__ = ["Client", "TransactionRequest"]


def _settle(future: asyncio.Future, result: engine.AsyncResult) -> None:
    if future.done():
        return
    if result.exception is not None:
        future.set_exception(result.exception)
    else:
        future.set_result(result.value)


async def _thread_call(loop: asyncio.AbstractEventLoop, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call on a thread of its own (not a pool a few waiters could exhaust)."""
    future = loop.create_future()

    def run() -> None:
        try:
            value, error = func(*args, **kwargs), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, future, value, error)

    threading.Thread(target=run, name=f"zoomq-aio-{getattr(func, '__name__', 'call')}", daemon=True).start()
    return await future


def _resolve(future: asyncio.Future, value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class Client:
    """An asyncio face of `zoomq.Client`; the constructor takes the same arguments."""

    def __init__(self, hosts: str = "127.0.0.1:2181", **kwargs: Any) -> None:
        self._engine = engine.Client(hosts, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_loop: dict[Any, Callable[..., Any]] = {}  # user callback -> the engine's stand-in
        self._blocking: dict[Any, Callable[..., Any]] = {}
        self._tasks: set[asyncio.Task] = set()
        from zoomq.recipe import barrier, cache, counter, election, lock, party, scenarios, watchers
        from zoomq.recipe import queue as queue_recipe

        for name, cls in (
            ("Lock", lock.Lock),
            ("ReadLock", lock.ReadLock),
            ("WriteLock", lock.WriteLock),
            ("Semaphore", lock.Semaphore),
            ("Election", election.Election),
            ("Counter", counter.Counter),
            ("Barrier", barrier.Barrier),
            ("DoubleBarrier", barrier.DoubleBarrier),
            ("Party", party.Party),
            ("ShallowParty", party.ShallowParty),
            ("Queue", queue_recipe.Queue),
            ("LockingQueue", queue_recipe.LockingQueue),
            ("TreeCache", cache.TreeCache),
            ("ConfigCenter", scenarios.ConfigCenter),
            ("ServiceRegistry", scenarios.ServiceRegistry),
            ("Membership", scenarios.Membership),
        ):
            setattr(self, name, functools.partial(self._recipe, cls))
        self._watchers = watchers

    # --- what the engine knows ----------------------------------------------------------------

    @property
    def engine(self) -> engine.Client:
        """The threaded client underneath (same session): for code that wants both faces."""
        return self._engine

    state = property(lambda self: self._engine.state)
    client_state = property(lambda self: self._engine.client_state)
    connected = property(lambda self: self._engine.connected)
    client_id = property(lambda self: self._engine.client_id)
    hosts = property(lambda self: self._engine.hosts)
    chroot = property(lambda self: self._engine.chroot)
    last_zxid = property(lambda self: self._engine.last_zxid)
    auth_data = property(lambda self: self._engine.auth_data)
    default_acl = property(lambda self: self._engine.default_acl)

    def unchroot(self, path: str) -> str:
        return self._engine.unchroot(path)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, timeout: float = 15) -> None:
        self._loop = asyncio.get_running_loop()
        await _thread_call(self._loop, self._engine.start, timeout)

    async def stop(self) -> None:
        await _thread_call(asyncio.get_running_loop(), self._engine.stop)

    async def close(self) -> None:
        self._engine.close()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def add_listener(self, listener: Callable[[str], Any]) -> None:
        """`listener(state)` on the loop at every KazooState change; returning True removes it."""
        if not callable(listener):
            raise TypeError("listener must be callable")
        self._engine.add_listener(self._callback(listener, listener=True))

    def remove_listener(self, listener: Callable[[str], Any]) -> None:
        stand_in = self._on_loop.get(listener)
        if stand_in is not None:
            self._engine.remove_listener(stand_in)

    # --- operations ---------------------------------------------------------------------------

    async def _wait(self, result: engine.AsyncResult) -> Any:
        loop = self._running_loop()
        future = loop.create_future()

        def done(r: engine.AsyncResult) -> None:  # on the client's I/O thread
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, r)

        result.rawlink(done)
        return await future

    async def create(
        self,
        path: str,
        value: bytes = b"",
        acl: Any = None,
        ephemeral: bool = False,
        sequence: bool = False,
        makepath: bool = False,
        include_data: bool = False,
        container: bool = False,
        ttl: int = 0,
    ) -> Any:
        if makepath:
            parent = path.rstrip("/").rsplit("/", 1)[0]
            if parent:
                await self.ensure_path(parent, acl)
        return await self._wait(
            self._engine.create_async(
                path, value, acl, ephemeral, sequence, include_data=include_data, container=container, ttl=ttl
            )
        )

    async def ensure_path(self, path: str, acl: Any = None) -> bool:
        if await self.exists(path):
            return True
        current = ""
        for part in (x for x in path.split("/") if x):
            current += "/" + part
            with contextlib.suppress(NodeExistsError):
                await self.create(current, b"", acl=acl)
        return True

    async def exists(self, path: str, watch: Callable | None = None, *, linearizable: bool = False) -> ZnodeStat | None:
        return await self._wait(self._engine.exists_async(path, self._callback(watch), linearizable=linearizable))

    async def get(
        self, path: str, watch: Callable | None = None, *, linearizable: bool = False
    ) -> tuple[bytes, ZnodeStat]:
        return await self._wait(self._engine.get_async(path, self._callback(watch), linearizable=linearizable))

    async def get_children(
        self, path: str, watch: Callable | None = None, include_data: bool = False, *, linearizable: bool = False
    ) -> Any:
        return await self._wait(
            self._engine.get_children_async(path, self._callback(watch), include_data, linearizable=linearizable)
        )

    async def set(self, path: str, value: bytes, version: int = -1) -> ZnodeStat:
        return await self._wait(self._engine.set_async(path, value, version))

    async def delete(self, path: str, version: int = -1, recursive: bool = False) -> bool:
        if not recursive:
            return await self._wait(self._engine.delete_async(path, version))
        try:
            children = await self.get_children(path)
            await asyncio.gather(*(self.delete(path.rstrip("/") + "/" + c, recursive=True) for c in children))
            await self.delete(path, version)
        except NoNodeError:
            pass
        return True

    async def get_acls(self, path: str) -> tuple[list[ACL], ZnodeStat]:
        return await self._wait(self._engine.get_acls_async(path))

    async def set_acls(self, path: str, acls: Any, version: int = -1) -> ZnodeStat:
        return await self._wait(self._engine.set_acls_async(path, acls, version))

    async def add_auth(self, scheme: str, credential: str) -> bool:
        return await self._wait(self._engine.add_auth_async(scheme, credential))

    async def sync(self, path: str) -> str:
        return await self._wait(self._engine.sync_async(path))

    async def add_watch(
        self,
        path: str,
        watch: Callable[[WatchedEvent], Any],
        mode: int | None = None,
        *,
        recursive: bool = False,
        since_zxid: int | None = None,
    ) -> None:
        if not callable(watch):
            raise TypeError("watch must be callable")
        await self._wait(
            self._engine.add_watch_async(path, self._callback(watch), mode, recursive=recursive, since_zxid=since_zxid)
        )

    async def remove_watches(self, path: str, watcher_type: int = WatcherType.ANY) -> None:
        await self._wait(self._engine.remove_watches_async(path, watcher_type))

    async def get_children_count(self, path: str) -> int:
        return await self._wait(self._engine.get_children_count_async(path))

    async def get_ephemerals(self, prefix: str = "/") -> list[str]:
        return await self._wait(self._engine.get_ephemerals_async(prefix))

    async def get_subtree(self, path: str = "/") -> Any:
        """The subtree at `path` read in one step (see zoomq.Client.get_subtree)."""
        return await self._wait(self._engine.get_subtree_async(path))

    async def command(self, cmd: bytes | str = b"ruok") -> str:
        return await asyncio.wait_for(self._wait(self._engine.command_async(cmd)), 10)

    async def reconfig(
        self, joining: str | None, leaving: str | None, new_members: str | None, from_config: int = -1
    ) -> tuple[bytes, ZnodeStat]:
        """Change the ensemble's membership; (new /zookeeper/config content, its Stat). As
        `zoomq.Client.reconfig` (the same arguments, checks and errors)."""
        return await self._wait(self._engine.reconfig_async(joining, leaving, new_members, from_config))

    def transaction(self) -> TransactionRequest:
        return TransactionRequest(self)

    async def retry(self, func: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """`await func(*args, **kwargs)` again after a connection loss, with the client's retry
        policy (KazooRetry's tries, backoff, jitter and deadline), sleeping without blocking."""
        return await retry_async(self._engine.retry_policy, func, *args, **kwargs)

    # --- callbacks ----------------------------------------------------------------------------

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _callback(self, func: Callable | None, listener: bool = False) -> Callable | None:
        """The engine's stand-in for `func`: runs it on the loop (the same stand-in for the same
        function, so a function set twice as a watch is called once, as in kazoo)."""
        if func is None:
            return None
        if not callable(func):
            raise TypeError("watch must be callable")
        stand_in = self._on_loop.get(func)
        if stand_in is not None:
            return stand_in
        loop = self._running_loop()

        def invoke(*args: Any) -> None:  # on the loop
            outcome = func(*args)
            if inspect.iscoroutine(outcome):
                task = loop.create_task(outcome)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif listener and outcome is True:
                self._engine.remove_listener(stand_in)

        def stand_in(*args: Any) -> None:  # on the engine's event thread
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(invoke, *args)

        self._on_loop[func] = stand_in
        return stand_in

    def _bridge(self, func: Callable) -> Callable:
        """A blocking stand-in for a recipe's callback: runs `func` (plain or coroutine) on the
        loop and returns its result to the recipe's thread (DataWatch's False stops it)."""
        stand_in = self._blocking.get(func)
        if stand_in is not None:
            return stand_in
        loop = self._running_loop()

        async def call(args: tuple, kwargs: dict) -> Any:
            outcome = func(*args, **kwargs)
            return await outcome if inspect.isawaitable(outcome) else outcome

        def stand_in(*args: Any, **kwargs: Any) -> Any:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:  # already on the loop (cannot wait for itself)
                outcome = func(*args, **kwargs)
                if inspect.isawaitable(outcome):
                    loop.create_task(outcome)
                    return None
                return outcome
            try:
                return asyncio.run_coroutine_threadsafe(call(args, kwargs), loop).result()
            except RuntimeError:  # the loop is closed: the program is going away
                return False

        functools.update_wrapper(stand_in, func)
        self._blocking[func] = stand_in
        return stand_in

    # --- recipes ------------------------------------------------------------------------------

    def _recipe(self, cls: type, *args: Any, **kwargs: Any) -> AsyncRecipe:
        args = tuple(self._bridge(a) if callable(a) else a for a in args)
        kwargs = {k: self._bridge(v) if callable(v) else v for k, v in kwargs.items()}
        return AsyncRecipe(self, cls(self._engine, *args, **kwargs))

    def DataWatch(self, path: str, func: Callable | None = None, *args: Any, **kwargs: Any) -> Any:
        """kazoo's DataWatch, `func(data, stat)` (a function or a coroutine function) run on the
        loop; returning False stops it. `@client.DataWatch(path)` decorates and returns the
        function; `client.DataWatch(path, func)` returns a task that is done after the first call
        (await it to know the current value was seen)."""
        return self._watch(self._watchers.DataWatch, path, func, *args, **kwargs)

    def ChildrenWatch(self, path: str, func: Callable | None = None, *args: Any, **kwargs: Any) -> Any:
        """kazoo's ChildrenWatch, `func(children)` run on the loop; forms as DataWatch."""
        return self._watch(self._watchers.ChildrenWatch, path, func, *args, **kwargs)

    def _watch(self, cls: type, path: str, func: Callable | None, *args: Any, **kwargs: Any) -> Any:
        loop = self._running_loop()
        watch = cls(self._engine, path, None, *args, **kwargs)

        def begin(user_func: Callable) -> asyncio.Task:
            # The first read and call happen on a thread: the loop stays free to run the callback.
            task = loop.create_task(_thread_call(loop, lambda: watch(self._bridge(user_func)) and watch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return task

        if func is None:

            def decorate(user_func: Callable) -> Callable:
                begin(user_func)
                return user_func

            return decorate
        return begin(func)


class AsyncRecipe:
    """A recipe's awaitable face: its methods are coroutines that run the recipe's (blocking)
    method on a thread of its own; attributes read through; `async with` acquires and releases;
    `async for` iterates the members of a Party."""

    _LOCAL = frozenset({"get_data", "get_children", "listen"})  # TreeCache's reads of its mirror

    def __init__(self, client: Client, recipe: Any) -> None:
        self._client = client
        self._recipe = recipe

    @property
    def recipe(self) -> Any:
        """The threaded recipe underneath."""
        return self._recipe

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._recipe, name)
        if not callable(attr) or name.startswith("_"):
            return attr
        if name in self._LOCAL:
            return self._local(attr)
        return self._awaitable(name, attr)

    def _local(self, method: Callable) -> Callable:
        def call(*args: Any, **kwargs: Any) -> Any:
            return method(*self._bridged(args), **kwargs)

        return call

    def _bridged(self, args: tuple) -> tuple:
        return tuple(self._client._bridge(a) if callable(a) else a for a in args)

    def _awaitable(self, name: str, method: Callable) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            loop = asyncio.get_running_loop()
            args = self._bridged(args)
            kwargs = {k: self._client._bridge(v) if callable(v) else v for k, v in kwargs.items()}
            pending = asyncio.ensure_future(_thread_call(loop, method, *args, **kwargs))
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                self._abandon(name, pending)
                raise

        call.__name__ = name
        call.__doc__ = method.__doc__
        return call

    def _abandon(self, name: str, pending: asyncio.Future) -> None:
        """The awaiting task was cancelled while the recipe's thread still works: stop the wait,
        and give back what it obtained meanwhile."""
        cancel = getattr(self._recipe, "cancel", None)
        if callable(cancel) and name in ("acquire", "run", "get", "wait", "enter"):
            cancel()
        release = getattr(self._recipe, "release", None)

        def after(done: asyncio.Future) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            if name == "acquire" and done.result() is True and callable(release):
                threading.Thread(target=release, name="zoomq-aio-release", daemon=True).start()

        pending.add_done_callback(after)

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    async def members(self) -> list[str]:
        """The members (a Party's, which kazoo iterates; a Membership's)."""
        own = getattr(self._recipe, "members", None)
        return await _thread_call(
            asyncio.get_running_loop(), own if callable(own) else functools.partial(list, self._recipe)
        )

    async def size(self) -> int:
        """len() of a Party or a Queue."""
        return await _thread_call(asyncio.get_running_loop(), len, self._recipe)

    def __aiter__(self) -> Any:
        async def iterate() -> Any:
            for member in await self.members():
                yield member

        return iterate()

    async def value(self) -> Any:
        """A Counter's current value."""
        return await _thread_call(asyncio.get_running_loop(), lambda: self._recipe.value)

    async def add(self, amount: float) -> Any:
        """A Counter's `+= amount` (versioned set, retried on conflict); returns the new value."""
        return await _thread_call(asyncio.get_running_loop(), lambda: (self._recipe + amount).post_value)

    async def subtract(self, amount: float) -> Any:
        """A Counter's `-= amount`; returns the new value."""
        return await _thread_call(asyncio.get_running_loop(), lambda: (self._recipe - amount).post_value)

    def __repr__(self) -> str:
        return f"<async {self._recipe!r}>"


class TransactionRequest(engine.TransactionRequest):
    """kazoo's TransactionRequest with `await commit()` and `async with`."""

    def __init__(self, client: Client) -> None:
        super().__init__(client._engine)
        self._aio = client

    async def commit(self) -> list[Any]:  # type: ignore[override]
        return await self._aio._wait(self.commit_async())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            await self.commit()


async def retry_async(policy: KazooRetry, func: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """KazooRetry's loop for coroutines: the same exceptions, tries, backoff, jitter, deadline
    and interrupt, with asyncio.sleep between attempts."""
    attempts, delay = 0, policy.delay
    stop_at = None if policy.deadline is None else time.monotonic() + policy.deadline
    while True:
        try:
            return await func(*args, **kwargs)
        except ConnectionClosedError:
            raise
        except policy.retry_exceptions:
            if attempts == policy.max_tries:
                raise RetryFailedError("too many retry attempts") from None
            attempts += 1
            sleep = min(delay * random.uniform(1.0 - policy.max_jitter, 1.0 + policy.max_jitter), policy.max_delay)
            if stop_at is not None and time.monotonic() + sleep >= stop_at:
                raise RetryFailedError("exceeded retry deadline") from None
            end = time.monotonic() + sleep
            while (left := end - time.monotonic()) > 0:
                if policy.interrupt is not None and policy.interrupt():
                    raise InterruptedError() from None
                await asyncio.sleep(min(0.1, left))
            delay = min(delay * policy.backoff, policy.max_delay)
