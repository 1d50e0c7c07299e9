"""Building apps for tests and cleaning up after them: one way to make an app on a fresh database and one way to
close it (drop the database when it lives on a real server, stop the app's transports and background work)."""

from __future__ import annotations

import socket
import uuid
from typing import Any, Mapping

from dailyfeed import create_app
from dailyfeed.extension import get_container
from dailyfeed.transport.http import HttpTransport

from .wsgi import WsgiAdapter

SELF_URL = "http://dailyfeed.test"


def make_app(overrides: Mapping[str, Any] | None = None, **kwargs: Any):
    """An app on a fresh embedded store; feign calls to itself answered in-process."""
    config = {
        "mongo.uri": "mongomock://",
        "mongo.database": f"test_{uuid.uuid4().hex[:12]}",
        "activity.base-url": SELF_URL,
    }
    config.update(overrides or {})
    app = create_app(config, **kwargs)
    app.config["TESTING"] = True
    for transport in get_container(app).transports.values():
        if isinstance(transport, HttpTransport):
            transport.session.mount(SELF_URL, WsgiAdapter(app))
    return app


def close_app(app) -> None:
    """Drop the app's database if it is on a real server, then close the app (transports, listener)."""
    container = get_container(app)
    if container.settings["mongo.uri"].startswith("mongodb"):
        container.db.client.drop_database(container.db.name)
    container.close()


class Apps:
    """The apps a test made (`apps.make(...)`, or `apps.add(app)` for one built otherwise); all closed after it."""

    def __init__(self):
        self.made: list[Any] = []

    def make(self, overrides: Mapping[str, Any] | None = None, **kwargs: Any):
        return self.add(make_app(overrides, **kwargs))

    def add(self, app):
        self.made.append(app)
        return app

    def close(self) -> None:
        for app in reversed(self.made):
            close_app(app)
        self.made.clear()


def free_port() -> int:
    """A port nothing listens on (bound and released): a closed port for failure tests, or one to serve on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
