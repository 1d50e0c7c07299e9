"""The Flask application factory: the container from dailyfeed.bootstrap, plus blueprints and commands."""

from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from . import hosts
from .bootstrap import bootstrap
from .config import load_settings
from .errors import register_error_handlers
from .events import Service
from .extension import init_app as install_container
from .transport.base import Transport
from .web import IdConverter

MAX_REQUEST_BYTES = 64 * 1024


def create_app(
    test_config: Mapping[str, Any] | None = None,
    *,
    transports: Mapping[Service, Transport] | None = None,
    run_background: bool | None = None,
) -> Flask:
    """Build the app. `test_config` overrides settings by their dotted names; `transports` (by service) replaces
    the configured transports, for tests. `run_background` starts what a serving process runs beside requests
    (dailyfeed.background: date topics, the Kafka listener); None means only under `flask run`."""
    from . import console
    from .activity import api as activity_api
    from .activity import cli as activity_cli
    from .background import flask_run_base_url, serving_under_flask_run, start_background
    from .content import api as content_api
    from .content import cli as content_cli
    from .docs import bp as docs_bp
    from .ops import init_app as init_ops
    from .restore import cli as restore_cli
    from .telemetry.logs import configure_logging
    from .transport import cli as transport_cli

    settings = load_settings(test_config)
    configure_logging(settings["log.format"], settings["log.level"])
    served_at = None if settings["activity.base-url"] else flask_run_base_url()
    if served_at is not None:  # under `flask run` the app's own address is where it binds (dailyfeed serve sets it)
        settings = settings.with_overrides({"activity.base-url": served_at})
    container = bootstrap(settings=settings, transports=transports)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False
    app.url_map.converters["id"] = IdConverter
    install_container(app, container)

    register_error_handlers(app)
    init_ops(app)  # probes, /metrics, request metrics and trace context
    hosts.init_app(app, settings)  # untrusted Host headers are refused before any view
    app.register_blueprint(content_api.bp)
    app.register_blueprint(activity_api.bp)
    app.register_blueprint(docs_bp)
    console.init_app(app)
    for module in (activity_cli, transport_cli, restore_cli, content_cli):
        module.init_app(app)
    if serving_under_flask_run() if run_background is None else run_background:
        start_background(container)
    return app
