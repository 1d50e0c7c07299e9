"""The relay's rules on the embedded store (dailyfeed/content/outbox.py): only what is past due, oldest first and a
batch at a time; an entry its writer undid (a publication it completed) while the relay claimed it is let go; a dry
run changes nothing; the writer's statement says what is settled; and the serving process's relay thread and
completer do their work on their own and stop."""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from dailyfeed.bootstrap import bootstrap
from dailyfeed.content import outbox
from dailyfeed.content.outbox import (
    Completer,
    Outcome,
    PublicationRegistry,
    PublicationRelay,
    RelayWorker,
    SimulatedCrash,
    Writer,
)
from dailyfeed.content.publishing import PublishFailed
from dailyfeed.deadletters import Status
from dailyfeed.errors import ActivityNotRecorded
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.store import DEAD_LETTER_CLAIMS, EVENT_PUBLICATIONS, OUTBOX_WRITERS, POSTS
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


def dies_after(step: str, keys: list[str] | None = None):
    """A checkpoint that "kills" the writer after `step` (noting the key in `keys`)."""

    def died(at, key):
        if at == step:
            if keys is not None:
                keys.append(key)
            raise SimulatedCrash

    return died


def owe(container, n: int, step: str = outbox.APPLIED) -> list[str]:
    """n posts whose writer died after `step`: their keys, in the order written."""
    keys = []

    container.content_service.checkpoint = dies_after(step, keys)
    for i in range(n):
        with pytest.raises(SimulatedCrash):
            container.content_service.create_post(7, None, f"post {i}")
    container.content_service.checkpoint = outbox.no_checkpoint
    time.sleep(0.01)  # past the grace of 1 ms
    return keys


def owe_unlikes(container, n: int) -> list[str]:
    """n unlikes (standalone publications) whose writer died after removing the like: their keys."""
    service = container.content_service
    post = service.create_post(7, None, "liked")["id"]
    for member in range(n):
        service.like_post(100 + member, post)
    keys = []

    service.checkpoint = dies_after(outbox.APPLIED, keys)
    for member in range(n):
        with pytest.raises(SimulatedCrash):
            service.unlike_post(100 + member, post)
    service.checkpoint = outbox.no_checkpoint
    time.sleep(0.01)
    return keys


def owed_like(container) -> tuple[int, dict]:
    """Member 8 likes a new post and its writer dies owing the like's event; then another process (a new writer)
    serves: the post's id and the like as stored."""
    service = container.content_service
    post = service.create_post(7, None, "liked")["id"]

    service.checkpoint = dies_after(outbox.APPLIED)
    with pytest.raises(SimulatedCrash):
        service.like_post(8, post)
    service.checkpoint = outbox.no_checkpoint
    [like] = container.db["post_likes"].find()
    container.publications.writer = type(container.publications.writer)(container.db)
    return post, like


def declare_dead(container) -> None:
    """Its writer's statement as a dead process leaves it: no beat for longer than the lease."""
    long_ago = datetime.now(timezone.utc) - timedelta(days=1)
    container.db[OUTBOX_WRITERS].update_one({"_id": container.publications.writer.id}, {"$set": {"beat": long_ago}})


def owed(container) -> int:
    return container.publications.stats().outstanding


def test_a_publication_still_in_its_grace_period_is_left_to_its_writer(make):
    container = make(**{"outbox.grace-s": 3600.0})
    [key] = owe(container, 1)
    summary = container.relay().run_pass()
    assert summary.total == 0 and summary.skipped == 0
    assert owed(container) == 1
    assert container.broker.published == []


def test_a_pass_takes_a_batch_of_the_oldest_due_first(make):
    container = make(**{"outbox.batch": 2})
    keys = owe(container, 3)
    first = container.relay().run_pass()
    assert first.counts[Outcome.DELIVERED] == 2
    assert [e.message_key for e in container.broker.published] == keys[:2]
    container.relay().run_pass()
    assert [e.message_key for e in container.broker.published] == keys


def test_an_entry_its_writer_undid_while_claimed_is_let_go(make, monkeypatch):
    container = make()
    [key] = owe(container, 1)
    relay = container.relay()
    claims = container.publications.claims
    claim_batch = claims.claim_batch

    def claimed_then_undone(*args, **kwargs):
        held = claim_batch(*args, **kwargs)
        container.content_service.repo.delete_post_for_good(1, key)  # the slow writer undid it just before
        return held

    monkeypatch.setattr(claims, "claim_batch", claimed_then_undone)
    seen = []
    relay.checkpoint = lambda step, k: seen.append((step, k))
    summary = relay.run_pass()

    assert summary.total == 0 and summary.skipped == 1 and seen == []
    assert container.broker.published == []
    [claim] = container.db[DEAD_LETTER_CLAIMS].find({"collection": outbox.ENTRY_CLAIMS})
    assert claim["released_at"] is not None  # given back at once


