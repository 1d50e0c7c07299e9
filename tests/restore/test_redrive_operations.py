"""Automatic redrive (issue 23) as an operator runs it: the `redrive.*` settings decide the pacing, the waits after
failing passes and when a dead letter is left for a person; what the log says while a transport is down and when it
answers again; what a failed pass leaves in the metrics and the audit trail; a stop in the middle of a pass; and the
serving process's thread. On the embedded store (the two-store tests are in test_redrive.py)."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import pytest
from pymongo.errors import AutoReconnect

from dailyfeed.deadletters import DeadLetterStore, audit
from dailyfeed.events import PublishType, Service, utcnow
from dailyfeed.extension import get_container
from dailyfeed.restore import redrive
from dailyfeed.restore.jobs import Pacer, PublisherRestore
from dailyfeed.restore.redrive import KAFKA_CHECK_S, RedriveOptions, Redriver, audit_passes
from dailyfeed.transport.base import TransportRejected, TransportUnavailable
from dailyfeed.transport.fake import FakeTransport

from ..support.deadletters import (
    FEIGN_DEAD_LETTERS,
    KAFKA_PUBLISHER_DEAD_LETTERS,
    documents,
    post_event,
    publisher_dead_letter,
)
from ..support.kafka import wait_until
from ..support.metrics import value
from .test_redrive import OPTIONS, BrokerLike, Clock

LOGGER = "dailyfeed.restore.redrive"


class VirtualTime:
    """The pacer's clock and sleep: no real waiting, and no timing in the assertions."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def paced(monkeypatch) -> VirtualTime:
    virtual = VirtualTime()
    monkeypatch.setattr(redrive, "Pacer", lambda rate: Pacer(rate, clock=virtual.clock, sleep=virtual.sleep))
    return virtual


class Broker(FakeTransport):
    """A Kafka transport without a breaker: the broker answers metadata requests unless `down`, and each publish
    goes to `deliver` (which may refuse it)."""

    def __init__(self, deliver=None):
        super().__init__(PublishType.KAFKA, deliver)
        self.down: Exception | None = None
        self.check_timeouts: list[float] = []

    def check_connected(self, timeout_s: float) -> None:
        self.check_timeouts.append(timeout_s)
        if self.down is not None:
            raise self.down


def refuse(event):
    raise TransportUnavailable("broker refuses the record (injected)")


def reject(event):
    raise TransportRejected("record too large (injected)")


def keep(store: DeadLetterStore, numbers, kind: str = "kafka") -> list[str]:
    events = [post_event(n) for n in numbers]
    for event in events:
        publisher_dead_letter(store, event, kind=kind)
    return [event.message_key for event in events]


def messages(caplog, level: int | None = None) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and (level is None or r.levelno == level)]


def scrape(app) -> str:
    return app.test_client().get("/metrics").get_data(as_text=True)


def looks(redriver: Redriver, clock: Clock, until: float, step: float = 5.0) -> list[redrive.RedrivePass]:
    """A look every `step` seconds up to `until`; the passes they ran, with the time each ran at."""
    done = []
    while clock.now <= until:
        for report in redriver.run_once():
            done.append((clock.now, report))
        clock.now += step
    return done


