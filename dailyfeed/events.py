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
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from .types import MAX_ID, MAX_YEAR, MIN_YEAR, BadJson, Id, Timestamp, describe, load_json, text

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


class Service(str, Enum):
    """The content services of the original: each publishes its events by the transport its setting names."""

    POST = "post-service"  # posts and post likes
    COMMENT = "comment-service"  # comments, replies and comment likes

    def __str__(self) -> str:  # as written in settings and messages
        return self.value


class PublishType(str, Enum):
    """How a service publishes (setting publish-type.{service}); also the kind of a transport."""

    KAFKA = "kafka"
    FEIGN = "feign"

    def __str__(self) -> str:
        return self.value


class InvalidEvent(ValueError):
    """A record or request that cannot be turned into an ActivityEvent."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(at: datetime | None) -> datetime | None:
    """Datetimes as UTC-aware (mongomock returns naive UTC ones)."""
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=timezone.utc)


def message_key(activity_type: ActivityType, target_id: int, member_id: int, at: datetime) -> str:
    """`member_activity:kafka_event:{CODE}###{id}###{memberId}###{yyyy-MM-dd HH:mm:ss.nnnnnnnnn}` (UTC)."""
    at = at.astimezone(timezone.utc)
    stamp = at.strftime("%Y-%m-%d %H:%M:%S") + f".{at.microsecond * 1000:09d}"
    return f"{KEY_PREFIX}{activity_type.code}###{target_id}###{member_id}###{stamp}"


def key_pattern() -> str:
    """The regular expression every key from message_key() matches (documented in /asyncapi.json)."""
    codes = "|".join(sorted({t.code for t in ActivityType}))
    number = r"[1-9][0-9]{0,18}"
    return (
        f"^{re.escape(KEY_PREFIX)}({codes})###{number}###{number}###"
        r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}$"
    )


def topic_name(at: datetime, prefix: str, tz: str) -> str:
    """The date topic of an action: `{prefix}{yyyyMMdd}` of its day in the configured timezone."""
    return f"{prefix}{at.astimezone(ZoneInfo(tz)).strftime('%Y%m%d')}"


def topic_day(topic: str, prefix: str) -> date | None:
    """The day a date topic stands for, or None when the name is not a date topic."""
    if not topic.startswith(prefix):
        return None
    try:
        return datetime.strptime(topic[len(prefix) :], "%Y%m%d").date()
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
    # The W3C trace context of the request that caused the action (dailyfeed.telemetry.tracing): it travels beside the
    # event (record headers, feign headers, dead letters), never in the event JSON, and is no part of its identity.
    traceparent: str | None = field(default=None, compare=False)

    @classmethod
    def new(
        cls,
        activity_type: ActivityType,
        member_id: int,
        *,
        post_id: int | None = None,
        comment_id: int | None = None,
        following_id: int | None = None,
        at: datetime | None = None,
    ) -> "ActivityEvent":
        """A new action: its key is generated here, once, and travels with it from then on."""
        at = at or utcnow()
        target = _target_id(activity_type, post_id, comment_id, following_id)
        return cls(
            member_id=member_id,
            activity_type=activity_type,
            post_id=post_id,
            comment_id=comment_id,
            created_at=at,
            following_id=following_id,
            message_key=message_key(activity_type, target, member_id, at),
        )

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
    def from_json(cls, body: Any, key: str | None = None, traceparent: str | None = None) -> "ActivityEvent":
        """Parse the event JSON (EventValue: ours or the Java original's, with Jackson date arrays and missing
        optional fields). The message key comes from the record key; without one (an old record) it is derived
        from the event. `traceparent` is the trace context that travelled beside it (a record header)."""
        fields = _common_event_fields(body)
        if fields is None:  # anything but the common well-formed event: the model decides and names the problem
            value = _validate(EventValue, body, "event")
            fields = (
                value.memberActivityType,
                value.memberId,
                value.postId,
                value.commentId,
                value.followingId,
                value.createdAt,
                value.updatedAt,
            )
        if key is not None and not isinstance(key, str):
            raise InvalidEvent("message key must be a string")
        activity_type, member_id, post_id, comment_id, following_id, created_at, updated_at = fields
        created_at = created_at or (key and key_timestamp(key)) or _no_time()
        return cls._of(
            activity_type, member_id, post_id, comment_id, following_id, created_at, updated_at, key, traceparent
        )

    @classmethod
    def _of(
        cls,
        activity_type: ActivityType,
        member_id: int,
        post_id: int | None,
        comment_id: int | None,
        following_id: int | None,
        created_at: datetime,
        updated_at: datetime | None,
        key: str | None,
        traceparent: str | None = None,
    ) -> "ActivityEvent":
        target = _target_id(activity_type, post_id, comment_id, following_id)
        return cls(
            member_id=member_id,
            activity_type=activity_type,
            post_id=post_id,
            comment_id=comment_id,
            created_at=created_at,
            updated_at=updated_at,
            following_id=following_id,
            message_key=key or message_key(activity_type, target, member_id, created_at),
            traceparent=traceparent,
        )

    @classmethod
    def from_bytes(
        cls, value: bytes | str | None, key: bytes | str | None = None, traceparent: str | None = None
    ) -> "ActivityEvent":
        """The event of a Kafka record: its value, its key and the trace context of its headers."""
        if value is None:
            raise InvalidEvent("record has no value")
        try:
            body = load_json(value)
        except BadJson as exc:
            raise InvalidEvent(f"record value is not JSON: {exc}") from None
        if isinstance(key, bytes):
            try:
                key = key.decode()
            except UnicodeDecodeError:
                raise InvalidEvent("record key is not UTF-8") from None
        return cls.from_json(body, key or None, traceparent)

    def with_key(self, key: str) -> "ActivityEvent":
        return replace(self, message_key=key)

    def with_traceparent(self, traceparent: str | None) -> "ActivityEvent":
        return replace(self, traceparent=traceparent)


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


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def key_timestamp(key: str) -> datetime | None:
    """The action's time carried at the end of a message key, if it has one."""
    stamp = key.rpartition("###")[2]
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\.(\d{1,9})", stamp)
    if not match:
        return None
    base = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    nanos = int(match.group(2).ljust(9, "0"))
    at = base + timedelta(microseconds=nanos // 1000)
    return at if MIN_YEAR <= at.year <= MAX_YEAR else None


def publishing_service(category: Category) -> Service | None:
    """Which content service publishes events of a category (and so which publish-type setting applies)."""
    if category in (Category.POST, Category.POST_LIKE):
        return Service.POST
    if category in (Category.COMMENT, Category.COMMENT_LIKE):
        return Service.COMMENT
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
    return {
        "memberId": event.member_id,
        "postId": event.post_id,
        "commentId": event.comment_id,
        "activityType": event.activity_type.value,
        "messageKey": event.message_key,
        "createdAt": _iso(event.created_at),
    }


def event_from_record_request(body: Any, category: Category, received_at: datetime | None = None) -> ActivityEvent:
    """Parse a record call for the endpoint of `category`; the type must belong to that endpoint.

    The original's feign bodies carry no messageKey: the key is then built here as the original builds it, from
    the type's code, the target, the member and `received_at` (the time of receipt), which is also the action's
    time unless the body gives createdAt. A retried keyless call is therefore a second activity, as it was in the
    original; our own transport always sends the key."""
    value = _validate(RecordBody, body, "request body")  # a RecordBody already validated is taken as it is
    key = value.messageKey
    created_at = value.createdAt
    if key is None:
        received_at = received_at or utcnow()
        created_at = created_at or received_at
        target = _target_id(value.activityType, value.postId, value.commentId, None)
        key = message_key(value.activityType, target, value.memberId, received_at)
    event = ActivityEvent._of(
        value.activityType,
        value.memberId,
        value.postId,
        value.commentId,
        None,
        created_at or key_timestamp(key) or _no_time(),
        None,
        key,
    )
    if event.category is not category:
        raise InvalidEvent(
            f"activityType {event.activity_type.value} does not belong to the {RECORD_PATHS[category]} endpoint"
        )
    return event


def _no_time() -> datetime:
    raise InvalidEvent("createdAt is missing and the message key carries no timestamp")


# --- the models: one for the Kafka record value, one for the record call ----------------------------------------
# They are what parses (ActivityEvent.from_json, event_from_record_request) and what the documents describe
# (/asyncapi.json from EventValue, /openapi.json from RecordBody), so the two cannot drift apart.


def _activity_type(value: Any) -> Any:
    if isinstance(value, ActivityType):
        return value
    if isinstance(value, str) and value.upper() in ActivityType.__members__:
        return ActivityType[value.upper()]
    raise PydanticCustomError(
        "activity_type",
        "must be one of {names} ({value} is an unknown activity type)",
        {"value": repr(value)[:60], "names": ", ".join(t.value for t in ActivityType)},
    )


#: An activity type by name, in any letter case.
def _any_case(name: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in name)


class _ActivityTypeSchema:
    """The JSON Schema of an activity type read in any case, made when a document asks for it (not at import)."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "type": "string",
            "description": "the activity type, read in any letter case",
            "anyOf": [
                {"enum": [t.value for t in ActivityType]},
                {"pattern": "^(" + "|".join(_any_case(t.value) for t in ActivityType) + ")$"},
            ],
        }


ActivityTypeName = Annotated[ActivityType, BeforeValidator(_activity_type), _ActivityTypeSchema()]
MessageKey = text(MAX_KEY_CHARS, blank=False)


class EventValue(BaseModel):
    """The Kafka record value of a member activity (camelCase JSON, SPEC section 4). Producers write ISO-8601
    times; the Java original wrote Jackson date arrays and may leave optional fields out. Unknown fields are
    ignored."""

    model_config = ConfigDict(extra="ignore", title="MemberActivityEvent")

    memberId: Id = Field(description="the member who acted (the liker, the commenter, the follower)")
    postId: Id | None = Field(None, description="the post (post, post-like, comment and comment-like events)")
    commentId: Id | None = Field(None, description="the comment (comment and comment-like events)")
    followingId: Id | None = Field(None, description="the member followed or unfollowed (MEMBER events)")
    memberActivityType: ActivityTypeName
    createdAt: Timestamp | None = Field(
        None, description="the action's time; when missing, the time at the end of the record key"
    )
    updatedAt: Timestamp | None = None


class RecordBody(BaseModel):
    """A record call (the feign transport's body): ours carries messageKey and createdAt; the original's carries
    neither, and the key is then built from the time of receipt."""

    model_config = ConfigDict(extra="ignore", title="RecordRequest")

    memberId: Id = Field(description="the member who acted")
    postId: Id | None = None
    commentId: Id | None = Field(None, description="required for comment and comment-like types")
    activityType: ActivityTypeName
    messageKey: MessageKey | None = Field(
        None,
        description="the action's key (the Kafka key of /asyncapi.json); built from the time of receipt when missing",
    )
    createdAt: Timestamp | None = None


# The listener parses every record: the event our own producers write (to_json) is read on a fast path that takes
# exactly that shape and gives what EventValue gives for it; anything else (the Java original's date arrays and
# missing fields, other letter cases, every refusal) goes through EventValue, so nothing is accepted that it refuses.
_TYPES_BY_VALUE = {t.value: t for t in ActivityType}
_COMMON_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def _common_event_fields(body: Any) -> tuple | None:
    """(type, memberId, postId, commentId, followingId, createdAt, updatedAt) of an event in to_json's own form, or
    None when it is not in that form (which says nothing about whether it is valid)."""
    if type(body) is not dict:
        return None
    ids = (body.get("memberId"), body.get("postId"), body.get("commentId"), body.get("followingId"))
    for position, value in enumerate(ids):  # exact ints (not bools, floats or strings) in 1 … 2^63-1
        if (value is not None or position == 0) and (type(value) is not int or not 1 <= value <= MAX_ID):
            return None
    name, created, updated = body.get("memberActivityType"), body.get("createdAt"), body.get("updatedAt")
    if type(name) is not str or name not in _TYPES_BY_VALUE:
        return None
    created_at = _common_time(created)
    updated_at = None if updated is None else _common_time(updated)
    if created_at is None or (updated is not None and updated_at is None):
        return None
    return (_TYPES_BY_VALUE[name], *ids, created_at, updated_at)


def _common_time(value: Any) -> datetime | None:
    """A time as _iso writes it (`2026-11-22T10:20:30.123456Z`) within the years allowed, or None."""
    if type(value) is not str or not _COMMON_TIME.fullmatch(value):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:  # e.g. month 13: EventValue says so
        return None
    return at if at.year >= MIN_YEAR else None


def _validate(model: type[BaseModel], body: Any, what: str) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidEvent(describe(exc, what)) from None
