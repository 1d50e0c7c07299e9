"""Storage of the activity log and the follow graph. Only the activity module uses it."""

from __future__ import annotations

from typing import Any, Iterable

from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ..events import ActivityEvent, ActivityType, utcnow
from ..store import FOLLOWS, MEMBER_ACTIVITIES


def activity_document(event: ActivityEvent) -> dict[str, Any]:
    doc = {
        "member_id": event.member_id,
        "post_id": event.post_id,
        "comment_id": event.comment_id,
        "member_activity_type": event.activity_type.value,
        "message_key": event.message_key,
        "created_at": event.created_at,
        "updated_at": event.updated_at,
    }
    if event.following_id is not None:
        doc["following_id"] = event.following_id
    if event.traceparent is not None:  # the request that caused it (W3C trace context), for following it up
        doc["traceparent"] = event.traceparent
    return doc


class ActivityRepository:
    def __init__(self, db: Database):
        self.collection = db[MEMBER_ACTIVITIES]

    # Recording is insert-if-absent, keyed by the unique index on message_key: a duplicate delivery is refused by
    # the index and leaves exactly one document, untouched, like an upsert with $setOnInsert. Inserts are used
    # rather than upserts because FerretDB v1 runs an upsert as a scan of the collection (it only pushes _id
    # down), so upserts slowed with every stored activity, while unordered inserts stay flat (bench/).

    def insert_if_absent(self, event: ActivityEvent) -> dict[str, Any] | None:
        """Store the activity unless its message key is already stored; the stored document when this call
        stored it, None when the key was there already."""
        doc = activity_document(event)
        try:
            self.collection.insert_one(doc)  # sets doc["_id"]
        except DuplicateKeyError:
            return None
        return doc

    def insert_all_if_absent(self, events: Iterable[ActivityEvent]) -> int:
        """One unordered bulk insert; returns how many were new. Keys already stored are skipped, not errors."""
        docs = [activity_document(e) for e in events]
        if not docs:
            return 0
        try:
            return len(self.collection.insert_many(docs, ordered=False).inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if all(err.get("code") == 11000 for err in errors):
                return int(exc.details.get("nInserted", 0))
            raise

    def find_by_key(self, key: str) -> dict[str, Any] | None:
        return self.collection.find_one({"message_key": key})

    def newest_of_member(
        self, member_id: int, activity_type: ActivityType | None, skip: int, limit: int
    ) -> list[dict[str, Any]]:
        """One member's activities (of one type, if given), newest first."""
        return self._newest({"member_id": member_id}, activity_type, skip, limit)

    def newest_of_members(
        self, member_ids: list[int], activity_type: ActivityType | None, skip: int, limit: int
    ) -> list[dict[str, Any]]:
        """The activities of any of these members (of one type, if given), newest first."""
        return self._newest({"member_id": {"$in": member_ids}}, activity_type, skip, limit)

    def _newest(
        self, query: dict[str, Any], activity_type: ActivityType | None, skip: int, limit: int
    ) -> list[dict[str, Any]]:
        if activity_type is not None:
            query["member_activity_type"] = activity_type.value
        cursor = self.collection.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        return list(cursor.skip(skip).limit(limit))


class FollowRepository:
    def __init__(self, db: Database):
        self.collection = db[FOLLOWS]

    def add(self, follower_id: int, following_id: int) -> bool:
        try:
            self.collection.insert_one(
                {"follower_id": follower_id, "following_id": following_id, "created_at": utcnow()}
            )
        except DuplicateKeyError:
            return False
        return True

    def remove(self, follower_id: int, following_id: int) -> bool:
        result = self.collection.delete_one({"follower_id": follower_id, "following_id": following_id})
        return result.deleted_count == 1

    def count_followings(self, follower_id: int) -> int:
        return self.collection.count_documents({"follower_id": follower_id})

    def followings(self, follower_id: int) -> list[int]:
        return [
            doc["following_id"]
            for doc in self.collection.find({"follower_id": follower_id}, {"following_id": 1, "_id": 0})
        ]
