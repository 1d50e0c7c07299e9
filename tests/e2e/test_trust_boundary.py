"""Issue 19 against real servers: `flask run` (the embedded default, activity.base-url empty, as `make run`) and
`dailyfeed serve`, over HTTP.

(1) A member who sends `Host: 127.0.0.1:<port of a server of theirs>` with an ordinary post made the app send the
record call, with a service token, to that server. Now the call goes to the app's own address: the other server
hears nothing and the activity is recorded; a Host that is not trusted is refused with 400. (3) Random methods,
among them one of 60,000 characters, leave /metrics with the series it had."""

from __future__ import annotations

import http.client
import os
import random
import string
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from dailyfeed.config import load_settings
from dailyfeed.tokens import issue_member_token
from tests.support.apps import free_port
from tests.support.metrics import samples
from tests.support.processes import start_server, stop_group

ROOT = Path(__file__).resolve().parents[2]


class Recorder(BaseHTTPRequestHandler):
    """A server of the attacker's: answers 201 to anything and remembers what it was sent."""

    heard: list[tuple[str, str, str | None]] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.heard.append((self.command, self.path, self.headers.get("Authorization")))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    Recorder.heard = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["flask-run", "dailyfeed-serve"])
def served(request, tmp_path):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("DAILYFEED_")}
    env.update(
        {
            "DAILYFEED_CONFIG": str(ROOT / "config" / "test.toml"),
            "DAILYFEED_MONGO_URI": "mongomock://",
            "DAILYFEED_SERVER_ACTIVITY_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    command = (
        ["flask", "--app", "dailyfeed", "run", "--no-reload"]
        if request.param == "flask-run"
        else ["dailyfeed", "serve"]
    )
    log = tmp_path / "server.log"
    process = start_server(command, port, env=env, cwd=tmp_path, log=log)
    try:
        yield f"http://127.0.0.1:{port}", port, log
    finally:
        stop_group(process, timeout=15)


def _member(member_id: int) -> dict[str, str]:
    secret = load_settings(environ={"DAILYFEED_CONFIG": str(ROOT / "config" / "test.toml")})["auth.jwt-secret"]
    return {"Authorization": f"Bearer {issue_member_token(secret, member_id, 600)}"}


def test_1_the_host_header_does_not_send_the_activity_nor_the_token_elsewhere(served, recorder):
    url, _, log = served
    elsewhere = f"127.0.0.1:{recorder.server_address[1]}"
    for n in range(12):  # as many as opened the breaker before (2)
        response = requests.post(
            f"{url}/api/posts",
            json={"content": f"post {n}"},
            headers={**_member(7), "Host": elsewhere if n % 2 else "127.0.0.1:1"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
    assert Recorder.heard == []
    activities = requests.get(f"{url}/api/members/7/activities?size=100", headers=_member(8), timeout=10).json()
    assert len(activities["data"]["content"]) == 12
    assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
    assert "CircuitOpen" not in log.read_text() and "dead letter" not in log.read_text()


def test_1_an_untrusted_host_is_400_with_the_error_envelope(served, recorder):
    url, _, _ = served
    response = requests.post(
        f"{url}/api/posts",
        json={"content": "x"},
        headers={**_member(7), "Host": f"attacker.example:{recorder.server_address[1]}"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["resultCode"] == "FAIL" and "server.trusted-hosts" in response.json()["message"]
    assert Recorder.heard == []
    assert requests.get(f"{url}/api/posts", timeout=10).json()["data"]["content"] == []


def _http_series(url: str) -> set:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))) for s in samples(text) if s.name.startswith("dailyfeed_http_")}


def test_3_random_methods_leave_the_metrics_series_as_they_were(served):
    url, port, _ = served
    rng = random.Random(19)

    def send(method: str, path: str) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(method, path)
            connection.getresponse().read()
        finally:
            connection.close()

    def flood():
        for _ in range(30):
            method = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(3, 12)))
            send(method, "/api/posts")
            send(method, f"/{rng.randint(1, 10**9)}")
            send("GET", f"/api/posts/{rng.randint(1, 2**63 - 1)}")
        send("M" * 60_000, "/api/posts")

    _http_series(url)
    flood()
    before = _http_series(url)
    flood()
    assert _http_series(url) == before
    assert len(requests.get(f"{url}/metrics", timeout=10).content) < 200_000
