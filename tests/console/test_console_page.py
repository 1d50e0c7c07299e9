"""The /admin page through Flask's test client, on both stores: login and its cookie, CSRF, escaping, and the
confirm-then-run flow of an action. (tests/browser drives the same page in a real Chromium.)"""

from __future__ import annotations

import re
import time

import pytest

from dailyfeed import ops
from dailyfeed.deadletters import Selection
from dailyfeed.ops.sources import LagMonitor
from dailyfeed.store import FEIGN_DEAD_LETTERS
from dailyfeed.transport.base import TransportUnavailable
from dailyfeed.transport.lag import PartitionLag
from dailyfeed.transport.topics import TopicAdminError

from ..support.deadletters import documents, post_event, snapshot

XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>']


def test_login_keeps_a_session_id_in_an_httponly_strict_cookie_for_admin_only(app, tokens):
    client = app.test_client()
    assert client.get("/admin").status_code == 401  # the login form
    admin_token = tokens["admin"]["Authorization"].split(" ", 1)[1]
    response = client.post("/admin/login", data={"token": admin_token})
    cookie = response.headers["Set-Cookie"]
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert admin_token not in cookie and admin_token.split(".")[1] not in cookie  # the session's id, not the token
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
    for form in (
        {"action": "discard", "scope": "all", "step": "run", "expected": "1"},
        {"action": "discard", "scope": "all", "step": "run", "expected": "1", "csrf": "0" * 64},
    ):
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


def dry_run_text(response) -> str:
    return " ".join(re.search(r'id="dry-run">(.*?)</p>', response.text, re.S).group(1).split())


def test_an_action_on_chosen_ones_confirms_the_dry_run_count_then_runs_and_shows_what_it_did(page, dead_letters, db):
    for n in range(2):
        dead_letters.record_publisher_failure("feign", post_event(n), TransportUnavailable("down"))
    ids = [str(d["_id"]) for d in documents(db, FEIGN_DEAD_LETTERS)]
    before = snapshot(db)
    confirm = page.post("/admin/actions", data={"action": "discard", "scope": "chosen", "ids": ids, "csrf": page.csrf})
    assert confirm.status_code == 200
    assert dry_run_text(confirm) == "<strong>2</strong> dead letters would be discarded."
    assert snapshot(db) == before  # the confirmation is a dry run
    run = page.post(
        "/admin/actions",
        data={
            "action": "discard",
            "scope": "chosen",
            "ids": ids,
            "step": "run",
            "expected": "2",
            "reason": "test data",
            "csrf": page.csrf,
        },
    )
    assert run.status_code == 303 and "discarded=2" in run.headers["Location"]
    shown = page.get(run.headers["Location"]).text
    assert "Discarded 2" in shown and "test data" in shown  # the result, and the audit trail's newest entry
    assert {d["status"] for d in documents(db, FEIGN_DEAD_LETTERS)} == {"discarded"}
    [entry] = db["dead_letter_audit"].find()
    assert (entry["actor"], entry["via"], entry["dry_run_count"], entry["result_count"]) == ("admin", "page", 2, 2)


def test_an_action_on_a_filter_confirms_its_count_then_starts_a_task_whose_progress_the_list_shows(
    page, app, dead_letters, db
):
    from dailyfeed.extension import get_container
    from dailyfeed.restore.tasks import TaskRunner, task_store

    for n in range(2):
        dead_letters.record_publisher_failure("feign", post_event(n), TransportUnavailable("down"))
    before = snapshot(db)
    form = {"action": "discard", "scope": "matching", "collection": "feign", "csrf": page.csrf}
    confirm = page.post("/admin/actions", data=form)
    assert confirm.status_code == 200
    assert dry_run_text(confirm).startswith("<strong>2</strong> dead letters would be discarded, by a task")
    assert 'name="rate"' in confirm.text and snapshot(db) == before
    run = page.post("/admin/actions", data={**form, "step": "run", "expected": "2", "rate": "10"})
    assert run.status_code == 303 and "task=" in run.headers["Location"]
    listed = page.get(run.headers["Location"]).text
    assert 'data-state="running"' in listed and "0 of 2 moved" in listed and 'data-cancel="' in listed
    progress = page.get("/admin/tasks.json").json["tasks"]
    assert [(t["state"], t["total"], t["rateLimit"]) for t in progress] == [("running", 2, 10.0)]

    container = get_container(app)
    TaskRunner(container, task_store(container), sleep=lambda s: None).run_pending()
    assert {d["status"] for d in documents(db, FEIGN_DEAD_LETTERS)} == {"discarded"}
    listed = page.get("/admin").text
    assert 'data-state="completed"' in listed and "2 of 2 moved" in listed
    wrong = page.post("/admin/actions", data={**form, "step": "run", "expected": "5"})
    assert wrong.status_code == 409  # the count confirmed is not what is there now


