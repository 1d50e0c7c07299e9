"""The publish decision of SPEC section 5: deliver the event, or keep it as a dead letter, or report that
neither worked so the caller can undo its change."""

from __future__ import annotations

import logging
import time
from typing import Callable, Mapping

from ..deadletters import DeadLetterStoreError, PublisherDeadLetterSink
from ..events import ActivityEvent, Service
from ..telemetry import metrics, tracing
from ..transport.base import Transport, TransportError

log = logging.getLogger(__name__)


class PublishFailed(Exception):
    """The event was neither delivered nor kept as a dead letter."""


class ActivityPublisher:
    def __init__(
        self,
        transports: Mapping[Service, Transport],
        dead_letters: PublisherDeadLetterSink,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.transports = transports
        self.dead_letters = dead_letters
        self._clock = clock  # times the publish for dailyfeed_publish_duration_seconds

    def publish_activity(self, service: Service, event: ActivityEvent) -> bool:
        """True when delivered, False when kept as a dead letter; raises PublishFailed when neither."""
        transport = self.transports[service]
        event = tracing.stamp(event)  # the trace of the request that caused it travels with it from here
        started = self._clock()
        try:
            transport.publish(event)
        except TransportError as exc:
            elapsed = self._clock() - started
            # trace_id named here too, not only by logs.TraceIdFilter: a process that configured its own logging
            # (an embedding WSGI server) has no such filter
            where = {
                "message_key": event.message_key,
                "topic": exc.topic,
                "trace_id": tracing.trace_id_of(event.traceparent),
            }
            log.warning(
                "publishing %s by %s failed (%s: %s); keeping a dead letter",
                event.message_key,
                transport.kind,
                type(exc).__name__,
                exc,
                extra=where,
            )
            try:
                self.dead_letters.record_publisher_failure(transport.kind, event, exc, topic=exc.topic)
            except DeadLetterStoreError as store_exc:
                metrics.published(service, transport.kind, metrics.UNDONE)
                log.error("dead letter for %s could not be stored: %s", event.message_key, store_exc, extra=where)
                raise PublishFailed(str(store_exc)) from store_exc
            metrics.published(service, transport.kind, metrics.DEAD_LETTERED, elapsed)
            return False
        metrics.published(service, transport.kind, metrics.DELIVERED, self._clock() - started)
        return True
