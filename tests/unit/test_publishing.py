"""The publish decision of SPEC section 5 (content/publishing.py): delivered, or kept as a dead letter of the
transport's kind, or neither (PublishFailed, so the caller undoes its change). On both store backends."""

import json
import logging

import mongomock
import pytest
from prometheus_client import REGISTRY

from dailyfeed.content.publishing import ActivityPublisher, PublishFailed
from dailyfeed.deadletters import DeadLetterStore, DeadLetterStoreError
from dailyfeed.events import ActivityEvent, ActivityType, PublishType, Service
from dailyfeed.extension import get_container
from dailyfeed.store import FEIGN_DEAD_LETTERS, KAFKA_PUBLISHER_DEAD_LETTERS
from dailyfeed.telemetry import metrics, tracing
from dailyfeed.transport.base import CircuitOpen, TransportRejected, TransportUnavailable
from dailyfeed.transport.fake import FakeTransport

POST = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=31)
COMMENT = ActivityEvent.new(ActivityType.COMMENT_CREATE, 8, post_id=31, comment_id=58)


@pytest.fixture
def db(store_app):
    return get_container(store_app).db


@pytest.fixture
def transports():
    return {"post-service": FakeTransport("kafka"), "comment-service": FakeTransport("feign")}


@pytest.fixture
def publisher(db, transports):
    return ActivityPublisher(transports, DeadLetterStore(db))


def test_a_delivered_event_goes_through_its_services_transport_and_leaves_no_dead_letter(publisher, transports, db):
    assert publisher.publish_activity("post-service", POST) is True
    assert publisher.publish_activity("comment-service", COMMENT) is True
    assert transports["post-service"].published == [POST] and transports["comment-service"].published == [COMMENT]
    assert db[KAFKA_PUBLISHER_DEAD_LETTERS].count_documents({}) + db[FEIGN_DEAD_LETTERS].count_documents({}) == 0


@pytest.mark.parametrize(
    "service, collection, event",
    [("post-service", KAFKA_PUBLISHER_DEAD_LETTERS, POST), ("comment-service", FEIGN_DEAD_LETTERS, COMMENT)],
)
def test_an_undelivered_event_is_kept_in_its_transports_dead_letters_with_the_topic(
    publisher, transports, db, caplog, service, collection, event
):
    error = CircuitOpen("circuit open (injected)")
    error.topic = "member-activity-20261122"
    transports[service].fail_with(error)
    with caplog.at_level(logging.WARNING):
        assert publisher.publish_activity(service, event) is False
    [letter] = db[collection].find()
    assert (letter["message_key"], letter["topic"], letter["status"]) == (
        event.message_key,
        "member-activity-20261122",
        "pending",
    )
    assert letter["error"] == {"type": "CircuitOpen", "message": "circuit open (injected)"}
    assert json.loads(letter["payload"]) == event.to_json()
    other = FEIGN_DEAD_LETTERS if collection == KAFKA_PUBLISHER_DEAD_LETTERS else KAFKA_PUBLISHER_DEAD_LETTERS
    assert db[other].count_documents({}) == 0
    assert (
        f"publishing {event.message_key} by {transports[service].kind} failed (CircuitOpen: circuit open "
        "(injected)); keeping a dead letter" in caplog.messages
    )


def test_a_rejected_event_is_kept_too(publisher, transports, db):
    transports["post-service"].fail_with(TransportRejected("400 bad request"))
    assert publisher.publish_activity("post-service", POST) is False
    assert db[KAFKA_PUBLISHER_DEAD_LETTERS].find_one()["error"]["type"] == "TransportRejected"


class Unreachable:
    """A dead-letter sink (the one method the publisher may use) that cannot write."""

    def record_publisher_failure(self, kind, event, error, topic=None):
        raise DeadLetterStoreError("dead-letter store unreachable (injected)")


def test_an_event_neither_delivered_nor_kept_raises_publish_failed(db, transports, caplog):
    transports["comment-service"].fail_with()
    with pytest.raises(PublishFailed, match="dead-letter store unreachable") as err:
        ActivityPublisher(transports, Unreachable()).publish_activity("comment-service", COMMENT)
    assert isinstance(err.value.__cause__, DeadLetterStoreError)
    assert (
        f"dead letter for {COMMENT.message_key} could not be stored: dead-letter store unreachable "
        "(injected)" in caplog.messages
    )