def test_a_standalone_publication_completed_by_its_writer_while_claimed_is_let_go(make, monkeypatch):
    container = make()
    key, held_elsewhere = owe_unlikes(container, 2)
    claims = container.publications.claims
    [doc] = container.db[EVENT_PUBLICATIONS].find({"_id": held_elsewhere})
    assert claims.claim_batch(EVENT_PUBLICATIONS, [doc], "another relay")
    claim_batch = claims.claim_batch

    def claimed_then_completed(*args, **kwargs):
        held = claim_batch(*args, **kwargs)
        container.publications.complete([key])  # the slow writer completes it now
        return held

    monkeypatch.setattr(claims, "claim_batch", claimed_then_completed)
    summary = container.relay().run_pass()

    assert summary.line() == "delivered 0, dead lettered 0, dropped 0, left 0, skipped 2"  # both counted
    assert [e.message_key for e in container.broker.published if "CANCEL" in e.message_key] == []
    [claim] = container.db[DEAD_LETTER_CLAIMS].find({"collection": EVENT_PUBLICATIONS, "dead_letter": key})
    assert claim["released_at"] is not None


def test_the_relay_calls_its_checkpoint_after_claiming_and_after_publishing_each(make):
    # the steps a crash test kills a relay at (tests/api/test_crash_safety.py), for both kinds of publication
    container = make()
    [unliked] = owe_unlikes(container, 1)
    [key] = owe(container, 1)
    seen = []
    container.relay(checkpoint=lambda step, k: seen.append((step, k))).run_pass()
    assert seen == [
        (outbox.RELAY_CLAIMED, unliked),
        (outbox.RELAY_PUBLISHED, unliked),
        (outbox.RELAY_CLAIMED, key),
        (outbox.RELAY_PUBLISHED, key),
    ]


def test_a_dry_run_says_what_would_be_published_or_dropped_and_changes_nothing(make):
    container = make()
    [landed] = owe(container, 1)
    [never] = owe(container, 1, step=outbox.BEGUN)
    declare_dead(container)  # its listed write that never landed is dropped only once its writer is dead
    seen = {}
    summary = container.relay().preview(report=lambda key, outcome: seen.update({key: outcome}))
    assert seen == {landed: Outcome.DELIVERED, never: Outcome.DROPPED}
    assert summary.counts[Outcome.DELIVERED] == 1 and summary.counts[Outcome.DROPPED] == 1
    assert owed(container) == 2 and container.broker.published == []
    assert summary.line() == "delivered 1, dead lettered 0, dropped 1, left 0, skipped 0"


def test_the_serving_relay_thread_relays_at_start_then_every_interval_and_survives_a_failing_pass(make, caplog):
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
    worker = RelayWorker(relay, interval_s=1.0)
    caplog.set_level(logging.ERROR, logger="dailyfeed.content.outbox")
    worker.start()
    try:
        assert worker._thread.name == "dailyfeed-outbox-relay" and worker._thread.daemon
        deadline = time.monotonic() + 10
        while owed(container) and time.monotonic() < deadline:
            time.sleep(0.02)
        [second] = owe(container, 1)  # owed later: a later pass takes it
        while owed(container) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert not worker._thread.is_alive()
    assert [e.message_key for e in container.broker.published] == [first, second]
    # the operator's log says the pass failed, why, and when the next one comes
    [failed] = [r for r in caplog.records if r.name == "dailyfeed.content.outbox"]
    assert failed.getMessage() == "the publication relay failed; retrying in 1 s"
    assert isinstance(failed.exc_info[1], RuntimeError)


def test_the_completer_thread_states_the_writer_and_deletes_on_its_own_and_stops(make):
    container = make()
    registry = container.publications
    registry.collection.insert_many([{"_id": "a"}, {"_id": "b"}])
    writers = container.db[OUTBOX_WRITERS]
    completer = Completer(registry, flush_s=0.02)
    completer.start()
    try:
        assert completer._thread.name == "dailyfeed-outbox-completer" and completer._thread.daemon
        [statement] = writers.find()  # stated before the first write
        assert statement["_id"] == registry.writer.id and statement["owed"] == []
        registry.complete_write("a", standalone=True)
        deadline = time.monotonic() + 10
        while registry.collection.count_documents({"_id": "a"}) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert registry.collection.count_documents({"_id": "a"}) == 0
        post = container.content_service.create_post(7, None, "while batched")  # no statement of its own
        deadline = time.monotonic() + 10
        while writers.find_one()["settled_before"] <= statement["settled_before"] and time.monotonic() < deadline:
            time.sleep(0.01)
        later = writers.find_one()
        [entry] = container.db[POSTS].find_one({"_id": post["id"]})["pubs"]
        assert later["owed"] == [] and entry["at"] < later["settled_before"]  # settled, as the statement says
    finally:
        completer.stop()
    assert not completer._thread.is_alive() and threading.active_count() >= 1
    assert registry.collection.count_documents({"_id": "b"}) == 1  # only what was completed
    assert writers.count_documents({}) == 0  # stopped with nothing in flight: nothing owed, no statement
    container.content_service.create_post(7, None, "after the completer")  # now each write states it itself
    assert writers.find_one({"_id": registry.writer.id})["owed"] == []


