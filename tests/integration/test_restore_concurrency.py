"""Two restores at once on the real server (SPEC section 8: "safe to run twice at once"): two threads running the
restore job, and two `dailyfeed restore-listener` processes started together. Each dead letter is restored by
exactly one of them. (On FerretDB v1 a conditional findAndModify alone would let both take some of them.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from dailyfeed.extension import get_container
from dailyfeed.restore.jobs import ListenerRestore, RestoreOptions
from dailyfeed.store import DEAD_LETTER_CLAIMS, KAFKA_LISTENER_DEAD_LETTERS, MEMBER_ACTIVITIES

from ..support.deadletters import listener_dead_letter, post_event

pytestmark = [pytest.mark.integration, pytest.mark.mongo]

RESTORED_LINE = re.compile(rf"^restored (.+) \[{KAFKA_LISTENER_DEAD_LETTERS}\]$")


def test_two_restore_jobs_in_threads_record_each_dead_letter_once(server_app):
    dailyfeed = get_container(server_app)
    for n in range(60):
        listener_dead_letter(dailyfeed.dead_letters, post_event(n), offset=n)
    recorded: list[str] = []
    lock = threading.Lock()

    class CountingActivities:
        def record_activities(self, events):
            with lock:
                recorded.extend(e.message_key for e in events)
            return dailyfeed.activity_service.record_activities(events)

    start = threading.Barrier(2)
    summaries = []

    def restore():
        job = ListenerRestore(dailyfeed.dead_letters, CountingActivities(), RestoreOptions(batch_size=4))
        start.wait()
        summaries.append(job.run())

    threads = [threading.Thread(target=restore) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(Counter(recorded).values()) == [1] * 60
    assert sorted(s.restored for s in summaries) != [0, 60], "the two did not overlap; the test proved nothing"
    assert sum(s.restored for s in summaries) == 60 and sum(s.failed for s in summaries) == 0
    assert dailyfeed.db[MEMBER_ACTIVITIES].count_documents({}) == 60
    assert dailyfeed.db[KAFKA_LISTENER_DEAD_LETTERS].count_documents({"status": "completed"}) == 60
    # one claim per dead letter, the first: a claim refused by the other restore is not stored
    assert dailyfeed.db[DEAD_LETTER_CLAIMS].count_documents({"generation": 1}) == 60
    assert dailyfeed.db[DEAD_LETTER_CLAIMS].count_documents({}) == 60


def test_two_restore_listener_processes_started_together_restore_each_dead_letter_once(server_app, mongo_uri):
    dailyfeed = get_container(server_app)
    keys = set()
    for n in range(120):
        event = post_event(n)
        listener_dead_letter(dailyfeed.dead_letters, event, offset=n)
        keys.add(event.message_key)
    env = {**os.environ, "DAILYFEED_MONGO_URI": mongo_uri, "DAILYFEED_MONGO_DATABASE": dailyfeed.db.name}
    command = [
        str(Path(sys.executable).parent / "dailyfeed"),
        "restore-listener",
        "--batch-size",
        "5",
        "--rate",
        "60",
    ]  # about 2 s of work each, so the two overlap

    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]

    restored_by = []
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, f"{out}\n{err}"
        lines = out.splitlines()
        restored = [m.group(1) for m in map(RESTORED_LINE.match, lines) if m]
        assert lines[-1].startswith(f"restored {len(restored)}, skipped ") and lines[-1].endswith(", failed 0")
        restored_by.append(set(restored))
    first, second = restored_by
    assert first and second, "one process did everything; the test proved nothing"
    assert not first & second
    assert first | second == keys
    assert dailyfeed.db[MEMBER_ACTIVITIES].count_documents({}) == 120
    assert dailyfeed.db[KAFKA_LISTENER_DEAD_LETTERS].count_documents({"status": "completed"}) == 120
    assert dailyfeed.db[KAFKA_LISTENER_DEAD_LETTERS].count_documents({"is_editing": True}) == 0
    assert dailyfeed.db[DEAD_LETTER_CLAIMS].count_documents({"generation": 1}) == 120
    assert dailyfeed.db[DEAD_LETTER_CLAIMS].count_documents({}) == 120
