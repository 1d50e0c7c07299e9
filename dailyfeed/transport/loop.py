"""One asyncio event loop in a daemon thread, for synchronous callers.

Flask handlers are synchronous and aiokafka is asyncio: the Kafka transport owns one of these for the whole
app, so every request thread hands its coroutine to the same loop (and the same producer) and waits for the
result with a bound. The thread is only started on first use, so commands that never publish never start it.

The loops of the Kafka clients (this one, the listener's) are uvloop's by default (`kafka.event-loop`): libuv's
sockets, timers and cross-thread wake-ups cost each publish less Python than asyncio's own loop (docs/benchmarks.md,
finding 10); the listener runs on the same kind. aiokafka runs on either unchanged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Awaitable, Callable, Coroutine

log = logging.getLogger(__name__)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(event_loop: str) -> LoopFactory:
    """What makes a new event loop of the kind `kafka.event-loop` names (config.py checked that uvloop imports)."""
    if event_loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_loop(main: Coroutine[Any, Any, Any], factory: LoopFactory) -> Any:
    """asyncio.run on a loop made by `factory`, for a thread that runs one loop to its end (the listener)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def run_to_end(main: Callable[[], Coroutine[Any, Any, Any]], timeout: float) -> Any:
    """Run `main()` to its end within `timeout` seconds (asyncio.TimeoutError after), for a synchronous caller
    that needs no loop of its own afterwards (topic admin, a lag read). In this thread, unless this thread runs
    an event loop already (an app made inside an async program; Playwright's sync API in the browser tests),
    where asyncio.run refuses: then in a thread of its own."""

    async def bounded() -> Any:
        return await asyncio.wait_for(main(), timeout)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dailyfeed-run-to-end") as pool:
        return pool.submit(asyncio.run, bounded()).result()


class LoopClosed(RuntimeError):
    """The loop was closed; nothing more can run on it."""


class LoopThread:
    def __init__(self, name: str, factory: LoopFactory = asyncio.new_event_loop):
        self.name = name
        self._factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def started(self) -> bool:
        return self._loop is not None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise LoopClosed(f"{self.name} is closed")
            if self._loop is None:
                loop = self._factory()
                ready = threading.Event()
                thread = threading.Thread(target=self._run, args=(loop, ready), name=self.name, daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        """Run `coro` on the loop and wait at most `timeout` seconds for its result (TimeoutError after that,
        and the coroutine is cancelled). Exceptions of the coroutine are raised here; LoopClosed when the loop was
        closed before it ended."""
        try:
            loop = self._running_loop()
        except LoopClosed:
            coro.close()
            raise
        call = _Call(coro)
        try:
            loop.call_soon_threadsafe(call.start)
        except RuntimeError:  # the loop was closed in between
            coro.close()
            raise LoopClosed(f"{self.name} is closed") from None
        if not call.ended.acquire(timeout=timeout):
            try:
                loop.call_soon_threadsafe(call.cancel)
            except RuntimeError:  # closed meanwhile: closing cancelled it
                pass
            raise TimeoutError(f"no result within {timeout:.1f} s")
        return call.result(self.name)

    def close(self, final: Callable[[], Awaitable[Any]] | None = None, timeout: float = 10.0) -> None:
        """Run `final()` (e.g. stopping a client) with a bound, cancel whatever still runs, stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if final is not None:
                try:
                    await asyncio.wait_for(final(), timeout)
                except Exception as exc:  # closing must go on: it is best effort from here
                    log.warning("%s: shutdown step failed: %s: %s", self.name, type(exc).__name__, exc)
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=timeout)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout * 2 + 1)
        except Exception as exc:
            log.warning("%s: shutdown did not finish: %s: %s", self.name, type(exc).__name__, exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            log.error("%s: event loop thread did not stop", self.name)
            return
        loop.close()


class _Call:
    """A coroutine run on the loop for a thread that waits for its end. The wait is one lock, released when the
    task ends: every publish makes one of these, and a concurrent.futures.Future (run_coroutine_threadsafe) costs
    the loop thread a condition, its notification and two chained callbacks per call."""

    __slots__ = ("coro", "task", "ended")

    def __init__(self, coro: Coroutine[Any, Any, Any]):
        self.coro = coro
        self.task: asyncio.Task | None = None
        self.ended = threading.Lock()
        self.ended.acquire()

    def start(self) -> None:  # on the loop
        self.task = asyncio.get_running_loop().create_task(self.coro)
        self.task.add_done_callback(self._end)

    def _end(self, task: asyncio.Task) -> None:  # on the loop
        self.ended.release()

    def cancel(self) -> None:  # on the loop once the caller gave up; after start: callbacks run in order
        assert self.task is not None
        self.task.cancel()

    def result(self, name: str) -> Any:  # in the waiting thread, once ended
        assert self.task is not None
        if self.task.cancelled():  # only closing the loop cancels a task a thread still waits for
            raise LoopClosed(f"{name} was closed before the call ended")
        return self.task.result()