def test_the_redrive_settings_pace_each_pass_and_double_the_wait_after_failing_passes_up_to_the_cap(
    apps, caplog, paced
):
    app = apps.make(
        {"redrive.interval-s": 5.0, "redrive.rate": 4.0, "redrive.backoff-max-s": 60.0, "redrive.max-passes": 5}
    )
    dailyfeed = get_container(app)
    broker = Broker(deliver=refuse)  # the broker answers, but takes no record
    keys = keep(dailyfeed.dead_letters, range(2))
    clock = Clock()
    redriver = Redriver(
        dailyfeed.dead_letters,
        {Service.POST: broker, Service.COMMENT: broker},
        RedriveOptions.from_settings(dailyfeed.settings),
        clock=clock,
    )
    before = scrape(app)
    caplog.set_level(logging.INFO, logger=LOGGER)

    done = looks(redriver, clock, until=300)

    # waits of 2, 4, 8 intervals, then at most redrive.backoff-max-s; after 5 passes both are left for a person
    assert [at for at, _ in done] == [0, 10, 30, 70, 130]
    assert [report.next_pass_in_s for _, report in done] == [10, 20, 40, 60, 60]
    assert broker.attempts == 2 * 5
    assert paced.sleeps == [pytest.approx(1 / 4)] * 5  # the second publish of each pass waits its 1/4 s
    failed_pass = f"redrive of {KAFKA_PUBLISHER_DEAD_LETTERS}: restored 0, skipped 0, failed 2; next pass in %d s"
    assert messages(caplog, logging.WARNING) == [failed_pass % s for s in (10, 20, 40, 60)] + [
        f"redrive: {key} failed 5 redrive passes; left pending for a person (post-service (kafka) did not take it, "
        "left pending: TransportUnavailable: broker refuses the record (injected))"
        for key in keys
    ] + [failed_pass % 60]
    assert (
        messages(caplog, logging.INFO).count(
            f"redrive: republishing the pending dead letters of {KAFKA_PUBLISHER_DEAD_LETTERS} (at most 4 a second)"
        )
        == 5
    )
    assert [(d["status"], d["redrive_passes"]) for d in documents(dailyfeed.db, KAFKA_PUBLISHER_DEAD_LETTERS)] == [
        ("pending", 5),
        ("pending", 5),
    ]
    after = scrape(app)
    assert (
        value(after, "dailyfeed_redrive_passes_total", transport="kafka", outcome="failed")
        - value(before, "dailyfeed_redrive_passes_total", transport="kafka", outcome="failed")
        == 5
    )


@pytest.mark.parametrize("max_passes", [1, 2])
def test_a_dead_letter_failed_by_max_passes_passes_is_left_for_a_person_also_once_the_broker_takes_records_again(
    apps, caplog, max_passes
):
    app = apps.make(
        {
            "redrive.interval-s": 0.001,
            "redrive.rate": 700.0,
            "redrive.backoff-max-s": 0.001,
            "redrive.max-passes": max_passes,
        }
    )
    dailyfeed = get_container(app)
    broker = Broker(deliver=refuse)
    [left] = keep(dailyfeed.dead_letters, [0])
    serving = SimpleNamespace(
        dead_letters=dailyfeed.dead_letters,
        transports={Service.POST: broker, Service.COMMENT: broker},
        settings=dailyfeed.settings,
    )
    redriver = Redriver.from_container(serving)  # as the serving process builds it, from its settings
    caplog.set_level(logging.INFO, logger=LOGGER)

    end = time.monotonic() + 0.3  # looks for a while: passes a millisecond apart, until none is left to try
    while time.monotonic() < end:
        redriver.run_once()
        time.sleep(0.002)

    assert broker.attempts == max_passes
    assert [m for m in messages(caplog) if "left pending for a person" in m] == [
        f"redrive: {left} failed {max_passes} redrive passes; left pending for a person (post-service (kafka) did "
        "not take it, left pending: TransportUnavailable: broker refuses the record (injected))"
    ]
    assert (
        f"redrive: republishing the pending dead letters of {KAFKA_PUBLISHER_DEAD_LETTERS} (at most 700 a second)"
        in messages(caplog)
    )

    broker._deliver = None  # the broker takes records again; a new failure is redriven, the old one stays
    [fresh] = keep(dailyfeed.dead_letters, [1])
    [report] = wait_until(redriver.run_once, 10, 0.002, "a pass for the new dead letter")

    assert [(r.key, r.outcome.value, r.detail) for r in report.results] == [
        (
            left,
            "skipped",
            f"left pending for a person: {max_passes} redrive passes failed it (redrive.max-passes = {max_passes})",
        ),
        (fresh, "restored", "republished via post-service (kafka)"),
    ]
    assert [e.message_key for e in broker.published] == [fresh]
    assert [(d["message_key"], d["status"]) for d in documents(dailyfeed.db, KAFKA_PUBLISHER_DEAD_LETTERS)] == [
        (left, "pending"),
        (fresh, "completed"),
    ]


