"""The bench's one door into the app's object graph: every section that needs the app's services in the bench
process (restore, the read path's seeding, the profiles) gets them here.

Today the graph is built by `create_app`, the app's only composition root; when a Flask-free bootstrap exists,
`services` is the one function to switch to it.
"""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from dailyfeed import Dailyfeed, create_app
from dailyfeed.transport.base import Transport


def services(settings: Mapping[str, Any], *, transports: Mapping[str, Transport] | None = None) -> Dailyfeed:
    """Store, transports, dead letters, activity and content services from settings overrides (dotted names),
    with nothing started in the background. The caller closes it (`.close()`)."""
    return container_of(create_app(dict(settings), transports=transports, run_background=False))


def container_of(app: Flask) -> Dailyfeed:
    """The services of an app built by create_app (serve_app adds bench-only routes to the app itself)."""
    return app.extensions["dailyfeed"]