def test_a_completer_that_cannot_state_its_writer_at_stop_says_so(make, caplog):
    container = make()
    registry = container.publications
    completer = Completer(registry, flush_s=3600)
    completer.start()
    registry.writer.collection = None  # the store fails
    with caplog.at_level(logging.WARNING, logger="dailyfeed.content.outbox"):
        completer.stop()
    [warning] = [r for r in caplog.records if r.getMessage() == "could not state the writer at stop"]
    assert isinstance(warning.exc_info[1], AttributeError)


def test_stats_count_what_is_owed_and_name_the_oldest(make):
    container = make()
    owe(container, 1)
    time.sleep(0.01)
    owe(container, 1)
    owe_unlikes(container, 1)
    [statement] = container.db[OUTBOX_WRITERS].find()
    began = sorted(o["at"] for o in statement["owed"])
    stats = container.publications.stats()
    assert stats.outstanding == 3
    assert stats.oldest == outbox._time(began[0]) != outbox._time(began[1])


def recorded_in(container, order: list[str], due: list[datetime]) -> None:
    """The publications of `order` as if recorded in that order, each due at its `due`: what writers with unlike
    clocks or `outbox.grace-s` (several serving processes on one store) leave owed."""
    publications = container.db[EVENT_PUBLICATIONS]
    docs = {doc["_id"]: doc for doc in publications.find()}
    publications.delete_many({})
    publications.insert_many([{**docs[key], "due_at": at} for key, at in zip(order, due)])


def cancels(container) -> list[str]:
    return [e.message_key for e in container.broker.published if "CANCEL" in e.message_key]


def test_publications_recorded_out_of_due_order_are_relayed_oldest_due_first(make):
    container = make(**{"outbox.batch": 1})
    keys = owe_unlikes(container, 3)
    # a due order that is neither the order they were recorded in nor the order of their keys
    recorded = sorted(keys, reverse=True)
    by_due = next(list(p) for p in itertools.permutations(keys) if list(p) not in (recorded, sorted(keys)))
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    recorded_in(container, recorded, [now - timedelta(seconds=10 - by_due.index(key)) for key in recorded])

    for _ in keys:
        container.relay().run_pass()
    assert cancels(container) == by_due


def test_publications_due_at_the_same_moment_are_relayed_in_key_order(make):
    # one order for every relay: a batch boundary falls at the same publication whichever relay reads it
    container = make(**{"outbox.batch": 2})
    keys = owe_unlikes(container, 3)
    at = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=1)
    recorded_in(container, sorted(keys, reverse=True), [at] * 3)

    container.relay().run_pass()
    assert cancels(container) == sorted(keys)[:2]
    assert container.db[EVENT_PUBLICATIONS].distinct("_id") == [sorted(keys)[2]]  # still owed


def test_a_dry_run_says_what_one_pass_would_do_a_batch_of_the_oldest(make):
    container = make(**{"outbox.batch": 2})
    keys = owe(container, 3)
    seen = []
    summary = container.relay().preview(report=lambda key, outcome: seen.append((key, outcome)))
    assert seen == [(keys[0], Outcome.DELIVERED), (keys[1], Outcome.DELIVERED)]
    assert summary.line() == "delivered 2, dead lettered 0, dropped 0, left 0, skipped 0"
    assert owed(container) == 3 and container.broker.published == []


def test_a_pass_counts_every_publication_it_skipped(make, monkeypatch):
    container = make()
    held_by_writer, undone_meanwhile, relayed = owe(container, 3)
    registry = container.publications
    assert registry.hold(held_by_writer, standalone=False) is not None  # its writer undoes it
    claims = registry.claims
    claim_batch = claims.claim_batch

    def claimed_then_undone(*args, **kwargs):
        held = claim_batch(*args, **kwargs)
        container.content_service.repo.delete_post_for_good(2, undone_meanwhile)  # a slow writer undid it now
        return held

    monkeypatch.setattr(claims, "claim_batch", claimed_then_undone)
    summary = container.relay().run_pass()

    assert summary.line() == "delivered 1, dead lettered 0, dropped 0, left 0, skipped 2"
    assert [e.message_key for e in container.broker.published] == [relayed]


