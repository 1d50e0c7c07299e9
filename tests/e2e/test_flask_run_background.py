"""`flask run` starts the Kafka listener and the start-up topic work in the process that serves, once: with the
reloader that is its child, not the watcher that also loads the app; other flask commands start nothing.

Kafka is a closed port here, so each start-up says once that it could not create the date topics: counting that
line counts the processes that started the background work."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
FLASK = Path(sys.executable).with_name("flask")
STARTED = "could not make sure the date topics"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kafka_env() -> dict[str, str]:
    return {**os.environ, "DAILYFEED_CONFIG": str(ROOT / "config" / "test.toml"),
            "DAILYFEED_PUBLISH_TYPE_POST_SERVICE": "kafka", "DAILYFEED_MONGO_URI": "mongomock://",
            "DAILYFEED_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("reload_flag", ["--reload", "--no-reload"])
def test_flask_run_starts_the_background_work_in_the_serving_process_only(tmp_path, reload_flag):
    port = free_port()
    log = tmp_path / "flask.log"
    with open(log, "w") as out:
        process = subprocess.Popen([str(FLASK), "--app", "dailyfeed", "run", reload_flag, "--port", str(port)],
                                   env=kafka_env(), cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/posts", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the group of the server this test started (and its reloader child)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text()
    assert output.count(STARTED) == 1, output
    assert ("Restarting with" in output) is (reload_flag == "--reload")


def test_other_flask_commands_start_no_background_work(tmp_path):
    result = subprocess.run([str(FLASK), "--app", "dailyfeed", "routes"], env=kafka_env(), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "/api/posts" in result.stdout
    assert STARTED not in result.stdout + result.stderr
