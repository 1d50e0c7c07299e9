"""Tasks and roles in headless Chromium, on the embedded store with the app serving as `dailyfeed serve` does (its
background worker runs the tasks): a replay of a filter started from the page runs as a task whose progress the
page shows without a reload, and is cancelled from the page; a viewer sees the pages without any action control."""

from __future__ import annotations

import re
import uuid

import pytest

from dailyfeed.deadletters import Selection
from dailyfeed.restore import actions
from dailyfeed.store import AUDIT, DEAD_LETTER_TASKS, FEIGN_DEAD_LETTERS, MEMBER_ACTIVITIES
from dailyfeed.tokens import issue_viewer_token
from dailyfeed.transport.base import TransportUnavailable

from ..support.browser import log_in, screenshot, serve, stop
from ..support.deadletters import post_event
from ..support.kafka import wait_until

pytestmark = pytest.mark.browser

LETTERS = 12


@pytest.fixture
def serving():
    """The app with its background work (the task worker), on the embedded store."""
    running = serve(
        {"mongo.uri": "mongomock://", "mongo.database": f"browser_{uuid.uuid4().hex[:10]}", "tasks.poll-s": 0.2},
        run_background=True,
    )
    yield running
    stop(running)


def feign_dead_letters(live, count):
    for n in range(count):
        live.container.dead_letters.record_publisher_failure(
            "feign", post_event(n), TransportUnavailable("activity service down")
        )


def test_a_replay_task_is_started_watched_and_cancelled_from_the_page(page_of, serving):
    live = serving
    feign_dead_letters(live, LETTERS)
    page = page_of()
    log_in(page, live)
    page.select_option("select[name=collection]", "feign")
    page.click(".filters button[type=submit]")
    page.click("#replay-all")
    assert (
        " ".join(page.inner_text("#dry-run").split())
        == f"{LETTERS} pending dead letters would be replayed, by a task in the background."
    )
    page.fill("#rate", "1")
    page.fill("#reason", "activity service is back")
    screenshot(page, "task-confirm", docs="console-task-confirm")
    page.click("#confirm")
    page.wait_for_selector("#tasks tr[data-state=running]")
    page.evaluate("window.notReloaded = true")  # gone if the page is loaded again
    row = "#tasks tr[data-state=running] [data-field=text]"
    assert page.inner_text(row).startswith(f"0 of {LETTERS} moved") or page.inner_text(row)[0] in "12"
    moved_text = wait_until(
        lambda: re.match(rf"([3-9]) of {LETTERS} moved", page.inner_text(row).strip()),
        30,
        0.2,
        "the page shows the task moving on",
    )
    assert moved_text
    assert page.evaluate("window.notReloaded === true"), "the progress came without a reload"
    assert page.get_attribute("#tasks tr[data-state=running] progress", "value") not in (None, "0")
    screenshot(page, "task-running", docs="console-task-running")

    page.click("#tasks button[data-cancel]")
    page.wait_for_selector("#tasks tr[data-state=cancelled]", timeout=30_000)
    screenshot(page, "task-cancelled", docs="console-task-cancelled")
    [task] = live.container.db[DEAD_LETTER_TASKS].find()
    moved = task["moved"]
    assert task["state"] == "cancelled" and 3 <= moved < LETTERS
    assert f"{moved} of {LETTERS} moved" in page.inner_text("#tasks")
    db = live.container.db
    assert db[FEIGN_DEAD_LETTERS].count_documents({"status": "completed"}) == moved  # what moved stays moved
    assert db[FEIGN_DEAD_LETTERS].count_documents({"status": "pending"}) == LETTERS - moved
    assert db[MEMBER_ACTIVITIES].count_documents({}) == moved
    outcomes = [(e["actor"], e["outcome"], e.get("reason")) for e in db[AUDIT].find().sort("at", 1)]
    assert outcomes == [
        ("admin", "started", "activity service is back"),
        ("admin", "cancel-requested", None),
        ("admin", "cancelled", "activity service is back"),
    ]
    assert "cancel-requested" in page.inner_text("#recent-actions")
    assert page_of.dialogs == []


def test_a_viewer_sees_the_console_without_action_controls(page_of, serving):
    live = serving
    feign_dead_letters(live, 3)
    [first] = live.container.db[FEIGN_DEAD_LETTERS].find().sort("message_key", 1).limit(1)
    actions.perform(
        "discard",
        live.container,
        Selection(ids=(first["_id"],)),
        actor="alice",
        via="api",
        reason="a duplicate of an older post",
        expected=1,
    )  # something for the audit trail to show
    page = page_of()
    log_in(page, live, issue_viewer_token(live.secret, 600, "bob"))
    assert page.inner_text("#who") == "bob · viewer, read only"
    for absent in ("#replay-all", "#discard-all", "input[name=ids]", "#chosen", "button[data-cancel]"):
        assert page.locator(absent).count() == 0, absent
    assert page.inner_text("[data-count='feign:pending']") == "2"
    assert "a duplicate of an older post" in page.inner_text("#recent-actions")
    screenshot(page, "viewer", docs="console-viewer")
    page.click("table.letters a >> nth=0")
    assert page.locator("#discard").count() == 0 and page.locator("form[action$='/admin/actions']").count() == 0
    page.click("#audit-link")
    page.wait_for_selector("section[aria-label='Audit trail']")
    assert "alice" in page.inner_text("table.audit") and page.locator("table.audit tbody tr").count() == 1
    screenshot(page, "audit", docs="console-audit")


def test_a_failure_group_is_discarded_from_the_page_as_a_task(page_of, serving):
    live = serving
    store = live.container.dead_letters
    for n in range(4):
        event = post_event(n)
        store.record_publisher_failure(
            "feign",
            event,
            TransportUnavailable(
                f"POST http://127.0.0.1:5001/api/member-activities/posts for {event.message_key}: HTTP 50{n}"
            ),
        )
    store.record_publisher_failure("feign", post_event(9), TransportUnavailable("connection refused"))
    page = page_of()
    log_in(page, live)
    rows = page.locator("#groups tbody tr")
    assert rows.count() == 2
    assert page.inner_text("#groups tbody tr >> nth=0 >> td >> nth=0").startswith("4")
    assert "HTTP <n>" in page.inner_text("#groups tbody tr >> nth=0")
    screenshot(page, "groups", docs="console-groups")
    page.click("#groups tbody tr >> nth=0 >> button[data-discard-group]")
    assert "4 dead letters would be discarded, by a task" in " ".join(page.inner_text("#dry-run").split())
    page.click("#confirm")
    page.wait_for_selector("#tasks tr[data-state=completed]", timeout=30_000)
    page.wait_for_load_state("load")
    db = live.container.db
    assert db[FEIGN_DEAD_LETTERS].count_documents({"status": "discarded"}) == 4
    assert db[FEIGN_DEAD_LETTERS].count_documents({"status": "pending"}) == 1  # the other group is untouched
    assert page.locator("#groups tbody tr").count() == 1
