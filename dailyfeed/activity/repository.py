"""Storage of the activity log and the follow graph. Only the activity module uses it."""
from __future__ import annotations

from typing import Any, Iterable

from pymongo import DESCENDING, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ..events import ActivityEvent, utcnow
from ..store import FOLLOWS, MEMBER_ACTIVITIES, set_on_insert


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
    return doc


class ActivityRepository:
    def __init__(self, db: Database):
        self.collection = db[MEMBER_ACTIVITIES]

    def upsert(self, event: ActivityEvent) -> bool:
        """Store the activity unless its message key is already stored; True when this call stored it."""
        try:
            result = self.collection.update_one({"message_key": event.message_key},
                                                set_on_insert(activity_document(event)), upsert=True)
        except DuplicateKeyError:  # a concurrent upsert of the same key won the race
            return False
        return result.upserted_id is not None

    def upsert_many(self, events: Iterable[ActivityEvent]) -> int:
        """One bulk upsert keyed on message_key; returns how many were new. Duplicates leave one document."""
        events = list(events)
        if type(self.collection).__module__.startswith("mongomock"):
            # mongomock 4.3's bulk_write rejects the `sort` that pymongo >= 4.11 passes with every UpdateOne.
            return sum(self.upsert(event) for event in events)
        ops = [UpdateOne({"message_key": e.message_key}, set_on_insert(activity_document(e)), upsert=True)
               for e in events]
        if not ops:
            return 0
        try:
            return self.collection.bulk_write(ops, ordered=False).upserted_count
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if errors and all(err.get("code") == 11000 for err in errors):
                # Racing upserts of keys someone else stored meanwhile: those are already recorded.
                return int(exc.details.get("nUpserted", 0))
            raise

    def find_by_key(self, key: str) -> dict[str, Any] | None:
        return self.collection.find_one({"message_key": key})

    def find(self, query: dict[str, Any], skip: int, limit: int) -> list[dict[str, Any]]:
        cursor = self.collection.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        return list(cursor.skip(skip).limit(limit))

    def count(self, query: dict[str, Any]) -> int:
        return self.collection.count_documents(query)


class FollowRepository:
    def __init__(self, db: Database):
        self.collection = db[FOLLOWS]

    def add(self, follower_id: int, following_id: int) -> bool:
        try:
            self.collection.insert_one({"follower_id": follower_id, "following_id": following_id,
                                        "created_at": utcnow()})
        except DuplicateKeyError:
            return False
        return True

    def remove(self, follower_id: int, following_id: int) -> bool:
        result = self.collection.delete_one({"follower_id": follower_id, "following_id": following_id})
        return result.deleted_count == 1

    def count_followings(self, follower_id: int) -> int:
        return self.collection.count_documents({"follower_id": follower_id})

    def followings(self, follower_id: int) -> list[int]:
        return [doc["following_id"] for doc in
                self.collection.find({"follower_id": follower_id}, {"following_id": 1, "_id": 0})]
