"""The task store's own refusals and locks (dailyfeed.restore.tasks.TaskStore), what every caller (API, console page,
CLI) relies on: a bad action, rate or selection refused with a message naming it; one running task per collection
and selection, the refusal naming the task that holds it, and no lock left behind by a start that did not happen."""

from __future__ import annotations

import mongomock
import pytest

from dailyfeed.deadletters import Selection
from dailyfeed.errors import Conflict, InvalidInput
from dailyfeed.restore.tasks import MAX_RATE, TaskStore
from dailyfeed.store import DEAD_LETTER_TASKS, FEIGN_DEAD_LETTERS, KAFKA_PUBLISHER_DEAD_LETTERS


@pytest.fixture
def store():
    return TaskStore(mongomock.MongoClient().db)


def start(store, selection: Selection | None = None, **options):
    return store.start("replay", selection or Selection(), total=1, actor="alice", via="cli", **options)


def test_a_bad_action_rate_or_selection_is_refused_naming_it(store):
    with pytest.raises(InvalidInput) as refused:
        store.start("explode", Selection(), total=0, actor="alice", via="cli")
    assert refused.value.message == "unknown action 'explode'; actions are replay, discard, requeue, undiscard"
    for rate in (0, -1, MAX_RATE * 1.5):
        with pytest.raises(InvalidInput) as refused:
            start(store, rate=rate)
        assert refused.value.message == "rate must be more than 0 and at most 10000 a second"
    with pytest.raises(InvalidInput) as refused:
        start(store, Selection(collections=()))
    assert refused.value.message == "the selection takes no dead-letter collection"
    assert store.db[DEAD_LETTER_TASKS].count_documents({}) == 0


@pytest.mark.parametrize("rate", [0.5, MAX_RATE])
def test_a_rate_below_one_or_at_the_most_is_taken(store, rate):
    assert start(store, rate=rate)["rate"] == rate


def test_a_second_task_on_a_collection_and_selection_is_refused_naming_the_one_that_runs_there(store):
    posts_on_kafka = start(store, Selection(collections=(KAFKA_PUBLISHER_DEAD_LETTERS,), category="POST"))
    on_feign = start(store, Selection(collections=(FEIGN_DEAD_LETTERS,)))

    with pytest.raises(Conflict) as refused:  # every collection: the Kafka publisher one is free, feign is not
        start(store)
    assert refused.value.message == (
        f"task {on_feign['_id']} is already running on this selection ({FEIGN_DEAD_LETTERS}); "
        "cancel it or wait for it to end"
    )
    # the refused start gave back the lock it had taken on the Kafka publisher collection
    assert start(store, Selection(collections=(KAFKA_PUBLISHER_DEAD_LETTERS,)))["state"] == "running"
    assert store.get(posts_on_kafka["_id"])["state"] == "running"


def test_a_start_whose_task_could_not_be_written_leaves_no_lock(store, monkeypatch):
    def store_down(doc):
        raise RuntimeError("store down (injected)")

    monkeypatch.setattr(store.db[DEAD_LETTER_TASKS], "insert_one", store_down)
    with pytest.raises(RuntimeError):
        start(store)
    monkeypatch.undo()
    assert start(store)["state"] == "running"
