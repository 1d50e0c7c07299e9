"""dailyfeed: a social feed backend whose member activities survive the failure of whatever carries them.

`create_app` is the one composition root: it loads the settings, builds the store, the transports and the
services, and registers the blueprints and CLI commands. Nothing is built at import time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from flask import Flask, has_request_context, request
from pymongo.database import Database

from .config import Settings, load_settings
from .transport.base import Transport

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
FALLBACK_BASE_URL = "http://127.0.0.1:5000"


@dataclass
class Dailyfeed:
    """Everything create_app wired, reachable as app.extensions["dailyfeed"]."""

    settings: Settings
    db: Database
    transports: dict[str, Transport]
    dead_letters: Any
    activity_service: Any
    content_service: Any
    background: list[Any] = field(default_factory=list)  # things with .stop(): the listener, producer loops

    def close(self) -> None:
        for item in reversed(self.background):
            item.stop()
        for transport in {id(t): t for t in self.transports.values()}.values():
            transport.close()


def create_app(test_config: Mapping[str, Any] | None = None, *,
               transports: Mapping[str, Transport] | None = None, run_background: bool | None = None) -> Flask:
    """Build the app. `test_config` overrides settings by their dotted names; `transports` (by service name)
    replaces the configured transports, for tests. `run_background` starts what a serving process runs beside
    requests (dailyfeed.background: date topics, the Kafka listener); None means only under `flask run`."""
    from . import cli
    from .activity import api as activity_api
    from .activity.repository import ActivityRepository, FollowRepository
    from .activity.service import ActivityService
    from .content import api as content_api
    from .content.publishing import ActivityPublisher
    from .content.repository import ContentRepository
    from .content.service import ContentService
    from .deadletters import DeadLetterStore
    from .errors import register_error_handlers
    from .store import connect, ensure_indexes
    from .transport import build_transports
    from .web import IdConverter

    settings = load_settings(test_config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False
    app.url_map.converters["id"] = IdConverter

    db = connect(settings["mongo.uri"], settings["mongo.database"])
    ensure_indexes(db)

    configured_url = settings["activity.base-url"]

    def activity_base_url() -> str:
        if configured_url:
            return configured_url
        return request.host_url if has_request_context() else FALLBACK_BASE_URL

    dead_letters = DeadLetterStore(db, lease_seconds=settings["deadletters.lease-s"])
    built = dict(transports) if transports is not None else build_transports(settings, activity_base_url)
    activity_service = ActivityService(ActivityRepository(db), FollowRepository(db))
    content_service = ContentService(ContentRepository(db), ActivityPublisher(built, dead_letters))
    app.extensions["dailyfeed"] = Dailyfeed(settings=settings, db=db, transports=built,
                                            dead_letters=dead_letters, activity_service=activity_service,
                                            content_service=content_service)

    register_error_handlers(app)
    app.register_blueprint(content_api.bp)
    app.register_blueprint(activity_api.bp)
    cli.init_app(app)
    from .background import serving_under_flask_run, start_background

    if serving_under_flask_run() if run_background is None else run_background:
        start_background(app.extensions["dailyfeed"])
    return app
