"""The operating surface: probes and metrics endpoints (probes.py), every metric (metrics.py) and the cached reads
behind them (sources.py), structured logs (logs.py) and W3C trace context (tracing.py).

`init_app` (called by create_app) registers the blueprint and the request hooks that time and count requests and
make the request's trace current; `serve_metrics` gives a standalone process (`dailyfeed listen`, `dailyfeed
restore-* --watch`) a metrics port of its own.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, request

from ..extension import get_container
from ..telemetry import metrics, tracing
from . import probes
from .state import STATE_KEY, build_state, lag_monitor, state_of

__all__ = ["init_app", "lag_monitor", "serve_metrics", "state_of"]

log = logging.getLogger(__name__)

_START = "dailyfeed.ops.start"
_TRACE = "dailyfeed.ops.trace"


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
