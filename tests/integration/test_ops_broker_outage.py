"""The broker dies and comes back, seen from the operating surface: /readyz names the Kafka transport once its
breaker opens while /healthz stays 200, and is 200 again within the breaker's wait after the restart; /metrics
counts the writes kept as dead letters and shows them pending until restore-publisher sends them, each with the
trace id of the request that caused it.

These tests kill a private broker of their own (tests/support/kafka.py: PrivateBroker), never the shared one."""

from __future__ import annotations

import pytest

from dailyfeed.extension import get_container
from dailyfeed.store import KAFKA_PUBLISHER_DEAD_LETTERS
from dailyfeed.transport.topics import DateTopics

from ..support.apps import make_app
from ..support.kafka import KafkaApps, activities, wait_until
from ..support.metrics import value
from ..support.records import read_records
from .test_ops_kafka import traced_post

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.mongo]

PENDING = {"collection": KAFKA_PUBLISHER_DEAD_LETTERS, "status": "pending"}
KAFKA_POSTS = {"service": "post-service", "transport": "kafka"}


@pytest.fixture
def kafka_apps(private_broker, mongo_uri):
    apps = KafkaApps(make_app, private_broker.bootstrap, mongo_uri)
    yield apps
    apps.close()


def traceparent(n: int) -> str:
    return f"00-{n + 1:032x}-{n + 1:016x}-01"


def scrape(app) -> str:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_readyz_names_kafka_once_its_breaker_opens_and_recovers_within_the_breaker_wait(private_broker, kafka_apps):
    open_wait_s = 20.0
    app = kafka_apps.app(**{"circuit.window-size": 2, "circuit.minimum-calls": 2, "circuit.open-wait-s": open_wait_s})
    client = app.test_client()
    wait_until(lambda: client.get("/readyz").status_code == 200, 60, 0.5, "ready with both services up")
    ready = client.get("/readyz").json["components"]
    assert ready["kafka"] == {
        "status": "UP",
        "breaker": "closed",
        "producer": "connected",
        "services": ["post-service", "comment-service"],
    }
    assert ready["store"]["status"] == "UP" and ready["deadLetters"]["status"] == "UP"

    private_broker.kill()
    for n in range(2):  # both time out: the breaker's window is full of failures
        assert traced_post(app, 7, f"down {n}", traceparent(n)).status_code == 201
    transport = get_container(app).transports["post-service"]
    assert transport.breaker.state == "open"

    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    kafka = not_ready.json["components"]["kafka"]
    assert kafka["status"] == "DOWN" and kafka["breaker"] == "open"
    assert not_ready.json["components"]["store"]["status"] == "UP"
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json["components"]["listener"]["status"] == "UP"
    assert value(scrape(app), "dailyfeed_circuit_breaker_state", transport="kafka", state="open") == 1

    private_broker.start()
    wait_until(
        lambda: client.get("/readyz").status_code == 200,
        open_wait_s + 30,
        0.5,
        "ready again once the breaker lets a trial through and the producer reaches the broker",
    )
    assert client.get("/readyz").json["components"]["kafka"]["breaker"] in ("half-open", "closed")


def test_writes_during_an_outage_show_as_dead_letters_until_restore_publisher_sends_them_with_their_trace(
    private_broker, kafka_apps
):
    app = kafka_apps.app(**{"metrics.deadletters-cache-s": 0.0})
    settings = get_container(app).settings
    assert traced_post(app, 7, "before", traceparent(100)).status_code == 201  # the producer is connected
    before = scrape(app)

    private_broker.kill()
    writes = 3
    posts = {}
    for n in range(writes):
        response = traced_post(app, 7, f"during {n}", traceparent(n))
        assert response.status_code == 201
        posts[response.json["data"]["id"]] = traceparent(n)[3:35]

    during = wait_until(
        lambda: (lambda text: text if value(text, "dailyfeed_dead_letters", **PENDING) == writes else None)(
            scrape(app)
        ),
        30,
        0.2,
        "the pending dead letters are counted",
    )
    assert (
        value(during, "dailyfeed_publishes_total", outcome="dead_lettered", **KAFKA_POSTS)
        - value(before, "dailyfeed_publishes_total", outcome="dead_lettered", **KAFKA_POSTS)
    ) == writes
    assert (
        value(during, "dailyfeed_dead_letters_oldest_pending_age_seconds", collection=KAFKA_PUBLISHER_DEAD_LETTERS) >= 0
    )
    letters = list(get_container(app).db[KAFKA_PUBLISHER_DEAD_LETTERS].find())
    by_key = {d["message_key"]: d["traceparent"][3:35] for d in letters}
    assert sorted(by_key.values()) == sorted(posts.values())  # each dead letter keeps its request's trace

    private_broker.start()
    result = app.test_cli_runner().invoke(args=["restore-publisher"])
    assert result.exit_code == 0, result.output
    assert "restored 3, skipped 0, failed 0" in result.output
    after = wait_until(
        lambda: (lambda text: text if value(text, "dailyfeed_dead_letters", **PENDING) == 0 else None)(scrape(app)),
        30,
        0.2,
        "no dead letter pending after the restore",
    )
    assert value(after, "dailyfeed_dead_letters", collection=KAFKA_PUBLISHER_DEAD_LETTERS, status="completed") == 3

    topic = DateTopics.from_settings(settings).upcoming()[0]
    records = read_records(private_broker.bootstrap, topic, expected=1 + writes, timeout_s=60)
    republished = {r["key"]: r["headers"]["traceparent"][3:35] for r in records if r["key"] in by_key}
    assert republished == by_key  # restore-publisher sent each one again with its trace
    stored = wait_until(
        lambda: (lambda found: found if len(found) == writes else None)(
            [d for d in activities(app) if d["post_id"] in posts]
        ),
        90,
        0.3,
        "the listener stores the restored ones",
    )
    assert {d["post_id"]: d["traceparent"][3:35] for d in stored} == posts
