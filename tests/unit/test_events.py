"""The wire formats of SPEC section 4: message keys, event JSON, topics, and the Java original's records."""
from datetime import datetime, timezone

import pytest

from dailyfeed.events import (
    ActivityEvent,
    ActivityType,
    Category,
    InvalidEvent,
    event_from_record_request,
    key_timestamp,
    message_key,
    record_request_body,
    topic_day,
    topic_name,
)

AT = datetime(2026, 11, 22, 10, 20, 30, 123456, tzinfo=timezone.utc)


def test_message_key_has_code_target_member_and_nanosecond_timestamp():
    key = message_key(ActivityType.LIKE_POST, 12, 7, AT)
    assert key == "member_activity:kafka_event:LIKE_POST###12###7###2026-11-22 10:20:30.123456000"


def test_like_post_cancel_keeps_the_original_code():
    assert ActivityType.LIKE_POST_CANCEL.code == "LIKE_CANCEL_POST"
    assert message_key(ActivityType.LIKE_POST_CANCEL, 12, 7, AT).startswith(
        "member_activity:kafka_event:LIKE_CANCEL_POST###12###7###")
    assert all(t.code == t.value for t in ActivityType if t is not ActivityType.LIKE_POST_CANCEL)


def test_comment_events_are_keyed_by_comment_and_post_events_by_post():
    comment = ActivityEvent.new(ActivityType.LIKE_COMMENT, 7, post_id=12, comment_id=40, at=AT)
    post = ActivityEvent.new(ActivityType.LIKE_POST, 7, post_id=12, at=AT)
    assert "###40###7###" in comment.message_key
    assert "###12###7###" in post.message_key


def test_like_unlike_like_yields_three_distinct_keys():
    times = [AT.replace(microsecond=m) for m in (1, 2, 3)]
    keys = {ActivityEvent.new(t, 7, post_id=12, at=at).message_key
            for t, at in zip([ActivityType.LIKE_POST, ActivityType.LIKE_POST_CANCEL, ActivityType.LIKE_POST], times)}
    assert len(keys) == 3


def test_event_json_is_camel_case_with_iso_dates():
    event = ActivityEvent.new(ActivityType.LIKE_POST, 7, post_id=12, at=AT)
    assert event.to_json() == {"memberId": 7, "postId": 12, "commentId": None, "memberActivityType": "LIKE_POST",
                               "createdAt": "2026-11-22T10:20:30.123456Z", "updatedAt": None}


def test_event_round_trips_through_bytes_with_its_key():
    event = ActivityEvent.new(ActivityType.COMMENT_CREATE, 7, post_id=12, comment_id=3, at=AT)
    assert ActivityEvent.from_bytes(event.to_bytes(), event.message_key.encode()) == event


def test_java_original_record_with_jackson_date_array_and_missing_fields():
    value = b'{"memberId":7,"postId":12,"memberActivityType":"POST_CREATE","createdAt":[2025,11,27,10,20,30,123456000]}'
    event = ActivityEvent.from_bytes(value, b"member_activity:kafka_event:POST_CREATE###12###7")
    assert event.created_at == datetime(2025, 11, 27, 10, 20, 30, 123456, tzinfo=timezone.utc)
    assert event.comment_id is None and event.updated_at is None
    assert event.message_key == "member_activity:kafka_event:POST_CREATE###12###7"


def test_record_without_key_gets_the_key_the_producer_would_have_made():
    value = b'{"memberId":7,"postId":12,"memberActivityType":"POST_CREATE","createdAt":"2026-11-22T10:20:30.123456Z"}'
    assert ActivityEvent.from_bytes(value).message_key == message_key(ActivityType.POST_CREATE, 12, 7, AT)


@pytest.mark.parametrize("value, problem", [
    (b"not json", "not JSON"),
    (b'{"memberId":7,"postId":1,"memberActivityType":"NOPE","createdAt":"2026-01-01T00:00:00Z"}',
     "unknown activity type"),
    (b'{"postId":1,"memberActivityType":"POST_CREATE","createdAt":"2026-01-01T00:00:00Z"}', "memberId is required"),
    (b'{"memberId":7,"memberActivityType":"POST_CREATE","createdAt":"2026-01-01T00:00:00Z"}', "postId is required"),
    (b'{"memberId":"x","postId":1,"memberActivityType":"POST_CREATE","createdAt":"2026-01-01T00:00:00Z"}', "integer"),
    (b'{"memberId":7,"postId":1,"memberActivityType":"POST_CREATE","createdAt":[2026,13,1]}', "date array"),
    (b'[1,2]', "JSON object"),
])
def test_poison_records_are_rejected_with_the_reason(value, problem):
    with pytest.raises(InvalidEvent, match=problem):
        ActivityEvent.from_bytes(value, b"k")


def test_key_timestamp_is_read_back_from_the_key():
    assert key_timestamp(message_key(ActivityType.POST_CREATE, 1, 2, AT)) == AT
    assert key_timestamp("member_activity:kafka_event:POST_CREATE###1###2") is None


def test_topic_is_the_action_day_in_the_configured_timezone():
    late = datetime(2026, 11, 22, 23, 30, tzinfo=timezone.utc)
    assert topic_name(late, "member-activity-", "UTC") == "member-activity-20261122"
    assert topic_name(late, "member-activity-", "Asia/Seoul") == "member-activity-20261123"
    assert topic_day("member-activity-20261123", "member-activity-").isoformat() == "2026-11-23"
    assert topic_day("member-activity-dlq", "member-activity-") is None


def test_every_type_has_its_category():
    assert ActivityType.LIKE_COMMENT_CANCEL.category is Category.COMMENT_LIKE
    assert ActivityType.MEMBER_FOLLOW.category is Category.MEMBER
    assert {t.category for t in ActivityType} == set(Category)


def test_record_request_round_trip_and_endpoint_check():
    event = ActivityEvent.new(ActivityType.LIKE_COMMENT, 7, post_id=12, comment_id=3, at=AT)
    body = record_request_body(event)
    assert body["activityType"] == "LIKE_COMMENT" and body["messageKey"] == event.message_key
    assert event_from_record_request(body, Category.COMMENT_LIKE) == event
    with pytest.raises(InvalidEvent, match="does not belong"):
        event_from_record_request(body, Category.POST)
