"""The Kafka transport without a broker: a producer that cannot start (nothing listens, or a broker that never
answers) is a TransportUnavailable that names the topic, raised within the send timeout, never a hang, and is started
again on the next publish; its loop thread; the settings it is built from. Then against a stand-in for aiokafka
(FakeKafka): the record each publish sends, the topics it creates, the producer it keeps or replaces after each kind
of broker failure, readiness and close. What every transport does with a broker that is there, dies or freezes is
tests/transport."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from dailyfeed.config import load_settings
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.transport import TransportUnavailable, build_kafka_transport
from dailyfeed.transport.base import CircuitOpen
from dailyfeed.transport.kafka import KafkaTransport
from dailyfeed.transport.kafka import log as kafka_log
from dailyfeed.transport.topics import DateTopics
from tests.support.apps import free_port
from tests.support.kafka import wait_until

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
        transport.publish(EVENT)  # starts the loop thread, named for whoever reads a thread dump
    assert [t.name for t in threading.enumerate()].count("dailyfeed-kafka-producer") == 1
    transport.close()
    assert not any(t.name == "dailyfeed-kafka-producer" for t in threading.enumerate())


def test_a_transport_that_never_published_starts_no_thread():
    transport = KafkaTransport(f"127.0.0.1:{free_port()}", TOPICS)
    transport.close()
    assert not any(t.name == "dailyfeed-kafka-producer" for t in threading.enumerate())


# --- against a stand-in for aiokafka: what is sent, created and closed, and how each broker failure is told ---------


class FakeKafka:
    """aiokafka's producer and admin client stood in for (the transport imports them when it first publishes): the
    records sent, the topics asked for, the clients made and closed, and a broker that fails as a real one does:
    refuses to connect, never acknowledges, fences the producer, refuses to create a topic."""

    def __init__(self):
        self.producers: list[FakeProducer] = []
        self.admins: list[FakeAdmin] = []
        self.records: list[tuple] = []  # (topic, key, value, headers, producer)
        self.created: list[Any] = []  # the NewTopic of every topic asked for
        self.start_errors: list[Exception] = []  # raised by the next producer starts, one each
        self.send_errors: list[Exception] = []  # raised by the next sends, one each
        self.admin_start_errors: list[Exception] = []
        self.topic_error = (0, None)  # the broker's answer to a topic creation: (error code, message)
        self.acknowledges = True  # False: a send is never acknowledged (a frozen partition leader)
        self.stop_answers = True  # False: stopping a producer never finishes (the broker stopped answering)
        self.answers_metadata = True
        self.metadata_error: Exception | None = None
        self.close_error: Exception | None = None


class FakeProducer:
    def __init__(self, kafka: FakeKafka, **config):
        self.kafka, self.config = kafka, config
        self.stopped = False
        self.abandoned = False  # a stop that never finished was given up on
        self.metadata_requests = 0
        self.client = SimpleNamespace(fetch_all_metadata=self._fetch_all_metadata)
        kafka.producers.append(self)

    async def start(self):
        if self.kafka.start_errors:
            raise self.kafka.start_errors.pop(0)

    async def send_and_wait(self, topic, value=None, key=None, headers=None):
        if not self.kafka.acknowledges:
            await asyncio.Event().wait()
        if self.kafka.send_errors:
            raise self.kafka.send_errors.pop(0)
        self.kafka.records.append((topic, key, value, headers, self))

    async def _fetch_all_metadata(self):
        self.metadata_requests += 1
        if not self.kafka.answers_metadata:
            await asyncio.Event().wait()
        if self.kafka.metadata_error is not None:
            raise self.kafka.metadata_error

    async def stop(self):
        self.stopped = True
        if not self.kafka.stop_answers:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.abandoned = True
                raise
        if self.kafka.close_error is not None:
            raise self.kafka.close_error


class FakeAdmin:
    def __init__(self, kafka: FakeKafka, **config):
        self.kafka, self.config = kafka, config
        self.closed = False
        kafka.admins.append(self)

    async def start(self):
        if self.kafka.admin_start_errors:
            raise self.kafka.admin_start_errors.pop(0)

    async def create_topics(self, new_topics):
        self.kafka.created.extend(new_topics)
        code, message = self.kafka.topic_error
        return SimpleNamespace(topic_errors=[(topic.name, code, message) for topic in new_topics])

    async def close(self):
        self.closed = True
        if self.kafka.close_error is not None:
            raise self.kafka.close_error


@pytest.fixture
def kafka(monkeypatch):
    import aiokafka
    import aiokafka.admin

    fake = FakeKafka()
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", lambda **config: FakeProducer(fake, **config))
    monkeypatch.setattr(aiokafka.admin, "AIOKafkaAdminClient", lambda **config: FakeAdmin(fake, **config))
    return fake


DAY_TOPICS = DateTopics(prefix="member-activity-", timezone="UTC", partitions=3, retention_ms=2 * 86_400_000)
TOPIC = "member-activity-20261122"
NEXT_DAY = ActivityEvent.new(
    ActivityType.LIKE_POST, 8, post_id=12, at=datetime(2026, 11, 23, 0, 0, 1, tzinfo=timezone.utc)
)


@pytest.fixture
def transport(kafka):
    made = KafkaTransport("broker-1:9092", DAY_TOPICS, send_timeout_s=0.75)
    yield made
    made.close()


def sent(kafka: FakeKafka) -> list[tuple]:
    return [(topic, key, value, headers) for topic, key, value, headers, _ in kafka.records]


def fenced(name: str) -> Exception:
    """An error of the producer by the name aiokafka gives it (not every aiokafka version has every class)."""
    return type(name, (Exception,), {})(f"{name}: the broker no longer accepts this producer")


def test_an_event_is_sent_to_its_day_topic_keyed_by_its_message_key_with_the_trace_of_its_request(kafka, transport):
    traced = EVENT.with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    transport.publish(traced)
    transport.publish(NEXT_DAY)
    assert sent(kafka) == [
        (
            TOPIC,
            traced.message_key.encode(),
            traced.to_bytes(),
            [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
        ),
        ("member-activity-20261123", NEXT_DAY.message_key.encode(), NEXT_DAY.to_bytes(), None),  # no trace, no header
    ]


def test_the_producer_waits_for_every_in_sync_replica_and_is_idempotent(kafka, transport):
    transport.publish(EVENT)
    [producer] = kafka.producers
    wanted = {
        "bootstrap_servers": "broker-1:9092",
        "client_id": "dailyfeed-producer",  # how the broker's logs and quotas name us
        "acks": "all",
        "enable_idempotence": True,
        "request_timeout_ms": 1000,  # the broker gets at least a second, even when the send timeout is shorter
        "retry_backoff_ms": 100,
    }
    assert {key: producer.config.get(key) for key in wanted} == wanted  # other options have tests of their own
    slow = KafkaTransport("broker-1:9092", DAY_TOPICS, send_timeout_s=2.5)
    try:
        slow.publish(EVENT)
    finally:
        slow.close()
    # a request to the broker, and to its admin API, may take the whole send timeout
    assert kafka.producers[-1].config["request_timeout_ms"] == kafka.admins[-1].config["request_timeout_ms"] == 2500


def test_one_producer_carries_every_publish_and_each_day_topic_is_created_once_before_its_first_record(
    kafka, transport, caplog
):
    caplog.set_level(logging.INFO, logger="dailyfeed.transport.kafka")
    for _ in range(3):
        transport.publish(EVENT)
    transport.publish(NEXT_DAY)
    assert len(kafka.producers) == 1 and len(kafka.admins) == 1
    assert [(t.name, t.num_partitions, t.replication_factor, t.topic_configs) for t in kafka.created] == [
        (TOPIC, 3, 1, {"retention.ms": "172800000"}),
        ("member-activity-20261123", 3, 1, {"retention.ms": "172800000"}),
    ]
    assert kafka.admins[0].config == {
        "bootstrap_servers": "broker-1:9092",
        "client_id": "dailyfeed-producer-admin",
        "request_timeout_ms": 1000,
    }
    assert [t for t, *_ in kafka.records] == [TOPIC, TOPIC, TOPIC, "member-activity-20261123"]
    messages = [r.getMessage() for r in caplog.records if r.name == "dailyfeed.transport.kafka"]
    assert messages == [
        "Kafka producer connected to broker-1:9092",
        f"created date topic {TOPIC}",
        "created date topic member-activity-20261123",
    ]


def test_a_topic_that_exists_is_not_reported_created(kafka, transport, caplog):
    kafka.topic_error = (36, "Topic 'member-activity-20261122' already exists.")  # TOPIC_ALREADY_EXISTS
    caplog.set_level(logging.INFO, logger="dailyfeed.transport.kafka")
    transport.publish(EVENT)
    assert [t for t, *_ in kafka.records] == [TOPIC]
    assert "created date topic" not in caplog.text


def test_a_broker_that_refuses_to_create_the_topic_still_gets_the_record_and_is_not_asked_again(
    kafka, transport, caplog
):
    kafka.topic_error = (29, "Authorization failed.")  # TOPIC_AUTHORIZATION_FAILED: the topic may well exist
    transport.publish(EVENT)
    transport.publish(EVENT)
    assert [t for t, *_ in kafka.records] == [TOPIC, TOPIC]
    assert len(kafka.created) == 1
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        f"could not create topic {TOPIC} (could not create {TOPIC}: TopicAuthorizationFailedError "
        "(Authorization failed.)); sending to it anyway"
    )


def test_a_transport_told_not_to_create_topics_never_asks_for_an_admin_client(kafka):
    transport = KafkaTransport("broker-1:9092", DAY_TOPICS, send_timeout_s=0.5, create_topics=False)
    try:
        transport.publish(EVENT)
    finally:
        transport.close()
    assert [t for t, *_ in kafka.records] == [TOPIC]
    assert kafka.admins == [] and kafka.created == []


def test_an_admin_client_that_cannot_connect_fails_the_publish_and_is_made_again_on_the_next(kafka, transport):
    from aiokafka.errors import KafkaConnectionError

    kafka.admin_start_errors.append(KafkaConnectionError("Unable to bootstrap from [('broker-1', 9092)]"))
    with pytest.raises(TransportUnavailable) as caught:
        transport.publish(EVENT)
    assert caught.value.topic == TOPIC
    assert "Unable to bootstrap" in str(caught.value)
    assert kafka.records == [] and kafka.admins[0].closed  # nothing sent; its connections closed
    transport.publish(EVENT)
    assert len(kafka.admins) == 2 and [t for t, *_ in kafka.records] == [TOPIC]


def test_a_producer_that_cannot_connect_is_unavailable_naming_key_topic_and_broker_and_is_made_again(kafka, transport):
    from aiokafka.errors import KafkaConnectionError

    kafka.start_errors.append(KafkaConnectionError("Unable to bootstrap from [('broker-1', 9092)]"))
    with pytest.raises(TransportUnavailable) as caught:
        transport.publish(EVENT)
    assert str(caught.value) == (
        f"publishing {EVENT.message_key} to {TOPIC} on Kafka at broker-1:9092 failed: "
        "KafkaConnectionError: Unable to bootstrap from [('broker-1', 9092)]"
    )
    assert caught.value.topic == TOPIC
    assert kafka.producers[0].stopped  # the half-started client let go of its connections
    transport.publish(EVENT)
    assert len(kafka.producers) == 2 and kafka.records[0][4] is kafka.producers[1]


@pytest.mark.parametrize(
    "error",
    [
        "ProducerFenced",
        "OutOfOrderSequenceNumber",
        "UnknownProducerIdError",
        "InvalidProducerEpoch",
        "IllegalStateError",
    ],
)
def test_a_producer_failed_for_good_is_replaced_for_the_next_publish(kafka, transport, caplog, error):
    transport.publish(EVENT)
    kafka.send_errors.append(fenced(error))
    with pytest.raises(TransportUnavailable) as caught:
        transport.publish(EVENT)
    assert caught.value.topic == TOPIC and error in str(caught.value)
    transport.publish(EVENT)
    first, second = kafka.producers
    assert [producer for *_, producer in kafka.records] == [first, second]
    assert first.stopped and not second.stopped
    told = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert told == [("WARNING", f"Kafka producer failed for good ({error}); a new one is used for the next publish")]


def test_a_replaced_producer_that_never_finishes_stopping_is_given_up_on(kafka, transport):
    kafka.stop_answers = False
    kafka.send_errors.append(fenced("ProducerFenced"))
    with pytest.raises(TransportUnavailable):
        transport.publish(EVENT)
    transport.publish(EVENT)  # the new producer does not wait for the old one
    # bounded by the send timeout, not held (with its connections) until the transport closes
    wait_until(lambda: kafka.producers[0].abandoned, timeout=10, what="the old producer's stop given up on")


def test_a_producer_that_failed_for_a_while_is_kept(kafka, transport, caplog):
    from aiokafka.errors import NotLeaderForPartitionError

    kafka.send_errors.append(NotLeaderForPartitionError())  # a leader election: the same producer retries well
    with pytest.raises(TransportUnavailable):
        transport.publish(EVENT)
    transport.publish(EVENT)
    [producer] = kafka.producers
    assert not producer.stopped and [p for *_, p in kafka.records] == [producer]
    assert "failed for good" not in caplog.text


def test_a_send_never_acknowledged_is_unavailable_at_the_send_timeout_and_the_producer_is_kept(kafka, transport):
    kafka.acknowledges = False
    with pytest.raises(TransportUnavailable) as caught:
        transport.publish(EVENT)
    assert str(caught.value) == (
        f"Kafka at broker-1:9092 did not acknowledge {EVENT.message_key} on {TOPIC} within 750 ms"
    )
    assert caught.value.topic == TOPIC
    kafka.acknowledges = True
    transport.publish(EVENT)  # an idempotent producer delivers what it holds once the broker is back
    assert len(kafka.producers) == 1 and [t for t, *_ in kafka.records] == [TOPIC]


def test_the_circuit_opens_after_the_configured_failures_and_then_does_not_ask_the_broker(kafka):
    from aiokafka.errors import KafkaConnectionError

    settings = load_settings(
        {
            "circuit.window-size": 2,
            "circuit.minimum-calls": 2,
            "kafka.producer.send-timeout-ms": 500,
            "kafka.bootstrap-servers": "broker-2:9092",
        },
        environ={},
    )
    transport = KafkaTransport.from_settings(settings)
    kafka.start_errors.extend(KafkaConnectionError("Unable to bootstrap") for _ in range(2))
    try:
        for _ in range(2):
            with pytest.raises(TransportUnavailable):
                transport.publish(EVENT)
        with pytest.raises(CircuitOpen) as caught:
            transport.publish(EVENT)
    finally:
        transport.close()
    assert [p.config["bootstrap_servers"] for p in kafka.producers] == ["broker-2:9092"] * 2  # the third did not try
    assert caught.value.topic == "member-activity-20261122"


def test_readiness_starts_the_producer_and_asks_the_broker_for_metadata(kafka, transport):
    transport.check_connected(1.0)
    [producer] = kafka.producers
    assert producer.metadata_requests == 1
    transport.publish(EVENT)
    assert len(kafka.producers) == 1  # the producer readiness started is the one that publishes


def test_readiness_tells_a_broker_that_does_not_answer_or_fails_and_a_closed_transport(kafka, transport):
    from aiokafka.errors import KafkaConnectionError

    kafka.answers_metadata = False
    with pytest.raises(TransportUnavailable) as silent:
        transport.check_connected(0.3)
    assert str(silent.value) == "Kafka at broker-1:9092 did not answer within 0.3 s"
    kafka.answers_metadata, kafka.metadata_error = True, KafkaConnectionError("Connection at broker-1:9092 closed")
    with pytest.raises(TransportUnavailable) as failing:
        transport.check_connected(1.0)
    assert str(failing.value) == "Kafka at broker-1:9092: KafkaConnectionError: Connection at broker-1:9092 closed"
    transport.close()
    with pytest.raises(TransportUnavailable) as closed:
        transport.check_connected(1.0)
    assert str(closed.value) == "the Kafka transport is closed"
    assert silent.value.topic is failing.value.topic is closed.value.topic is None  # no event, no topic


def test_close_flushes_the_producer_and_closes_the_admin_client_even_when_the_broker_is_gone(kafka, transport, caplog):
    from aiokafka.errors import KafkaConnectionError

    transport.publish(EVENT)
    kafka.close_error = KafkaConnectionError("Connection at broker-1:9092 closed")
    caplog.set_level(logging.DEBUG, logger="dailyfeed.transport.kafka")
    transport.close()
    assert kafka.producers[0].stopped and kafka.admins[0].closed
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and r.name == kafka_log.name] == [
        "ignored while closing a Kafka client: KafkaConnectionError: KafkaConnectionError: "
        "Connection at broker-1:9092 closed"
    ]
    with pytest.raises(TransportUnavailable) as caught:
        transport.publish(EVENT)
    assert str(caught.value) == "the Kafka transport is closed" and caught.value.topic == TOPIC


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
