"""The admin API (/api/admin/...) on both stores: who may call it, the overview, the list and its filters, one
dead letter, and the actions (replay, discard, re-queue) with their dry runs and refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dailyfeed.deadletters import Status
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.store import FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS, KAFKA_PUBLISHER_DEAD_LETTERS
from dailyfeed.transport.base import TransportRejected, TransportUnavailable

from ..support.console import Admin
from ..support.deadletters import T0, documents, listener_dead_letter, post_event, snapshot

ENDPOINTS = [
    ("get", "/overview", None),
    ("get", "/dead-letters", None),
    ("get", "/dead-letters/0123456789abcdef01234567", None),
    ("post", "/dead-letters/replay", {"all": True, "dryRun": True}),
    ("post", "/dead-letters/discard", {"all": True, "dryRun": True}),
    ("post", "/dead-letters/requeue", {"all": True, "dryRun": True}),
]


def at(monkeypatch, when):
    """Dead letters written from now on are created at `when` (the store's clock)."""
    monkeypatch.setattr("dailyfeed.deadletters.store.utcnow", lambda: when)


def varied(dead_letters, monkeypatch):
    """Five dead letters of every kind, an hour apart from T0: feign x2 (one rejected), kafka publisher, listener
    parsed and listener unparsed."""
    events = [post_event(n) for n in range(4)] + [
        ActivityEvent.new(ActivityType.COMMENT_CREATE, 8, post_id=1, comment_id=2, at=T0)
    ]
    at(monkeypatch, T0)
    dead_letters.record_publisher_failure("feign", events[0], TransportUnavailable("activity service down"))
    at(monkeypatch, T0 + timedelta(hours=1))
    dead_letters.record_publisher_failure("feign", events[4], TransportRejected("400 bad request"))
    at(monkeypatch, T0 + timedelta(hours=2))
    dead_letters.record_publisher_failure("kafka", events[1], TransportUnavailable("broker down"))
    at(monkeypatch, T0 + timedelta(hours=3))
    listener_dead_letter(dead_letters, events[2], offset=1, error=RuntimeError("store down"))
    at(monkeypatch, T0 + timedelta(hours=4))
    listener_dead_letter(dead_letters, None, offset=2, value=b"{not json", key=b"k-raw", error=ValueError("bad"))
    monkeypatch.undo()
    return events


@pytest.mark.parametrize("method,path,body", ENDPOINTS)
def test_every_endpoint_needs_an_admin_token(app, tokens, method, path, body):
    client = app.test_client()
    call = getattr(client, method)
    kwargs = {"json": body} if body is not None else {}
    assert call(f"/api/admin{path}", **kwargs).status_code == 401
    for kind in ("member", "service"):
        refused = call(f"/api/admin{path}", headers=tokens[kind], **kwargs)
        assert refused.status_code == 403, kind
        assert refused.json["resultCode"] == "FAIL" and "scope admin" in refused.json["message"]
    assert call(f"/api/admin{path}", headers=tokens["admin"], **kwargs).status_code in (200, 404)


def test_overview_counts_statuses_oldest_pending_hours_error_types_and_circuits(
    admin, dead_letters, monkeypatch, dailyfeed
):
    now = T0 + timedelta(hours=5, minutes=30)
    varied(dead_letters, monkeypatch)
    monkeypatch.setattr("dailyfeed.deadletters.queries.utcnow", lambda: now)
    monkeypatch.setattr("dailyfeed.console.service.utcnow", lambda: now, raising=False)
    token = "t"
    [feign_first] = documents(dailyfeed.db, FEIGN_DEAD_LETTERS, category="POST")
    assert dead_letters.claim(FEIGN_DEAD_LETTERS, feign_first["_id"], token) is not None
    assert dead_letters.discard(FEIGN_DEAD_LETTERS, feign_first["_id"], token)

    data = admin.data(admin.get("/overview"))
    by_name = {c["name"]: c for c in data["collections"]}
    assert by_name["feign"]["counts"] == {"pending": 1, "completed": 0, "failed": 0, "discarded": 1}
    assert by_name["kafka-publisher"]["counts"]["pending"] == 1
    assert by_name["listener"]["counts"]["pending"] == 2
    assert by_name["feign"]["oldestPendingAgeSeconds"] == int(timedelta(hours=4, minutes=30).total_seconds())
    assert by_name["listener"]["oldestPendingAgeSeconds"] == int(timedelta(hours=2, minutes=30).total_seconds())
    # 48 hours, the newest last: T0 is 10:00, `now` 15:30, so T0's hour is the sixth from the end
    assert len(data["hours"]) == 48 and data["hours"][-1].startswith("2026-11-22T15:00")
    assert by_name["feign"]["createdPerHour"][-6:] == [1, 1, 0, 0, 0, 0]
    assert by_name["kafka-publisher"]["createdPerHour"][-6:] == [0, 0, 1, 0, 0, 0]
    assert by_name["listener"]["createdPerHour"][-6:] == [0, 0, 0, 1, 1, 0]
    # most first, then by name
    assert [(e["type"], e["open"]) for e in data["errorTypes"]] == [
        ("RuntimeError", 1),
        ("TransportRejected", 1),
        ("TransportUnavailable", 1),
        ("ValueError", 1),
    ]
    assert {e["type"]: e["byCollection"] for e in data["errorTypes"]}["TransportUnavailable"] == {
        "kafka-publisher": {"pending": 1}
    }  # the feign one of that type was discarded: not open any more
    assert {(t["service"], t["kind"], t["circuit"]) for t in data["transports"]} == {
        ("post-service", "feign", "closed"),
        ("comment-service", "feign", "closed"),
    }
    assert data["consumerLag"] is None  # no service publishes by Kafka


def test_overview_shows_an_open_circuit(admin, dailyfeed):
    breaker = dailyfeed.transports["post-service"].breaker
    for _ in range(breaker.minimum_calls):
        breaker.record(failed=True)
    states = {t["service"]: t["circuit"] for t in admin.data(admin.get("/overview"))["transports"]}
    assert states["post-service"] in ("open", "half-open")  # one breaker for both feign services
    assert breaker.state == states["post-service"]


@pytest.mark.parametrize(
    "query,expected",
    [
        ("", ["listener-raw", "listener", "kafka", "feign-comment", "feign-post"]),
        ("collection=feign", ["feign-comment", "feign-post"]),
        ("collection=kafka_listener_dead_letters", ["listener-raw", "listener"]),
        ("status=pending&collection=listener", ["listener-raw", "listener"]),
        ("status=failed", []),
        ("category=comment", ["feign-comment"]),
        ("errorType=TransportUnavailable", ["kafka", "feign-post"]),
        ("keyPrefix=unparsed:", ["listener-raw"]),
        ("since=2026-11-22T12:00:00Z", ["listener-raw", "listener", "kafka"]),
        ("until=2026-11-22T12:00:00Z", ["feign-comment", "feign-post"]),
        ("since=2026-11-22T11:00:00%2B00:00&until=2026-11-22T13:00:00Z", ["kafka", "feign-comment"]),
        ("since=2026-11-22&category=POST&collection=feign", ["feign-post"]),
    ],
)
def test_the_list_filters(admin, dead_letters, monkeypatch, query, expected):
    events = varied(dead_letters, monkeypatch)
    names = {
        events[0].message_key: "feign-post",
        events[4].message_key: "feign-comment",
        events[1].message_key: "kafka",
        events[2].message_key: "listener",
        "unparsed:member-activity-20261122:0:2": "listener-raw",
    }
    data = admin.data(admin.get(f"/dead-letters?{query}"))
    assert [names[d["messageKey"]] for d in data["content"]] == expected
    assert data["total"] == len(expected)


def test_the_key_filter_takes_one_key_and_the_prefix_is_literal(admin, dead_letters, monkeypatch):
    events = varied(dead_letters, monkeypatch)
    key = events[0].message_key
    assert [d["messageKey"] for d in admin.data(admin.get("/dead-letters", query_string={"key": key}))["content"]] == [
        key
    ]
    assert admin.data(admin.get("/dead-letters", query_string={"keyPrefix": ".*"}))["total"] == 0
    assert admin.data(admin.get("/dead-letters", query_string={"keyPrefix": key[:20]}))["total"] == 4


def test_the_list_pages_newest_first(admin, dead_letters, monkeypatch):
    for n in range(5):
        at(monkeypatch, T0 + timedelta(minutes=n))
        dead_letters.record_publisher_failure("feign", post_event(n), TransportUnavailable("down"))
    pages = [admin.data(admin.get(f"/dead-letters?page={n}&size=2")) for n in range(3)]
    assert [[d["messageKey"] for d in p["content"]] for p in pages] == [
        [post_event(4).message_key, post_event(3).message_key],
        [post_event(2).message_key, post_event(1).message_key],
        [post_event(0).message_key],
    ]
    assert [p["hasNext"] for p in pages] == [True, True, False] and {p["total"] for p in pages} == {5}


@pytest.mark.parametrize(
    "query,problem",
    [
        ("status=lost", "status must be one of"),
        ("collection=mail", "collection must be one of"),
        ("category=PARTY", "category must be one of"),
        ("since=yesterday", "not an ISO date"),
        ("since=2026-11-23&until=2026-11-22", "since must be before until"),
        ("colour=red", "colour is not a known field"),
        ("size=1000", "size must be between"),
        ("page=-1", "page must be 0 or more"),
        ("page=9000&size=100", "page * size must be at most"),
        ("since=0001-01-01", "outside the years"),
    ],
)
def test_bad_filters_are_400s_that_name_the_problem(admin, query, problem):
    response = admin.get(f"/dead-letters?{query}")
    assert response.status_code == 400 and problem in response.json["message"], response.json
    assert response.json["path"] == "/api/admin/dead-letters"


def test_one_dead_letter_shows_payload_origin_error_attempts_claim_and_times(admin, dead_letters, dailyfeed):
    event = post_event(1)
    listener_dead_letter(dead_letters, event, offset=41, error=RuntimeError("store down <b>"))
    [doc] = documents(dailyfeed.db, KAFKA_LISTENER_DEAD_LETTERS)
    data = admin.data(admin.get(f"/dead-letters/{doc['_id']}"))
    assert data["messageKey"] == event.message_key and data["collection"] == "listener"
    assert data["payload"] == event.to_json()
    assert data["origin"] == {
        "topic": "member-activity-20261122",
        "partition": 0,
        "offset": 41,
        "key": event.message_key,
        "value": event.to_bytes().decode(),
    }
    assert data["error"] == {"type": "RuntimeError", "message": "store down <b>"}
    assert (data["attempts"], data["status"], data["claim"]) == (1, "pending", None)
    assert data["createdAt"].endswith("Z") and data["lastAttemptAt"] and data["completedAt"] is None

    assert dead_letters.claim(KAFKA_LISTENER_DEAD_LETTERS, doc["_id"], "someone") is not None
    claim = admin.data(admin.get(f"/dead-letters/{doc['_id']}"))["claim"]
    assert claim["held"] is True and claim["leaseUntil"] > data["createdAt"]


def test_an_unknown_or_malformed_id_is_404_or_400(admin):
    missing = admin.get("/dead-letters/0123456789abcdef01234567")
    assert missing.status_code == 404 and "no dead letter has the id" in missing.json["message"]
    bad = admin.get("/dead-letters/replay")  # a GET never acts: this is just not an id
    assert bad.status_code == 400 and "not a dead-letter id" in bad.json["message"]


# --- actions ------------------------------------------------------------------------------------------------------


def fake_admin(fake):
    from dailyfeed.extension import get_container
    from dailyfeed.tokens import issue_admin_token

    secret = get_container(fake.app).settings["auth.jwt-secret"]
    return Admin(fake.app, {"Authorization": f"Bearer {issue_admin_token(secret, 600)}"})


def publisher_dead_letters_via_fake(fake, count, kind="kafka"):
    from dailyfeed.extension import get_container

    store = get_container(fake.app).dead_letters
    for n in range(count):
        store.record_publisher_failure(kind, post_event(n), TransportUnavailable("broker down"))
    return get_container(fake.app).db


def test_replay_dry_run_changes_nothing_then_replays_chosen_ids_then_a_filter(fake):
    admin = fake_admin(fake)
    db = publisher_dead_letters_via_fake(fake, 3)
    before = snapshot(db)
    preview = admin.data(admin.post("/dead-letters/replay", {"all": True, "dryRun": True}))
    assert (preview["restored"], preview["skipped"], preview["failed"], preview["dryRun"]) == (3, 0, 0, True)
    assert preview["details"][0]["detail"].startswith("republish via post-service")
    assert snapshot(db) == before and fake.published == []

    letters = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    chosen = admin.data(admin.post("/dead-letters/replay", {"ids": [str(letters[1]["_id"])]}))
    assert (chosen["restored"], chosen["skipped"], chosen["failed"]) == (1, 0, 0)
    assert [e.message_key for e in fake.published] == [letters[1]["message_key"]]

    rest = admin.data(admin.post("/dead-letters/replay", {"filter": {"collection": "kafka-publisher"}}))
    assert (rest["restored"], rest["failed"]) == (2, 0)
    assert {d["status"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)} == {"completed"}
    assert sorted(e.message_key for e in fake.published) == sorted(d["message_key"] for d in letters)
    again = admin.data(admin.post("/dead-letters/replay", {"all": True}))
    assert (again["restored"], again["skipped"], again["failed"]) == (0, 0, 0)


def test_a_replay_that_fails_keeps_the_dead_letter_pending_with_the_reason_and_one_more_attempt(fake):
    admin = fake_admin(fake)
    db = publisher_dead_letters_via_fake(fake, 2)
    fake.fail_with(TransportUnavailable("still down"))
    answer = admin.data(admin.post("/dead-letters/replay", {"all": True}))
    assert (answer["restored"], answer["failed"]) == (0, 2)
    letters = documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)
    assert [(d["status"], d["attempts"], d["error"]["message"]) for d in letters] == [("pending", 2, "still down")] * 2


