"""A console replay while `dailyfeed restore-listener` runs as a real process on the same dead letters, on the real
server: both go through the same claims, so each dead letter is restored by exactly one of them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dailyfeed.extension import get_container
from dailyfeed.store import KAFKA_LISTENER_DEAD_LETTERS, MEMBER_ACTIVITIES
from dailyfeed.tokens import issue_admin_token

from ..support.deadletters import listener_dead_letter, post_event
from ..support.kafka import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.mongo]

COUNT = 60
RESTORED_LINE = re.compile(rf"^restored (.+) \[{KAFKA_LISTENER_DEAD_LETTERS}\]$")


def test_a_console_replay_and_a_restore_listener_process_restore_each_dead_letter_once(server_app, mongo_uri):
    dailyfeed = get_container(server_app)
    keys = set()
    for n in range(COUNT):
        event = post_event(n)
        listener_dead_letter(dailyfeed.dead_letters, event, offset=n)
        keys.add(event.message_key)
    env = {**os.environ, "DAILYFEED_MONGO_URI": mongo_uri, "DAILYFEED_MONGO_DATABASE": dailyfeed.db.name}
    command = [
        str(Path(sys.executable).parent / "dailyfeed"),
        "restore-listener",
        "--batch-size",
        "4",
        "--rate",
        "15",
    ]  # about 4 s of work alone, so the console's replay lands in the middle of it
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        completed = dailyfeed.db[KAFKA_LISTENER_DEAD_LETTERS]
        wait_until(
            lambda: completed.count_documents({"status": "completed"}) >= 4,
            60,
            0.05,
            "the restore-listener process has started restoring",
        )
        secret = dailyfeed.settings["auth.jwt-secret"]
        response = server_app.test_client().post(
            "/api/admin/dead-letters/replay",
            json={"filter": {"collection": "listener"}},
            headers={"Authorization": f"Bearer {issue_admin_token(secret, 600)}"},
        )
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert response.status_code == 200, response.json
    console = response.json["data"]
    assert process.returncode == 0, f"{out}\n{err}"
    lines = out.splitlines()
    by_process = {m.group(1) for m in map(RESTORED_LINE.match, lines) if m}
    by_console = {d["key"] for d in console["details"] if d["outcome"] == "restored"}
    assert lines[-1].startswith(f"restored {len(by_process)}, skipped ") and lines[-1].endswith(", failed 0")
    assert console["failed"] == 0 and console["restored"] == len(by_console)
    assert by_process and by_console, "one of them did everything; the test proved nothing"
    assert not by_process & by_console
    assert by_process | by_console == keys
    assert dailyfeed.db[MEMBER_ACTIVITIES].count_documents({}) == COUNT
    assert completed.count_documents({"status": "completed"}) == COUNT
