"""One app's operating state: the metric sources (cached dead-letter read, consumer-lag monitor) and the registry
its /metrics exposes, kept on app.extensions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask

from ..extension import get_container
from ..telemetry import metrics
from .sources import DeadLetterStatsCache, LagMonitor, read_dead_letter_stats

STATE_KEY = "dailyfeed.ops"


@dataclass
class OpsState:
    """One app's metric sources (caches, lag monitor) and the registry its /metrics exposes."""

    dead_letters: DeadLetterStatsCache
    publications: DeadLetterStatsCache | None  # the publication registry's stats (None: the registry is off)
    lag: LagMonitor | None
    collector: metrics.StateCollector
    registry: Any


def build_state(container: Any) -> OpsState:
    from ..deadletters import Status
    from ..store import DEAD_LETTER_COLLECTIONS

    settings = container.settings
    cache = DeadLetterStatsCache(
        lambda: read_dead_letter_stats(container.dead_letters.db, DEAD_LETTER_COLLECTIONS),
        settings["metrics.deadletters-cache-s"],
    )
    registry = container.publications
    publications = (
        None
        if registry is None
        else DeadLetterStatsCache(registry.stats, settings["metrics.deadletters-cache-s"], source="outbox")
    )
    lag = _new_lag_monitor(container) if settings.kafka_in_use else None
    collector = metrics.StateCollector(
        container.transports.values(),
        cache,
        lag,
        DEAD_LETTER_COLLECTIONS,
        [s.value for s in Status],
        publications,
        workers=lambda: workers_liveness(container),
    )
    metrics.declare_publishes({(service, t.kind) for service, t in container.transports.items()})
    return OpsState(
        dead_letters=cache,
        publications=publications,
        lag=lag,
        collector=collector,
        registry=metrics.registry_for(collector),
    )


def workers_liveness(container: Any) -> dict[str, dict[str, Any]]:
    """The liveness of each background worker that reports one (the Kafka listener), by its component name."""
    return {
        item.component: item.liveness() for item in container.background if getattr(item, "liveness", None) is not None
    }


def state_of(app: Flask) -> OpsState:
    return app.extensions[STATE_KEY]


def lag_monitor(app: Flask) -> LagMonitor:
    """The app's consumer-lag monitor, made now if the app publishes by no Kafka (`dailyfeed listen` wants it
    whatever the publish types)."""
    state = state_of(app)
    if state.lag is None:
        container = get_container(app)
        state.lag = _new_lag_monitor(container)
        state.collector.lag = state.lag
    return state.lag


def _new_lag_monitor(container: Any) -> LagMonitor:
    from ..transport.lag import read_consumer_lag

    settings = container.settings
    # its thread starts with the first scrape, and is stopped with the container from then on
    return LagMonitor(
        lambda: read_consumer_lag(settings, timeout_s=2.0),
        settings["metrics.lag-interval-s"],
        on_start=container.background.append,
    )