@pytest.mark.parametrize("action", ["replay", "discard", "requeue"])
@pytest.mark.parametrize("body", [{}, {"filter": {}}, {"filter": {"status": ""}}, {"dryRun": True}])
def test_bulk_actions_refuse_an_empty_filter_unless_asked_for_all(admin, dead_letters, db, action, body):
    dead_letters.record_publisher_failure("feign", post_event(1), TransportUnavailable("down"))
    before = snapshot(db)
    refused = admin.post(f"/dead-letters/{action}", body)
    assert refused.status_code == 400 and "explicitly" in refused.json["message"]
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "body,problem",
    [
        ({"ids": []}, "at least one"),
        ({"ids": ["nope"]}, "not a dead-letter id"),
        ({"ids": "x"}, "ids Input should be a valid list"),
        ({"all": "yes"}, "all Input should be a valid boolean"),
        ({"all": True, "mode": "teleport"}, "mode Input should be 'republish' or 'record'"),
        ({"all": True, "filter": {"status": "failed"}}, "re-queue failed ones first"),
        ({"all": True, "force": True}, "force is not a known field"),
        ({"filter": {"colour": "red"}}, "filter.colour is not a known field"),
    ],
)
def test_bad_replay_bodies_are_400s(admin, body, problem):
    response = admin.post("/dead-letters/replay", body)
    assert response.status_code == 400 and problem in response.json["message"], response.json