def test_the_serving_relay_thread_drains_a_backlog_of_full_batches_without_waiting_the_interval(make):
    container = make(**{"outbox.batch": 1})
    keys = owe(container, 3)
    worker = RelayWorker(container.relay(), interval_s=3600.0)  # after a pass short of a batch: an hour's wait
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while owed(container) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [e.message_key for e in container.broker.published] == keys
        assert worker._thread.is_alive()  # waiting for its next interval
    finally:
        worker.stop()
    assert not worker._thread.is_alive()


def test_the_age_of_the_oldest_owed_event_is_exact_and_never_negative(make):
    # what /metrics shows as dailyfeed_outbox_oldest_age_seconds (and `outbox stats` as "oldest ... old")
    container = make()
    owe(container, 1)
    stats = container.publications.stats()
    assert stats.oldest_age_s(stats.oldest + timedelta(milliseconds=250)) == 0.25
    assert stats.oldest_age_s(stats.oldest - timedelta(seconds=5)) == 0.0  # a reader whose clock is behind the writer's
    container.relay().run_pass()
    assert container.publications.stats().oldest_age_s(datetime.now(timezone.utc)) == 0.0  # nothing owed


def test_a_dead_writers_statement_moves_on_a_batch_at_a_time_and_goes_when_nothing_is_owed(make):
    container = make(**{"outbox.batch": 2})
    writer = container.publications.writer
    writer.batched = True  # a serving process's writer, killed before its completer stated these writes
    writer.state()
    keys = owe(container, 3)
    declare_dead(container)
    statements = container.db[OUTBOX_WRITERS]
    first = statements.find_one()["settled_before"]

    assert container.relay().run_pass().counts[Outcome.DELIVERED] == 2
    moved = statements.find_one()
    [newest] = container.db[POSTS].find_one({"pubs.k": keys[1]})["pubs"]
    assert first <= newest["at"] == moved["settled_before"]  # on to the newest relayed, oldest first
    assert moved["relayed"] == keys[:2]
    assert container.relay().run_pass().counts[Outcome.DELIVERED] == 1  # the rest, nothing twice
    assert container.relay().run_pass().total == 0
    assert statements.count_documents({}) == 0  # dead and owing nothing: its statement is gone
    assert [e.message_key for e in container.broker.published] == keys


def test_an_unlike_keeps_the_event_of_a_like_another_writer_still_owes(make):
    container = make(**{"outbox.grace-s": 3600.0})
    service = container.content_service
    post, like = owed_like(container)
    service.unlike_post(8, post)

    kept = container.db[EVENT_PUBLICATIONS].find_one({"_id": like["_id"]})
    assert kept["landed"] is True and kept["event"]["memberActivityType"] == "LIKE_POST"
    assert kept["target"] == {"collection": "post_likes", "id": like["_id"]}  # the like it stands for
    settled_like = service.like_post(9, post)  # published and settled: an unlike keeps nothing of it
    service.unlike_post(9, post)
    assert container.db[EVENT_PUBLICATIONS].count_documents({}) == 1 and settled_like["liked"]


def test_a_writer_takes_over_an_entry_after_a_relays_lease_only_when_no_relay_published_it(make):
    container = make(**{"outbox.lease-s": 1})
    registry = container.publications
    # another serving process on the same store, stated first: what a relay said is read from this writer's own
    container.db[OUTBOX_WRITERS].insert_one(
        {"_id": "another process", "settled_before": 0, "owed": [], "beat": datetime.now(timezone.utc)}
    )
    published, killed_before = owe(container, 2)

    def killed(step, key):
        if step == outbox.RELAY_CLAIMED and key == killed_before:
            raise SimulatedCrash("relay killed before publishing")

    relay = container.relay(checkpoint=killed)
    relay.batch = 1
    assert relay.run_pass().counts[Outcome.DELIVERED] == 1  # the first: published and said so in the statement
    with pytest.raises(SimulatedCrash):
        relay.run_pass()  # the second: claimed, then the relay died
    assert registry.hold(killed_before, standalone=False) is None  # its lease still runs
    time.sleep(1.1)
    assert registry.hold(published, standalone=False) is None  # published by a relay: never undone
    assert registry.hold(killed_before, standalone=False) is not None  # never published: its writer may undo it


