"""The dead-letter store: one canonical document shape in all three collections (SPEC section 7).

Publisher dead letters (`kafka_publisher_dead_letters`, `feign_dead_letters`) hold events the content side could
not hand over; listener dead letters (`kafka_listener_dead_letters`) hold records the activity side could not
parse or store. Every document is keyed by its message key (unique index), so recording the same failure twice
updates one document. The payload is always the canonical event JSON (as a string, like the original's), so
every dead letter restores to the activity the live path would have stored.
"""
from __future__ import annotations

import json
from enum import Enum
from typing import Any, Mapping

from pymongo.database import Database

from ..events import ActivityEvent, utcnow
from ..store import FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS, KAFKA_PUBLISHER_DEAD_LETTERS


class Status(str, Enum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    DISCARDED = "discarded"


PUBLISHER_COLLECTIONS = {"kafka": KAFKA_PUBLISHER_DEAD_LETTERS, "feign": FEIGN_DEAD_LETTERS}
MAX_RAW_CHARS = 64 * 1024  # a listener dead letter keeps at most this much of a raw record


class DeadLetterStoreError(Exception):
    """A dead letter could not be written: the caller must not consider the event safe."""


def error_info(error: BaseException | str) -> dict[str, str]:
    if isinstance(error, BaseException):
        return {"type": type(error).__name__, "message": str(error)[:2000]}
    return {"type": "Error", "message": str(error)[:2000]}


class DeadLetterStore:
    def __init__(self, db: Database, lease_seconds: int = 300):
        self.db = db
        self.lease_seconds = lease_seconds

    # --- writing failures -------------------------------------------------------------------------------------

    def record_publisher_failure(self, kind: str, event: ActivityEvent, error: BaseException,
                                 topic: str | None = None) -> None:
        """Keep an event the content side could not publish; raises DeadLetterStoreError if that fails too."""
        self._record(PUBLISHER_COLLECTIONS[kind], event.message_key, event.category.value,
                     json.dumps(event.to_json()), error, topic=topic, origin=None)

    def record_listener_failure(self, *, origin: Mapping[str, Any], error: BaseException,
                                event: ActivityEvent | None = None) -> None:
        """Keep a consumed record the activity side could not parse or store, with where it came from.

        `origin` is {topic, partition, offset, key, value} of the raw record. A record that could not be parsed
        is keyed by its origin, so a redelivery of the same record updates the same dead letter.
        """
        origin = {k: _clip(v) for k, v in origin.items()}
        if event is not None:
            key, category, payload = event.message_key, event.category.value, json.dumps(event.to_json())
        else:
            key = f"unparsed:{origin.get('topic')}:{origin.get('partition')}:{origin.get('offset')}"
            category, payload = None, None
        self._record(KAFKA_LISTENER_DEAD_LETTERS, key, category, payload, error,
                     topic=origin.get("topic"), origin=origin)

    def _record(self, collection: str, key: str, category: str | None, payload: str | None,
                error: BaseException, *, topic: str | None, origin: Mapping[str, Any] | None) -> None:
        now = utcnow()
        try:
            self.db[collection].update_one(
                {"message_key": key},
                {"$setOnInsert": {"message_key": key, "category": category, "payload": payload,
                                  "created_at": now, "topic": topic, "origin": origin},
                 "$set": {"error": error_info(error), "last_attempt_at": now, "updated_at": now,
                          "status": Status.PENDING.value, "is_completed": False, "is_editing": False},
                 "$inc": {"attempts": 1}},
                upsert=True)
        except Exception as exc:  # any store fault: the caller decides (undo the write / do not commit)
            raise DeadLetterStoreError(f"could not store dead letter in {collection}: {exc}") from exc


def _clip(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            value = value.hex()
    if isinstance(value, str) and len(value) > MAX_RAW_CHARS:
        return value[:MAX_RAW_CHARS] + "…(truncated)"
    return value
