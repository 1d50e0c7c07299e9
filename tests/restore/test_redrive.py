"""Automatic redrive (issue 23), on both store backends: a transport that does not answer leaves its dead letters
alone; once it answers again they are republished without any command, each once; a pass that fails waits longer
before the next, and a dead letter that `redrive.max-passes` passes failed is left pending for a person. Two
serving processes redriving at once deliver each event once."""

from __future__ import annotations

import threading
import uuid

import pytest

from dailyfeed.deadletters import DeadLetterStore, audit
from dailyfeed.events import PublishType, Service
from dailyfeed.extension import get_container
from dailyfeed.restore.redrive import RESCAN_EVERY, RedriveOptions, Redriver
from dailyfeed.store import FEIGN_DEAD_LETTERS
from dailyfeed.transport.base import TransportUnavailable
from dailyfeed.transport.circuit import CircuitBreaker
from dailyfeed.transport.fake import FakeTransport

from ..support.apps import close_app, free_port, make_app
from ..support.deadletters import KAFKA_PUBLISHER_DEAD_LETTERS, documents, post_event, publisher_dead_letter
from ..support.metrics import value

OPTIONS = RedriveOptions(interval_s=10.0, rate=1000.0, backoff_max_s=60.0, max_passes=3)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class BrokerLike(FakeTransport):
    """A fake Kafka transport with a breaker and a broker that may not answer (`check_connected`)."""

    def __init__(self, clock):
        super().__init__(PublishType.KAFKA)
        self.breaker = CircuitBreaker(window_size=2, minimum_calls=2, open_wait_s=30.0, clock=clock)
        self.checks = 0

    def check_connected(self, timeout_s: float) -> None:
        self.checks += 1
        if self.failure is not None:
            raise self.failure

    def publish(self, event):
        assert self.breaker.allow(), "published through an open breaker"
        try:
            super().publish(event)
        except Exception:
            self.breaker.record(failed=True)
            raise
        self.breaker.record(failed=False)


def redriver_for(app, transport, clock) -> Redriver:
    dailyfeed = get_container(app)
    return Redriver(dailyfeed.dead_letters, {Service.POST: transport, Service.COMMENT: transport}, OPTIONS, clock=clock)


def keep_dead_letters(app, count: int) -> list[str]:
    store = get_container(app).dead_letters
    events = [post_event(n) for n in range(count)]
    for event in events:
        publisher_dead_letter(store, event, kind="kafka")
    return [event.message_key for event in events]


def scrape(app) -> str:
    return app.test_client().get("/metrics").get_data(as_text=True)


def test_dead_letters_wait_while_the_broker_is_down_and_are_republished_once_it_answers_again(store_app):
    clock = Clock()
    transport = BrokerLike(clock)
    keys = keep_dead_letters(store_app, 4)
    redriver = redriver_for(store_app, transport, clock)
    passes = []
    redriver.on_pass.append(passes.append)
    db = get_container(store_app).db
    before = scrape(store_app)

    transport.fail_with()  # the broker does not answer, and the breaker opens on the writes that failed
    transport.breaker.record(failed=True)
    transport.breaker.record(failed=True)
    assert redriver.run_once() == []
    assert transport.published == [] and passes == []
    assert {d["status"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)} == {"pending"}

    clock.now += 31  # the breaker lets a trial through again, but the broker still does not answer
    assert redriver.run_once() == [] and transport.checks == 1
    transport.recover()
    [report] = redriver.run_once()

    assert [e.message_key for e in transport.published] == keys  # oldest first, each once
    assert transport.breaker.state == "closed"
    assert [(d["message_key"], d["status"]) for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)] == [
        (key, "completed") for key in keys
    ]
    assert (report.transport, report.collection, report.summary.line()) == (
        "kafka",
        KAFKA_PUBLISHER_DEAD_LETTERS,
        "restored 4, skipped 0, failed 0",
    )
    assert passes == [report] and [r.key for r in report.results] == keys
    assert redriver.run_once() == []  # nothing left: no pass
    after = scrape(store_app)
    assert (
        value(after, "dailyfeed_redrive_passes_total", transport="kafka", outcome="delivered")
        - value(before, "dailyfeed_redrive_passes_total", transport="kafka", outcome="delivered")
        == 1
    )
    assert (
        value(after, "dailyfeed_restore_dead_letters_total", job="redrive", outcome="restored")
        - value(before, "dailyfeed_restore_dead_letters_total", job="redrive", outcome="restored")
        == 4
    )