def test_replay_of_listener_dead_letters_stores_the_activities_and_marks_an_unparseable_one_failed(
    admin, dead_letters, db
):
    events = [post_event(n) for n in range(2)]
    for n, event in enumerate(events):
        listener_dead_letter(dead_letters, event, offset=n)
    listener_dead_letter(dead_letters, None, offset=9, value=b"{not json", key=b"k")
    answer = admin.data(admin.post("/dead-letters/replay", {"filter": {"collection": "listener"}}))
    assert (answer["restored"], answer["failed"]) == (2, 1)
    stored = {d["message_key"] for d in db["member_activities"].find()}
    assert stored == {e.message_key for e in events}
    statuses = {d["message_key"]: (d["status"], d["attempts"]) for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)}
    assert statuses["unparsed:member-activity-20261122:0:9"] == ("failed", 2)


def test_record_mode_stores_the_activity_while_the_transport_is_still_down(
    admin, client, token, db, activity_service_down
):
    activity_service_down.down()
    posted = client.post("/api/posts", json={"content": "while down"}, headers=token(7))
    assert posted.status_code == 201
    [letter] = documents(db, FEIGN_DEAD_LETTERS)
    republish = admin.data(admin.post("/dead-letters/replay", {"ids": [str(letter["_id"])]}))
    assert (republish["restored"], republish["failed"]) == (0, 1)  # the transport is still down
    recorded = admin.data(admin.post("/dead-letters/replay", {"ids": [str(letter["_id"])], "mode": "record"}))
    assert (recorded["restored"], recorded["skipped"], recorded["failed"]) == (1, 0, 0)
    assert [d["message_key"] for d in db["member_activities"].find()] == [letter["message_key"]]
    assert documents(db, FEIGN_DEAD_LETTERS)[0]["status"] == "completed"
    assert [(d["message_key"], d["status"]) for d in documents(db, KAFKA_LISTENER_DEAD_LETTERS)] == [
        (letter["message_key"], "completed")
    ]


