"""The publication registry's completer (dailyfeed/content/outbox.py): completions are deleted in batches off
the request path, kept for the next batch when the store fails, and deleted when it stops."""

from __future__ import annotations

import logging

import mongomock
import pytest

from dailyfeed.content.outbox import Completer, PublicationRegistry
from dailyfeed.store import EVENT_PUBLICATIONS


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
            registry.complete_published(key)
        assert db[EVENT_PUBLICATIONS].count_documents({}) == 3  # not on the request path

        real = registry.collection
        registry.collection = None  # the store fails: `delete_many` on None raises
        with caplog.at_level(logging.WARNING, logger="dailyfeed.content.outbox"):
            completer.flush()
        assert db[EVENT_PUBLICATIONS].count_documents({}) == 3
        # the operator's log says what is kept and why (the store's error with its traceback)
        [warning] = caplog.records
        assert warning.getMessage() == "could not complete 2 publications; trying again"
        assert warning.exc_info and isinstance(warning.exc_info[1], AttributeError)
        registry.collection = real
        completer.flush()
        assert [doc["_id"] for doc in db[EVENT_PUBLICATIONS].find()] == ["c"]  # at most max_batch a delete
    finally:
        completer.stop()  # what is still queued is deleted
    assert db[EVENT_PUBLICATIONS].count_documents({}) == 0
    assert registry.completer is None
    registry.complete_published("gone")  # without a completer: now (nothing to delete here)
