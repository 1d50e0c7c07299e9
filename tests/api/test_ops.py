"""The operating surface on the app (dailyfeed.ops), on both store backends where the store is involved:
/healthz, /readyz and /metrics answer what an operator needs, and the W3C trace context of a request travels
through the feign call into the stored activity, into its dead letter, and out again with a restore."""

from __future__ import annotations

import pytest

from dailyfeed.activity.listener import ActivityListener
from dailyfeed.delivery import ConsumerOptions
from dailyfeed.extension import get_container
from dailyfeed.ops.sources import DeadLetterStatsCache
from dailyfeed.ops.state import state_of
from dailyfeed.store import FEIGN_DEAD_LETTERS, MEMBER_ACTIVITIES
from dailyfeed.telemetry import metrics
from tests.support.kafka import wait_until
from tests.support.metrics import total, value
from tests.support.wsgi import WsgiAdapter

CLOSED_PORT_URL = "http://127.0.0.1:9"  # connection refused
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
PENDING_FEIGN = {"collection": FEIGN_DEAD_LETTERS, "status": "pending"}


@pytest.fixture
def store_apps(store_uri, apps):
    """Apps on the backend under test, each on a database of its own (closed by the apps fixture)."""
    return lambda **overrides: apps.make({"mongo.uri": store_uri, **overrides})


def member(app, member_id):
    from dailyfeed.tokens import issue_member_token

    secret = get_container(app).settings["auth.jwt-secret"]
    return {"Authorization": f"Bearer {issue_member_token(secret, member_id, 600)}"}


def scrape(app) -> str:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_probes_and_metrics_answer_on_the_embedded_default(app, client):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json == {"status": "UP", "components": {"process": {"status": "UP"}}}

    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    components = ready.json["components"]
    assert {name: c["status"] for name, c in components.items()} == {"store": "UP", "deadLetters": "UP", "feign": "UP"}
    assert components["feign"]["breaker"] == "closed"
    assert components["feign"]["services"] == ["post-service", "comment-service"]

    text = scrape(app)
    assert value(text, "dailyfeed_circuit_breaker_state", transport="feign", state="closed") == 1
    assert value(text, "dailyfeed_circuit_breaker_state", transport="feign", state="open") == 0
    assert value(text, "dailyfeed_dead_letters", **PENDING_FEIGN) == 0
    assert value(text, "dailyfeed_http_requests_total", route="/readyz", method="GET", status="200") >= 1
    assert (
        value(text, "dailyfeed_publishes_total", service="post-service", transport="feign", outcome="undone")
        is not None
    )  # declared at 0 before anything happened
    assert "dailyfeed_listener_consumer_lag" not in text  # no Kafka in use: no lag to show


def test_readyz_is_503_naming_the_transport_whose_breaker_is_open_while_healthz_stays_200(store_apps):
    app = store_apps(
        **{
            "activity.base-url": CLOSED_PORT_URL,
            "circuit.window-size": 2,
            "circuit.minimum-calls": 2,
            "circuit.open-wait-s": 600.0,
        }
    )
    client = app.test_client()
    for n in range(2):
        assert client.post("/api/posts", json={"content": f"{n}"}, headers=member(app, 7)).status_code == 201

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["status"] == "DOWN"
    feign = ready.json["components"]["feign"]
    assert feign["status"] == "DOWN" and feign["breaker"] == "open" and "breaker open" in feign["reason"]
    assert ready.json["components"]["store"]["status"] == "UP"  # only the transport is named
    assert client.get("/healthz").status_code == 200
    assert value(scrape(app), "dailyfeed_circuit_breaker_state", transport="feign", state="open") == 1


class DownDatabase:
    """A store that does not answer (pymongo's error for a server it cannot select)."""

    def command(self, *args, **kwargs):
        from pymongo.errors import ServerSelectionTimeoutError

        raise ServerSelectionTimeoutError("no server (injected)")

    def __getitem__(self, name):
        return self

    def __getattr__(self, name):
        return self.command


