"""The Kafka transport without a broker: a producer that cannot start (nothing listens, or a broker that never
answers) is a TransportUnavailable that names the topic, raised within the send timeout, never a hang, and is started
again on the next publish; its loop thread; the settings it is built from. What every transport does with a broker
that is there, dies or freezes is tests/transport."""

from __future__ import annotations

import socket
import threading
from datetime import datetime, timezone

import pytest

from dailyfeed.config import load_settings
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.transport import TransportUnavailable, build_kafka_transport
from dailyfeed.transport.kafka import KafkaTransport
from dailyfeed.transport.topics import DateTopics
from tests.support.apps import free_port

TOPICS = DateTopics(prefix="member-activity-", timezone="UTC")
EVENT = ActivityEvent.new(
    ActivityType.POST_CREATE, 7, post_id=12, at=datetime(2026, 11, 22, 23, 59, 59, tzinfo=timezone.utc)
)


@pytest.fixture
def silent_broker():
    """A port that accepts connections and never answers: a hung broker."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.timeout(20)  # a hang fails here; how long a refusal takes is not asserted
def test_an_unreachable_broker_is_transport_unavailable_naming_the_topic():
    transport = KafkaTransport(f"127.0.0.1:{free_port()}", TOPICS, send_timeout_s=2.0)
    try:
        with pytest.raises(TransportUnavailable) as caught:
            transport.publish(EVENT)
        # and again: a failed start is retried on the next publish, not cached as broken or hung
        with pytest.raises(TransportUnavailable):
            transport.publish(EVENT)
    finally:
        transport.close()
    assert caught.value.topic == "member-activity-20261122"
    assert "member-activity-20261122" in str(caught.value)


@pytest.mark.timeout(20)  # a publish that waited for the silent broker forever would fail here
def test_a_broker_that_never_answers_fails_the_publish_at_the_send_timeout(silent_broker):
    transport = KafkaTransport(silent_broker, TOPICS, send_timeout_s=0.5)
    try:
        with pytest.raises(TransportUnavailable) as caught:
            transport.publish(EVENT)
    finally:
        transport.close()
    assert "within 500 ms" in str(caught.value)  # it gave up at its send timeout
    assert caught.value.topic == "member-activity-20261122"


def test_close_ends_the_loop_thread():
    transport = KafkaTransport(f"127.0.0.1:{free_port()}", TOPICS, send_timeout_s=1.0)
    with pytest.raises(TransportUnavailable):
        transport.publish(EVENT)  # starts the loop thread
    transport.close()
    assert not any(t.name == "dailyfeed-kafka-producer" for t in threading.enumerate())


def test_a_transport_that_never_published_starts_no_thread():
    transport = KafkaTransport(f"127.0.0.1:{free_port()}", TOPICS)
    transport.close()
    assert not any(t.name == "dailyfeed-kafka-producer" for t in threading.enumerate())


def test_the_topic_follows_the_configured_prefix_and_time_zone():
    settings = load_settings(
        {
            "kafka.topic.prefix": "t1-member-activity-",
            "kafka.topic.timezone": "Asia/Seoul",
            "kafka.producer.send-timeout-ms": 1500,
        },
        environ={},
    )
    transport = build_kafka_transport(settings)
    try:
        assert transport.kind == "kafka"
        assert transport.send_timeout_s == 1.5
        assert transport.topics.at(EVENT.created_at) == "t1-member-activity-20261123"  # already Monday in Seoul
    finally:
        transport.close()


def test_the_producer_is_built_with_the_configured_delivery_options(monkeypatch):
    """acks=all, idempotent, and the configured linger reach the Kafka client the transport starts."""
    import aiokafka

    built = []

    class RefusingProducer:
        def __init__(self, **options):
            built.append(options)

        async def start(self):
            raise ConnectionError("no broker in this test")

        async def stop(self):
            pass

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", RefusingProducer)
    settings = load_settings(
        {
            "kafka.bootstrap-servers": "127.0.0.1:1",
            "kafka.producer.linger-ms": 7,
            "kafka.producer.send-timeout-ms": 800,
        },
        environ={},
    )
    transport = build_kafka_transport(settings)
    try:
        with pytest.raises(TransportUnavailable):
            transport.publish(EVENT)
    finally:
        transport.close()
    assert built and built[0]["linger_ms"] == 7
    assert built[0]["acks"] == "all" and built[0]["enable_idempotence"] is True