def test_a_dead_letter_behind_a_hundred_left_for_a_person_is_still_found_and_redriven(app, paced):
    dailyfeed = get_container(app)
    given_up = keep(dailyfeed.dead_letters, range(100))  # exactly a page of the search for work
    broker = Broker(deliver=reject)
    clock = Clock()
    once = RedriveOptions(interval_s=10.0, rate=1000.0, backoff_max_s=60.0, max_passes=1)
    redriver = Redriver(dailyfeed.dead_letters, {Service.POST: broker}, once, clock=clock)
    [failed] = redriver.run_once()
    assert failed.summary.line() == "restored 0, skipped 0, failed 100"  # each is left for a person now

    broker._deliver = None
    [fresh] = keep(dailyfeed.dead_letters, [100])
    clock.now += failed.next_pass_in_s
    [report] = redriver.run_once()

    assert [e.message_key for e in broker.published] == [fresh]
    assert report.summary.line() == "restored 1, skipped 100, failed 0"
    clock.now += once.interval_s * 100  # past the rescan: only those left for a person remain, no pass
    assert redriver.run_once() == []
    assert [(d["message_key"], d["status"]) for d in documents(dailyfeed.db, KAFKA_PUBLISHER_DEAD_LETTERS)] == [
        *((key, "pending") for key in given_up),
        (fresh, "completed"),
    ]


@pytest.mark.parametrize("rate,count,held", [(1.0, 4, 1), (1000.0, 60, 50)])
def test_a_redrive_holds_at_most_a_second_of_work_and_fifty_so_a_restore_run_meanwhile_takes_the_rest(
    app, paced, rate, count, held
):
    """A pass claims a second's worth of dead letters at a time, at most 50: `dailyfeed restore-publisher`, run by a
    person in the middle of it, restores the others instead of finding them taken."""
    dailyfeed = get_container(app)
    keys = keep(dailyfeed.dead_letters, range(count))
    by_hand = FakeTransport(PublishType.KAFKA)
    restored_by_hand = []

    def person_restores_meanwhile(event):
        if not restored_by_hand:
            job = PublisherRestore(dailyfeed.dead_letters, {Service.POST: by_hand})
            restored_by_hand.append(job.run())

    broker = Broker(deliver=person_restores_meanwhile)
    options = RedriveOptions(interval_s=10.0, rate=rate, backoff_max_s=60.0, max_passes=3)
    [report] = Redriver(dailyfeed.dead_letters, {Service.POST: broker}, options, clock=Clock()).run_once()

    # the person's run skips what the redrive holds; the redrive publishes only that
    assert restored_by_hand[0].line() == f"restored {count - held}, skipped {held}, failed 0"
    assert [e.message_key for e in broker.published] == keys[:held]
    assert [e.message_key for e in by_hand.published] == keys[held:]
    assert report.summary.line() == f"restored {held}, skipped 0, failed 0"
    assert {d["status"] for d in documents(dailyfeed.db, KAFKA_PUBLISHER_DEAD_LETTERS)} == {"completed"}


def test_a_broker_that_does_not_answer_is_logged_once_and_after_it_answers_again_the_waits_start_afresh(app, caplog):
    dailyfeed = get_container(app)
    broker = Broker(deliver=refuse)
    keep(dailyfeed.dead_letters, [0])
    clock = Clock()
    options = RedriveOptions(interval_s=10.0, rate=1000.0, backoff_max_s=600.0, max_passes=9)
    redriver = Redriver(dailyfeed.dead_letters, {Service.POST: broker}, options, clock=clock)
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert [r.next_pass_in_s for r in redriver.run_once()] == [20]
    clock.now = 20
    assert [r.next_pass_in_s for r in redriver.run_once()] == [40]

    broker.down = TransportUnavailable("broker unreachable")
    for clock.now in (60, 70, 80):
        assert redriver.run_once() == []
    assert broker.check_timeouts == [KAFKA_CHECK_S] * 5  # each look waits a bounded time for the broker's answer
    assert (
        messages(caplog).count(
            "redrive: the kafka transport does not answer (TransportUnavailable: broker unreachable); waiting for it"
        )
        == 1
    )

    broker.down = None  # it answers again, and still refuses records: the first wait is one of a first failure
    clock.now = 90
    assert [r.next_pass_in_s for r in redriver.run_once()] == [20]
    clock.now = 110
    assert [r.next_pass_in_s for r in redriver.run_once()] == [40]
    assert messages(caplog).count("redrive: the kafka transport answers again") == 1
    assert broker.attempts == 4


