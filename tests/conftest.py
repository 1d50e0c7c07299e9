"""Fixtures shared by every tier. Settings come from config/test.toml on top of the defaults."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("DAILYFEED_CONFIG", str(ROOT / "config" / "test.toml"))

from dailyfeed import create_app  # noqa: E402  (after the settings file is chosen)
from dailyfeed.auth import issue_member_token  # noqa: E402
from dailyfeed.transport.http import HttpTransport  # noqa: E402

from .support.wsgi import WsgiAdapter  # noqa: E402

SELF_URL = "http://dailyfeed.test"


def make_app(overrides=None, **kwargs):
    """An app on a fresh embedded store; feign calls to itself answered in-process."""
    config = {"mongo.uri": "mongomock://", "mongo.database": f"test_{uuid.uuid4().hex[:12]}",
              "activity.base-url": SELF_URL}
    config.update(overrides or {})
    app = create_app(config, **kwargs)
    app.config["TESTING"] = True
    for transport in app.extensions["dailyfeed"].transports.values():
        if isinstance(transport, HttpTransport):
            transport.session.mount(SELF_URL, WsgiAdapter(app))
    return app


@pytest.fixture
def app():
    app = make_app()
    yield app
    app.extensions["dailyfeed"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def token(app):
    secret = app.extensions["dailyfeed"].settings["auth.jwt-secret"]

    def make(member_id: int, ttl: int = 3600) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_member_token(secret, member_id, ttl)}"}

    return make
