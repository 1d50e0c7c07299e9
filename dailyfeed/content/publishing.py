"""The publish decision of SPEC section 5: deliver the event, or keep it as a dead letter, or report that
neither worked so the caller can undo its change."""
from __future__ import annotations

import logging
from typing import Mapping

from ..deadletters import DeadLetterStore, DeadLetterStoreError
from ..events import ActivityEvent, Service
from ..transport.base import Transport, TransportError

log = logging.getLogger(__name__)


class PublishFailed(Exception):
    """The event was neither delivered nor kept as a dead letter."""


class ActivityPublisher:
    def __init__(self, transports: Mapping[Service, Transport], dead_letters: DeadLetterStore):
        self.transports = transports
        self.dead_letters = dead_letters

    def publish_activity(self, service: Service, event: ActivityEvent) -> bool:
        """True when delivered, False when kept as a dead letter; raises PublishFailed when neither."""
        transport = self.transports[service]
        try:
            transport.publish(event)
            return True
        except TransportError as exc:
            log.warning("publishing %s by %s failed (%s: %s); keeping a dead letter",
                        event.message_key, transport.kind, type(exc).__name__, exc)
            try:
                self.dead_letters.record_publisher_failure(transport.kind, event, exc, topic=exc.topic)
            except DeadLetterStoreError as store_exc:
                log.error("dead letter for %s could not be stored: %s", event.message_key, store_exc)
                raise PublishFailed(str(store_exc)) from store_exc
            return False