def test_an_open_breaker_is_waited_for_without_asking_the_broker(app, caplog):
    dailyfeed = get_container(app)
    clock = Clock()
    broker = BrokerLike(clock)
    keep(dailyfeed.dead_letters, [0])
    broker.breaker.record(failed=True)
    broker.breaker.record(failed=True)
    redriver = Redriver(dailyfeed.dead_letters, {Service.POST: broker}, OPTIONS, clock=clock)
    caplog.set_level(logging.INFO, logger=LOGGER)

    assert redriver.run_once() == []

    assert broker.checks == 0 and broker.published == []
    assert messages(caplog) == ["redrive: the kafka transport does not answer (circuit breaker open); waiting for it"]


def test_a_failed_pass_is_counted_audited_and_reported_with_its_wait_and_a_clean_one_lets_the_next_look_pass(
    app, caplog
):
    dailyfeed = get_container(app)
    broker = Broker(deliver=refuse)
    [first] = keep(dailyfeed.dead_letters, [0])
    clock = Clock()
    redriver = Redriver(dailyfeed.dead_letters, {Service.POST: broker}, OPTIONS, clock=clock)
    told = []

    def broken_recorder(done):
        raise RuntimeError("audit sink unreachable (injected)")

    redriver.on_pass += [broken_recorder, audit_passes(dailyfeed.db), told.append]
    caplog.set_level(logging.INFO, logger=LOGGER)
    before = scrape(app)

    started, wall = utcnow(), time.monotonic()
    [failed] = redriver.run_once()
    elapsed = time.monotonic() - wall

    assert (failed.summary.line(), failed.next_pass_in_s) == ("restored 0, skipped 0, failed 1", 20)
    assert started <= failed.started_at <= utcnow() and 0 <= failed.seconds <= elapsed
    assert told == [failed]  # a callback that fails does not keep the pass from the others
    assert "redrive: a pass callback failed" in messages(caplog, logging.ERROR)
    [entry], _ = audit.entries(dailyfeed.db, audit.AuditQuery(actor="redrive"), limit=10)
    assert (entry["outcome"], entry["result_count"], entry["detail"]) == (
        "failed",
        0,
        "kafka transport: restored 0, skipped 0, failed 1",
    )
    after = scrape(app)
    assert (
        value(after, "dailyfeed_redrive_passes_total", transport="kafka", outcome="failed")
        - value(before, "dailyfeed_redrive_passes_total", transport="kafka", outcome="failed")
        == 1
    )

    broker._deliver = None
    clock.now = 20
    [clean] = redriver.run_once()
    assert (clean.summary.line(), clean.next_pass_in_s) == ("restored 1, skipped 0, failed 0", 0)
    assert (
        messages(caplog, logging.INFO)[-1]
        == f"redrive of {KAFKA_PUBLISHER_DEAD_LETTERS}: restored 1, skipped 0, failed 0"
    )
    [second] = keep(dailyfeed.dead_letters, [1])  # kept right after: the next look passes, at any time
    [again] = redriver.run_once()
    assert [r.key for r in again.results] == [second]
    assert [e.message_key for e in broker.published] == [first, second]
    entries, total = audit.entries(dailyfeed.db, audit.AuditQuery(actor="redrive"), limit=10)
    assert total == 3 and {e["outcome"] for e in entries} == {"failed", "done"}


def test_once_nothing_is_left_to_redrive_the_wait_after_a_later_failure_starts_afresh(app):
    dailyfeed = get_container(app)
    broker = Broker(deliver=refuse)
    keep(dailyfeed.dead_letters, [0])
    clock = Clock()
    redriver = Redriver(dailyfeed.dead_letters, {Service.POST: broker}, OPTIONS, clock=clock)
    assert [r.next_pass_in_s for r in redriver.run_once()] == [20]
    by_hand = FakeTransport(PublishType.KAFKA)  # a person restores it meanwhile
    assert PublisherRestore(dailyfeed.dead_letters, {Service.POST: by_hand}).run().restored == 1

    clock.now = 20
    assert redriver.run_once() == []  # nothing left
    keep(dailyfeed.dead_letters, [1])  # a failure of a later outage
    clock.now = 30
    assert [r.next_pass_in_s for r in redriver.run_once()] == [20]


