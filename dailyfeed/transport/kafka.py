"""The Kafka transport: publish an activity event to its date topic and wait for the broker's acknowledgement.

Unlike the original's fire-and-forget send, `publish` returns only once the broker acknowledged the record
(`acks=all`, idempotent producer; sends of concurrent requests share a produce request for up to
`kafka.producer.linger-ms`) and raises TransportUnavailable, with the topic, when it did not within
`kafka.producer.send-timeout-ms` — so a broker failure reaches the publisher dead letters. Record key = the
message key, value = the event JSON, topic = the day of the action, header `traceparent` = the W3C trace context
of the request that caused it (when known).

One aiokafka producer per transport, on one event-loop thread (LoopThread), started on the first publish and
again on a later one if starting failed (the broker was down). After a timed-out send the producer is kept: an
idempotent producer retries what it holds until the broker is back, and a record that arrives after its event
was kept as a dead letter is harmless, because an activity is recorded once per message key.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..config import Settings
from ..delivery import ProducerOptions, producer_options
from ..events import ActivityEvent, PublishType
from ..telemetry.tracing import record_headers
from .base import TransportUnavailable
from .circuit import BreakerGuarded, CircuitBreaker
from .loop import LoopClosed, LoopThread, loop_factory
from .topics import DateTopics, TopicAdminError, create_topics, describe_error

log = logging.getLogger(__name__)

# Errors after which the producer is replaced: it will not recover from them by retrying.
_FATAL_PRODUCER_ERRORS = (
    "ProducerFenced",
    "OutOfOrderSequenceNumber",
    "UnknownProducerIdError",
    "InvalidProducerEpoch",
    "IllegalStateError",
)


def unavailable(message: str, topic: str | None) -> TransportUnavailable:
    error = TransportUnavailable(message)
    error.topic = topic
    return error


class KafkaTransport(BreakerGuarded):
    kind = PublishType.KAFKA

    def __init__(
        self,
        bootstrap_servers: str,
        topics: DateTopics,
        *,
        send_timeout_s: float = 5.0,
        linger_ms: int = 0,
        event_loop: str = "uvloop",
        client_id: str = "dailyfeed-producer",
        create_topics: bool = True,
        breaker: CircuitBreaker | None = None,
    ):
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.send_timeout_s = send_timeout_s
        self.options = ProducerOptions(bootstrap_servers, send_timeout_s, linger_ms, event_loop)
        self.client_id = client_id
        self.create_topics = create_topics
        self.breaker = breaker or CircuitBreaker()
        self._loop = LoopThread("dailyfeed-kafka-producer", loop_factory(event_loop))
        # Touched only on the loop thread:
        self._producer: Any = None
        self._admin: Any = None
        self._known_topics: set[str] = set()
        self._closing: set[asyncio.Task] = set()
        self._start_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "KafkaTransport":
        options = producer_options(settings)
        return cls(
            options.bootstrap_servers,
            DateTopics.from_settings(settings),
            send_timeout_s=options.send_timeout_s,
            linger_ms=options.linger_ms,
            event_loop=options.event_loop,
            breaker=CircuitBreaker.from_settings(settings),
        )

    # --- the port ---------------------------------------------------------------------------------------------

    def _topic_of(self, event: ActivityEvent) -> str:
        return self.topics.at(event.created_at)

    def _deliver(self, event: ActivityEvent) -> None:
        topic = self.topics.at(event.created_at)
        # Serialized here, in the caller's thread: the loop thread, which every publish of the process shares,
        # only sends (and the lighter its part, the sooner each publish gets it).
        value, key, headers = event.to_bytes(), event.message_key.encode(), record_headers(event.traceparent)
        try:
            # The loop thread's bound: at the send timeout the send is cancelled there and the wait ends here.
            self._loop.run(self._send(topic, value, key, headers), timeout=self.send_timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            raise unavailable(
                f"Kafka at {self.bootstrap_servers} did not acknowledge {event.message_key} on "
                f"{topic} within {self.send_timeout_s * 1000:.0f} ms",
                topic,
            ) from None
        except LoopClosed:
            raise unavailable("the Kafka transport is closed", topic) from None
        except Exception as exc:
            raise unavailable(
                f"publishing {event.message_key} to {topic} on Kafka at {self.bootstrap_servers} "
                f"failed: {describe_error(exc)}",
                topic,
            ) from exc

    def check_connected(self, timeout_s: float) -> None:
        """For /readyz: start the producer if it is not yet, and have the broker answer a metadata request within
        `timeout_s`; raises TransportUnavailable when it does not."""

        async def check() -> None:
            producer = await self._started_producer()
            await producer.client.fetch_all_metadata()

        async def bounded_check() -> None:  # check() is made on the loop: a closed loop leaves no coroutine unawaited
            await asyncio.wait_for(check(), timeout_s)

        try:
            self._loop.run(bounded_check(), timeout=timeout_s + 1.0)
        except (asyncio.TimeoutError, TimeoutError):
            raise unavailable(
                f"Kafka at {self.bootstrap_servers} did not answer within {timeout_s:.1f} s", None
            ) from None
        except LoopClosed:
            raise unavailable("the Kafka transport is closed", None) from None
        except Exception as exc:
            raise unavailable(f"Kafka at {self.bootstrap_servers}: {describe_error(exc)}", None) from exc

    def close(self) -> None:
        self._loop.close(self._shutdown, timeout=self.send_timeout_s)

    # --- on the loop thread -----------------------------------------------------------------------------------

    async def _send(self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]] | None) -> None:
        producer = self._producer or await self._started_producer()
        if self.create_topics and topic not in self._known_topics:
            await self._ensure_topic(topic)
        try:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
        except Exception as exc:
            if type(exc).__name__ in _FATAL_PRODUCER_ERRORS:
                log.warning(
                    "Kafka producer failed for good (%s); a new one is used for the next publish",
                    type(exc).__name__,
                )
                await self._discard_producer(producer)
            raise

    async def _started_producer(self) -> Any:
        async with self._start_lock:
            if self._producer is None:
                from aiokafka import AIOKafkaProducer

                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=self.client_id,
                    acks=self.options.acks,
                    enable_idempotence=self.options.idempotent,
                    request_timeout_ms=max(int(self.send_timeout_s * 1000), 1000),
                    retry_backoff_ms=100,
                    linger_ms=self.options.linger_ms,
                )
                try:
                    await producer.start()
                except BaseException:
                    await _quietly(producer.stop())
                    raise
                self._producer = producer
                log.info("Kafka producer connected to %s", self.bootstrap_servers)
            return self._producer

    async def _discard_producer(self, producer: Any) -> None:
        if self._producer is producer:
            self._producer = None
        closing = asyncio.get_running_loop().create_task(
            _quietly(asyncio.wait_for(producer.stop(), self.send_timeout_s))
        )
        self._closing.add(closing)  # the loop keeps only weak references to tasks
        closing.add_done_callback(self._closing.discard)

    async def _ensure_topic(self, topic: str) -> None:
        """Create a date topic before its first send (with the configured partitions and retention), so a day
        whose topic the cron did not create still publishes. A broker that refuses to create topics (e.g. not
        authorized) is logged and the send goes ahead: the topic may well exist."""
        if self._admin is None:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                client_id=self.client_id + "-admin",
                request_timeout_ms=max(int(self.send_timeout_s * 1000), 1000),
            )
            try:
                await admin.start()
            except BaseException:
                await _quietly(admin.close())
                raise
            self._admin = admin
        try:
            outcome = await create_topics(self._admin, self.topics, [topic])
        except TopicAdminError as exc:
            log.warning("could not create topic %s (%s); sending to it anyway", topic, exc)
        else:
            if outcome.get(topic) == "created":
                log.info("created date topic %s", topic)
        self._known_topics.add(topic)

    async def _shutdown(self) -> None:
        producer, admin = self._producer, self._admin
        self._producer = self._admin = None
        if admin is not None:
            await _quietly(admin.close())
        if producer is not None:
            # Flushes what is still pending; bounded by LoopThread.close, which then cancels the rest.
            await producer.stop()


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception as exc:
        log.debug("ignored while closing a Kafka client: %s: %s", type(exc).__name__, exc)
