"""zoomq.aio.Client in its own habitat: coroutines on one event loop (the operation tests of the
threaded client also run through it: see the zk_face fixture)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from zoomq import KazooState
from zoomq.aio import Client
from zoomq.exceptions import ConnectionLoss, NodeExistsError, NoNodeError
from zoomq.retry import KazooRetry, RetryFailedError
from zoomq.states import EventType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_operations_and_errors(node):
    async def main():
        async with Client(node.hosts) as zk:
            assert zk.connected and zk.client_id is not None
            assert await zk.create("/a", b"1") == "/a"
            with pytest.raises(NodeExistsError):
                await zk.create("/a")
            data, stat = await zk.get("/a")
            assert (data, stat.version) == (b"1", 0)
            assert (await zk.set("/a", b"2")).version == 1
            assert await zk.create("/b/c/d", b"", makepath=True) == "/b/c/d"
            assert sorted(await zk.get_children("/")) == ["a", "b", "zookeeper"]
            assert await zk.get_children_count("/b") == 2
            async with zk.transaction() as t:
                t.create("/t1", b"x")
                t.set_data("/a", b"3")
            assert (await zk.get("/a"))[0] == b"3" and await zk.exists("/t1")
            await zk.delete("/b", recursive=True)
            assert await zk.exists("/b") is None
            with pytest.raises(NoNodeError):
                await zk.delete("/b")
            assert await zk.sync("/a") == "/a"
            assert await zk.command("ruok") == "imok"
        assert not zk.connected

    run(main())


def test_many_requests_in_flight_from_many_coroutines(node):
    async def main():
        async with Client(node.hosts) as zk:
            await zk.create("/many")
            names = await asyncio.gather(*(zk.create(f"/many/n{i:04d}", str(i).encode()) for i in range(600)))
            assert names == [f"/many/n{i:04d}" for i in range(600)]
            values = await asyncio.gather(*(zk.get(n) for n in names))
            assert [int(v) for v, _ in values] == list(range(600))

    run(main())


def test_watches_and_listeners_run_on_the_loop_and_may_be_coroutines(node):
    async def main():
        loop_thread = threading.get_ident()
        seen: asyncio.Queue = asyncio.Queue()
        states: list = []

        async def on_event(event):
            await seen.put((event.type, event.path, threading.get_ident()))

        def on_state(state):
            states.append((state, threading.get_ident()))

        async with Client(node.hosts) as zk:
            zk.add_listener(on_state)
            await zk.create("/w", b"")
            await zk.get("/w", watch=on_event)
            await zk.exists("/w", watch=on_event)  # the same function twice: called once
            await zk.set("/w", b"1")
            kind, path, thread = await asyncio.wait_for(seen.get(), 10)
            assert (kind, path, thread) == (EventType.CHANGED, "/w", loop_thread)
            await zk.add_watch("/w", on_event, recursive=True)
            await zk.create("/w/kid", b"")
            assert (await asyncio.wait_for(seen.get(), 10))[:2] == (EventType.CREATED, "/w/kid")
            assert seen.empty()
        deadline = asyncio.get_running_loop().time() + 10
        while KazooState.LOST not in [s for s, _ in states] and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert (KazooState.LOST, loop_thread) in states

    run(main())


def test_data_and_children_watch_recipes(node):
    async def main():
        async with Client(node.hosts) as zk:
            await zk.create("/dw", b"a")
            values: list = []
            kids: list = []
            changed = asyncio.Event()

            @zk.DataWatch("/dw")
            async def on_data(data, stat):
                values.append(data)
                changed.set()

            await zk.ChildrenWatch("/dw", lambda children: kids.append(sorted(children)))
            assert kids == [[]]
            await asyncio.wait_for(changed.wait(), 10)
            changed.clear()
            await zk.set("/dw", b"b")
            await zk.create("/dw/x", b"")
            await asyncio.wait_for(changed.wait(), 10)
            assert values == [b"a", b"b"]
            for _ in range(500):
                if kids[-1] == ["x"]:
                    break
                await asyncio.sleep(0.01)
            assert kids[-1] == ["x"]

    run(main())


def test_lock_excludes_coroutines_of_several_clients(node):
    async def main():
        clients = [Client(node.hosts) for _ in range(3)]
        await asyncio.gather(*(c.start() for c in clients))
        try:
            await clients[0].create("/count", b"0")
            holders = 0
            most = 0

            async def worker(zk, name):
                nonlocal holders, most
                for _ in range(5):
                    async with zk.Lock("/lock", name):
                        holders += 1
                        most = max(most, holders)
                        value = int((await zk.get("/count"))[0])
                        await asyncio.sleep(0)  # let the others run while holding it
                        await zk.set("/count", str(value + 1).encode())
                        holders -= 1

            await asyncio.gather(*(worker(c, f"w{i}") for i, c in enumerate(clients)))
            assert most == 1
            assert (await clients[0].get("/count"))[0] == b"15"
        finally:
            await asyncio.gather(*(c.stop() for c in clients))

    run(main())


def test_cancelling_a_waiting_acquire_leaves_no_contender(node):
    async def main():
        async with Client(node.hosts) as a, Client(node.hosts) as b:
            held = a.Lock("/cl", "a")
            assert await held.acquire()
            waiting = b.Lock("/cl", "b")
            task = asyncio.create_task(waiting.acquire())
            for _ in range(500):
                if len(await held.contenders()) == 2:
                    break
                await asyncio.sleep(0.01)
            assert await held.contenders() == ["a", "b"]
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(500):
                if await held.contenders() == ["a"]:
                    break
                await asyncio.sleep(0.01)
            assert await held.contenders() == ["a"]
            await held.release()
            assert await b.Lock("/cl", "b2").acquire(timeout=10)

    run(main())


def test_counter_election_queue_party_barrier(node):
    async def main():
        async with Client(node.hosts) as zk, Client(node.hosts) as other:
            counters = [zk.Counter("/cnt"), other.Counter("/cnt")]
            await asyncio.gather(*(c.add(1) for c in counters for _ in range(10)))
            assert await counters[0].value() == 20
            assert await counters[1].subtract(5) == 15

            elected = asyncio.Event()

            async def lead(name):
                elected.set()
                return name

            election = zk.Election("/elect", "me")
            assert await election.contenders() == []
            await election.run(lead, "me")
            assert elected.is_set()

            queue = zk.Queue("/q")
            for i in range(3):
                await queue.put(f"item{i}".encode(), priority=100 - i)
            assert await queue.size() == 3
            assert [await queue.get() for _ in range(3)] == [b"item2", b"item1", b"item0"]

            party = zk.Party("/party", "p1")
            await party.join()
            await other.Party("/party", "p2").join()
            assert sorted([m async for m in party]) == ["p1", "p2"]

            barrier = zk.Barrier("/barrier")
            await barrier.create()
            waiter = asyncio.create_task(other.Barrier("/barrier").wait(10))
            await asyncio.sleep(0)
            assert not waiter.done()
            await barrier.remove()
            assert await waiter is True

    run(main())


def test_retry_retries_a_coroutine_with_the_policy(node):
    async def main():
        async with Client(node.hosts, command_retry=KazooRetry(max_tries=3, delay=0.01, max_delay=0.05)) as zk:
            attempts = 0

            async def flaky():
                nonlocal attempts
                attempts += 1
                if attempts < 3:
                    raise ConnectionLoss()
                return await zk.exists("/")

            assert await zk.retry(flaky) is not None
            assert attempts == 3

            async def always_lost():
                raise ConnectionLoss()

            with pytest.raises(RetryFailedError):
                await zk.retry(always_lost)

    run(main())


def test_a_request_on_a_stopped_client_fails_cleanly(node):
    async def main():
        zk = Client(node.hosts)
        from zoomq.exceptions import ConnectionClosedError

        with pytest.raises(ConnectionClosedError):
            await zk.get("/")
        with pytest.raises(TypeError):
            await zk.get("/", watch="not callable")

    run(main())


def test_linearizable_reads_and_a_watch_resumed_from_a_zxid(node):
    async def main():
        async with Client(node.hosts) as zk:
            await zk.create("/lin", b"1")
            data, stat = await zk.get("/lin", linearizable=True)
            assert (data, stat.version) == (b"1", 0)
            assert await zk.get_children("/", linearizable=True)
            assert (await zk.exists("/lin", linearizable=True)).version == 0
            assert await zk.exists("/none", linearizable=True) is None
            since = stat.mzxid
            await zk.set("/lin", b"2")
            await zk.set("/lin", b"3")
            seen: list = []
            got_two = asyncio.Event()

            def on_change(event):
                seen.append((event.type, event.zxid))
                if len(seen) == 2:
                    got_two.set()

            await zk.add_watch("/lin", on_change, since_zxid=since)
            await asyncio.wait_for(got_two.wait(), 10)
            assert [t for t, _ in seen] == [EventType.CHANGED, EventType.CHANGED] and seen[0][1] < seen[1][1]

    run(main())