def test_a_stop_during_a_pass_gives_back_what_it_holds_and_looks_at_no_other_transport(app, caplog):
    dailyfeed = get_container(app)
    keys = keep(dailyfeed.dead_letters, range(3))
    [feign_key] = keep(dailyfeed.dead_letters, [9], kind="feign")
    feign = FakeTransport(PublishType.FEIGN)
    clock = Clock()

    def stop_after_the_first(event):
        redriver.stop()  # the process is stopping (SIGTERM) while the pass is publishing

    broker = Broker(deliver=stop_after_the_first)
    redriver = Redriver(dailyfeed.dead_letters, {Service.POST: broker, Service.COMMENT: feign}, OPTIONS, clock=clock)
    caplog.set_level(logging.INFO, logger=LOGGER)

    passes = redriver.run_once()

    assert [(p.transport, p.summary.line()) for p in passes] == [("kafka", "restored 1, skipped 0, failed 0")]
    assert f"redrive: stopped during a pass of {KAFKA_PUBLISHER_DEAD_LETTERS}; what it held is given back" in messages(
        caplog
    )
    assert feign.attempts == 0
    assert [(d["message_key"], d["status"]) for d in documents(dailyfeed.db, FEIGN_DEAD_LETTERS)] == [
        (feign_key, "pending")
    ]
    by_hand = FakeTransport(PublishType.KAFKA)  # what it held is free at once: a restore takes the other two
    assert (
        PublisherRestore(dailyfeed.dead_letters, {Service.POST: by_hand, Service.COMMENT: by_hand}).run().line()
        == "restored 3, skipped 0, failed 0"
    )
    assert [e.message_key for e in broker.published] == keys[:1]
    assert sorted(e.message_key for e in by_hand.published) == sorted([*keys[1:], feign_key])


def test_the_redrive_thread_redrives_by_itself_outlives_a_failing_look_and_stop_waits_for_the_pass_in_hand(
    app, caplog, monkeypatch
):
    dailyfeed = get_container(app)
    store = dailyfeed.dead_letters
    candidates = store.candidates
    faults = ["store down"]

    def store_failing_once(*args, **kwargs):
        if faults:
            raise AutoReconnect(faults.pop())
        return candidates(*args, **kwargs)

    monkeypatch.setattr(store, "candidates", store_failing_once)
    in_hand, let_go = threading.Event(), threading.Event()

    def slow_second(event):
        if event.message_key == second:
            in_hand.set()
            let_go.wait(10)

    broker = Broker(deliver=slow_second)
    often = RedriveOptions(interval_s=0.01, rate=1000.0, backoff_max_s=1.0, max_passes=3)
    redriver = Redriver(store, {Service.POST: broker}, often)
    caplog.set_level(logging.INFO, logger=LOGGER)
    [first] = keep(store, [0])
    second = post_event(1).message_key
    redriver.start()
    redriver.start()  # a second start is the same thread
    try:
        wait_until(lambda: broker.published, 10, 0.01, "the thread to redrive the dead letter")
        [thread] = [t for t in threading.enumerate() if t.name == "dailyfeed-redrive"]
        assert thread.daemon  # it never keeps a stopping process alive
        assert "redrive: a look at the transports failed" in messages(caplog, logging.ERROR)

        keep(store, [1])
        assert in_hand.wait(10), "the thread never took the second dead letter"
        threading.Timer(0.3, let_go.set).start()
        redriver.stop()
        assert let_go.is_set() and not thread.is_alive()  # stop waited for the publish in hand to end
    finally:
        let_go.set()
        redriver.stop()
    assert [e.message_key for e in broker.published] == [first, second]
    assert [d["status"] for d in documents(dailyfeed.db, KAFKA_PUBLISHER_DEAD_LETTERS)] == ["completed"] * 2
