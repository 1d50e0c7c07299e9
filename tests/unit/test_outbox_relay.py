"""The relay's rules on the embedded store (dailyfeed/content/outbox.py): only what is past due, oldest due first
and a batch at a time; a publication its writer completed while the relay claimed it is let go; a dry run changes
nothing; and the serving process's relay thread and completer do their work on their own and stop."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from dailyfeed.bootstrap import bootstrap
from dailyfeed.content import outbox
from dailyfeed.content.outbox import Completer, Outcome, RelayWorker, SimulatedCrash
from dailyfeed.store import DEAD_LETTER_CLAIMS, EVENT_PUBLICATIONS
from dailyfeed.transport.fake import FakeTransport


@pytest.fixture
def make():
    made = []

    def build(**settings):
        broker = FakeTransport("kafka")
        container = bootstrap(
            {
                "mongo.uri": "mongomock://",
                "mongo.database": f"relay_{uuid.uuid4().hex[:8]}",
                "outbox.grace-s": 0.001,
                **settings,
            },
            transports={"post-service": broker, "comment-service": broker},
        )
        container.broker = broker
        made.append(container)
        return container

    yield build
    for container in made:
        container.close()


def owe(container, n: int, step: str = outbox.APPLIED) -> list[str]:
    """n posts whose writer died after `step`: their keys, in the order written."""
    keys = []

    def died(at, key):
        if at == step:
            keys.append(key)
            raise SimulatedCrash

    container.content_service.checkpoint = died
    for i in range(n):
        with pytest.raises(SimulatedCrash):
            container.content_service.create_post(7, None, f"post {i}")
    container.content_service.checkpoint = outbox.no_checkpoint
    time.sleep(0.01)  # past the grace of 1 ms
    return keys


def test_a_publication_still_in_its_grace_period_is_left_to_its_writer(make):
    container = make(**{"outbox.grace-s": 3600.0})
    [key] = owe(container, 1)
    summary = container.relay().run_pass()
    assert summary.total == 0 and summary.skipped == 0
    assert container.db[EVENT_PUBLICATIONS].count_documents({"_id": key}) == 1
    assert container.broker.published == []


def test_a_pass_takes_a_batch_of_the_oldest_due_first(make):
    container = make(**{"outbox.batch": 2})
    keys = owe(container, 3)
    first = container.relay().run_pass()
    assert first.counts[Outcome.DELIVERED] == 2
    assert [e.message_key for e in container.broker.published] == keys[:2]
    container.relay().run_pass()
    assert [e.message_key for e in container.broker.published] == keys


def test_a_publication_completed_by_its_writer_while_claimed_is_let_go(make, monkeypatch):
    container = make()
    [key] = owe(container, 1)
    relay = container.relay()
    claims = container.publications.claims
    claim_batch = claims.claim_batch

    def claimed_then_completed(*args, **kwargs):
        held = claim_batch(*args, **kwargs)
        container.publications.complete([key])  # the slow writer completes it now
        return held

    monkeypatch.setattr(claims, "claim_batch", claimed_then_completed)
    seen = []
    relay.checkpoint = lambda step, k: seen.append((step, k))
    summary = relay.run_pass()

    assert summary.total == 0 and summary.skipped == 1 and seen == []
    assert container.broker.published == []
    [claim] = container.db[DEAD_LETTER_CLAIMS].find({"collection": EVENT_PUBLICATIONS})
    assert claim["released_at"] is not None  # given back at once


def test_the_relay_calls_its_checkpoint_after_claiming_and_after_publishing_each(make):
    container = make()
    [key] = owe(container, 1)
    seen = []
    container.relay(checkpoint=lambda step, k: seen.append((step, k))).run_pass()
    assert seen == [(outbox.RELAY_CLAIMED, key), (outbox.RELAY_PUBLISHED, key)]


def test_a_dry_run_says_what_would_be_published_or_dropped_and_changes_nothing(make):
    container = make()
    [landed] = owe(container, 1)
    [never] = owe(container, 1, step=outbox.RECORDED)
    seen = {}
    summary = container.relay().preview(report=lambda key, outcome: seen.update({key: outcome}))
    assert seen == {landed: Outcome.DELIVERED, never: Outcome.DROPPED}
    assert summary.counts[Outcome.DELIVERED] == 1 and summary.counts[Outcome.DROPPED] == 1
    assert container.db[EVENT_PUBLICATIONS].count_documents({}) == 2 and container.broker.published == []
    assert summary.line() == "delivered 1, dead lettered 0, dropped 1, left 0, skipped 0"


def test_the_serving_relay_thread_relays_at_start_then_every_interval_and_survives_a_failing_pass(make):
    container = make()
    [first] = owe(container, 1)
    relay = container.relay()
    run_pass = relay.run_pass
    failures = []

    def flaky():
        if not failures:
            failures.append(1)
            raise RuntimeError("store down (injected)")
        return run_pass()

    relay.run_pass = flaky
    worker = RelayWorker(relay, interval_s=0.05)
    worker.start()
    try:
        assert worker._thread.name == "dailyfeed-outbox-relay" and worker._thread.daemon
        deadline = time.monotonic() + 10
        while container.db[EVENT_PUBLICATIONS].count_documents({}) and time.monotonic() < deadline:
            time.sleep(0.02)
        [second] = owe(container, 1)  # owed later: a later pass takes it
        while container.db[EVENT_PUBLICATIONS].count_documents({}) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert not worker._thread.is_alive()
    assert [e.message_key for e in container.broker.published] == [first, second]


def test_the_completer_thread_deletes_on_its_own_and_stops(make):
    container = make()
    registry = container.publications
    registry.collection.insert_many([{"_id": "a"}, {"_id": "b"}])
    completer = Completer(registry, flush_s=0.02)
    completer.start()
    try:
        assert completer._thread.name == "dailyfeed-outbox-completer" and completer._thread.daemon
        registry.complete_published("a")
        deadline = time.monotonic() + 10
        while registry.collection.count_documents({"_id": "a"}) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert registry.collection.count_documents({"_id": "a"}) == 0
    finally:
        completer.stop()
    assert not completer._thread.is_alive() and threading.active_count() >= 1
    assert registry.collection.count_documents({"_id": "b"}) == 1  # only what was completed


def test_stats_count_what_is_owed_and_name_the_oldest(make):
    container = make()
    owe(container, 1)
    time.sleep(0.01)
    owe(container, 1)
    created = sorted(doc["created_at"] for doc in container.db[EVENT_PUBLICATIONS].find())
    stats = container.publications.stats()
    assert stats.outstanding == 2
    assert stats.oldest.replace(tzinfo=None) == created[0] != created[1]
