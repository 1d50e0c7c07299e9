"""The shared language of dailyfeed: activity types, events, message keys and topic names.

Everything that names an activity on the wire is built here, once: the event JSON (SPEC section 4), the
message key that identifies an action everywhere (Kafka key, dead-letter key, upsert key) and the date topic.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Any, Mapping
from zoneinfo import ZoneInfo

KEY_PREFIX = "member_activity:kafka_event:"
TOPIC_PATTERN = r"^member-activity-\d{8}$"


class Category(str, Enum):
    POST = "POST"
    COMMENT = "COMMENT"
    POST_LIKE = "POST_LIKE"
    COMMENT_LIKE = "COMMENT_LIKE"
    MEMBER = "MEMBER"


class ActivityType(str, Enum):
    POST_CREATE = "POST_CREATE"
    POST_UPDATE = "POST_UPDATE"
    POST_DELETE = "POST_DELETE"
    POST_READ = "POST_READ"
    COMMENT_CREATE = "COMMENT_CREATE"
    COMMENT_UPDATE = "COMMENT_UPDATE"
    COMMENT_DELETE = "COMMENT_DELETE"
    COMMENT_READ = "COMMENT_READ"
    LIKE_POST = "LIKE_POST"
    LIKE_POST_CANCEL = "LIKE_POST_CANCEL"
    LIKE_COMMENT = "LIKE_COMMENT"
    LIKE_COMMENT_CANCEL = "LIKE_COMMENT_CANCEL"
    MEMBER_FOLLOW = "MEMBER_FOLLOW"
    MEMBER_UNFOLLOW = "MEMBER_UNFOLLOW"

    @property
    def category(self) -> Category:
        return _CATEGORIES[self]

    @property
    def code(self) -> str:
        """The code used in message keys; one differs from its name, kept from the original."""
        return "LIKE_CANCEL_POST" if self is ActivityType.LIKE_POST_CANCEL else self.value

    @classmethod
    def parse(cls, value: Any) -> "ActivityType":
        try:
            return cls(str(value).upper())
        except ValueError:
            raise InvalidEvent(f"unknown activity type {value!r}") from None


_CATEGORIES = {
    ActivityType.POST_CREATE: Category.POST,
    ActivityType.POST_UPDATE: Category.POST,
    ActivityType.POST_DELETE: Category.POST,
    ActivityType.POST_READ: Category.POST,
    ActivityType.COMMENT_CREATE: Category.COMMENT,
    ActivityType.COMMENT_UPDATE: Category.COMMENT,
    ActivityType.COMMENT_DELETE: Category.COMMENT,
    ActivityType.COMMENT_READ: Category.COMMENT,
    ActivityType.LIKE_POST: Category.POST_LIKE,
    ActivityType.LIKE_POST_CANCEL: Category.POST_LIKE,
    ActivityType.LIKE_COMMENT: Category.COMMENT_LIKE,
    ActivityType.LIKE_COMMENT_CANCEL: Category.COMMENT_LIKE,
    ActivityType.MEMBER_FOLLOW: Category.MEMBER,
    ActivityType.MEMBER_UNFOLLOW: Category.MEMBER,
}


class InvalidEvent(ValueError):
    """A record or request that cannot be turned into an ActivityEvent."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def message_key(activity_type: ActivityType, target_id: int, member_id: int, at: datetime) -> str:
    """`member_activity:kafka_event:{CODE}###{id}###{memberId}###{yyyy-MM-dd HH:mm:ss.nnnnnnnnn}` (UTC)."""
    at = at.astimezone(timezone.utc)
    stamp = at.strftime("%Y-%m-%d %H:%M:%S") + f".{at.microsecond * 1000:09d}"
    return f"{KEY_PREFIX}{activity_type.code}###{target_id}###{member_id}###{stamp}"


def topic_name(at: datetime, prefix: str, tz: str) -> str:
    """The date topic of an action: `{prefix}{yyyyMMdd}` of its day in the configured timezone."""
    return f"{prefix}{at.astimezone(ZoneInfo(tz)).strftime('%Y%m%d')}"


