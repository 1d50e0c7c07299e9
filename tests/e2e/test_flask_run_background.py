"""`flask run` and `dailyfeed serve` start the Kafka listener and the start-up topic work in the process that
serves, once: under the reloader that is its child, not the watcher that also loads the app; other commands start
nothing.

Kafka is a closed port here, so each start-up says once that it could not create the date topics: counting that
line counts the processes that started the background work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.apps import free_port
from tests.support.processes import start_server, stop_group

ROOT = Path(__file__).resolve().parents[2]
STARTED = "could not make sure the date topics"


def kafka_env() -> dict[str, str]:
    return {
        **os.environ,
        "DAILYFEED_CONFIG": str(ROOT / "config" / "test.toml"),
        "DAILYFEED_PUBLISH_TYPE_POST_SERVICE": "kafka",
        "DAILYFEED_MONGO_URI": "mongomock://",
        "DAILYFEED_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.mark.parametrize(
    "command",
    [
        ["flask", "--app", "dailyfeed", "run", "--reload"],
        ["flask", "--app", "dailyfeed", "run", "--no-reload"],
        ["dailyfeed", "serve"],
    ],
    ids=["flask-run-reload", "flask-run-no-reload", "dailyfeed-serve"],
)
def test_a_server_starts_the_background_work_once_in_the_serving_process(tmp_path, command):
    port = free_port()
    log = tmp_path / "server.log"
    env = {**kafka_env(), "DAILYFEED_SERVER_ACTIVITY_PORT": str(free_port())}
    process = start_server(command, port, env=env, cwd=tmp_path, log=log)
    stop_group(process, timeout=15)
    output = log.read_text()
    assert output.count(STARTED) == 1, output
    assert ("Restarting with" in output) is ("--reload" in command)


def test_other_flask_commands_start_no_background_work(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).with_name("flask")), "--app", "dailyfeed", "routes"],
        env=kafka_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "/api/posts" in result.stdout
    assert STARTED not in result.stdout + result.stderr
