"""Issue 19, the trust boundary, in the console tier (both stores): admin times bounded after the conversion to UTC
(5), the page's numbers read as the API reads them (6), a non-ASCII CSRF token refused like a wrong one (7), a
`back` address checked before anything is done (8), "replay all" counting only what its call moved (10); and the
cookie holding a session that logout ends, no-store on the admin API, the page headers on /docs."""

from __future__ import annotations

import re

import pytest

from dailyfeed.deadletters import DeadLetterStore
from dailyfeed.extension import get_container
from dailyfeed.restore.jobs import ListenerRestore, RestoreOptions
from dailyfeed.store import CONSOLE_SESSIONS, FEIGN_DEAD_LETTERS, MEMBER_ACTIVITIES

from ..support.deadletters import documents, post_event, publisher_dead_letter, snapshot

OUT_OF_RANGE = ["9999-12-31T23:59:59-01:00", "1970-01-01T00:30:00+01:00"]


@pytest.fixture
def feign_dead_letters(dead_letters):
    for n in range(3):
        publisher_dead_letter(dead_letters, post_event(n))


def _discard_all(page, **fields):
    return page.post(
        "/admin/actions",
        data={"action": "discard", "scope": "all", "step": "run", "expected": "3", "csrf": page.csrf, **fields},
    )


def _discard_chosen(page, db, **fields):
    """Dead letters chosen by hand are acted on at once, and the browser is sent `back` (a selection by filter
    becomes a task, and the browser goes to the list's tasks whatever `back` says)."""
    ids = [str(d["_id"]) for d in documents(db, FEIGN_DEAD_LETTERS)]
    return page.post(
        "/admin/actions",
        data={
            "action": "discard",
            "scope": "chosen",
            "ids": ids,
            "step": "run",
            "expected": str(len(ids)),
            "csrf": page.csrf,
            **fields,
        },
    )


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("when", OUT_OF_RANGE)
def test_5_times_outside_the_years_after_conversion_are_400_on_the_page(page, feign_dead_letters, db, field, when):
    before = snapshot(db)
    listed = page.get("/admin", query_string={field: when})
    assert listed.status_code == 400 and f"{field}: " in listed.text and "outside the years 1970-9999" in listed.text
    acted = page.post("/admin/actions", data={"action": "discard", "scope": "matching", field: when, "csrf": page.csrf})
    assert acted.status_code == 400 and "outside the years 1970-9999" in acted.text
    assert snapshot(db) == before


@pytest.mark.parametrize("page_number", ["²", "١", "9" * 5000, "-1", "1.0", " 1"])
def test_6_the_page_number_follows_the_api_rules(page, feign_dead_letters, page_number):
    response = page.get("/admin", query_string={"page": page_number})
    assert response.status_code == 400 and "page must be a number" in response.text


@pytest.mark.parametrize("expected", ["²", "١", "3" * 5000, "3.0"])
def test_6_the_expected_count_follows_the_api_rules_and_nothing_is_discarded(page, feign_dead_letters, db, expected):
    before = snapshot(db)
    response = _discard_all(page, expected=expected)
    assert response.status_code == 400 and "expected must be a count in ASCII digits" in response.text
    assert snapshot(db) == before


def test_6_result_counts_in_the_redirect_are_ascii_digits_only(page):
    response = page.get(
        "/admin", query_string={"done": "discard", "discarded": "²", "skipped": "9" * 5000, "failed": "١"}
    )
    assert response.status_code == 200
    assert "²" not in response.text and "9" * 100 not in response.text


@pytest.mark.parametrize("csrf", ["é" * 64, "☃", "\u0000"])
def test_7_a_non_ascii_csrf_token_is_refused_like_a_wrong_one(page, feign_dead_letters, db, csrf):
    before = snapshot(db)
    response = _discard_all(page, csrf=csrf)
    assert response.status_code == 400 and "CSRF token missing or wrong" in response.text
    assert page.post("/admin/logout", data={"csrf": csrf}).status_code == 400
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "back",
    [
        "/admin\r\nSet-Cookie: x=1",
        "/admin?x=\n",
        "//evil.example/admin",
        "https://evil.example/admin",
        "/administrator",
        "/admin\\..\\x",
        "/admin x",
    ],
)
def test_8_a_bad_back_address_falls_back_to_admin_and_the_action_answers(page, feign_dead_letters, db, back):
    response = _discard_chosen(page, db, back=back)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/admin?done=discard&") and "\n" not in location and "evil" not in location
    assert len(documents(db, FEIGN_DEAD_LETTERS, status="discarded")) == 3


def test_8_a_good_back_address_is_kept(page, feign_dead_letters, db):
    response = _discard_chosen(page, db, back="/admin?collection=feign&page=0")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/admin?collection=feign&page=0&done=discard&discarded=3")


