"""Console tests run on BOTH stores (the store_app contract fixture). Dead letters are written by the real write
paths (DeadLetterStore.record_*), as in tests/restore."""
from __future__ import annotations

import pytest

from dailyfeed.extension import get_container
from dailyfeed.tokens import issue_admin_token, issue_member_token, issue_service_token

from ..restore.conftest import activity_service_down, fake  # noqa: F401  (fixtures reused here)


@pytest.fixture
def app(store_app):
    return store_app


@pytest.fixture
def dailyfeed(app):
    return get_container(app)


@pytest.fixture
def dead_letters(dailyfeed):
    return dailyfeed.dead_letters


@pytest.fixture
def db(dailyfeed):
    return dailyfeed.db


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(dailyfeed):
    secret = dailyfeed.settings["auth.jwt-secret"]
    return {"admin": bearer(issue_admin_token(secret, 600)), "member": bearer(issue_member_token(secret, 7, 600)),
            "service": bearer(issue_service_token(secret, 600))}


class Admin:
    """Calls the admin API with an admin token; `get`/`post` return the response, `data` unwraps success."""

    def __init__(self, app, headers):
        self.client = app.test_client()
        self.headers = headers

    def get(self, path, **kwargs):
        return self.client.get(f"/api/admin{path}", headers=self.headers, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.client.post(f"/api/admin{path}", json=json, headers=self.headers, **kwargs)

    def data(self, response):
        assert response.status_code == 200, response.json
        return response.json["data"]


@pytest.fixture
def admin(app, tokens):
    return Admin(app, tokens["admin"])
