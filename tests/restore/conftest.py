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
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.extension import get_container
from dailyfeed.store import (
    DEAD_LETTER_COLLECTIONS,
    FEIGN_DEAD_LETTERS,
    KAFKA_LISTENER_DEAD_LETTERS,
    KAFKA_PUBLISHER_DEAD_LETTERS,
    MEMBER_ACTIVITIES,
)
from dailyfeed.transport.base import TransportUnavailable
from dailyfeed.transport.fake import FakeTransport

from ..support.apps import SELF_URL
from ..support.wsgi import WsgiAdapter

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=timezone.utc)


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
def dailyfeed(app):
    return get_container(app)


@pytest.fixture
def db(dailyfeed):
    return dailyfeed.db


@pytest.fixture
def dead_letters(dailyfeed):
    return dailyfeed.dead_letters


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


def post_event(n: int, member_id: int = 7, *, type_=ActivityType.POST_CREATE) -> ActivityEvent:
    """A distinct post event per n, its action n seconds after T0 (so keys are distinct and ordered)."""
    return ActivityEvent.new(type_, member_id, post_id=100 + n, at=T0 + timedelta(seconds=n))


def mixed_events() -> list[ActivityEvent]:
    """One event of every category a content service publishes, plus a follow."""
    at = T0 + timedelta(minutes=5)
    return [
        ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=12, at=at),
        ActivityEvent.new(ActivityType.POST_UPDATE, 7, post_id=12, at=at + timedelta(seconds=1)),
        ActivityEvent.new(ActivityType.COMMENT_CREATE, 8, post_id=12, comment_id=40, at=at + timedelta(seconds=2)),
        ActivityEvent.new(ActivityType.LIKE_POST, 9, post_id=12, at=at + timedelta(seconds=3)),
        ActivityEvent.new(ActivityType.LIKE_POST_CANCEL, 9, post_id=12, at=at + timedelta(seconds=4)),
        ActivityEvent.new(ActivityType.LIKE_COMMENT, 9, post_id=12, comment_id=40, at=at + timedelta(seconds=5)),
        ActivityEvent.new(ActivityType.MEMBER_FOLLOW, 9, following_id=7, at=at + timedelta(seconds=6)),
    ]


def publisher_dead_letter(dead_letters, event: ActivityEvent, kind: str = "feign") -> None:
    dead_letters.record_publisher_failure(kind, event, TransportUnavailable("activity service unreachable"))


def listener_dead_letter(dead_letters, event: ActivityEvent | None, *, offset: int, value: bytes | str | None = None,
                         key: bytes | str | None = None, error: Exception | None = None) -> None:
    """A listener dead letter as the listener writes it: parsed (event given) or not (raw value only)."""
    value = event.to_bytes() if value is None and event is not None else value
    key = event.message_key.encode() if key is None and event is not None else key
    origin = {"topic": "member-activity-20261122", "partition": 0, "offset": offset, "key": key, "value": value}
    dead_letters.record_listener_failure(origin=origin, error=error or RuntimeError("store down"), event=event)


def documents(db, collection: str, **query) -> list[dict]:
    return list(db[collection].find(query).sort([("created_at", 1), ("_id", 1)]))


def activity_documents(db) -> dict[str, dict]:
    """Stored activities by message key, without their _id (which differs between two stores)."""
    return {doc["message_key"]: {k: v for k, v in doc.items() if k != "_id"}
            for doc in db[MEMBER_ACTIVITIES].find()}


def snapshot(db) -> dict[str, list[dict]]:
    names = (*DEAD_LETTER_COLLECTIONS, MEMBER_ACTIVITIES, "dead_letter_claims")
    return {name: sorted(db[name].find(), key=lambda d: str(d["_id"])) for name in names}


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


__all__ = ["T0", "FEIGN_DEAD_LETTERS", "KAFKA_LISTENER_DEAD_LETTERS", "KAFKA_PUBLISHER_DEAD_LETTERS",
           "MEMBER_ACTIVITIES", "activity_documents", "documents", "listener_dead_letter", "mixed_events",
           "post_event", "publisher_dead_letter", "snapshot"]
