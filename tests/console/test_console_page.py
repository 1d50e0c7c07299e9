"""The /admin page through Flask's test client, on both stores: login and its cookie, CSRF, escaping, and the
confirm-then-run flow of an action. (tests/browser drives the same page in a real Chromium.)"""
from __future__ import annotations

import re

import pytest

from dailyfeed.store import FEIGN_DEAD_LETTERS
from dailyfeed.transport.base import TransportUnavailable

from ..support.deadletters import documents, post_event, snapshot

XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>']


@pytest.fixture
def page(app, tokens):
    """A browser-like client logged in to the console; `csrf` is the form token of the page it saw."""
    client = app.test_client()
    admin_token = tokens["admin"]["Authorization"].split(" ", 1)[1]
    response = client.post("/admin/login", data={"token": admin_token})
    assert response.status_code == 303
    client.csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/admin").text).group(1)
    return client


def test_login_keeps_the_admin_token_in_an_httponly_strict_cookie_for_admin_only(app, tokens):
    client = app.test_client()
    assert client.get("/admin").status_code == 401  # the login form
    admin_token = tokens["admin"]["Authorization"].split(" ", 1)[1]
    response = client.post("/admin/login", data={"token": admin_token})
    cookie = response.headers["Set-Cookie"]
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert client.get("/admin").status_code == 200


@pytest.mark.parametrize("kind", ["member", "service"])
def test_only_an_admin_token_logs_in(app, tokens, kind):
    client = app.test_client()
    response = client.post("/admin/login", data={"token": tokens[kind]["Authorization"].split(" ", 1)[1]})
    assert response.status_code == 401 and "scope admin" in response.text
    assert "Set-Cookie" not in response.headers


def test_an_action_without_the_csrf_token_changes_nothing(page, dead_letters, db):
    dead_letters.record_publisher_failure("feign", post_event(1), TransportUnavailable("down"))
    before = snapshot(db)
    for form in ({"action": "discard", "scope": "all", "step": "run", "expected": "1"},
                 {"action": "discard", "scope": "all", "step": "run", "expected": "1", "csrf": "0" * 64}):
        response = page.post("/admin/actions", data=form)
        assert response.status_code == 400 and "CSRF" in response.text
    assert snapshot(db) == before


def test_payloads_and_errors_with_markup_are_shown_as_text(page, dead_letters, db):
    from dailyfeed.deadletters.model import error_info  # the stored error is the transport's message

    dead_letters.record_publisher_failure("feign", post_event(1), TransportUnavailable(XSS[0] + XSS[1]))
    [doc] = documents(db, FEIGN_DEAD_LETTERS)
    assert error_info(TransportUnavailable(XSS[0]))["message"] == XSS[0]
    listing = page.get("/admin")
    detail = page.get(f"/admin/dead-letters/{doc['_id']}")
    for response in (listing, detail):
        assert response.status_code == 200
        for payload in XSS:
            assert payload not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_an_action_confirms_the_dry_run_count_then_runs_and_shows_what_it_did(page, dead_letters, db):
    for n in range(2):
        dead_letters.record_publisher_failure("feign", post_event(n), TransportUnavailable("down"))
    before = snapshot(db)
    confirm = page.post("/admin/actions", data={"action": "discard", "scope": "matching", "collection": "feign",
                                                "csrf": page.csrf})
    assert confirm.status_code == 200 and "<strong>2</strong> dead letters would be discarded" in confirm.text
    assert snapshot(db) == before  # the confirmation is a dry run
    run = page.post("/admin/actions", data={"action": "discard", "scope": "matching", "collection": "feign",
                                            "step": "run", "expected": "2", "csrf": page.csrf})
    assert run.status_code == 303 and "discarded=2" in run.headers["Location"]
    assert "Discarded 2" in page.get(run.headers["Location"]).text
    assert {d["status"] for d in documents(db, FEIGN_DEAD_LETTERS)} == {"discarded"}


def test_a_bulk_action_from_the_page_refuses_an_empty_filter_unless_all(page, dead_letters, db):
    dead_letters.record_publisher_failure("feign", post_event(1), TransportUnavailable("down"))
    refused = page.post("/admin/actions", data={"action": "replay", "scope": "matching", "csrf": page.csrf})
    assert refused.status_code == 400 and "explicitly" in refused.text
    allowed = page.post("/admin/actions", data={"action": "replay", "scope": "all", "csrf": page.csrf})
    assert allowed.status_code == 200 and "would restore <strong>1</strong>" in allowed.text
