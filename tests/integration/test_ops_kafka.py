"""The operating surface on the real broker and FerretDB (shared broker, topics and group of each test's own):
the trace context of a request on its Kafka record's headers and on the activity the listener stores, and the
consumer lag of `dailyfeed listen --metrics-port` from what waits at start to 0 once caught up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.extension import get_container
from dailyfeed.tokens import issue_admin_token
from dailyfeed.transport.topics import DateTopics

from ..support.kafka import activities, produce, wait_until
from ..support.metrics import total, value
from ..support.processes import stop_group
from ..support.records import read_records

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.mongo]

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_the_request_trace_is_on_the_kafka_record_and_on_the_activity_stored(kafka_apps):
    app = kafka_apps.app()
    settings = get_container(app).settings
    response = traced_post(app, 7, "traced", TRACEPARENT)
    assert response.status_code == 201
    post_id = response.json["data"]["id"]

    topic = DateTopics.from_settings(settings).upcoming()[0]
    [record] = read_records(settings["kafka.bootstrap-servers"], topic, expected=1)
    assert record["headers"]["traceparent"][3:35] == TRACE_ID
    assert record["key"].startswith(f"member_activity:kafka_event:POST_CREATE###{post_id}###7###")
    assert b"traceparent" not in record["value"]  # the event JSON is the wire contract, unchanged
    [stored] = wait_until(lambda: activities(app, post_id=post_id), 60, 0.2, "the listener stores the post")
    assert stored["traceparent"][3:35] == TRACE_ID


def traced_post(app, member_id: int, content: str, traceparent: str):
    """POST /api/posts as a member, with a traceparent header."""
    from dailyfeed.tokens import issue_member_token

    token = issue_member_token(get_container(app).settings["auth.jwt-secret"], member_id, 600)
    return app.test_client().post(
        "/api/posts",
        json={"content": content},
        headers={"Authorization": f"Bearer {token}", "traceparent": traceparent},
    )


def scrape(url: str) -> str | None:
    try:
        response = requests.get(url, timeout=10)
    except requests.ConnectionError:
        return None
    assert response.status_code == 200
    return response.text


def test_listen_metrics_port_shows_what_waits_at_start_and_zero_once_caught_up(kafka_apps, tmp_path):
    quiet = kafka_apps.app(run_background=False)  # no listener: the records wait
    settings = get_container(quiet).settings
    topic = DateTopics.from_settings(settings).upcoming()[0]
    events = [ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=500 + n) for n in range(15)]
    produce(
        settings["kafka.bootstrap-servers"],
        [{"topic": topic, "key": e.message_key, "value": e.to_json()} for e in events],
    )
    admin = {"Authorization": f"Bearer {issue_admin_token(settings['auth.jwt-secret'], 600)}"}
    lag = quiet.test_client().get("/api/admin/overview", headers=admin).json["data"]["consumerLag"]
    assert (lag["group"], lag["error"], lag["total"]) == (settings["kafka.consumer.group-id"], None, 15), lag
    assert {p["topic"] for p in lag["partitions"] if p["lag"]} == {topic}  # what the console shows of it

    env = {
        **os.environ,
        "DAILYFEED_CONFIG": str(ROOT / "config" / "test.toml"),
        "PYTHONUNBUFFERED": "1",
        "DAILYFEED_METRICS_LAG_INTERVAL_S": "0.5",
    }
    for key in (
        "mongo.uri",
        "mongo.database",
        "kafka.bootstrap-servers",
        "kafka.topic.prefix",
        "kafka.consumer.group-id",
    ):
        env["DAILYFEED_" + key.upper().replace(".", "_").replace("-", "_")] = str(settings[key])
    log = tmp_path / "listen.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("dailyfeed")), "listen", "--metrics-port", "0"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = wait_until(
            lambda: _metrics_url(log.read_text()) or process.poll() is not None,
            60,
            0.1,
            "listen prints its metrics address",
        )
        assert process.poll() is None, log.read_text()
        first = wait_until(lambda: scrape(url), 30, 0.1, "the metrics port answers")
        assert total(first, "dailyfeed_listener_consumer_lag") == 15, first
        assert value(first, "dailyfeed_listener_consumer_lag", topic=topic, partition="0") is not None

        caught_up = wait_until(
            lambda: (lambda text: text if total(text, "dailyfeed_listener_consumer_lag") == 0 else None)(scrape(url)),
            90,
            0.3,
            "the lag drops to 0",
        )
        assert value(caught_up, "dailyfeed_listener_consumer_lag_read_timestamp_seconds") > 0
        wait_until(
            lambda: value(scrape(url), "dailyfeed_listener_activities_stored_total") == 15,
            30,
            0.2,
            "the listener counts what it stored",
        )
        assert len(activities(quiet)) == 15
    finally:
        stop_group(process)
    assert process.returncode == 0, log.read_text()
    assert "dailyfeed listener stopped" in log.read_text()


def _metrics_url(output: str) -> str | None:
    match = re.search(r"metrics on (http://\S+/metrics)", output)
    return match.group(1) if match else None


def test_a_restore_watch_metrics_port_counts_its_passes(kafka_apps, tmp_path):
    quiet = kafka_apps.app(run_background=False)
    settings = get_container(quiet).settings
    env = {
        **os.environ,
        "DAILYFEED_CONFIG": str(ROOT / "config" / "test.toml"),
        "PYTHONUNBUFFERED": "1",
        "DAILYFEED_MONGO_URI": settings["mongo.uri"],
        "DAILYFEED_MONGO_DATABASE": settings["mongo.database"],
    }
    log = tmp_path / "restore.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dailyfeed")),
                "restore-listener",
                "--watch",
                "0.2",
                "--metrics-port",
                "0",
            ],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = wait_until(
            lambda: _metrics_url(log.read_text()) or process.poll() is not None,
            60,
            0.1,
            "restore prints its metrics address",
        )
        assert process.poll() is None, log.read_text()
        wait_until(
            lambda: (value(scrape(url) or "", "dailyfeed_restore_passes_total", job="listener") or 0) >= 2,
            30,
            0.2,
            "the watch passes are counted",
        )
        text = scrape(url)
        assert value(text, "dailyfeed_restore_dead_letters_total", job="listener", outcome="failed") == 0
        assert value(text, "dailyfeed_dead_letters", collection="kafka_listener_dead_letters", status="pending") == 0
    finally:
        stop_group(process)
    assert process.returncode == 0, log.read_text()