def test_readyz_is_503_when_the_store_does_not_answer_and_metrics_still_scrape(app, client, monkeypatch):
    dailyfeed = get_container(app)
    monkeypatch.setattr(dailyfeed, "db", DownDatabase())
    monkeypatch.setattr(dailyfeed.dead_letters, "db", DownDatabase())
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["components"]["store"]["status"] == "DOWN"
    assert "no server (injected)" in ready.json["components"]["store"]["error"]
    assert ready.json["components"]["deadLetters"]["status"] == "DOWN"
    assert client.get("/healthz").status_code == 200  # liveness never asks the store

    errors = value(scrape(app), "dailyfeed_metrics_source_errors_total", source="dead_letters")
    text = scrape(app)  # (a scrape shows the counters as they were when it began)
    assert value(text, "dailyfeed_dead_letters", **PENDING_FEIGN) is None  # unknown, not 0
    assert value(text, "dailyfeed_metrics_source_errors_total", source="dead_letters") > errors


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_healthz_is_503_when_the_in_app_listener_died(app, client):
    def broken_consumer():
        raise RuntimeError("consumer cannot be built (injected)")

    dailyfeed = get_container(app)
    listener = ActivityListener(
        dailyfeed.activity_service,
        dailyfeed.dead_letters,
        consumer_factory=broken_consumer,
        options=ConsumerOptions(bootstrap_servers="unused", group_id="g", pattern="^never$"),
    )
    listener.start()
    dailyfeed.background.append(listener)
    wait_until(lambda: not listener.running, 10, 0.05, "the listener thread ends")

    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json["components"]["listener"] == {
        "status": "DOWN",
        "reason": "the listener thread ended unexpectedly (see the log)",
    }


def test_metrics_count_dead_lettered_publishes_and_restores_and_the_trace_travels(store_apps, store_uri):
    app = store_apps(**{"activity.base-url": CLOSED_PORT_URL, "metrics.deadletters-cache-s": 0.0})
    client = app.test_client()
    before = scrape(app)
    ids = []
    for n in range(3):
        response = client.post(
            "/api/posts", json={"content": f"{n}"}, headers={**member(app, 7), "traceparent": TRACEPARENT}
        )
        assert response.status_code == 201
        ids.append(response.json["data"]["id"])

    during = scrape(app)
    labels = {"service": "post-service", "transport": "feign"}
    assert (
        value(during, "dailyfeed_publishes_total", outcome="dead_lettered", **labels)
        - value(before, "dailyfeed_publishes_total", outcome="dead_lettered", **labels)
    ) == 3
    assert value(during, "dailyfeed_publishes_total", outcome="delivered", **labels) == value(
        before, "dailyfeed_publishes_total", outcome="delivered", **labels
    )
    assert value(during, "dailyfeed_dead_letters", **PENDING_FEIGN) == 3
    assert value(during, "dailyfeed_dead_letters_oldest_pending_age_seconds", collection=FEIGN_DEAD_LETTERS) >= 0
    assert value(during, "dailyfeed_http_requests_total", route="/api/posts", method="POST", status="201") >= 3
    db = get_container(app).db
    assert {d["traceparent"][3:35] for d in db[FEIGN_DEAD_LETTERS].find()} == {TRACE_ID}

    # the activity service is back: restore-publisher republishes, and the record call carries the trace
    get_container(app).transports["post-service"].session.mount(CLOSED_PORT_URL, WsgiAdapter(app))
    result = app.test_cli_runner().invoke(args=["restore-publisher"])
    assert result.exit_code == 0, result.output
    state_of(app).dead_letters.expire()  # read again now, however long the last read took (its spacing)
    after = scrape(app)
    assert value(after, "dailyfeed_dead_letters", **PENDING_FEIGN) == 0
    assert value(after, "dailyfeed_dead_letters", collection=FEIGN_DEAD_LETTERS, status="completed") == 3
    assert value(after, "dailyfeed_dead_letters_oldest_pending_age_seconds", collection=FEIGN_DEAD_LETTERS) == 0
    assert (
        total(after, "dailyfeed_restore_dead_letters_total", job="publisher", outcome="restored")
        - (total(during, "dailyfeed_restore_dead_letters_total", job="publisher", outcome="restored") or 0)
    ) == 3
    stored = {d["post_id"]: d.get("traceparent") for d in db[MEMBER_ACTIVITIES].find()}
    assert set(stored) == set(ids)
    assert {traceparent[3:35] for traceparent in stored.values()} == {TRACE_ID}


