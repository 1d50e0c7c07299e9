"""The "feign" transport: POST the event to the activity module's record endpoint over HTTP (requests).

Timeouts and retries come whole from FeignOptions (settings feign.*): attempts with a pause (growing by
feign.retry.factor) on connection errors, timeouts and 5xx, which is safe because the record endpoint is idempotent
by message key; 4xx is not retried; a circuit breaker makes an unreachable activity service fail fast. A 5xx is a
failure (the original counted it as success). The event's W3C trace context goes in the `traceparent` header; the
record endpoint takes it from there.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import requests

from ..delivery import FeignOptions
from ..events import RECORD_PATHS, ActivityEvent, PublishType, record_request_body
from ..telemetry.tracing import headers_for
from ..tokens import issue_service_token
from .base import TransportRejected, TransportUnavailable
from .circuit import BreakerGuarded, CircuitBreaker

log = logging.getLogger(__name__)


class HttpTransport(BreakerGuarded):
    kind = PublishType.FEIGN

    def __init__(
        self,
        base_url: Callable[[], str],
        secret: str,
        options: FeignOptions,
        breaker: CircuitBreaker,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._base_url = base_url  # resolved per call: by default the app's own URL
        self._secret = secret
        self.timeout = (options.connect_timeout_s, options.read_timeout_s)
        self.retry = options.retry
        self.breaker = breaker
        self.session = session or requests.Session()
        self._sleep = sleep  # injectable: tests read the pauses between attempts without waiting for them
        self._token: tuple[float, str] | None = None
        self._closed = False

    def _deliver(self, event: ActivityEvent) -> None:
        if self._closed:  # like the Kafka transport: a closed session would quietly open new connections
            raise TransportUnavailable("the feign transport is closed")
        url = f"{self._base_url().rstrip('/')}/api/member-activities/{RECORD_PATHS[event.category]}"
        body = record_request_body(event)
        headers = {"Authorization": f"Bearer {self._service_token()}", **headers_for(event.traceparent)}
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.post(url, json=body, headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                error: TransportUnavailable = TransportUnavailable(f"POST {url}: {type(exc).__name__}: {exc}")
            else:
                if response.status_code < 300:
                    return
                if response.status_code < 500:
                    raise TransportRejected(f"POST {url} answered {response.status_code}: {_message(response)}")
                error = TransportUnavailable(f"POST {url} answered {response.status_code}: {_message(response)}")
            if not self.retry.retries_left(attempt):
                raise error
            log.info(
                "record call for %s failed (attempt %d/%d): %s",
                event.message_key,
                attempt,
                self.retry.attempts,
                error,
                extra={"message_key": event.message_key},
            )
            self._sleep(self.retry.delay(attempt))

    def _service_token(self) -> str:
        now = time.monotonic()
        if self._token is None or now - self._token[0] > 240:
            self._token = (now, issue_service_token(self._secret, ttl_seconds=300))
        return self._token[1]

    def close(self) -> None:
        self._closed = True
        self.session.close()


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:300]
    except ValueError:
        return response.text[:300]