def test_a_dry_run_of_standalone_publications_publishes_what_landed_and_drops_the_rest(make):
    container = make()
    landed = owe_unlikes(container, 2)  # the likes are gone: the unlikes landed
    service = container.content_service
    post = service.create_post(8, None, "kept like")["id"]
    service.like_post(9, post)
    never = []

    service.checkpoint = dies_after(outbox.BEGUN, never)
    with pytest.raises(SimulatedCrash):
        service.unlike_post(9, post)  # recorded, the like never removed
    service.checkpoint = outbox.no_checkpoint
    time.sleep(0.01)
    seen = {}
    summary = container.relay().preview(report=lambda key, outcome: seen.update({key: outcome}))
    assert seen == {**dict.fromkeys(landed, Outcome.DELIVERED), never[0]: Outcome.DROPPED}
    assert summary.line() == "delivered 2, dead lettered 0, dropped 1, left 0, skipped 0"
    assert container.db[EVENT_PUBLICATIONS].count_documents({}) == 3 and cancels(container) == []


def test_a_like_whose_unlike_was_undone_still_has_its_owed_event_published(make):
    """like (its writer dies owing the event) → unlike by another process, which can neither deliver nor keep its
    own event and puts the like back: the like's event, kept standalone as landed, is still published."""
    container = make()
    service = container.content_service
    post, like = owed_like(container)
    container.broker.fail_with()
    container.dead_letters.db = _Broken()
    with pytest.raises(ActivityNotRecorded):
        service.unlike_post(8, post)
    assert container.db["post_likes"].count_documents({"_id": like["_id"]}) == 1  # put back
    container.broker.recover()
    time.sleep(0.01)

    summary = container.relay().run_pass()

    # published as kept (landed, though the like is back), and again from the like's entry: its key stores it once
    assert [e.message_key for e in container.broker.published if "LIKE_POST" in e.message_key] == [like["_id"]] * 2
    assert summary.line() == "delivered 2, dead lettered 0, dropped 0, left 0, skipped 0"
    assert container.db[EVENT_PUBLICATIONS].count_documents({}) == 0


def test_a_standalone_publication_a_killed_relay_held_is_taken_after_its_lease(make):
    container = make(**{"outbox.lease-s": 1})
    [key] = owe_unlikes(container, 1)

    def killed(step, k):
        if step == outbox.RELAY_PUBLISHED:
            raise SimulatedCrash("relay killed")

    with pytest.raises(SimulatedCrash):
        container.relay(checkpoint=killed).run_pass()
    assert container.relay().run_pass().skipped == 1
    time.sleep(1.1)
    assert container.relay().run_pass().counts[Outcome.DELIVERED] == 1  # a later claim generation
    assert cancels(container) == [key, key]  # the killed relay's send and this one: stored once by key
    assert container.db[EVENT_PUBLICATIONS].count_documents({}) == 0


class _Broken:
    """A database whose every collection fails (the dead letters cannot be kept)."""

    def __getitem__(self, name):
        from tests.api.test_delivery_failures import BrokenCollection

        return BrokenCollection()


def test_owed_unlikes_of_posts_and_comments_are_relayed_in_one_pass(make):
    container = make()
    service = container.content_service
    post = service.create_post(7, None, "liked")["id"]
    comment = service.create_comment(7, post, "liked too")["id"]
    service.like_post(8, post)
    service.like_comment(8, comment)
    keys = []

    service.checkpoint = dies_after(outbox.APPLIED, keys)
    for unlike in (lambda: service.unlike_post(8, post), lambda: service.unlike_comment(8, comment)):
        with pytest.raises(SimulatedCrash):
            unlike()
    service.checkpoint = outbox.no_checkpoint
    time.sleep(0.01)
    assert container.relay().run_pass().counts[Outcome.DELIVERED] == 2  # likes of both kinds read, both gone
    assert sorted(cancels(container)) == sorted(keys)


@pytest.mark.parametrize("stored", ["before likes had entries", "while outbox.enabled was false"])
def test_an_unlike_of_a_like_stored_without_a_writers_entry_keeps_nothing(make, stored):
    """A like stored before likes carried their publication entry, or while the registry was off (its entry is its
    key alone, what an undo finds it by): nothing is known owed of it."""
    container = make()
    service = container.content_service
    post = service.create_post(7, None, "liked")["id"]
    service.like_post(8, post)
    likes = container.db["post_likes"]
    [like] = likes.find()
    if stored == "before likes had entries":
        likes.update_one({"_id": like["_id"]}, {"$unset": {"pubs": ""}})
    else:
        likes.update_one({"_id": like["_id"]}, {"$set": {"pubs": [{"k": like["_id"]}]}})
    assert service.unlike_post(8, post)["liked"] is False
    assert container.db[EVENT_PUBLICATIONS].count_documents({}) == 0