def test_a_viewer_sees_every_page_without_an_action_control_and_any_action_is_a_403(app, dailyfeed, dead_letters, db):
    from dailyfeed.restore.tasks import task_store
    from dailyfeed.tokens import issue_viewer_token

    dead_letters.record_publisher_failure("feign", post_event(1), TransportUnavailable("down"))
    [letter] = documents(db, FEIGN_DEAD_LETTERS)
    task = task_store(dailyfeed).start("replay", Selection(category="POST"), total=1, actor="alice", via="api")
    client = app.test_client()
    token = issue_viewer_token(dailyfeed.settings["auth.jwt-secret"], 600, "bob")
    assert client.post("/admin/login", data={"token": token}).status_code == 303
    pages = [client.get(path) for path in ("/admin", f"/admin/dead-letters/{letter['_id']}", "/admin/audit")]
    for response in pages:
        assert response.status_code == 200
        assert "/admin/actions" not in response.text and 'name="ids"' not in response.text
        assert "data-cancel" not in response.text and "bob · viewer, read only" in response.text
    assert f'data-task="{task["_id"]}"' in pages[0].text  # the tasks are shown, without controls
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', pages[0].text).group(1)  # the logout form's
    before = snapshot(db)
    for path, form in (
        (
            "/admin/actions",
            {"action": "discard", "scope": "chosen", "ids": str(letter["_id"]), "step": "run", "expected": "1"},
        ),
        ("/admin/actions", {"action": "replay", "scope": "all"}),
        (f"/admin/tasks/{task['_id']}/cancel", {}),
    ):
        refused = client.post(path, data={**form, "csrf": csrf})
        assert refused.status_code == 403 and "reading only" in refused.text, path
    assert snapshot(db) == before


def test_a_bulk_action_from_the_page_refuses_an_empty_filter_unless_all(page, dead_letters, db):
    dead_letters.record_publisher_failure("feign", post_event(1), TransportUnavailable("down"))
    refused = page.post("/admin/actions", data={"action": "replay", "scope": "matching", "csrf": page.csrf})
    assert refused.status_code == 400 and "explicitly" in refused.text
    allowed = page.post("/admin/actions", data={"action": "replay", "scope": "all", "csrf": page.csrf})
    assert allowed.status_code == 200
    assert dry_run_text(allowed).startswith("<strong>1</strong> pending dead letter would be replayed")


# --- consumer lag: the page and the overview show the ops lag monitor's reads, so they never wait on Kafka ---------


