"""A count-window circuit breaker (the resilience4j model the original used): over the last `window_size`
calls, once at least `minimum_calls` were made and the failure rate reaches `failure_rate`, the circuit opens
and calls fail fast for `open_wait_s`; then one trial call decides whether it closes again.

Small enough to keep here: pybreaker, the maintained Python option, counts consecutive failures only.
Each transport has its own breaker (settings circuit.*).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from ..events import ActivityEvent
from .base import CircuitOpen, TransportError, TransportUnavailable


class CircuitBreaker:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(
        self,
        window_size: int = 20,
        minimum_calls: int = 10,
        failure_rate: float = 0.5,
        open_wait_s: float = 30.0,
        clock=time.monotonic,
    ):
        self.window_size = window_size
        self.minimum_calls = min(minimum_calls, window_size)
        self.failure_rate = failure_rate
        self.open_wait_s = open_wait_s
        self._clock = clock
        self._outcomes: deque[bool] = deque(maxlen=window_size)  # True = failure
        self._state = self.CLOSED
        self._opened_at = 0.0
        self._trial_running = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "CircuitBreaker":
        return cls(
            window_size=settings["circuit.window-size"],
            minimum_calls=settings["circuit.minimum-calls"],
            failure_rate=settings["circuit.failure-rate"],
            open_wait_s=settings["circuit.open-wait-s"],
        )

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == self.OPEN and self._clock() - self._opened_at >= self.open_wait_s:
                return self.HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """Whether a call may go ahead now. In half-open state only one trial call at a time is let through."""
        with self._lock:
            if self._state == self.CLOSED:
                return True
            if self._state == self.OPEN:
                if self._clock() - self._opened_at < self.open_wait_s:
                    return False
                self._state = self.HALF_OPEN
            if self._trial_running:
                return False
            self._trial_running = True
            return True

    def record(self, failed: bool) -> None:
        with self._lock:
            if self._state == self.HALF_OPEN:
                self._trial_running = False
                self._outcomes.clear()
                if failed:
                    self._open()
                else:
                    self._state = self.CLOSED
                return
            self._outcomes.append(failed)
            calls = len(self._outcomes)
            if calls >= self.minimum_calls and sum(self._outcomes) / calls >= self.failure_rate:
                self._open()

    def _open(self) -> None:
        self._state = self.OPEN
        self._opened_at = self._clock()
        self._outcomes.clear()


class BreakerGuarded:
    """Base of the real transports: `publish` goes through the breaker, subclasses implement `_deliver`.

    Only unavailability (timeouts, refused connections, 5xx, a broker that does not acknowledge) counts as a
    failure; a rejection (4xx) proves the other side is there. While the circuit is open a publish fails at once,
    so a write keeps its event as a dead letter without holding a server thread for the whole timeout.
    """

    kind: str
    breaker: CircuitBreaker

    def publish(self, event: ActivityEvent) -> None:
        if not self.breaker.allow():
            error = CircuitOpen(f"{self.kind} transport: circuit open after repeated failures; not trying")
            error.topic = self._topic_of(event)
            raise error
        try:
            self._deliver(event)
        except TransportUnavailable:
            self.breaker.record(failed=True)
            raise
        except TransportError:
            self.breaker.record(failed=False)
            raise
        self.breaker.record(failed=False)

    def _deliver(self, event: ActivityEvent) -> None:
        raise NotImplementedError

    def _topic_of(self, event: ActivityEvent) -> str | None:
        return None