def test_a_standalone_publication_in_its_grace_period_is_left_and_counted_from_when_it_was_recorded(make):
    container = make(**{"outbox.grace-s": 3600.0})
    [key] = owe_unlikes(container, 1)
    assert container.relay().run_pass().total == 0 and cancels(container) == []
    recorded = container.db[EVENT_PUBLICATIONS].find_one({"_id": key})["created_at"]
    stats = container.publications.stats()
    assert stats.outstanding == 1 and stats.oldest.replace(tzinfo=None) == recorded
    registry = container.publications
    assert registry.claims.claim(EVENT_PUBLICATIONS, key, "a relay") is not None
    assert registry.hold(key, standalone=True) is None  # a relay holds it: its writer must not undo the unlike


@pytest.mark.parametrize(
    "statement, kept",
    [
        (None, False),  # its writer's statement is gone: it was dead and owed nothing
        ({"settled_before": 1, "owed": []}, False),  # settled before the statement
        ({"settled_before": 0, "owed": []}, True),  # began at the statement's very time: not settled by it
        ({"settled_before": 1, "owed": ["like"]}, True),  # listed in flight
        ({"settled_before": 0, "owed": [], "relayed": ["like"]}, False),  # a relay published it
    ],
)
def test_an_unlike_keeps_a_likes_event_only_while_its_writers_statement_does_not_settle_it(make, statement, kept):
    container = make()
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    event = ActivityEvent.new(ActivityType.LIKE_POST, 8, post_id=1, at=at)
    key = event.message_key
    began = outbox._micros(at)
    like = {"_id": key, "pubs": [outbox.entry_of(event, "other", began)]}
    writers = container.db[OUTBOX_WRITERS]
    writers.insert_one({"_id": "unrelated", "settled_before": began - 1, "owed": [{"k": key}]})
    if statement is not None:
        writers.insert_one(
            {
                "_id": "other",
                "settled_before": began + statement["settled_before"],
                "owed": [{"k": key} for _ in statement["owed"]],
                "relayed": [key for _ in statement.get("relayed", ())],
            }
        )
    container.publications.keep_owed_like(like, "post_likes")
    assert container.db[EVENT_PUBLICATIONS].count_documents({"_id": key, "landed": True}) == (1 if kept else 0)


def test_a_dry_run_takes_one_batch_of_standalone_publications_and_of_a_dead_writers_entries(make):
    container = make(**{"outbox.batch": 1})
    [first, _] = owe_unlikes(container, 2)
    [entry] = owe(container, 1)
    declare_dead(container)  # dead, and nothing it listed is missing: nothing to drop
    seen = []
    summary = container.relay().preview(report=lambda key, outcome: seen.append((key, outcome)))
    assert seen == [(first, Outcome.DELIVERED), (entry, Outcome.DELIVERED)]
    assert summary.line() == "delivered 2, dead lettered 0, dropped 0, left 0, skipped 0"


def lease_runs_out(container) -> None:
    """Every claim's lease is over, as when whoever held it died a lease ago."""
    ended = datetime.now(timezone.utc) - timedelta(seconds=1)
    container.db[DEAD_LETTER_CLAIMS].update_many({}, {"$set": {"lease_until": ended}})


def published(container) -> list[str]:
    return [e.message_key for e in container.broker.published]


class FailingFor:
    """The publisher, except that the events of `keys` can be neither delivered nor kept (their transport and the
    dead-letter store both down for them)."""

    def __init__(self, publisher, keys):
        self.publisher = publisher
        self.keys = set(keys)

    def publish_activity(self, service, event):
        if event.message_key in self.keys:
            raise PublishFailed(f"{event.message_key} neither delivered nor kept (injected)")
        return self.publisher.publish_activity(service, event)


def test_an_entry_another_relay_published_after_this_one_read_the_statements_is_let_go(make, monkeypatch):
    """Relay B reads the statements; meanwhile relay A publishes the entry, says so in the statement and its lease
    runs out; B takes the next claim, finds the entry still in its document, and lets it go: published once."""
    container = make()
    [key] = owe(container, 1)
    claims = container.publications.claims
    claim_batch = claims.claim_batch
    raced = []

    def published_meanwhile(*args, **kwargs):
        if not raced:
            raced.append(key)
            assert container.relay().run_pass().counts[Outcome.DELIVERED] == 1  # relay A, all the way
            lease_runs_out(container)
        return claim_batch(*args, **kwargs)

    monkeypatch.setattr(claims, "claim_batch", published_meanwhile)
    summary = container.relay().run_pass()  # relay B

    assert summary.total == 0 and summary.skipped == 1
    assert published(container) == [key] and owed(container) == 0
    [taken] = container.db[DEAD_LETTER_CLAIMS].find({"dead_letter": key, "generation": 2})
    assert taken["released_at"] is not None  # given back at once


