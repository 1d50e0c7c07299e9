"""Issue 18, point 5: owed events are visible — `dailyfeed outbox stats | relay`, /metrics, the console overview —
and the relay's log names the message key of each event it relays. On both stores."""

from __future__ import annotations

import logging
import time

import pytest

from dailyfeed.content import outbox
from dailyfeed.content.outbox import SimulatedCrash
from dailyfeed.extension import get_container
from dailyfeed.ops.state import state_of
from dailyfeed.store import MEMBER_ACTIVITIES
from dailyfeed.tokens import issue_admin_token

from ..support.console import Admin, bearer
from ..support.metrics import value


@pytest.fixture
def app(store_uri, apps):
    return apps.make({"mongo.uri": store_uri, "outbox.grace-s": 0.001, "metrics.deadletters-cache-s": 0.0})


@pytest.fixture
def owed(app, api):
    """Two posts whose writers "died" after storing them, before publishing: their events are owed."""
    keys = []

    def killed(step, key):
        if step == outbox.APPLIED:
            keys.append(key)
            raise SimulatedCrash

    get_container(app).content_service.checkpoint = killed
    for n in range(2):
        with pytest.raises(SimulatedCrash):
            api.post(7, "/api/posts", json={"content": f"owed {n}"})
    get_container(app).content_service.checkpoint = outbox.no_checkpoint
    time.sleep(0.01)  # past the grace of 1 ms
    return keys


def test_outbox_stats_and_relay_on_the_command_line(app, runner, db, owed, caplog):
    stats = runner.invoke(args=["outbox", "stats"])
    assert stats.exit_code == 0, stats.output
    assert stats.output.startswith("event_publications: 2 owed; oldest ")

    preview = runner.invoke(args=["outbox", "relay", "--dry-run"])
    assert preview.exit_code == 0, preview.output
    assert sorted(line.split()[-1] for line in preview.output.splitlines() if line.startswith("would publish")) == [
        key.rsplit(" ", 1)[-1] for key in sorted(owed)
    ]
    assert "would publish 2, drop 0" in preview.output
    assert get_container(app).publications.stats().outstanding == 2
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 0

    with caplog.at_level(logging.INFO, logger="dailyfeed.content.outbox"):
        relayed = runner.invoke(args=["outbox", "relay"])
    assert relayed.exit_code == 0, relayed.output
    assert all(f"delivered     {key}" in relayed.output for key in owed), relayed.output
    assert relayed.output.splitlines()[-1] == "delivered 2, dead lettered 0, dropped 0, left 0, skipped 0"
    assert sorted(r.getMessage() for r in caplog.records if r.name == "dailyfeed.content.outbox") == sorted(
        f"relayed publication {key}: delivered" for key in owed
    )
    assert {r.message_key for r in caplog.records if r.getMessage().startswith("relayed publication")} == set(owed)
    assert sorted(doc["message_key"] for doc in db[MEMBER_ACTIVITIES].find()) == sorted(owed)
    assert runner.invoke(args=["outbox", "stats"]).output.strip() == "event_publications: 0 owed (grace 0.001 s)"


def test_outbox_relay_refuses_dry_run_with_watch(runner):
    result = runner.invoke(args=["outbox", "relay", "--dry-run", "--watch", "1"])
    assert result.exit_code == 2 and "--dry-run cannot be combined with --watch" in result.output


def test_metrics_show_owed_events_and_what_the_relay_did(app, owed):
    client = app.test_client()
    before = client.get("/metrics").get_data(as_text=True)
    assert value(before, "dailyfeed_outbox_publications") == 2
    assert value(before, "dailyfeed_outbox_oldest_age_seconds") > 0

    get_container(app).relay().run_pass()
    state_of(app).publications.expire()  # read again now, however long the last read took (its spacing)
    after = client.get("/metrics").get_data(as_text=True)
    assert value(after, "dailyfeed_outbox_publications") == 0
    assert value(after, "dailyfeed_outbox_oldest_age_seconds") == 0
    assert (
        value(after, "dailyfeed_outbox_relayed_total", outcome="delivered")
        - value(before, "dailyfeed_outbox_relayed_total", outcome="delivered")
        == 2
    )


def test_the_console_overview_shows_owed_events(app, owed):
    token = issue_admin_token(get_container(app).settings["auth.jwt-secret"], 600)
    admin = Admin(app, bearer(token))
    seen = admin.data(admin.get("/overview"))["publications"]
    assert seen["owed"] == 2 and seen["oldestAgeSeconds"] >= 0 and seen["graceSeconds"] == 0.001
    browser = app.test_client()
    assert browser.post("/admin/login", data={"token": token}).status_code in (302, 303)
    page = browser.get("/admin").get_data(as_text=True)
    assert 'data-owed="2"' in page and "<strong>2</strong> owed, oldest" in page