class Reads:
    """The monitor's read of Kafka, scripted: each read answers the next item, or raises it."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def lag_reads(app, dailyfeed):
    """Gives the app a lag monitor reading `answers` (an app publishing by Kafka has one; these apps use feign)."""

    def install(*answers):
        reads = Reads(*answers)
        monitor = LagMonitor(reads, 3600.0, on_start=dailyfeed.background.append)
        ops.state_of(app).lag = monitor
        return reads, monitor

    return install


TOPIC = "member-activity-20261129"
BEHIND = [PartitionLag(TOPIC, 0, end_offset=10, committed=4), PartitionLag(TOPIC, 1, end_offset=3, committed=None)]


def test_the_overview_shows_how_old_the_oldest_waiting_record_is(admin, page, lag_reads):
    now_ms = int(time.time() * 1000)
    lag_reads(
        [
            PartitionLag(TOPIC, 0, end_offset=10, committed=4, oldest_timestamp_ms=now_ms - 3_723_000),
            PartitionLag(TOPIC, 1, end_offset=3, committed=3, oldest_timestamp_ms=None),
        ]
    )
    lag = admin.data(admin.get("/overview"))["consumerLag"]
    assert [(p["partition"], p["lag"]) for p in lag["partitions"]] == [(0, 6), (1, 0)]
    assert 3723 <= lag["partitions"][0]["lagSeconds"] < 3800 and lag["partitions"][1]["lagSeconds"] == 0
    assert lag["maxLagSeconds"] == lag["partitions"][0]["lagSeconds"]
    html = page.get("/admin").text
    assert re.search(r'data-lag-seconds="37\d\d">The oldest record waiting is\s+<strong>1h 2m</strong> old', html)


def test_the_overview_shows_the_lag_the_monitor_read_and_reads_kafka_once_for_many_views(admin, page, lag_reads):
    reads, _ = lag_reads(BEHIND)
    lag = admin.data(admin.get("/overview"))["consumerLag"]
    assert (lag["error"], lag["total"]) == (None, 6 + 3)
    assert [(p["topic"], p["partition"], p["endOffset"], p["committed"], p["lag"]) for p in lag["partitions"]] == [
        (TOPIC, 0, 10, 4, 6),
        (TOPIC, 1, 3, None, 3),
    ]
    assert lag["readAt"].endswith("Z") and lag["readAgeSeconds"] >= 0
    html = page.get("/admin").text
    assert re.search(r'data-lag="9">Total <strong>9</strong> behind\s*<small class="muted">read \d+s ago', html)
    assert f"<tr><td>{TOPIC}</td><td>0</td><td>6</td></tr>" in html
    assert reads.calls == 1  # the API and the page showed the same read: nothing waited on Kafka again


def test_a_broker_that_never_answered_is_shown_as_such(admin, page, lag_reads):
    lag_reads(TopicAdminError("no broker answered at 127.0.0.1:1 (injected)"))
    lag = admin.data(admin.get("/overview"))["consumerLag"]
    assert (lag["error"], lag["readAt"], lag["partitions"], lag["total"]) == (
        "no broker answered at 127.0.0.1:1 (injected)",
        None,
        [],
        None,
    )
    assert lag["errorAgeSeconds"] >= 0 and lag["readEverySeconds"] == 3600
    html = page.get("/admin").text
    assert re.search(
        r'data-lag="error">Kafka did not answer the read of \d+s ago\s+\(read again every 1h 0m\):\s+'
        r"no broker answered at 127.0.0.1:1 \(injected\)</p>",
        html,
    )
    assert "behind" not in html


def test_a_failed_read_after_a_good_one_shows_why_next_to_the_last_good_figures_until_kafka_answers_again(
    admin, page, lag_reads
):
    _, monitor = lag_reads(BEHIND, TopicAdminError("broker went away (injected)"), BEHIND[:1])
    assert admin.data(admin.get("/overview"))["consumerLag"]["error"] is None
    assert monitor.refresh() is False  # what the monitor's thread does every metrics.lag-interval-s
    lag = admin.data(admin.get("/overview"))["consumerLag"]
    assert (lag["error"], lag["total"], len(lag["partitions"])) == ("broker went away (injected)", 9, 2)
    html = page.get("/admin").text
    assert re.search(
        r"Kafka did not answer the read of \d+s ago\s+\(read again every 1h 0m\):\s+broker went away "
        r"\(injected\)\. Shown below: the last read that worked</p>",
        html,
    )
    assert 'data-lag="9">Total <strong>9</strong> behind' in html

    assert monitor.refresh() is True  # Kafka answers again: the failure is no longer shown
    lag = admin.data(admin.get("/overview"))["consumerLag"]
    assert (lag["error"], lag["errorAgeSeconds"], lag["total"]) == (None, None, 6)
    assert "did not answer" not in page.get("/admin").text