@pytest.mark.parametrize("dead", [False, True], ids=["live writer", "dead writer"])
def test_a_statement_whose_relayed_keys_are_full_keeps_the_newest_and_nothing_is_published_twice(make, dead):
    """A long-lived writer's statement already holds MAX_RELAYED keys relays settled for it: the newest go in, the
    oldest out, and the next pass does not publish again what the last one did."""
    container = make(**{"outbox.batch": 1})
    keys = owe(container, 2)
    statements = container.db[OUTBOX_WRITERS]
    earlier = [f"settled long ago {n}" for n in range(outbox.MAX_RELAYED)]
    statements.update_one({"_id": container.publications.writer.id}, {"$set": {"relayed": earlier}})
    if dead:
        declare_dead(container)

    container.relay().run_pass()
    if not dead:
        relayed = statements.find_one()["relayed"]
        assert relayed == earlier[1:] + keys[:1]
    container.relay().run_pass()

    assert published(container) == keys
    if dead:
        assert statements.count_documents({}) == 0  # everything it owed is settled
    else:
        assert owed(container) == 0


def test_a_dead_writers_entry_that_can_be_neither_delivered_nor_kept_stays_owed_behind_a_newer_one_relayed(make):
    container = make()
    writer = container.publications.writer
    writer.batched = True  # a serving process's writer, killed before its completer stated these writes
    writer.state()
    older, newer = owe(container, 2)
    declare_dead(container)
    statements = container.db[OUTBOX_WRITERS]
    relay = container.relay()
    relay.publisher = FailingFor(relay.publisher, [older])

    summary = relay.run_pass()
    assert summary.line() == "delivered 1, dead lettered 0, dropped 0, left 1, skipped 0"
    assert statements.count_documents({}) == 1  # the older one is still owed
    assert container.relay().run_pass().counts[Outcome.DELIVERED] == 1

    assert published(container) == [newer, older]
    assert statements.count_documents({}) == 0


def test_a_dead_writers_statement_never_moves_back_before_a_write_it_settled_itself(make):
    container = make(**{"outbox.batch": 2})
    first, second = owe(container, 2)  # listed in its statements (a CLI writer states each write)
    container.content_service.create_post(7, None, "published by its writer")
    [settled] = published(container)
    [third] = owe(container, 1)
    declare_dead(container)

    container.relay().run_pass()
    container.relay().run_pass()

    assert published(container) == [settled, first, second, third]  # its own publish is not repeated
    assert container.db[OUTBOX_WRITERS].count_documents({}) == 0


def test_a_dead_writers_entry_another_relay_holds_keeps_its_statement_until_it_is_published(make):
    container = make()
    [key] = owe(container, 1)
    declare_dead(container)
    claims = container.publications.claims
    assert claims.claim_batch(outbox.ENTRY_CLAIMS, [{"_id": key, "status": Status.PENDING.value}], "another relay")
    statements = container.db[OUTBOX_WRITERS]

    summary = container.relay().run_pass()
    assert summary.total == 0 and summary.skipped == 1
    assert statements.count_documents({}) == 1  # still owed: the other relay may die before publishing it
    lease_runs_out(container)  # it did
    assert container.relay().run_pass().counts[Outcome.DELIVERED] == 1

    assert published(container) == [key]
    assert statements.count_documents({}) == 0


def test_a_pass_counts_a_live_writers_listed_write_that_has_not_landed_as_skipped(make):
    container = make()
    owe(container, 1, step=outbox.BEGUN)  # its writer lives: it may still apply it
    [landed] = owe(container, 1)
    summary = container.relay().run_pass()
    assert summary.line() == "delivered 1, dead lettered 0, dropped 0, left 0, skipped 1"
    assert published(container) == [landed]


def test_a_pass_reports_each_publication_it_settled_with_its_outcome(make):
    """What `dailyfeed outbox relay` prints a line of: standalone publications and entries, published or dropped."""
    container = make()
    [unliked] = owe_unlikes(container, 1)
    [landed] = owe(container, 1)
    [never] = owe(container, 1, step=outbox.BEGUN)
    declare_dead(container)  # its listed write that never landed is dropped
    seen = {}
    container.relay().run_pass(report=lambda key, outcome: seen.update({key: outcome}))
    assert seen == {unliked: Outcome.DELIVERED, landed: Outcome.DELIVERED, never: Outcome.DROPPED}


