"""The dead-letter store: how a failure is kept (what the write path needs), plus the claim protocol
(claims.py), the read side (queries.py) and the bulk actions (bulk.py) that the restore jobs, the CLI and the
console use.

The write path sees only a sink of one method (PublisherDeadLetterSink, ListenerDeadLetterSink), as arroyo's
processing code sees only its DLQ producer: the restore side's claims, reads and bulk actions stay out of its reach.

Every document is keyed by its message key (unique index), so recording the same failure twice updates one
document.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Protocol

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from ..events import ActivityEvent, utcnow
from ..store import KAFKA_LISTENER_DEAD_LETTERS
from ..telemetry import metrics
from .bulk import BulkActions
from .claims import ClaimProtocol
from .model import PUBLISHER_COLLECTIONS, DeadLetterStoreError, Status, clip, error_info, insert_unordered
from .queries import DeadLetterReader


class PublisherDeadLetterSink(Protocol):
    """What content publishing needs of the dead letters: keep an event no transport delivered."""

    def record_publisher_failure(
        self, kind: str, event: ActivityEvent, error: BaseException, topic: str | None = None
    ) -> None: ...


class ListenerDeadLetterSink(Protocol):
    """What the Kafka listener needs of the dead letters: keep a record it could not parse or store."""

    def record_listener_failure(
        self,
        *,
        origin: Mapping[str, Any],
        error: BaseException,
        event: ActivityEvent | None = None,
        traceparent: str | None = None,
    ) -> None: ...


class DeadLetterStore(ClaimProtocol, DeadLetterReader, BulkActions):
    def __init__(self, db: Database, lease_seconds: int = 300):
        self.db = db
        self.lease_seconds = lease_seconds
        self.kept = 0  # failures this process kept: the redrive looks for work when it changes

    # --- writing failures -------------------------------------------------------------------------------------

    def record_publisher_failure(
        self, kind: str, event: ActivityEvent, error: BaseException, topic: str | None = None
    ) -> None:
        """Keep an event the content side could not publish; raises DeadLetterStoreError if that fails too."""
        self._record(
            PUBLISHER_COLLECTIONS[kind],
            event.message_key,
            event.category.value,
            json.dumps(event.to_json()),
            error,
            topic=topic,
            origin=None,
            traceparent=event.traceparent,
        )

    def record_listener_failure(
        self,
        *,
        origin: Mapping[str, Any],
        error: BaseException,
        event: ActivityEvent | None = None,
        traceparent: str | None = None,
    ) -> None:
        """Keep a consumed record the activity side could not parse or store, with where it came from.

        `origin` is {topic, partition, offset, key, value} of the raw record. A record that could not be parsed
        is keyed by its origin, so a redelivery of the same record updates the same dead letter. `traceparent`:
        the record's trace context header, for one that could not be parsed (an event carries its own).
        """
        origin = {k: clip(v) for k, v in origin.items()}
        if event is not None:
            key, category, payload = event.message_key, event.category.value, json.dumps(event.to_json())
            traceparent = event.traceparent or traceparent
        else:
            key = f"unparsed:{origin.get('topic')}:{origin.get('partition')}:{origin.get('offset')}"
            category, payload = None, None
        self._record(
            KAFKA_LISTENER_DEAD_LETTERS,
            key,
            category,
            payload,
            error,
            topic=origin.get("topic"),
            origin=origin,
            traceparent=traceparent,
        )

    def _record(
        self,
        collection: str,
        key: str,
        category: str | None,
        payload: str | None,
        error: BaseException,
        *,
        topic: str | None,
        origin: Mapping[str, Any] | None,
        traceparent: str | None = None,
    ) -> None:
        """Insert the dead letter; when its key is there already (the same event failed again), count the new
        attempt on it instead. `traceparent` (W3C trace context of the request that caused it) is kept so a
        restore sends it on. Insert first: an upsert by key scans the collection on FerretDB v1, and dead
        letters are written exactly when something is already failing."""
        now = utcnow()
        failure = {
            "error": error_info(error),
            "last_attempt_at": now,
            "updated_at": now,
            "status": Status.PENDING.value,
            "is_completed": False,
            "is_editing": False,
        }
        try:
            try:
                self.db[collection].insert_one(
                    {
                        "message_key": key,
                        "category": category,
                        "payload": payload,
                        "created_at": now,
                        "topic": topic,
                        "origin": origin,
                        "attempts": 1,
                        "traceparent": traceparent,
                        **failure,
                    }
                )
            except DuplicateKeyError:
                self.db[collection].update_one({"message_key": key}, {"$set": failure, "$inc": {"attempts": 1}})
        except Exception as exc:  # any store fault: the caller decides (undo the write / do not commit)
            raise DeadLetterStoreError(f"could not store dead letter in {collection}: {exc}") from exc
        self.kept += 1
        metrics.dead_letter_kept(collection, failure["error"]["type"])

    def hand_off(self, source: str, doc: Mapping[str, Any], event: ActivityEvent) -> bool:
        """Copy a publisher dead letter into the listener collection, pending, as the original did; False when
        a listener dead letter with that key already existed (handed off before)."""
        return self.hand_off_batch([(source, doc, event)])[0]

    def hand_off_batch(self, items: Iterable[tuple[str, Mapping[str, Any], ActivityEvent]]) -> list[bool]:
        """`hand_off` for (source collection, dead letter, event) triples with one unordered insert: for each,
        whether it was copied (False: already there)."""
        now = utcnow()
        copies = [
            {
                "message_key": event.message_key,
                "category": event.category.value,
                "payload": json.dumps(event.to_json()),
                "is_completed": False,
                "is_editing": False,
                "created_at": doc.get("created_at", now),
                "updated_at": now,
                "topic": doc.get("topic"),
                "error": doc.get("error"),
                "attempts": 0,
                "last_attempt_at": None,
                "origin": {"handoff_from": source, "dead_letter_id": str(doc["_id"])},
                "traceparent": event.traceparent,
                "status": Status.PENDING.value,
            }
            for source, doc, event in items
        ]
        refused = insert_unordered(self.db[KAFKA_LISTENER_DEAD_LETTERS], copies)
        return [n not in refused for n in range(len(copies))]
