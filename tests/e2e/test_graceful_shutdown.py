"""SIGTERM to `dailyfeed serve` while requests are in flight (issue 23): /readyz answers 503 at once, every request
taken is answered (none with a 5xx, none cut off), and the process exits within server.shutdown.timeout-s.

The writes are slow on purpose: the feign transport records each activity with a service of the test's own that
takes a second to answer, so the writes are still in the server when the signal comes."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from dailyfeed.config import load_settings
from dailyfeed.tokens import issue_member_token
from tests.support.apps import free_port
from tests.support.kafka import wait_until
from tests.support.processes import start_server, stop_group

ROOT = Path(__file__).resolve().parents[2]
RECORD_TAKES_S = 2.0
DRAIN_S, TIMEOUT_S = 1.5, 20.0


class SlowActivityService(BaseHTTPRequestHandler):
    """Answers every record call as recorded, after RECORD_TAKES_S."""

    recorded: list[str] = []
    started: list[str] = []

    def do_POST(self):
        SlowActivityService.started.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(RECORD_TAKES_S)
        SlowActivityService.recorded.append(self.path)
        body = b'{"status": 201, "result": "SUCCESS", "data": {}}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_activity_service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowActivityService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _readiness_once_signalled(base: str):
    """/readyz as soon as the signal handler has run (a signal is handled a moment after it is sent: on a loaded
    machine a request can still be answered before); the drain keeps the server answering meanwhile."""
    deadline = time.monotonic() + DRAIN_S
    while True:
        readiness = requests.get(f"{base}/readyz", timeout=5)
        if readiness.status_code == 503 or time.monotonic() > deadline:
            return readiness
        time.sleep(0.05)


def test_sigterm_with_writes_in_flight_answers_them_all_turns_unready_first_and_exits_in_time(
    tmp_path, slow_activity_service
):
    port = free_port()
    env = {
        **os.environ,
        "DAILYFEED_CONFIG": str(ROOT / "config" / "test.toml"),
        "DAILYFEED_MONGO_URI": "mongomock://",
        "DAILYFEED_ACTIVITY_BASE_URL": slow_activity_service,
        "DAILYFEED_SERVER_ACTIVITY_PORT": str(free_port()),
        "DAILYFEED_SERVER_SHUTDOWN_DRAIN_S": str(DRAIN_S),
        "DAILYFEED_SERVER_SHUTDOWN_TIMEOUT_S": str(TIMEOUT_S),
        "PYTHONUNBUFFERED": "1",
    }
    token = issue_member_token(load_settings()["auth.jwt-secret"], 7, 600)
    base, log = f"http://127.0.0.1:{port}", tmp_path / "server.log"
    process = start_server(["dailyfeed", "serve", "--threads", "8"], port, env=env, cwd=tmp_path, log=log)
    try:

        def write(n: int) -> int:
            return requests.post(
                f"{base}/api/posts",
                json={"content": f"in flight {n}"},
                timeout=30,
                headers={"Authorization": f"Bearer {token}"},
            ).status_code

        with ThreadPoolExecutor(6) as pool:
            in_flight = [pool.submit(write, n) for n in range(6)]
            wait_until(
                lambda: len(SlowActivityService.started) == 6,
                30,
                0.01,
                "every write taken and waiting for its record call",
            )
            os.killpg(process.pid, signal.SIGTERM)
            signalled = time.monotonic()
            readiness = _readiness_once_signalled(base)
            during_drain = write(99)  # still taken while the load balancer catches up
            statuses = [future.result() for future in in_flight]
        exit_code = process.wait(timeout=TIMEOUT_S + 5)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            stop_group(process, timeout=5)

    output = log.read_text()
    assert readiness.status_code == 503, output
    assert readiness.json()["components"]["process"]["reason"].startswith("shutting down")
    assert statuses == [201] * 6 and during_drain == 201, output
    assert len(SlowActivityService.recorded) == 7  # each write's activity was recorded before it was answered
    assert exit_code == 0, output
    assert DRAIN_S <= took < TIMEOUT_S, output
    assert "dailyfeed stopped" in output
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=2)