def test_10_a_record_replay_counts_what_another_replay_recorded_first_as_skipped(
    app, admin, dead_letters, db, monkeypatch
):
    """Another replay records the copies between this call's hand-off and its own recording of them: this call
    moved them to the listener side, the other recorded them; only the other counts them restored."""
    for n in range(4):
        publisher_dead_letter(dead_letters, post_event(n))
    dailyfeed = get_container(app)
    hand_off = DeadLetterStore.hand_off_batch
    others: list = []

    def hand_off_then_another_replay_records(store, items):
        copied = hand_off(store, items)
        others.append(ListenerRestore(store, dailyfeed.activity_service, RestoreOptions()).run())
        return copied

    monkeypatch.setattr(DeadLetterStore, "hand_off_batch", hand_off_then_another_replay_records)
    answer = admin.data(admin.post("/dead-letters/replay", {"filter": {"collection": "feign"}, "mode": "record"}))
    assert sum(other.restored for other in others) == 4
    assert (answer["restored"], answer["skipped"], answer["failed"]) == (0, 4, 0)
    assert {d["outcome"] for d in answer["details"]} == {"skipped"}
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 4
    assert len(documents(db, FEIGN_DEAD_LETTERS, status="completed")) == 4


def test_logout_ends_the_session_in_the_store_and_the_old_cookie_is_refused(app, page, db):
    cookie = page.get_cookie("dailyfeed_admin", path="/admin")
    assert cookie is not None and db[CONSOLE_SESSIONS].count_documents({}) == 1
    assert db[CONSOLE_SESSIONS].find_one({"_id": cookie.value}) is None  # the store keeps a hash, not the id
    response = page.post("/admin/logout", data={"csrf": page.csrf})
    assert response.status_code == 303 and db[CONSOLE_SESSIONS].count_documents({}) == 0
    replayed = app.test_client()
    replayed.set_cookie("dailyfeed_admin", cookie.value, path="/admin")
    refused = replayed.get("/admin")
    assert refused.status_code == 401 and "session has ended" in refused.text
    for forged in ("x" * 43, "../" * 20, "é" * 43, "a" * 3000):
        replayed.set_cookie("dailyfeed_admin", forged, path="/admin")
        assert replayed.get("/admin").status_code == 401


def test_an_expired_session_is_refused_and_purged_by_the_next_login(app, page, db, tokens):
    from datetime import datetime, timezone

    db[CONSOLE_SESSIONS].update_many({}, {"$set": {"expires_at": datetime(2000, 1, 1, tzinfo=timezone.utc)}})
    assert page.get("/admin").status_code == 401
    fresh = app.test_client()
    fresh.post("/admin/login", data={"token": tokens["admin"]["Authorization"].split(" ", 1)[1]})
    assert db[CONSOLE_SESSIONS].count_documents({}) == 1 and fresh.get("/admin").status_code == 200


def test_admin_api_answers_are_not_cached(admin, tokens, app):
    client = app.test_client()
    for response in (
        client.get("/api/admin/overview", headers=tokens["admin"]),
        client.get("/api/admin/dead-letters", headers=tokens["admin"]),
        client.get("/api/admin/dead-letters?since=x", headers=tokens["admin"]),
        client.get("/api/admin/overview", headers=tokens["member"]),
        client.post("/api/admin/dead-letters/replay", json={"dryRun": True, "all": True}, headers=tokens["admin"]),
    ):
        assert response.headers["Cache-Control"] == "no-store", response.status_code


def test_docs_carry_the_page_security_headers(app):
    response = app.test_client().get("/docs")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp and "style-src 'sha256-" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    console = app.test_client().get("/admin/login")
    assert (
        console.headers["X-Content-Type-Options"] == "nosniff"
        and "frame-ancestors 'none'" in console.headers["Content-Security-Policy"]
    )


@pytest.mark.parametrize("issue, scope", [("admin", "admin"), ("viewer", "admin:read")])
def test_the_session_keeps_the_name_and_scope_of_the_token_it_was_opened_with(app, db, issue, scope):
    from dailyfeed import tokens

    secret = get_container(app).settings["auth.jwt-secret"]
    token = getattr(tokens, f"issue_{issue}_token")(secret, 600, "carol")
    client = app.test_client()
    assert client.post("/admin/login", data={"token": token}).status_code == 303
    [session] = db[CONSOLE_SESSIONS].find()
    assert (session["subject"], session["scope"]) == ("carol", scope)
    assert token not in str(session) and token not in client.get_cookie("dailyfeed_admin", path="/admin").value


def test_an_action_on_the_page_is_audited_under_the_name_of_the_session_s_token(app, db, dead_letters):
    from dailyfeed.deadletters import audit
    from dailyfeed.tokens import issue_admin_token

    for n in range(2):
        publisher_dead_letter(dead_letters, post_event(n))
    client = app.test_client()
    token = issue_admin_token(get_container(app).settings["auth.jwt-secret"], 600, "carol")
    assert client.post("/admin/login", data={"token": token}).status_code == 303
    listed = client.get("/admin", headers={"Authorization": "Bearer forged"})  # a header decides nothing here
    client.csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', listed.text).group(1)
    assert "carol" in listed.text
    response = _discard_chosen(client, db, reason="duplicates")
    assert response.status_code == 303 and "discarded=2" in response.headers["Location"]
    [entry], _ = audit.entries(db, audit.AuditQuery(action="discard"))
    assert (entry["actor"], entry["via"], entry["result_count"], entry["reason"]) == ("carol", "page", 2, "duplicates")