def test_a_dead_writers_write_that_never_landed_is_dropped_once_while_its_entries_take_several_passes(make):
    container = make(**{"outbox.batch": 1})
    [never] = owe(container, 1, step=outbox.BEGUN)
    keys = owe(container, 2)
    declare_dead(container)
    seen = []
    for _ in range(3):
        container.relay().run_pass(report=lambda key, outcome: seen.append((key, outcome)))
    assert seen == [(never, Outcome.DROPPED), (keys[0], Outcome.DELIVERED), (keys[1], Outcome.DELIVERED)]
    assert container.db[OUTBOX_WRITERS].count_documents({}) == 0


def test_a_standalone_publication_that_can_be_neither_delivered_nor_kept_is_given_back_for_the_next_pass(make):
    container = make()
    [key] = owe_unlikes(container, 1)
    relay = container.relay()
    relay.publisher = FailingFor(relay.publisher, [key])

    assert relay.run_pass().line() == "delivered 0, dead lettered 0, dropped 0, left 1, skipped 0"
    assert container.db[EVENT_PUBLICATIONS].count_documents({"_id": key}) == 1  # still owed
    assert container.relay().run_pass().counts[Outcome.DELIVERED] == 1  # its claim was given back: taken at once
    assert cancels(container) == [key]
    assert container.db[EVENT_PUBLICATIONS].count_documents({}) == 0


# --- clocks: a writer's that stands still, a relay's read at an exact moment ---------------------------------------


def writer_whose_clock_reads(container, at: datetime) -> Writer:
    """This process's writer from now on, its clock standing still at `at` (a coarse or stalled clock)."""
    writer = Writer(container.db, clock=lambda: at)
    container.publications.writer = writer
    return writer


def relay_at(container, now: datetime) -> PublicationRelay:
    """A relay (another process on the same store) whose clock reads `now`."""
    settings = container.settings
    registry = PublicationRegistry(
        container.db, grace_s=settings["outbox.grace-s"], lease_s=settings["outbox.lease-s"], clock=lambda: now
    )
    service = container.content_service
    return PublicationRelay(registry, service.repo, service.publisher, batch=settings["outbox.batch"])


@pytest.mark.parametrize("stated", ["each write", "by a completer, before the write"])
def test_a_write_is_relayed_the_moment_its_grace_has_passed_even_when_it_began_at_its_statements_time(make, stated):
    """A CLI writer lists the write in its statement; a serving one's write, begun on a clock that has not moved
    since its last statement, carries `at` equal to that statement's T: found all the same (never lost)."""
    container = make(**{"outbox.grace-s": 30.0})
    began = datetime(2026, 1, 1, tzinfo=timezone.utc)
    writer = writer_whose_clock_reads(container, began)
    if stated != "each write":
        writer.batched = True
        writer.state()
    [key] = owe(container, 1)
    [entry] = container.db[POSTS].find_one({"pubs.k": key})["pubs"]
    if stated != "each write":
        assert entry["at"] == container.db[OUTBOX_WRITERS].find_one()["settled_before"]

    due = outbox._time(entry["at"]) + timedelta(seconds=30)
    assert relay_at(container, due - timedelta(microseconds=1)).run_pass().total == 0  # still its writer's
    assert relay_at(container, due).run_pass().counts[Outcome.DELIVERED] == 1
    assert published(container) == [key]


def test_a_write_its_writer_settled_is_not_relayed_again_when_its_clock_stands_still(make):
    container = make(**{"outbox.grace-s": 30.0})
    still = datetime(2026, 1, 1, tzinfo=timezone.utc)
    writer_whose_clock_reads(container, still)
    container.content_service.create_post(7, None, "published and settled by its writer")
    container.content_service.create_post(7, None, "and another, in the same microsecond")
    assert relay_at(container, still + timedelta(minutes=1)).run_pass().total == 0
    assert len(published(container)) == 2


def test_a_writer_whose_last_beat_is_exactly_a_lease_old_still_lives(make):
    """Dead is a beat older than `outbox.lease-s`: until then a listed write that has not landed is its writer's to
    apply (skipped), not dropped."""
    container = make(**{"outbox.lease-s": 60})
    beat = datetime(2026, 1, 1, tzinfo=timezone.utc)
    writer_whose_clock_reads(container, beat)
    [never] = owe(container, 1, step=outbox.BEGUN)
    seen = {}
    summary = relay_at(container, beat + timedelta(seconds=60)).run_pass(report=lambda k, o: seen.update({k: o}))
    assert summary.line() == "delivered 0, dead lettered 0, dropped 0, left 0, skipped 1" and seen == {}
    summary = relay_at(container, beat + timedelta(seconds=60, milliseconds=1)).run_pass()
    assert summary.counts[Outcome.DROPPED] == 1