# --- what an operator sees of each publish: dailyfeed_publishes_total and dailyfeed_publish_duration_seconds by
# service, transport and outcome, and log records that name the message key, topic and trace ----------------------

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Ticks:
    """A clock that moves on a quarter of a second each time it is read: a publish takes 0.25 s exactly."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


def publish_figures(service: str, transport: str) -> dict[str, float]:
    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    figures = {
        outcome: sample("dailyfeed_publishes_total", service=service, transport=transport, outcome=outcome)
        for outcome in metrics.PUBLISH_OUTCOMES
    }
    figures["timed"] = sample("dailyfeed_publish_duration_seconds_count", transport=transport)
    figures["seconds"] = sample("dailyfeed_publish_duration_seconds_sum", transport=transport)
    return figures


@pytest.fixture
def counted(monkeypatch):
    """Metrics on (another test may have turned them off: the switch is process-wide), and what a publish adds."""
    monkeypatch.setattr(metrics, "_enabled", True)

    def added(service, transport, publish):
        before = publish_figures(service, transport)
        publish()
        after = publish_figures(service, transport)
        return {name: pytest.approx(after[name] - before[name]) for name in before}

    return added


SERVICE_TRANSPORTS = [(Service.POST, PublishType.KAFKA), (Service.COMMENT, PublishType.FEIGN)]


def ticking(transports, dead_letters=None):
    return ActivityPublisher(
        transports, dead_letters or DeadLetterStore(mongomock.MongoClient()["publishing"]), clock=Ticks()
    )


@pytest.mark.parametrize("service, transport", SERVICE_TRANSPORTS)
def test_a_delivery_is_counted_and_timed_under_its_service_and_transport(counted, service, transport):
    publisher = ticking({service: FakeTransport(transport)})
    added = counted(str(service), str(transport), lambda: publisher.publish_activity(service, POST))
    assert added == {"delivered": 1, "dead_lettered": 0, "undone": 0, "timed": 1, "seconds": 0.25}


@pytest.mark.parametrize("service, transport", SERVICE_TRANSPORTS)
def test_a_dead_lettered_publish_is_counted_and_timed_until_it_failed(counted, service, transport):
    failing = FakeTransport(transport)
    failing.fail_with()
    publisher = ticking({service: failing})
    added = counted(str(service), str(transport), lambda: publisher.publish_activity(service, POST))
    assert added == {"delivered": 0, "dead_lettered": 1, "undone": 0, "timed": 1, "seconds": 0.25}


def test_an_undone_publish_is_counted_but_not_timed(counted):
    failing = FakeTransport(PublishType.FEIGN)
    failing.fail_with()
    publisher = ticking({Service.COMMENT: failing}, Unreachable())

    def publish():
        with pytest.raises(PublishFailed):
            publisher.publish_activity(Service.COMMENT, COMMENT)

    added = counted("comment-service", "feign", publish)
    assert added == {"delivered": 0, "dead_lettered": 0, "undone": 1, "timed": 0, "seconds": 0}


def test_both_failure_log_records_name_the_message_key_topic_and_trace_of_the_request(caplog):
    """As fields of the record (what log.format = json prints), also where no logs.TraceIdFilter adds the trace:
    caplog's handler has none."""
    error = TransportUnavailable("broker down (injected)")
    error.topic = "member-activity-20261129"
    failing = FakeTransport(PublishType.KAFKA)
    failing.fail_with(error)
    publisher = ticking({Service.POST: failing}, Unreachable())
    trace = tracing.start_request({"traceparent": TRACEPARENT}, "POST /api/posts")
    try:
        with caplog.at_level(logging.WARNING, logger="dailyfeed.content.publishing"), pytest.raises(PublishFailed):
            publisher.publish_activity(Service.POST, POST)
    finally:
        tracing.end_request(trace)
    records = [r for r in caplog.records if r.name == "dailyfeed.content.publishing"]
    assert [r.levelname for r in records] == ["WARNING", "ERROR"]
    for record in records:
        assert (record.message_key, record.topic, record.trace_id) == (
            POST.message_key,
            "member-activity-20261129",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        )
