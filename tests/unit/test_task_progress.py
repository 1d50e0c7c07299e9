"""A replay task as the API, the console page and `dailyfeed tasks` show it (`progress_of`): moved of total as a
percentage, the rate it reaches, the time left while it runs, who runs it; and the edges (nothing to move, more
moved than counted, read at the instant it started)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import mongomock
import pytest

from dailyfeed.deadletters import Selection
from dailyfeed.restore.tasks import TaskStore, progress_of

T0 = datetime(2026, 12, 5, 10, 0, 0, 250000, tzinfo=timezone.utc)


@pytest.fixture
def task():
    store = TaskStore(mongomock.MongoClient().db, default_rate=50.0)
    doc = store.start("replay", Selection(), total=100, actor="alice", via="api", reason="broker back")
    return {**doc, "started_at": T0, "updated_at": T0, "lease_owner": "host-a:41:5e1f0c"}


def test_a_running_task_shows_its_share_moved_its_rate_the_time_left_and_its_runner(task):
    running = {**task, "moved": 60, "failed": 1, "skipped": 2}

    shown = progress_of(running, now=T0 + timedelta(seconds=30))

    assert shown == {
        "id": str(task["_id"]),
        "action": "replay",
        "mode": None,
        "state": "running",
        "selection": "all dead letters",
        "actor": "alice",
        "reason": "broker back",
        "total": 100,
        "moved": 60,
        "failed": 1,
        "skipped": 2,
        "percent": 60,
        "rateLimit": 50.0,
        "ratePerSecond": 2.0,
        "secondsLeft": 20,
        "cancelRequested": False,
        "error": None,
        "startedAt": "2026-12-05T10:00:00.250Z",
        "finishedAt": None,
        "runner": "host-a:41:5e1f0c",
    }
    assert progress_of({**running, "cancel_requested": True}, now=T0)["cancelRequested"] is True
    slow = progress_of({**task, "moved": 1}, now=T0 + timedelta(seconds=3))
    assert (slow["ratePerSecond"], slow["secondsLeft"], slow["percent"]) == (0.33, 297, 1)
    assert progress_of({**task, "total": 99, "moved": 50}, now=T0)["percent"] == 50  # 50.5 %, shown as 50


def test_an_ended_task_shows_the_rate_it_reached_until_it_ended_and_no_time_left_nor_runner(task):
    ended = {**task, "state": "completed", "moved": 100, "finished_at": T0 + timedelta(seconds=40)}

    shown = progress_of(ended, now=T0 + timedelta(hours=5))

    assert (shown["percent"], shown["ratePerSecond"], shown["secondsLeft"], shown["runner"]) == (100, 2.5, None, None)
    assert shown["finishedAt"] == "2026-12-05T10:00:40.250Z"
    stopped = progress_of({**task, "state": "cancelled", "moved": 10}, now=T0 + timedelta(seconds=5))
    assert (stopped["secondsLeft"], stopped["runner"]) == (None, None)  # no time left while nothing runs it


def test_the_edges_nothing_to_move_more_moved_than_counted_and_read_as_it_started(task):
    nothing = progress_of({**task, "total": 0}, now=T0 + timedelta(seconds=1))
    assert (nothing["percent"], nothing["secondsLeft"]) == (100, None)

    more = progress_of({**task, "moved": 130}, now=T0 + timedelta(seconds=10))  # new dead letters matched meanwhile
    assert (more["percent"], more["secondsLeft"], more["ratePerSecond"]) == (100, None, 13.0)

    at_once = progress_of(task, now=T0)
    assert (at_once["percent"], at_once["ratePerSecond"], at_once["secondsLeft"]) == (0, 0.0, None)
    just_begun = progress_of({**task, "moved": 1}, now=T0)  # the first chunk counted in the same instant
    assert just_begun["ratePerSecond"] == 1000.0 and just_begun["secondsLeft"] == 0
