"""The operating surface: probes and metrics endpoints (probes.py), every metric (metrics.py) and the cached reads
behind them (sources.py), structured logs (logs.py) and W3C trace context (tracing.py).

`init_app` (called by create_app) registers the blueprint and the request hooks that time and count requests and
make the request's trace current; `serve_metrics` gives a standalone process (`dailyfeed listen`, `dailyfeed
restore-* --watch`) a metrics port of its own.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, request

from ..extension import get_container
from . import metrics, probes, tracing
from .sources import DeadLetterStatsCache, LagMonitor, read_dead_letter_stats

log = logging.getLogger(__name__)

STATE_KEY = "dailyfeed.ops"
_START = "dailyfeed.ops.start"
_TRACE = "dailyfeed.ops.trace"


@dataclass
class OpsState:
    """One app's metric sources (caches, lag monitor) and the registry its /metrics exposes."""

    dead_letters: DeadLetterStatsCache
    lag: LagMonitor | None
    collector: metrics.StateCollector
    registry: Any


def build_state(container: Any) -> OpsState:
    from ..deadletters import Status
    from ..store import DEAD_LETTER_COLLECTIONS

    settings = container.settings
    cache = DeadLetterStatsCache(lambda: read_dead_letter_stats(container.dead_letters.db, DEAD_LETTER_COLLECTIONS),
                                 settings["metrics.deadletters-cache-s"])
    lag = _new_lag_monitor(container) if settings.kafka_in_use else None
    collector = metrics.StateCollector(container.transports.values(), cache, lag, DEAD_LETTER_COLLECTIONS,
                                       [s.value for s in Status])
    metrics.declare_publishes({(service, t.kind) for service, t in container.transports.items()})
    return OpsState(dead_letters=cache, lag=lag, collector=collector, registry=metrics.registry_for(collector))


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
    return LagMonitor(lambda: read_consumer_lag(settings, timeout_s=2.0), settings["metrics.lag-interval-s"],
                      on_start=container.background.append)


def init_app(app: Flask) -> None:
    container = get_container(app)
    metrics.set_enabled(container.settings["metrics.enabled"])
    app.extensions[STATE_KEY] = build_state(container)
    app.register_blueprint(probes.bp)
    app.before_request(_before_request)
    app.after_request(_after_request)
    app.teardown_request(_teardown_request)


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"


def _before_request() -> None:
    environ = request.environ
    environ[_START] = time.perf_counter()
    environ[_TRACE] = tracing.start_request(request.headers, f"{request.method} {_route()}")


def _after_request(response):
    started = request.environ.get(_START)
    if started is not None:
        metrics.request_done(_route(), request.method, response.status_code, time.perf_counter() - started)
    return response


def _teardown_request(exc: BaseException | None) -> None:
    tracing.end_request(request.environ.pop(_TRACE, None))


def serve_metrics(app: Flask, port: int, host: str | None = None) -> Any:
    """Expose the app's metrics on http://host:port/metrics from a background thread (a standalone process's own
    port); returns the server (call .shutdown() to stop it). A port that cannot be had is a ClickException (the
    callers are commands)."""
    import click
    from prometheus_client import start_http_server

    host = host or get_container(app).settings["server.host"]
    try:
        server, _thread = start_http_server(port, addr=host, registry=state_of(app).registry)
    except OSError as exc:
        raise click.ClickException(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return server
