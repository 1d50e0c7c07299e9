"""One asyncio event loop in a daemon thread, for synchronous callers.

Flask handlers are synchronous and aiokafka is asyncio: the Kafka transport owns one of these for the whole
app, so every request thread hands its coroutine to the same loop (and the same producer) and waits for the
result with a bound. The thread is only started on first use, so commands that never publish never start it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Awaitable, Callable, Coroutine

log = logging.getLogger(__name__)


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
    def __init__(self, name: str):
        self.name = name
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
                loop = asyncio.new_event_loop()
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
        and the coroutine is cancelled). Exceptions of the coroutine are raised here."""
        try:
            loop = self._running_loop()
        except LoopClosed:
            coro.close()
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no result within {timeout:.1f} s") from None

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
