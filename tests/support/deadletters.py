"""Dead letters for tests: events with distinct, ordered keys, dead letters written the way the real write paths
write them, and reads of what the store holds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.store import (
    DEAD_LETTER_COLLECTIONS,
    FEIGN_DEAD_LETTERS,
    KAFKA_LISTENER_DEAD_LETTERS,
    KAFKA_PUBLISHER_DEAD_LETTERS,
    MEMBER_ACTIVITIES,
)
from dailyfeed.transport.base import TransportUnavailable

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=timezone.utc)


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


def listener_dead_letter(
    dead_letters,
    event: ActivityEvent | None,
    *,
    offset: int,
    value: bytes | str | None = None,
    key: bytes | str | None = None,
    error: Exception | None = None,
) -> None:
    """A listener dead letter as the listener writes it: parsed (event given) or not (raw value only)."""
    value = event.to_bytes() if value is None and event is not None else value
    key = event.message_key.encode() if key is None and event is not None else key
    origin = {"topic": "member-activity-20261122", "partition": 0, "offset": offset, "key": key, "value": value}
    dead_letters.record_listener_failure(origin=origin, error=error or RuntimeError("store down"), event=event)


def documents(db, collection: str, **query) -> list[dict]:
    return list(db[collection].find(query).sort([("created_at", 1), ("_id", 1)]))


def activity_documents(db) -> dict[str, dict]:
    """Stored activities by message key, without their _id (which differs between two stores)."""
    return {doc["message_key"]: {k: v for k, v in doc.items() if k != "_id"} for doc in db[MEMBER_ACTIVITIES].find()}


def snapshot(db) -> dict[str, list[dict]]:
    names = (*DEAD_LETTER_COLLECTIONS, MEMBER_ACTIVITIES, "dead_letter_claims")
    return {name: sorted(db[name].find(), key=lambda d: str(d["_id"])) for name in names}


__all__ = [
    "T0",
    "FEIGN_DEAD_LETTERS",
    "KAFKA_LISTENER_DEAD_LETTERS",
    "KAFKA_PUBLISHER_DEAD_LETTERS",
    "MEMBER_ACTIVITIES",
    "activity_documents",
    "documents",
    "listener_dead_letter",
    "mixed_events",
    "post_event",
    "publisher_dead_letter",
    "snapshot",
]