def topic_day(topic: str, prefix: str) -> date | None:
    """The day a date topic stands for, or None when the name is not a date topic."""
    if not topic.startswith(prefix):
        return None
    try:
        return datetime.strptime(topic[len(prefix):], "%Y%m%d").date()
    except ValueError:
        return None


@dataclass(frozen=True)
class ActivityEvent:
    """One member action. `member_id` is always the member who acted."""

    member_id: int
    activity_type: ActivityType
    post_id: int | None
    comment_id: int | None
    created_at: datetime
    message_key: str
    updated_at: datetime | None = None
    following_id: int | None = field(default=None)  # MEMBER events only: the member followed/unfollowed

    @classmethod
    def new(cls, activity_type: ActivityType, member_id: int, *, post_id: int | None = None,
            comment_id: int | None = None, following_id: int | None = None,
            at: datetime | None = None) -> "ActivityEvent":
        """A new action: its key is generated here, once, and travels with it from then on."""
        at = at or utcnow()
        target = _target_id(activity_type, post_id, comment_id, following_id)
        return cls(member_id=member_id, activity_type=activity_type, post_id=post_id,
                   comment_id=comment_id, created_at=at, following_id=following_id,
                   message_key=message_key(activity_type, target, member_id, at))

    @property
    def category(self) -> Category:
        return self.activity_type.category

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "memberId": self.member_id,
            "postId": self.post_id,
            "commentId": self.comment_id,
            "memberActivityType": self.activity_type.value,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at) if self.updated_at else None,
        }
        if self.following_id is not None:
            body["followingId"] = self.following_id
        return body

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, body: Any, key: str | None = None) -> "ActivityEvent":
        """Parse the event JSON, ours or the Java original's (Jackson date arrays, missing optional fields).

        The message key comes from the record key; without one (an old record) it is derived from the event.
        """
        if not isinstance(body, Mapping):
            raise InvalidEvent("event must be a JSON object")
        activity_type = ActivityType.parse(_required(body, "memberActivityType"))
        member_id = _long(_required(body, "memberId"), "memberId")
        post_id = _optional_long(body.get("postId"), "postId")
        comment_id = _optional_long(body.get("commentId"), "commentId")
        following_id = _optional_long(body.get("followingId"), "followingId")
        created_at = parse_datetime(body.get("createdAt")) if body.get("createdAt") is not None else None
        updated_at = parse_datetime(body.get("updatedAt")) if body.get("updatedAt") is not None else None
        if key is not None and not isinstance(key, str):
            raise InvalidEvent("message key must be a string")
        if key and created_at is None:
            created_at = key_timestamp(key)
        if created_at is None:
            raise InvalidEvent("createdAt is missing and the message key carries no timestamp")
        target = _target_id(activity_type, post_id, comment_id, following_id)
        return cls(member_id=member_id, activity_type=activity_type, post_id=post_id, comment_id=comment_id,
                   created_at=created_at, updated_at=updated_at, following_id=following_id,
                   message_key=key or message_key(activity_type, target, member_id, created_at))

    @classmethod
    def from_bytes(cls, value: bytes | str | None, key: bytes | str | None = None) -> "ActivityEvent":
        if value is None:
            raise InvalidEvent("record has no value")
        try:
            body = json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEvent(f"record value is not JSON: {exc}") from None
        if isinstance(key, bytes):
            try:
                key = key.decode()
            except UnicodeDecodeError:
                raise InvalidEvent("record key is not UTF-8") from None
        return cls.from_json(body, key or None)

    def with_key(self, key: str) -> "ActivityEvent":
        return replace(self, message_key=key)


def _target_id(activity_type: ActivityType, post_id, comment_id, following_id) -> int:
    category = activity_type.category
    if category in (Category.POST, Category.POST_LIKE):
        target, name = post_id, "postId"
    elif category in (Category.COMMENT, Category.COMMENT_LIKE):
        target, name = comment_id, "commentId"
    else:
        target, name = following_id, "followingId"
    if target is None:
        raise InvalidEvent(f"{name} is required for {activity_type.value}")
    return target


