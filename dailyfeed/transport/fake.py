"""An in-memory transport for tests: records what it was given, fails on demand. It keeps the transport contract
that the real ones keep (tests/transport): a failure is a TransportError, a closed transport publishes nothing."""

from __future__ import annotations

import threading
from typing import Callable

from ..events import ActivityEvent, PublishType
from .base import TransportError, TransportUnavailable


class FakeTransport:
    def __init__(
        self, kind: PublishType | str = PublishType.FEIGN, deliver: Callable[[ActivityEvent], None] | None = None
    ):
        self.kind = PublishType(kind)
        self.published: list[ActivityEvent] = []
        self.failure: TransportError | None = None
        self.attempts = 0  # publishes tried, delivered or not
        self.closed = False
        self._deliver = deliver
        self._lock = threading.Lock()

    def fail_with(self, error: TransportError | None = None) -> None:
        self.failure = error or TransportUnavailable("fake transport is down")

    def recover(self) -> None:
        self.failure = None

    def publish(self, event: ActivityEvent) -> None:
        with self._lock:
            self.attempts += 1
        if self.closed:
            raise TransportUnavailable("the fake transport is closed")
        if self.failure is not None:
            raise self.failure
        if self._deliver is not None:
            self._deliver(event)
        with self._lock:
            self.published.append(event)

    def close(self) -> None:
        self.closed = True