def test_a_delivered_feign_call_carries_the_trace_into_the_stored_activity(store_app):
    client = store_app.test_client()
    response = client.post(
        "/api/posts", json={"content": "traced"}, headers={**member(store_app, 7), "traceparent": TRACEPARENT}
    )
    assert response.status_code == 201
    untraced = client.post("/api/posts", json={"content": "untraced"}, headers=member(store_app, 7))
    db = get_container(store_app).db
    [traced] = db[MEMBER_ACTIVITIES].find({"post_id": response.json["data"]["id"]})
    [started] = db[MEMBER_ACTIVITIES].find({"post_id": untraced.json["data"]["id"]})
    assert traced["traceparent"][3:35] == TRACE_ID
    assert started["traceparent"][3:35] not in (TRACE_ID, "0" * 32)  # a trace started at the request


def test_dead_letter_stats_are_read_once_per_cache_period_however_many_scrapes():
    reads = []
    now = [100.0]
    cache = DeadLetterStatsCache(lambda: reads.append(now[0]) or f"stats {len(reads)}", ttl_s=5.0, clock=lambda: now[0])
    assert [cache.get() for _ in range(3)] == ["stats 1"] * 3
    now[0] += 5.0
    assert cache.get() == "stats 2" and reads == [100.0, 105.0]


def test_a_slow_dead_letter_read_spaces_the_next_one_out():
    now = [0.0]

    def slow_read():  # takes 10 s of the clock
        now[0] += 10.0
        return f"stats at {now[0]:.0f}"

    cache = DeadLetterStatsCache(slow_read, ttl_s=5.0, clock=lambda: now[0])
    assert cache.get() == "stats at 10"
    now[0] += 60.0  # past the TTL, but within 9 times the read's duration
    assert cache.get() == "stats at 10"
    now[0] += 30.0
    assert cache.get() == "stats at 110"


def test_metrics_can_be_turned_off(store_apps):
    try:
        app = store_apps(**{"metrics.enabled": False})
        assert app.test_client().get("/metrics").status_code == 404
        assert metrics.enabled() is False
    finally:
        metrics.set_enabled(True)


def test_metrics_port_needs_watch(app, runner):
    result = runner.invoke(args=["restore-publisher", "--metrics-port", "0"])
    assert result.exit_code == 2
    assert "--metrics-port needs --watch" in result.output


def test_dead_letter_stats_count_each_status_and_find_the_oldest_pending(store_app):
    from dailyfeed.events import ActivityEvent, ActivityType, as_utc
    from dailyfeed.ops.sources import read_dead_letter_stats
    from dailyfeed.store import DEAD_LETTER_COLLECTIONS, KAFKA_LISTENER_DEAD_LETTERS
    from dailyfeed.transport.base import TransportUnavailable

    dailyfeed = get_container(store_app)
    store = dailyfeed.dead_letters
    events = [ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=n) for n in range(1, 4)]
    for event in events:
        store.record_publisher_failure("feign", event, TransportUnavailable("down"))
    store.record_listener_failure(
        origin={"topic": "t", "partition": 0, "offset": 5, "key": None, "value": b"{"}, error=ValueError("poison")
    )
    first = dailyfeed.db[FEIGN_DEAD_LETTERS].find_one({"message_key": events[0].message_key})
    token = "test-claim"
    claimed = store.claim(FEIGN_DEAD_LETTERS, first["_id"], token)
    assert claimed is not None
    store.complete_batch(FEIGN_DEAD_LETTERS, [claimed], token)  # the oldest is restored: no longer pending

    stats = read_dead_letter_stats(dailyfeed.db, DEAD_LETTER_COLLECTIONS)
    assert stats.total(FEIGN_DEAD_LETTERS, "pending") == 2 and stats.total(FEIGN_DEAD_LETTERS, "completed") == 1
    assert stats.total(KAFKA_LISTENER_DEAD_LETTERS, "pending") == 1
    assert stats.oldest_pending[FEIGN_DEAD_LETTERS] == min(
        as_utc(d["created_at"]) for d in dailyfeed.db[FEIGN_DEAD_LETTERS].find({"status": "pending"})
    )
    assert stats.oldest_pending["kafka_publisher_dead_letters"] is None


def test_a_metrics_port_that_is_taken_is_a_clear_error(app, runner):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(args=["restore-listener", "--watch", "1", "--metrics-port", str(port)])
    assert result.exit_code == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.output