def _required(body: Mapping, name: str) -> Any:
    if body.get(name) is None:
        raise InvalidEvent(f"{name} is required")
    return body[name]


def _long(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):  # not isdigit(): "--7" and "²" pass it
            value = int(value)
        else:
            raise InvalidEvent(f"{name} must be an integer")
    if not -(2**63) <= value < 2**63:
        raise InvalidEvent(f"{name} does not fit a long")
    return value


def _optional_long(value: Any, name: str) -> int | None:
    return None if value is None else _long(value, name)


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_datetime(value: Any) -> datetime:
    """ISO-8601 strings (ours) or Jackson arrays `[y, M, d, H, m, s, nanos]` (the original's LocalDateTime,
    taken as UTC). Naive ISO strings are taken as UTC too."""
    if isinstance(value, (list, tuple)):
        if not 3 <= len(value) <= 7 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise InvalidEvent(f"date array {value!r} is not [year, month, day, hour, minute, second, nanos]")
        parts = list(value) + [0] * (7 - len(value))
        try:
            return datetime(*parts[:6], parts[6] // 1000, tzinfo=timezone.utc)
        except ValueError as exc:
            raise InvalidEvent(f"date array {value!r}: {exc}") from None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        # Python 3.11 accepts at most 6 fractional digits; Java writes 9.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidEvent(f"date {value!r} is not ISO-8601") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise InvalidEvent(f"date {value!r} is neither an ISO-8601 string nor a date array")


def key_timestamp(key: str) -> datetime | None:
    """The action's time carried at the end of a message key, if it has one."""
    stamp = key.rsplit("###", 1)[-1]
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\.(\d{1,9})", stamp)
    if not match:
        return None
    base = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    nanos = int(match.group(2).ljust(9, "0"))
    return base + timedelta(microseconds=nanos // 1000)


def publishing_service(category: Category) -> str | None:
    """Which content service publishes events of a category (and so which publish-type setting applies)."""
    if category in (Category.POST, Category.POST_LIKE):
        return "post-service"
    if category in (Category.COMMENT, Category.COMMENT_LIKE):
        return "comment-service"
    return None


# --- the feign (HTTP) record call: the original's paths and body -------------------------------------------------

RECORD_PATHS = {
    Category.POST: "posts",
    Category.COMMENT: "comments",
    Category.POST_LIKE: "posts/likes",
    Category.COMMENT_LIKE: "comments/likes",
}
MAX_KEY_CHARS = 512


def record_request_body(event: ActivityEvent) -> dict[str, Any]:
    """`{memberId, postId, commentId?, activityType, messageKey}` plus the action's time."""
    return {"memberId": event.member_id, "postId": event.post_id, "commentId": event.comment_id,
            "activityType": event.activity_type.value, "messageKey": event.message_key,
            "createdAt": _iso(event.created_at)}


def event_from_record_request(body: Any, category: Category) -> ActivityEvent:
    """Parse a record call for the endpoint of `category`; the type must belong to that endpoint."""
    if not isinstance(body, Mapping):
        raise InvalidEvent("request body must be a JSON object")
    key = body.get("messageKey")
    if not isinstance(key, str) or not key.strip():
        raise InvalidEvent("messageKey is required")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidEvent(f"messageKey must be at most {MAX_KEY_CHARS} characters")
    fields = {"memberId": body.get("memberId"), "postId": body.get("postId"), "commentId": body.get("commentId"),
              "memberActivityType": body.get("activityType"), "createdAt": body.get("createdAt")}
    event = ActivityEvent.from_json({k: v for k, v in fields.items() if v is not None}, key)
    if event.category is not category:
        raise InvalidEvent(f"activityType {event.activity_type.value} does not belong to the "
                           f"{RECORD_PATHS[category]} endpoint")
    return event
