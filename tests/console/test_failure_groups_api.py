"""Failure groups through the admin API and the CLI, on both stores: dead letters grouped by fingerprint with
count, first and last seen and an example; a group as a filter of the list, of an action and of a task."""

from __future__ import annotations

from dailyfeed.extension import get_container
from dailyfeed.restore.tasks import TaskRunner, task_store
from dailyfeed.store import AUDIT, KAFKA_PUBLISHER_DEAD_LETTERS
from dailyfeed.tokens import issue_viewer_token
from dailyfeed.transport.base import TransportRejected, TransportUnavailable

from ..support.console import Admin, bearer
from ..support.deadletters import documents, post_event, snapshot


def two_failures(app):
    """Three dead letters that timed out publishing (each naming its own key and topic) and two that a broker
    rejected with different HTTP statuses: two groups."""
    store = get_container(app).dead_letters
    for n in range(3):
        event = post_event(n)
        store.record_publisher_failure(
            "kafka",
            event,
            TransportUnavailable(
                f"publishing {event.message_key} to member-activity-2026112{n} timed out after {5 + n}.0 s"
            ),
            topic=f"member-activity-2026112{n}",
        )
    for n, status in ((3, 500), (4, 503)):
        store.record_publisher_failure(
            "kafka",
            post_event(n),
            TransportRejected(f"HTTP {status} from the broker"),
            topic="member-activity-20261124",
        )
    return get_container(app).db


def test_dead_letters_are_grouped_by_their_failure_with_count_first_and_last_seen_and_an_example(admin, app):
    db = two_failures(app)
    answer = admin.data(admin.get("/groups"))
    assert answer["total"] == 2 and answer["truncated"] is False
    timeouts, rejected = answer["content"]
    assert (timeouts["count"], timeouts["errorType"], timeouts["collection"], timeouts["topic"]) == (
        3,
        "TransportUnavailable",
        "kafka-publisher",
        "member-activity-<n>",
    )
    assert timeouts["message"] == "publishing <key> to member-activity-<n> timed out after <n> s"
    assert (rejected["count"], rejected["message"], rejected["statuses"]) == (
        2,
        "HTTP <n> from the broker",
        {"pending": 2},
    )
    letters = {d["message_key"]: d for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)}
    assert timeouts["example"]["messageKey"] in letters
    assert timeouts["firstSeen"] <= timeouts["lastSeen"]
    only = admin.data(admin.get(f"/dead-letters?group={rejected['fingerprint']}"))
    assert only["total"] == 2 and {d["error"]["type"] for d in only["content"]} == {"TransportRejected"}
    assert admin.data(admin.get("/groups?collection=feign"))["total"] == 0


def test_a_group_is_replayed_discarded_or_run_as_a_task_as_a_whole_and_nothing_else_is_touched(admin, app):
    db = two_failures(app)
    timeouts, rejected = admin.data(admin.get("/groups"))["content"]
    dry = admin.data(
        admin.post("/dead-letters/discard", {"filter": {"group": rejected["fingerprint"]}, "dryRun": True})
    )
    assert dry["matching"] == 2 and f"group {rejected['fingerprint']}" in dry["selection"]
    done = admin.data(
        admin.post(
            "/dead-letters/discard",
            {"filter": {"group": rejected["fingerprint"]}, "expectedCount": 2, "reason": "poison"},
        )
    )
    assert done["discarded"] == 2
    statuses = {d["message_key"]: d["status"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)}
    assert sorted(statuses.values()) == ["discarded", "discarded", "pending", "pending", "pending"]
    assert db[AUDIT].find_one({"action": "discard"})["selection"]["group"][2] == "TransportRejected"

    task = admin.post("/tasks", {"action": "discard", "filter": {"group": timeouts["fingerprint"]}, "expectedCount": 3})
    assert task.status_code == 201 and task.json["data"]["total"] == 3
    container = get_container(app)
    TaskRunner(container, task_store(container), sleep=lambda s: None).run_pending()
    assert {d["status"] for d in documents(db, KAFKA_PUBLISHER_DEAD_LETTERS)} == {"discarded"}
    assert admin.data(admin.get("/groups"))["total"] == 0  # only open dead letters are grouped
    gone = admin.post("/dead-letters/replay", {"filter": {"group": timeouts["fingerprint"]}})
    assert gone.status_code == 404 and "no open dead letter is in the failure group" in gone.json["message"]


def test_bad_group_filters(admin, app, db):
    two_failures(app)
    [first, _] = admin.data(admin.get("/groups"))["content"]
    before = snapshot(db)
    for body, status, problem in [
        ({"filter": {"group": "nope"}, "dryRun": True}, 400, "16 hex digits"),
        ({"filter": {"group": "0123456789abcdef"}}, 404, "no open dead letter"),
        ({"filter": {"group": first["fingerprint"], "collection": "feign"}}, 400, "not of the collection"),
    ]:
        refused = admin.post("/dead-letters/replay", body)
        assert refused.status_code == status and problem in refused.json["message"], refused.json
    assert snapshot(db) == before


def test_a_viewer_reads_the_groups(app, db):
    two_failures(app)
    viewer = Admin(app, bearer(issue_viewer_token(get_container(app).settings["auth.jwt-secret"], 600, "bob")))
    assert viewer.data(viewer.get("/groups"))["total"] == 2


def test_the_cli_lists_the_groups_and_acts_on_one(app, db):
    two_failures(app)
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["deadletters", "groups"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert len(lines) == 3 and lines[1].split()[1:3] == ["3", "kafka-publisher"]
    assert lines[2].endswith("TransportRejected: HTTP <n> from the broker")
    rejected = lines[2].split()[0]
    discarded = runner.invoke(args=["deadletters", "discard", "--matching", "--group", rejected, "--yes"])
    assert discarded.exit_code == 0
    assert discarded.output.strip() == "discarded 2, skipped 0 (held by a restore right now)"
    unknown = runner.invoke(args=["deadletters", "discard", "--matching", "--group", rejected, "--yes"])
    assert unknown.exit_code == 1 and "no open dead letter is in the failure group" in unknown.output
