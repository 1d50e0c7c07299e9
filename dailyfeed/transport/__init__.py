"""Building the transport a service is configured to publish with (SPEC section 2: publish-type.*)."""

from __future__ import annotations

from typing import Callable

from ..config import Settings
from ..delivery import feign_options
from ..events import PublishType, Service
from .base import CircuitOpen, Transport, TransportError, TransportRejected, TransportUnavailable
from .circuit import CircuitBreaker
from .http import HttpTransport

__all__ = [
    "CircuitOpen",
    "Transport",
    "TransportError",
    "TransportRejected",
    "TransportUnavailable",
    "build_http_transport",
    "build_kafka_transport",
]


def build_http_transport(settings: Settings, base_url: Callable[[], str]) -> HttpTransport:
    return HttpTransport(
        base_url, settings["auth.jwt-secret"], feign_options(settings), CircuitBreaker.from_settings(settings)
    )


def build_kafka_transport(settings: Settings) -> Transport:
    from .kafka import KafkaTransport  # aiokafka is only imported when a service publishes by Kafka

    return KafkaTransport.from_settings(settings)


def build_transports(settings: Settings, base_url: Callable[[], str]) -> dict[Service, Transport]:
    """One transport per service; services configured alike share one instance (one producer, one breaker)."""
    built: dict[PublishType, Transport] = {}
    transports: dict[Service, Transport] = {}
    for service in Service:
        kind = settings.publish_type(service)
        if kind not in built:
            built[kind] = (
                build_kafka_transport(settings)
                if kind is PublishType.KAFKA
                else build_http_transport(settings, base_url)
            )
        transports[service] = built[kind]
    return transports
