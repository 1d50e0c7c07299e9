"""The publication registry's completer (dailyfeed/content/outbox.py): completions of standalone publications are
deleted in batches off the request path, kept for the next batch when the store fails, and deleted when it stops;
the writer's statement is written once per flush, and again at the next one when the store failed."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import mongomock
import pytest

from dailyfeed.content.outbox import Completer, PublicationRegistry, Target
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.store import EVENT_PUBLICATIONS, OUTBOX_WRITERS, POSTS


@pytest.fixture
def db():
    return mongomock.MongoClient()["outbox_batching"]


def test_completions_are_deleted_in_batches_and_kept_while_the_store_fails(db, caplog):
    registry = PublicationRegistry(db, grace_s=30, lease_s=60)
    for key in ("a", "b", "c"):
        db[EVENT_PUBLICATIONS].insert_one({"_id": key})
    completer = Completer(registry, flush_s=3600, max_batch=2)  # flushed by hand here
    completer.start()
    try:
        for key in ("a", "b", "c"):
            registry.complete_write(key, standalone=True)
        assert db[EVENT_PUBLICATIONS].count_documents({}) == 3  # not on the request path

        real = registry.collection
        registry.collection = None  # the store fails: `delete_many` on None raises
        try:
            with caplog.at_level(logging.WARNING, logger="dailyfeed.content.outbox"):
                completer.flush()  # the statement has nothing new to say: not written again
        finally:
            registry.collection = real  # back before any assertion: `stop` flushes what is queued
        assert db[EVENT_PUBLICATIONS].count_documents({}) == 3
        # the operator's log says what is kept and why (the store's error with its traceback)
        [warning] = caplog.records
        assert warning.getMessage() == "could not complete 2 publications; trying again"
        assert warning.exc_info and isinstance(warning.exc_info[1], AttributeError)
        completer.flush()
        assert [doc["_id"] for doc in db[EVENT_PUBLICATIONS].find()] == ["c"]  # at most max_batch a delete
    finally:
        completer.stop()  # what is still queued is deleted
    assert db[EVENT_PUBLICATIONS].count_documents({}) == 0
    assert registry.completer is None
    registry.complete_write("gone", standalone=True)  # without a completer: now (nothing to delete here)


def test_the_statement_is_written_once_per_flush_and_again_after_a_store_failure(db, caplog):
    registry = PublicationRegistry(db, grace_s=30, lease_s=60)
    writers = db[OUTBOX_WRITERS]
    completer = Completer(registry, flush_s=3600)  # flushed by hand here
    completer.start()
    try:
        first = writers.find_one({"_id": registry.writer.id})
        event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=1)
        entry = registry.writer.begin(event, Target(POSTS, 1))  # batched: in memory only
        assert writers.find_one()["owed"] == []
        real = registry.writer.collection
        registry.writer.collection = None  # the store fails
        try:
            with caplog.at_level(logging.WARNING, logger="dailyfeed.content.outbox"):
                completer.flush()
        finally:
            registry.writer.collection = real
        # the operator's log says what failed and why (the store's error with its traceback)
        [warning] = caplog.records
        assert warning.getMessage() == "could not state the writer's settled publications; trying again"
        assert warning.exc_info and isinstance(warning.exc_info[1], AttributeError)
        completer.flush()  # said again: what changed was not stated yet
        [owed] = writers.find_one()["owed"]
        assert owed == {"k": event.message_key, "c": POSTS, "id": 1, "at": entry["at"]}
        assert writers.find_one()["settled_before"] > first["settled_before"]
        assert entry["at"] < writers.find_one()["settled_before"]  # began before the statement
        registry.writer.complete(event.message_key)
        completer.flush()
        assert writers.find_one()["owed"] == []
    finally:
        completer.stop()


def test_a_write_begun_after_a_statement_is_never_settled_by_it_whatever_the_clock_says(db):
    """The statement's promise: what began before it is listed or settled, what begins after has `at` >= T, even
    when the clock stands still or goes back."""
    times = iter(
        [datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=timezone.utc)] * 2 + [datetime(2025, 1, 1, tzinfo=timezone.utc)]
    )
    registry = PublicationRegistry(db, grace_s=30, lease_s=60, clock=lambda: next(times))
    registry.writer.batched = True
    registry.writer.state()
    settled_before = db[OUTBOX_WRITERS].find_one()["settled_before"]
    for n in (1, 2):  # the clock as it was at the statement, then a year back
        entry = registry.writer.begin(ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=n), Target(POSTS, n))
        assert entry["at"] >= settled_before


def test_the_oldest_owed_write_is_dated_by_the_registrys_clock_when_it_began(db):
    # what /metrics' dailyfeed_outbox_oldest_age_seconds is counted from
    began = datetime(2026, 1, 1, 12, 0, 0, 123_456, tzinfo=timezone.utc)
    registry = PublicationRegistry(db, grace_s=30, lease_s=60, clock=lambda: began)
    registry.writer.begin(ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=1), Target(POSTS, 1))
    stats = registry.stats()
    assert stats.outstanding == 1 and stats.oldest == began
