"""The dead-letter vocabulary shared by every part: statuses, collections, the error kept, the event a dead letter
holds (SPEC section 7).

One canonical document shape in all three collections. Publisher dead letters (`kafka_publisher_dead_letters`,
`feign_dead_letters`) hold events the content side could not hand over; listener dead letters
(`kafka_listener_dead_letters`) hold records the activity side could not parse or store. The payload is always the
canonical event JSON (as a string, like the original's), so every dead letter restores to the activity the live
path would have stored.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Mapping

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from ..events import ActivityEvent, InvalidEvent, PublishType
from ..store import FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS, KAFKA_PUBLISHER_DEAD_LETTERS


class Status(str, Enum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    DISCARDED = "discarded"


PUBLISHER_COLLECTIONS = {PublishType.KAFKA: KAFKA_PUBLISHER_DEAD_LETTERS, PublishType.FEIGN: FEIGN_DEAD_LETTERS}
PUBLISHER_DEAD_LETTERS = (KAFKA_PUBLISHER_DEAD_LETTERS, FEIGN_DEAD_LETTERS)
LISTENER_DEAD_LETTERS = (KAFKA_LISTENER_DEAD_LETTERS,)
#: what the CLI and the console call each collection
SHORT_NAMES = {
    KAFKA_PUBLISHER_DEAD_LETTERS: "kafka-publisher",
    FEIGN_DEAD_LETTERS: "feign",
    KAFKA_LISTENER_DEAD_LETTERS: "listener",
}
MAX_RAW_CHARS = 64 * 1024  # a listener dead letter keeps at most this much of a raw record
OLDEST_FIRST = [("created_at", ASCENDING), ("_id", ASCENDING)]
NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]


class DeadLetterStoreError(Exception):
    """A dead letter could not be written: the caller must not consider the event safe."""


def error_info(error: BaseException | str) -> dict[str, str]:
    if isinstance(error, BaseException):
        return {"type": type(error).__name__, "message": str(error)[:2000]}
    return {"type": "Error", "message": str(error)[:2000]}


def dead_letter_event(doc: Mapping[str, Any]) -> ActivityEvent:
    """The event a dead letter holds: its canonical payload, keyed by the dead letter's message key; for a
    listener dead letter of a record that could not be parsed (payload null), one more try at its raw record.
    Raises InvalidEvent with the reason when there is no event to be had."""
    payload = doc.get("payload")
    if payload is None:
        origin = doc.get("origin") or {}
        if origin.get("value") is None:
            raise InvalidEvent("dead letter has no payload and no raw record to parse")
        event = ActivityEvent.from_bytes(origin["value"], origin.get("key"))
    else:
        if isinstance(payload, Mapping):
            body = payload
        else:
            try:
                body = json.loads(payload)
            except (TypeError, ValueError) as exc:
                raise InvalidEvent(f"payload is not JSON: {exc}") from None
        key = doc.get("message_key")
        event = ActivityEvent.from_json(body, key if isinstance(key, str) and key else None)
    event = event.with_traceparent(doc.get("traceparent"))  # sent on again by a republish
    category = doc.get("category")
    if category is not None and category != event.category.value:
        raise InvalidEvent(
            f"category {category} does not match the payload's type "
            f"{event.activity_type.value} ({event.category.value})"
        )
    return event


def insert_unordered(collection: Collection, docs: list[dict[str, Any]]) -> set[int]:
    """Insert `docs` with one unordered insert_many: the positions of those a unique index refused (their key is
    already stored); every other one is stored. Any other write error is raised."""
    if not docs:
        return set()
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != 11000 for error in errors):
            raise
        return {error["index"] for error in errors}
    return set()


def clip(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            value = value.hex()
    if isinstance(value, str) and len(value) > MAX_RAW_CHARS:
        return value[:MAX_RAW_CHARS] + "…(truncated)"
    return value


def age_text(seconds: float | None) -> str:
    """An age as people read it: '3d 4h', '2h 5m', '4m 10s', '12s' ('-' for none)."""
    if seconds is None:
        return "-"
    days, rest = divmod(max(0, int(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
