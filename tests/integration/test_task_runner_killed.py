"""A process running a task is killed (SIGKILL) mid-task, on FerretDB: the task stays running with a lease that runs
out, another process takes the lease and finishes it, and every dead letter is recorded exactly once (the dead
letters' claims, not the task's counts, are what keeps one from being moved twice)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dailyfeed.extension import get_container
from dailyfeed.restore.tasks import TaskRunner, task_store
from dailyfeed.store import DEAD_LETTER_TASKS, KAFKA_LISTENER_DEAD_LETTERS, MEMBER_ACTIVITIES

from ..support.deadletters import listener_dead_letter, post_event
from ..support.kafka import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.mongo]

LETTERS = 10
LEASE_S = 2  # the task's lease and the dead letters' claims run out this soon after their holder dies
CHUNK = 2  # --rate 2: two dead letters a chunk


def test_a_task_whose_runner_was_killed_is_resumed_by_another_process_and_moves_each_dead_letter_once(
    mongo_uri, apps, tmp_path
):
    database = f"killed_{uuid.uuid4().hex[:10]}"
    app = apps.make(
        {"mongo.uri": mongo_uri, "mongo.database": database, "deadletters.lease-s": LEASE_S, "tasks.lease-s": LEASE_S}
    )
    container = get_container(app)
    for n in range(LETTERS):
        listener_dead_letter(container.dead_letters, post_event(n), offset=n)
    env = {
        **os.environ,
        "DAILYFEED_MONGO_URI": mongo_uri,
        "DAILYFEED_MONGO_DATABASE": database,
        "DAILYFEED_DEADLETTERS_LEASE_S": str(LEASE_S),
        "DAILYFEED_TASKS_LEASE_S": str(LEASE_S),
    }
    with open(tmp_path / "cli.log", "w") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dailyfeed")),
                "tasks",
                "start",
                "replay",
                "--collection",
                "listener",
                "--rate",
                str(CHUNK),
                "--yes",
                "--as",
                "carol",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: (task := container.db[DEAD_LETTER_TASKS].find_one()) and task["moved"] >= 2,
            60,
            0.1,
            "the CLI runs the task",
        )
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    [task] = container.db[DEAD_LETTER_TASKS].find()
    assert task["state"] == "running" and task["lease_owner"].startswith("cli:")  # it died holding the task
    assert task["moved"] < LETTERS, (tmp_path / "cli.log").read_text()

    store = task_store(container)
    wait_until(lambda: store.runnable(), 30, 0.2, "the dead runner's lease runs out")
    assert TaskRunner(container, store, owner="serving-2").run_pending() == 1
    done = store.get(task["_id"])
    assert (done["state"], done["lease_owner"]) == ("completed", "serving-2")
    # progress is written after each chunk: the chunk the killed runner was in may have moved without being counted
    assert LETTERS - CHUNK <= done["moved"] <= LETTERS
    recorded = sorted(d["message_key"] for d in container.db[MEMBER_ACTIVITIES].find())
    assert recorded == sorted(post_event(n).message_key for n in range(LETTERS))  # each once
    assert {d["status"] for d in container.db[KAFKA_LISTENER_DEAD_LETTERS].find()} == {"completed"}
