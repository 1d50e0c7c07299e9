"""Delivery options: how events are produced, sent over HTTP and consumed, as named frozen objects built once from
the (already validated) settings. The guarantees they add up to:

| path              | options         | guarantee                                                                  |
|-------------------|-----------------|----------------------------------------------------------------------------|
| Kafka producer    | ProducerOptions | acks=all, idempotent, each send awaited at most `send_timeout_s`;          |
|                   |                 | concurrent sends share a request (`linger_ms`)                             |
| feign record call | FeignOptions    | at least once: `retry` on connection errors, timeouts and 5xx              |
| Kafka listener    | ConsumerOptions | at least once: commit AFTER_STORE, from earliest; `store_retry`, then dead |
|                   |                 | letters; a dead letter that cannot be stored: no commit, back off          |

One retry shape (RetryPolicy) serves the listener's reconnects, its store retries and the feign calls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from .config import Settings
from .events import TOPIC_PATTERN


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all (None: until stopped), the n-th pause `base_s * factor**(n-1)`, at most `max_s`."""

    attempts: int | None
    base_s: float
    max_s: float
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """The pause after the `failures`-th failure in a row (1, 2, …)."""
        return min(self.base_s * self.factor ** max(failures - 1, 0), self.max_s)

    def retries_left(self, failures: int) -> bool:
        return self.attempts is None or failures < self.attempts


class Backoff:
    """The pauses of a RetryPolicy for a loop that counts its failures in a row."""

    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return self.policy.delay(self.failures)

    def reset(self) -> None:
        self.failures = 0


class Commit(str, Enum):
    """When the listener commits a batch's offsets."""

    AFTER_STORE = "after-store"  # at least once: a crash before the commit redelivers, the unique key deduplicates


@dataclass(frozen=True)
class ProducerOptions:
    bootstrap_servers: str
    send_timeout_s: float
    # How long a send waits for the sends of other requests to share its produce request: cuts the broker's work
    # per record about fourfold when many writers keep the cores busy, and adds that wait to every awaited send
    # (docs/benchmarks.md, finding 9; default 0).
    linger_ms: int
    event_loop: str = "uvloop"  # kafka.event-loop: the loop the producer runs on (transport/loop.py)
    acks: str = "all"
    idempotent: bool = True


@dataclass(frozen=True)
class FeignOptions:
    connect_timeout_s: float
    read_timeout_s: float
    retry: RetryPolicy


@dataclass(frozen=True)
class ConsumerOptions:
    bootstrap_servers: str
    group_id: str
    pattern: str = TOPIC_PATTERN
    max_records: int = 500
    metadata_max_age_ms: int = 10000
    poll_timeout_ms: int = 1000  # longest wait for records in one poll (a stop request ends it at once)
    offset_reset: str = "earliest"  # the original's `latest` skipped the first records of a new day's topic
    commit: Commit = Commit.AFTER_STORE
    store_retry: RetryPolicy = RetryPolicy(attempts=4, base_s=0.5, max_s=30.0)  # then dead letters
    reconnect: RetryPolicy = RetryPolicy(attempts=None, base_s=0.5, max_s=30.0)  # a consumer that cannot start
    event_loop: str = "uvloop"  # kafka.event-loop: the loop the consumer runs on (transport/loop.py)
    poll_ttl_s: float = 300.0  # liveness: the loop made progress (a poll returned, a reconnect was tried) this recently
    consume_ttl_s: float = 600.0  # liveness: no batch has been in hand (stored, committed) longer than this


def producer_options(settings: Settings) -> ProducerOptions:
    return ProducerOptions(
        bootstrap_servers=settings["kafka.bootstrap-servers"],
        send_timeout_s=settings["kafka.producer.send-timeout-ms"] / 1000,
        linger_ms=settings["kafka.producer.linger-ms"],
        event_loop=settings["kafka.event-loop"],
    )


def feign_options(settings: Settings) -> FeignOptions:
    return FeignOptions(
        connect_timeout_s=settings["feign.connect-timeout-s"],
        read_timeout_s=settings["feign.read-timeout-s"],
        retry=RetryPolicy(
            attempts=settings["feign.retry.attempts"],
            base_s=settings["feign.retry.backoff-s"],
            max_s=settings["feign.retry.max-backoff-s"],
            factor=settings["feign.retry.factor"],
        ),
    )


def consumer_options(settings: Settings, pattern: str) -> ConsumerOptions:
    return ConsumerOptions(
        bootstrap_servers=settings["kafka.bootstrap-servers"],
        group_id=settings["kafka.consumer.group-id"],
        pattern=pattern,
        max_records=settings["kafka.consumer.max-records"],
        metadata_max_age_ms=settings["kafka.consumer.metadata-max-age-ms"],
        store_retry=replace(ConsumerOptions.store_retry, attempts=settings["kafka.consumer.store-retries"] + 1),
        poll_ttl_s=settings["kafka.consumer.poll-ttl-s"],
        consume_ttl_s=settings["kafka.consumer.consume-ttl-s"],
        event_loop=settings["kafka.event-loop"],
    )