def test_discard_asks_for_the_confirmed_count_and_refuses_a_stale_one(admin, dead_letters, db):
    for n in range(3):
        dead_letters.record_publisher_failure("feign", post_event(n), TransportUnavailable("down"))
    body = {"filter": {"collection": "feign", "keyPrefix": post_event(0).message_key[:20]}}
    dry = admin.data(admin.post("/dead-letters/discard", {**body, "dryRun": True}))
    assert dry["matching"] == 3
    before = snapshot(db)
    assert admin.post("/dead-letters/discard", body).status_code == 400  # no expectedCount
    stale = admin.post("/dead-letters/discard", {**body, "expectedCount": 2})
    assert stale.status_code == 409 and "now matches 3" in stale.json["message"]
    assert snapshot(db) == before
    done = admin.data(admin.post("/dead-letters/discard", {**body, "expectedCount": 3}))
    assert (done["discarded"], done["skipped"]) == (3, 0)
    assert {(d["status"], "discarded_at" in d) for d in documents(db, FEIGN_DEAD_LETTERS)} == {("discarded", True)}
    restored = admin.data(admin.post("/dead-letters/replay", {"all": True}))
    assert restored["restored"] == 0  # a discarded dead letter is never restored


def test_discard_skips_a_dead_letter_a_restore_holds_right_now(admin, dead_letters, db):
    for n in range(2):
        dead_letters.record_publisher_failure("feign", post_event(n), TransportUnavailable("down"))
    held, free = documents(db, FEIGN_DEAD_LETTERS)
    assert dead_letters.claim(FEIGN_DEAD_LETTERS, held["_id"], "a-restore") is not None
    ids = [str(held["_id"]), str(free["_id"])]
    done = admin.data(admin.post("/dead-letters/discard", {"ids": ids, "expectedCount": 2}))
    assert (done["discarded"], done["skipped"]) == (1, 1)
    assert [d["status"] for d in documents(db, FEIGN_DEAD_LETTERS)] == ["pending", "discarded"]


