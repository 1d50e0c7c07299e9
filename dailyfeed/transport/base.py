"""The transport port: how the content module hands an activity event to the activity module.

One method, `publish(event)`, which returns only once the event is delivered (Kafka acknowledged it, or the
activity service recorded it) and raises a TransportError otherwise. tests/transport holds every implementation to
this contract with one suite. Implementations: kafka.py (aiokafka),
http.py (the "feign" transport, requests) and fake.py (in memory, for tests).
"""

from __future__ import annotations

from typing import Protocol

from ..events import ActivityEvent, PublishType


class TransportError(Exception):
    """The event was not delivered. The caller keeps it as a dead letter."""

    #: the dead-letter `topic` field, where the transport knows it
    topic: str | None = None


class TransportUnavailable(TransportError):
    """The other side cannot be reached or failed (timeout, connection refused, 5xx, broker down)."""


class CircuitOpen(TransportUnavailable):
    """Recent calls failed so often that this one was not attempted."""


class TransportRejected(TransportError):
    """The other side answered and refused the event (4xx); retrying the same request will not help."""


class Transport(Protocol):
    #: which publisher dead-letter collection a failure goes to
    kind: PublishType

    def publish(self, event: ActivityEvent) -> None: ...

    def close(self) -> None:
        """Release what the transport holds (may be called twice); a publish after it raises TransportUnavailable."""
