"""Restore tests run on BOTH store backends (mongomock and the real server) through the store_app contract
fixture. Dead letters are written by the real write paths (DeadLetterStore.record_*), never by hand, unless a
test is about a malformed one."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
import requests
from requests.adapters import BaseAdapter

from dailyfeed.deadletters import claims as claims_module
from dailyfeed.deadletters import queries as queries_module
from dailyfeed.deadletters import store as store_module
from dailyfeed.events import ActivityEvent
from dailyfeed.extension import get_container
from dailyfeed.transport.fake import FakeTransport

from ..support.apps import SELF_URL
from ..support.deadletters import activity_documents
from ..support.wsgi import WsgiAdapter


@pytest.fixture
def app(store_app):
    return store_app


@pytest.fixture
def stepping_clock(monkeypatch):
    """The dead-letter store's clock advances 1 ms at every reading: dead letters written one after another get
    distinct, ordered times (a store keeps milliseconds) without sleeping. Leases are measured on the same clock."""
    start, ticks = datetime.now(timezone.utc), itertools.count()
    clock = lambda: start + timedelta(milliseconds=next(ticks))  # noqa: E731
    for module in (store_module, claims_module, queries_module):  # the dead-letter package reads it in three
        monkeypatch.setattr(module, "utcnow", clock)


@pytest.fixture
def set_clock(monkeypatch):
    """The dead-letter store's clock, standing still at `set_clock.now` (10:00 UTC on 2026-11-22 at first: whole
    milliseconds, stored exactly) until the test moves it, backwards too (a run whose clock is behind)."""

    class Clock:
        now = datetime(2026, 11, 22, 10, 0, 0, tzinfo=timezone.utc)

    for module in (store_module, claims_module, queries_module):
        monkeypatch.setattr(module, "utcnow", lambda: Clock.now)
    return Clock


class Unreachable(BaseAdapter):
    """The activity service is down: every record call is refused."""

    def send(self, request, **kwargs):
        raise requests.ConnectionError(f"connection refused: {request.url}")

    def close(self):
        pass


@pytest.fixture
def activity_service_down(app):
    """Turns the feign transport's target off and on again: `down()`, `up()`."""
    sessions = {id(t.session): t.session for t in get_container(app).transports.values()}.values()

    class Switch:
        def down(self):
            for session in sessions:
                session.mount(SELF_URL, Unreachable())

        def up(self):
            for session in sessions:
                session.mount(SELF_URL, WsgiAdapter(app))

    return Switch()


@pytest.fixture
def fake(store_uri, apps):
    """An app whose services publish through one FakeTransport that, when up, records like the real path.
    Returns the transport; `fake.app` is the app."""
    holder = {}
    transport = FakeTransport("kafka", deliver=lambda event: holder["service"].record_activity(event))
    app = apps.make({"mongo.uri": store_uri}, transports={"post-service": transport, "comment-service": transport})
    holder["service"] = get_container(app).activity_service
    transport.app = app
    return transport


@pytest.fixture
def live_store(store_uri, apps):
    """A second, empty app on the same backend: what the live record path stores for given events."""

    def record(events, *, via_bytes: bool = False) -> dict[str, dict]:
        app = apps.make({"mongo.uri": store_uri})
        service = get_container(app).activity_service
        if via_bytes:  # the Kafka listener's path: parse the record, one bulk upsert
            service.record_activities([ActivityEvent.from_bytes(value, key) for value, key in events])
        else:
            for event in events:
                service.record_activity(event)
        return activity_documents(get_container(app).db)

    return record