def test_failing_passes_wait_longer_each_time_and_a_dead_letter_failed_by_max_passes_is_left_for_a_person(
    store_app, caplog
):
    clock = Clock()
    transport = BrokerLike(clock)
    [key] = keep_dead_letters(store_app, 1)
    redriver = redriver_for(store_app, transport, clock)
    db = get_container(store_app).db

    def refuse(event):
        raise TransportUnavailable("broker refuses the record (injected)")

    transport._deliver = refuse  # the broker answers metadata requests but every send fails
    ran_at = []
    for _ in range(40):
        if redriver.run_once():
            ran_at.append(clock.now)
        clock.now += 5
        transport.breaker._outcomes.clear()  # keep the breaker closed: the pacing under test is the redrive's own
    assert ran_at == [0, 20, 60]  # waits of 2x then 4x the interval (20 s, 40 s); after the third the dead letter is
    [doc] = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)  # ... left alone: max_passes = 3 failed it
    assert (doc["status"], doc["redrive_passes"], doc["message_key"]) == ("pending", 3, key)
    assert doc["attempts"] == 1 + 3  # the original failure and each pass's
    assert "left pending for a person" in caplog.text


@pytest.mark.integration
@pytest.mark.mongo
def test_two_serving_processes_redriving_at_once_deliver_each_event_once(mongo_uri, apps):
    """Two apps on one real database (the claims need a real server's unique index to decide between them)."""
    database = f"redrive_{uuid.uuid4().hex[:8]}"
    first = apps.make({"mongo.uri": mongo_uri, "mongo.database": database})
    second = apps.make({"mongo.uri": mongo_uri, "mongo.database": database})
    keys = keep_dead_letters(first, 60)
    clock = Clock()
    transports = [BrokerLike(clock), BrokerLike(clock)]
    redrivers = [redriver_for(first, transports[0], clock), redriver_for(second, transports[1], clock)]
    start = threading.Barrier(2)

    def run(redriver):
        start.wait()
        redriver.run_once()

    threads = [threading.Thread(target=run, args=(r,)) for r in redrivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    delivered = [e.message_key for t in transports for e in t.published]
    assert sorted(delivered) == sorted(keys)  # every one, none twice
    assert {d["status"] for d in documents(get_container(first).db, KAFKA_PUBLISHER_DEAD_LETTERS)} == {"completed"}


def test_the_store_is_asked_for_work_when_this_process_kept_a_failure_or_at_the_rescan_not_at_every_look(store_app):
    clock = Clock()
    transport = BrokerLike(clock)
    dailyfeed = get_container(store_app)
    redriver = redriver_for(store_app, transport, clock)
    assert redriver.run_once() == []  # the first look: nothing pending

    [mine] = keep_dead_letters(store_app, 1)  # kept by this process: the next look redrives it
    clock.now += OPTIONS.interval_s
    assert [r.key for report in redriver.run_once() for r in report.results] == [mine]

    other_process = DeadLetterStore(dailyfeed.db)  # another process kept one and did not redrive it
    theirs = post_event(50)
    publisher_dead_letter(other_process, theirs, kind="kafka")
    for _ in range(RESCAN_EVERY - 1):
        clock.now += OPTIONS.interval_s
        assert redriver.run_once() == []
    clock.now += OPTIONS.interval_s
    assert [r.key for report in redriver.run_once() for r in report.results] == [theirs.message_key]
    assert [e.message_key for e in transport.published] == [mine, theirs.message_key]


def test_the_serving_process_redrive_leaves_an_audit_record_of_each_pass():
    """The Redriver a serving process starts records its passes in the audit trail: who ("redrive"), what it
    settled, on which collection."""
    app = make_app(
        {
            "kafka.bootstrap-servers": f"127.0.0.1:{free_port()}",
            "redrive.enabled": True,
            "redrive.interval-s": 3600.0,
            "redrive.backoff-max-s": 3600.0,
        },
        run_background=True,
    )
    try:
        dailyfeed = get_container(app)
        [redriver] = [item for item in dailyfeed.background if getattr(item, "component", None) == "redrive"]
        events = [post_event(n) for n in range(3)]
        for event in events:
            publisher_dead_letter(dailyfeed.dead_letters, event, kind="feign")

        [done] = redriver.run_once()

        assert done.summary.restored == 3
        entries, total = audit.entries(dailyfeed.db, audit.AuditQuery(actor="redrive"), limit=10)
        assert total == 1
        [entry] = entries
        assert (entry["action"], entry["via"], entry["outcome"], entry["result_count"]) == (
            "redrive",
            "redrive",
            "done",
            3,
        )
        assert entry["selection"] == {"collections": [FEIGN_DEAD_LETTERS]}
        assert {d["status"] for d in documents(dailyfeed.db, FEIGN_DEAD_LETTERS)} == {"completed"}
    finally:
        close_app(app)
