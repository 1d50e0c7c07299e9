"""The activity log: recording activities (once per message key) and reading them back."""

from __future__ import annotations

import logging
from typing import Any, Iterable

from ..errors import ActivityNotRecorded, AlreadyFollowing, InvalidInput, NotFound
from ..events import ActivityEvent, ActivityType
from ..telemetry import tracing
from ..web import json_time
from .repository import ActivityRepository, FollowRepository

log = logging.getLogger(__name__)

MAX_FOLLOWINGS = 999


class ActivityService:
    def __init__(self, activities: ActivityRepository, follows: FollowRepository):
        self.activities = activities
        self.follows = follows

    # --- recording --------------------------------------------------------------------------------------------

    def record_activity(self, event: ActivityEvent) -> tuple[bool, dict[str, Any]]:
        """Store one activity: (True, it) on first record, (False, the one stored before) for a known key.

        The first record answers from the document it inserted: reading it back by key would scan the
        collection on FerretDB v1."""
        doc = self.activities.insert_if_absent(event)
        if doc is not None:
            return True, activity_json(doc)
        return False, self.activity_by_key(event.message_key)

    def record_activities(self, events: Iterable[ActivityEvent]) -> int:
        """Store a batch with one bulk write; returns how many were new."""
        return self.activities.insert_all_if_absent(events)

    def activity_by_key(self, key: str) -> dict[str, Any] | None:
        doc = self.activities.find_by_key(key)
        return activity_json(doc) if doc else None

    # --- follows ----------------------------------------------------------------------------------------------

    def follow(self, follower_id: int, following_id: int) -> None:
        if follower_id == following_id:
            raise InvalidInput("a member cannot follow themselves")
        if not self.follows.add(follower_id, following_id):
            raise AlreadyFollowing(f"member {follower_id} already follows member {following_id}")
        # Checked after the insert so that concurrent follows can never pass the limit together.
        if self.follows.count_followings(follower_id) > MAX_FOLLOWINGS:
            self.follows.remove(follower_id, following_id)
            raise InvalidInput(f"a member can follow at most {MAX_FOLLOWINGS} members")
        self._record_or_undo(
            ActivityEvent.new(ActivityType.MEMBER_FOLLOW, follower_id, following_id=following_id),
            undo=lambda: self.follows.remove(follower_id, following_id),
        )

    def unfollow(self, follower_id: int, following_id: int) -> None:
        if not self.follows.remove(follower_id, following_id):
            raise NotFound(f"member {follower_id} does not follow member {following_id}")
        self._record_or_undo(
            ActivityEvent.new(ActivityType.MEMBER_UNFOLLOW, follower_id, following_id=following_id),
            undo=lambda: self.follows.add(follower_id, following_id),
        )

    def _record_or_undo(self, event: ActivityEvent, undo) -> None:
        # Follows are the activity module's own data: their activity is recorded here, not sent by a transport
        # (with the trace of the request, like every other activity).
        try:
            self.record_activity(tracing.stamp(event))
        except Exception as exc:
            log.error("could not record %s (%s); undoing the follow change", event.message_key, exc)
            undo()
            raise ActivityNotRecorded("the activity could not be recorded; the change was undone, try again") from exc

    # --- queries ----------------------------------------------------------------------------------------------

    def followings_feed(self, member_id: int, page: int, size: int, activity_type: str | None) -> list[dict]:
        wanted = _activity_type(activity_type)
        followings = self.follows.followings(member_id)
        if not followings:
            return []
        return _json(self.activities.newest_of_members(followings, wanted, page * size, size + 1))

    def member_activities(self, member_id: int, page: int, size: int, activity_type: str | None) -> list[dict]:
        return _json(self.activities.newest_of_member(member_id, _activity_type(activity_type), page * size, size + 1))


def _activity_type(raw: str | None) -> ActivityType | None:
    if not raw:
        return None
    try:
        return ActivityType(raw.upper())
    except ValueError:
        raise InvalidInput(f"type must be one of {', '.join(t.value for t in ActivityType)}") from None


def _json(docs: list[dict[str, Any]]) -> list[dict]:
    return [activity_json(doc) for doc in docs]


def activity_json(doc: dict[str, Any]) -> dict[str, Any]:
    body = {
        "id": str(doc["_id"]),
        "memberId": doc["member_id"],
        "postId": doc.get("post_id"),
        "commentId": doc.get("comment_id"),
        "memberActivityType": doc["member_activity_type"],
        "category": ActivityType(doc["member_activity_type"]).category.value,
        "messageKey": doc["message_key"],
        "createdAt": json_time(doc.get("created_at")),
        "updatedAt": json_time(doc.get("updated_at")),
    }
    if doc.get("following_id") is not None:
        body["followingId"] = doc["following_id"]
    return body
