"""The event-loop thread every publish of a process goes through (transport/loop.py): a call returns its
coroutine's result or raises its error, is cancelled when its caller stops waiting, and a loop closed under a
waiting caller tells it so with LoopClosed (an Exception the transport turns into TransportUnavailable), never
with a CancelledError that would escape the request. On both loops `kafka.event-loop` offers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dailyfeed.config import ConfigError, load_settings
from dailyfeed.transport.loop import LoopClosed, LoopThread, loop_factory, run_loop

LOOPS = ("uvloop", "asyncio")


@pytest.fixture(params=LOOPS)
def loop_thread(request):
    thread = LoopThread("test-loop", loop_factory(request.param))
    yield thread
    thread.close(timeout=2)


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


@pytest.mark.parametrize("kind", LOOPS)
def test_the_loop_is_the_kind_the_setting_names(kind):
    thread = LoopThread("test-loop", loop_factory(kind))
    try:
        assert thread.run(loop_module(), timeout=5) == kind
    finally:
        thread.close(timeout=2)
    assert run_loop(loop_module(), loop_factory(kind)) == kind  # the listener's thread, run to its end


def test_a_call_returns_the_result_of_its_coroutine_and_raises_its_error(loop_thread):
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    async def refuse():
        raise ValueError("refused by the broker")

    assert loop_thread.run(double(21), timeout=5) == 42
    with pytest.raises(ValueError, match="refused by the broker"):
        loop_thread.run(refuse(), timeout=5)
    # the calls of many threads at once each get their own result
    results: dict[int, int] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.update({i: loop_thread.run(double(i), 5)})) for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: 2 * i for i in range(8)}


@pytest.mark.timeout(20)
def test_a_call_not_done_within_its_timeout_raises_and_its_coroutine_is_cancelled(loop_thread):
    cancelled = threading.Event()

    async def never_acknowledged():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="no result within 0.3 s"):
        loop_thread.run(never_acknowledged(), timeout=0.3)
    assert time.monotonic() - started < 5
    assert cancelled.wait(5), "the coroutine went on after its caller gave up"
    assert loop_thread.run(asyncio.sleep(0, "still serving"), timeout=5) == "still serving"


@pytest.mark.timeout(20)
def test_closing_the_loop_under_a_waiting_caller_raises_loop_closed_and_later_calls_too(loop_thread):
    entered = threading.Event()
    outcome: list[BaseException] = []

    async def waits_forever():
        entered.set()
        await asyncio.Event().wait()

    def caller():
        try:
            loop_thread.run(waits_forever(), timeout=15)
        except BaseException as exc:  # what reaches the request, whatever it is
            outcome.append(exc)

    waiting = threading.Thread(target=caller)
    waiting.start()
    assert entered.wait(5)
    loop_thread.close(timeout=2)
    waiting.join(10)
    assert not waiting.is_alive(), "the caller waited on after the loop closed"
    assert len(outcome) == 1 and isinstance(outcome[0], LoopClosed), outcome
    assert str(outcome[0]) == "test-loop was closed before the call ended"

    never_run = asyncio.sleep(0)
    with pytest.raises(LoopClosed, match="^test-loop is closed$"):
        loop_thread.run(never_run, timeout=1)
    assert never_run.cr_frame is None  # closed, not left unawaited


def test_the_event_loop_setting_is_checked_at_start_up(monkeypatch):
    assert load_settings()["kafka.event-loop"] == "uvloop"
    assert load_settings({"kafka.event-loop": " AsyncIO "})["kafka.event-loop"] == "asyncio"
    with pytest.raises(ConfigError, match=r"kafka.event-loop \(DAILYFEED_KAFKA_EVENT_LOOP\) is 'tokio'; allowed"):
        load_settings({"kafka.event-loop": "tokio"})

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a))
    with pytest.raises(ConfigError, match="uvloop is not installed.*DAILYFEED_KAFKA_EVENT_LOOP=asyncio"):
        load_settings()
    assert load_settings({"kafka.event-loop": "asyncio"})["kafka.event-loop"] == "asyncio"


# --- closing: what a stopping app relies on (the producer flushed and stopped, nothing left running) ------------


@pytest.mark.timeout(20)
def test_close_runs_the_final_step_then_ends_the_thread_and_a_second_close_does_nothing(loop_thread):
    steps: list[str] = []

    async def final():
        steps.append("producer stopped")

    assert loop_thread.run(asyncio.sleep(0, "started"), timeout=5) == "started"
    loop_thread.close(final, timeout=2)
    loop_thread.close(final, timeout=2)
    assert steps == ["producer stopped"]
    assert not any(t.name == "test-loop" for t in threading.enumerate())


def test_closing_a_loop_never_started_starts_nothing_and_runs_no_final_step():
    steps: list[str] = []

    async def final():
        steps.append("ran")

    thread = LoopThread("never-started")
    thread.close(final, timeout=1)
    assert steps == [] and not thread.started
    assert not any(t.name == "never-started" for t in threading.enumerate())


@pytest.mark.timeout(30)
@pytest.mark.parametrize("failure", ["raises", "hangs"])
def test_a_final_step_that_fails_or_hangs_is_logged_and_closing_goes_on(loop_thread, caplog, failure):
    async def final():
        if failure == "raises":
            raise ValueError("broker gone")
        await asyncio.Event().wait()

    assert loop_thread.run(asyncio.sleep(0), timeout=5) is None
    started = time.monotonic()
    loop_thread.close(final, timeout=0.5)
    assert time.monotonic() - started < 5  # bounded by the timeout, not by the step
    expected = "ValueError: broker gone" if failure == "raises" else "TimeoutError: "
    assert f"test-loop: shutdown step failed: {expected}" in [r.getMessage() for r in caplog.records]
    assert not any(t.name == "test-loop" for t in threading.enumerate())


@pytest.mark.timeout(30)
def test_close_cancels_what_still_runs_and_waits_for_it_within_the_timeout(loop_thread):
    cleaned: list[str] = []
    entered = threading.Event()

    async def sending():
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0.1)  # its own clean-up takes a moment, and close waits for it
            cleaned.append("cleaned up")
            raise

    caller = threading.Thread(target=lambda: pytest.raises(LoopClosed, loop_thread.run, sending(), 15))
    caller.start()
    assert entered.wait(5)
    loop_thread.close(timeout=2)
    caller.join(5)
    assert cleaned == ["cleaned up"]


@pytest.mark.timeout(30)
def test_a_loop_blocked_by_a_call_is_reported_and_left_when_it_will_not_stop(caplog):
    thread = LoopThread("blocked-loop")

    async def blocks():
        time.sleep(2.5)  # a synchronous call on the loop: nothing else runs there meanwhile

    def call() -> None:
        try:
            thread.run(blocks(), 10)
        except LoopClosed:  # whichever the race gives: its result, or the loop closed under it
            pass

    threading.Thread(target=call, daemon=True).start()
    time.sleep(0.2)
    started = time.monotonic()
    thread.close(timeout=0.2)
    assert time.monotonic() - started < 2.4  # it gave up before the blocking call ended
    messages = [r.getMessage() for r in caplog.records]
    assert "blocked-loop: shutdown did not finish: TimeoutError: " in messages
    assert "blocked-loop: event loop thread did not stop" in messages


# --- run_to_end: the one-off calls (topic admin, a lag read) --------------------------------------------------


def test_run_to_end_returns_the_result_in_this_thread_and_raises_the_error_and_the_timeout():
    from dailyfeed.transport.loop import run_to_end

    async def answer():
        return threading.current_thread().name

    async def refuse():
        raise ValueError("not authorized")

    async def never():
        await asyncio.Event().wait()

    assert run_to_end(answer, timeout=5) == threading.current_thread().name
    with pytest.raises(ValueError, match="not authorized"):
        run_to_end(refuse, timeout=5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        run_to_end(never, timeout=0.3)
    assert time.monotonic() - started < 5


def test_run_to_end_inside_a_running_loop_runs_in_a_thread_of_its_own():
    from dailyfeed.transport.loop import run_to_end

    async def answer():
        return threading.current_thread().name

    async def app_made_inside_an_async_program():
        return run_to_end(answer, timeout=5)  # a synchronous call from code that runs on a loop

    name = asyncio.run(app_made_inside_an_async_program())
    assert name.startswith("dailyfeed-run-to-end") and name != threading.current_thread().name


async def stubborn(entered: threading.Event) -> None:
    """A call that will not be told: it swallows every cancellation and waits on."""
    entered.set()
    while True:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            continue


def stubborn_call(loop_thread: LoopThread) -> None:
    """A caller waiting, in a thread of its own, on a stubborn call; returns once the call runs."""
    entered = threading.Event()

    def call() -> None:
        try:
            loop_thread.run(stubborn(entered), 15)
        except (LoopClosed, TimeoutError):  # whichever ends its wait
            pass

    threading.Thread(target=call, daemon=True).start()
    assert entered.wait(5)


@pytest.mark.timeout(30)
def test_a_task_that_ignores_its_cancellation_holds_close_no_longer_than_the_timeout(loop_thread, caplog):
    stubborn_call(loop_thread)
    started = time.monotonic()
    loop_thread.close(timeout=0.3)
    assert time.monotonic() - started < 1.5  # waited for it at most the timeout, then stopped the loop
    assert not [r for r in caplog.records if "did not finish" in r.getMessage() or "did not stop" in r.getMessage()]


@pytest.mark.timeout(30)
def test_a_final_step_and_a_stubborn_task_together_still_finish_within_the_shutdown_bound(loop_thread, caplog):
    async def final():
        await asyncio.Event().wait()  # cut at the timeout

    stubborn_call(loop_thread)
    loop_thread.close(final, timeout=1.0)  # the final step's timeout, then the tasks' timeout: 2 s of a 3 s bound
    messages = [r.getMessage() for r in caplog.records]
    assert "test-loop: shutdown step failed: TimeoutError: " in messages
    assert not [m for m in messages if "did not finish" in m or "did not stop" in m]


def test_a_process_that_never_closed_its_loop_thread_still_exits(tmp_path):
    """The thread is a daemon: a CLI that published and ended without closing the transport does not hang."""
    import subprocess
    import sys

    here = LoopThread("closed-here")  # the same start, in this process, closed as a transport does
    assert here.run(asyncio.sleep(0, "published"), 5) == "published"
    here.close(timeout=2)
    program = (
        "import asyncio\n"
        "from dailyfeed.transport.loop import LoopThread\n"
        "print(LoopThread('left-open').run(asyncio.sleep(0, 'published'), 5), flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0 and done.stdout.strip() == "published", done.stderr