def test_requeue_puts_failed_ones_back_to_pending_keeping_error_and_attempts(admin, dead_letters, db):
    listener_dead_letter(dead_letters, None, offset=3, value=b"{not json", key=b"k")
    listener_dead_letter(dead_letters, post_event(1), offset=4)
    admin.data(admin.post("/dead-letters/replay", {"filter": {"keyPrefix": "unparsed:"}}))
    [failed] = documents(db, KAFKA_LISTENER_DEAD_LETTERS, status="failed")
    assert (
        admin.data(admin.post("/dead-letters/requeue", {"filter": {"status": "failed"}, "dryRun": True}))["matching"]
        == 1
    )
    done = admin.data(admin.post("/dead-letters/requeue", {"filter": {"status": "failed"}}))
    assert (done["requeued"], done["skipped"]) == (1, 0)
    after = db[KAFKA_LISTENER_DEAD_LETTERS].find_one({"_id": failed["_id"]})
    assert (after["status"], after["attempts"], after["error"]) == ("pending", failed["attempts"], failed["error"])
    assert after["requeued_at"] is not None
    pending = admin.data(admin.get("/dead-letters?status=pending"))["total"]
    assert pending == 2  # the re-queued one and the one never replayed
    nothing = admin.data(admin.post("/dead-letters/requeue", {"ids": [str(failed["_id"])]}))
    assert nothing["requeued"] == 0  # pending now: only failed ones are re-queued


def test_nothing_changes_on_a_get(app, tokens, dead_letters, db):
    dead_letters.record_publisher_failure("feign", post_event(1), TransportUnavailable("down"))
    before = snapshot(db)
    client = app.test_client()
    for path in (
        "/api/admin/dead-letters/replay",
        "/api/admin/dead-letters/discard?all=true",
        "/api/admin/dead-letters/requeue",
        "/admin/actions?action=replay&scope=all",
    ):
        assert client.get(path, headers=tokens["admin"]).status_code in (400, 401, 405)
    assert snapshot(db) == before
    assert Status.PENDING.value == documents(db, FEIGN_DEAD_LETTERS)[0]["status"]
