"""Console tests run on BOTH stores (the store_app contract fixture). Dead letters are written by the real write
paths (DeadLetterStore.record_*), as in tests/restore."""

from __future__ import annotations

import re

import pytest

from dailyfeed.tokens import issue_admin_token, issue_member_token, issue_service_token

from ..restore.conftest import activity_service_down, fake, set_clock  # noqa: F401  (fixtures reused here)
from ..support.console import Admin, bearer


@pytest.fixture
def app(store_app):
    return store_app


@pytest.fixture
def tokens(dailyfeed):
    secret = dailyfeed.settings["auth.jwt-secret"]
    return {
        "admin": bearer(issue_admin_token(secret, 600)),
        "member": bearer(issue_member_token(secret, 7, 600)),
        "service": bearer(issue_service_token(secret, 600)),
    }


@pytest.fixture
def admin(app, tokens):
    return Admin(app, tokens["admin"])


@pytest.fixture
def page(app, tokens):
    """A browser-like client logged in to the console; `csrf` is the form token of the page it saw."""
    client = app.test_client()
    admin_token = tokens["admin"]["Authorization"].split(" ", 1)[1]
    response = client.post("/admin/login", data={"token": admin_token})
    assert response.status_code == 303
    client.csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/admin").text).group(1)
    return client
