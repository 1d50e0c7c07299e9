"""The wire formats of SPEC section 4: message keys, event JSON, topics, and the Java original's records."""

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from dailyfeed.events import (
    ActivityEvent,
    ActivityType,
    Category,
    EventValue,
    InvalidEvent,
    RecordBody,
    as_utc,
    event_from_record_request,
    key_timestamp,
    message_key,
    publishing_service,
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
        "member_activity:kafka_event:LIKE_CANCEL_POST###12###7###"
    )
    assert all(t.code == t.value for t in ActivityType if t is not ActivityType.LIKE_POST_CANCEL)


def test_comment_events_are_keyed_by_comment_and_post_events_by_post():
    comment = ActivityEvent.new(ActivityType.LIKE_COMMENT, 7, post_id=12, comment_id=40, at=AT)
    post = ActivityEvent.new(ActivityType.LIKE_POST, 7, post_id=12, at=AT)
    assert "###40###7###" in comment.message_key
    assert "###12###7###" in post.message_key


def test_like_unlike_like_yields_three_distinct_keys():
    times = [AT.replace(microsecond=m) for m in (1, 2, 3)]
    keys = {
        ActivityEvent.new(t, 7, post_id=12, at=at).message_key
        for t, at in zip([ActivityType.LIKE_POST, ActivityType.LIKE_POST_CANCEL, ActivityType.LIKE_POST], times)
    }
    assert len(keys) == 3


def test_event_json_is_camel_case_with_iso_dates():
    event = ActivityEvent.new(ActivityType.LIKE_POST, 7, post_id=12, at=AT)
    assert event.to_json() == {
        "memberId": 7,
        "postId": 12,
        "commentId": None,
        "memberActivityType": "LIKE_POST",
        "createdAt": "2026-11-22T10:20:30.123456Z",
        "updatedAt": None,
    }


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


@pytest.mark.parametrize(
    "value, problem",
    [
        (b"not json", "not JSON"),
        (
            b'{"memberId":7,"postId":1,"memberActivityType":"NOPE","createdAt":"2026-01-01T00:00:00Z"}',
            "unknown activity type",
        ),
        (b'{"postId":1,"memberActivityType":"POST_CREATE","createdAt":"2026-01-01T00:00:00Z"}', "memberId is required"),
        (b'{"memberId":7,"memberActivityType":"POST_CREATE","createdAt":"2026-01-01T00:00:00Z"}', "postId is required"),
        (
            b'{"memberId":"x","postId":1,"memberActivityType":"POST_CREATE","createdAt":"2026-01-01T00:00:00Z"}',
            "integer",
        ),
        (b'{"memberId":7,"postId":1,"memberActivityType":"POST_CREATE","createdAt":[2026,13,1]}', "date array"),
        (b"[1,2]", "JSON object"),
    ],
)
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


# --- every optional or odd field the Java original can send (SPEC section 4) ------------------------------------


def parse(**fields):
    body = {
        "memberId": 7,
        "postId": 31,
        "memberActivityType": "POST_CREATE",
        "createdAt": "2026-11-22T10:20:30.123456Z",
        **fields,
    }
    return ActivityEvent.from_json({k: v for k, v in body.items() if v is not None})


def test_a_record_without_created_at_takes_the_time_of_its_key():
    key = message_key(ActivityType.LIKE_COMMENT, 58, 7, AT)
    body = {"memberId": 7, "postId": 31, "commentId": 58, "memberActivityType": "LIKE_COMMENT"}
    event = ActivityEvent.from_bytes(json.dumps(body).encode(), key.encode())
    assert (event.created_at, event.message_key) == (AT, key)
    assert (event.member_id, event.post_id, event.comment_id) == (7, 31, 58)


def test_a_record_without_created_at_or_a_timestamped_key_is_rejected():
    with pytest.raises(InvalidEvent, match="createdAt is missing"):
        ActivityEvent.from_bytes(
            b'{"memberId":7,"postId":31,"memberActivityType":"POST_CREATE"}',
            b"member_activity:kafka_event:POST_CREATE###31###7",
        )
    with pytest.raises(InvalidEvent, match="createdAt is missing"):
        ActivityEvent.from_bytes(b'{"memberId":7,"postId":31,"memberActivityType":"POST_CREATE"}')


def test_created_at_in_the_body_wins_over_the_time_in_the_key():
    key = message_key(ActivityType.POST_CREATE, 31, 7, AT.replace(year=2020))
    assert (
        ActivityEvent.from_json(
            {
                "memberId": 7,
                "postId": 31,
                "memberActivityType": "POST_CREATE",
                "createdAt": "2026-11-22T10:20:30.123456Z",
            },
            key,
        ).created_at
        == AT
    )


def test_updated_at_is_read_as_an_iso_string_or_a_date_array_and_written_back():
    event = parse(memberActivityType="POST_UPDATE", updatedAt=[2026, 11, 23, 8, 0, 1, 500000000])
    assert event.updated_at == datetime(2026, 11, 23, 8, 0, 1, 500000, tzinfo=timezone.utc)
    assert event.to_json()["updatedAt"] == "2026-11-23T08:00:01.500000Z"
    assert parse(updatedAt="2026-11-23T08:00:01Z").updated_at == datetime(2026, 11, 23, 8, 0, 1, tzinfo=timezone.utc)
    assert parse(updatedAt=None).updated_at is None and parse().to_json()["updatedAt"] is None


def test_ids_are_json_integers_up_to_the_largest_long():
    """The Java original writes longs as JSON numbers; the rule of every id (dailyfeed.types) is 1 … 2^63-1."""
    for value in (7, 2**63 - 1):
        event = parse(memberId=value, postId=value, commentId=value, memberActivityType="COMMENT_CREATE")
        assert (event.member_id, event.post_id, event.comment_id) == (value, value, value)


@pytest.mark.parametrize("field", ["memberId", "postId", "commentId", "followingId"])
@pytest.mark.parametrize(
    "raw, problem",
    [
        (2**63, "must be a positive long"),
        (0, "must be a positive long"),
        (-7, "must be a positive long"),
        (True, "must be an integer"),
        ("7", "must be an integer"),
        ("7a", "must be an integer"),
        ("", "must be an integer"),
        (7.5, "must be an integer"),
        ("--7", "must be an integer"),
    ],
)
def test_ids_out_of_range_or_not_integers_are_rejected_naming_the_field(field, raw, problem):
    with pytest.raises(InvalidEvent, match=f"{field} {problem}"):
        parse(**{field: raw, "commentId": raw if field == "commentId" else 58})


def test_a_follow_event_carries_the_followed_member():
    event = ActivityEvent.from_json(
        {
            "memberId": 9,
            "followingId": 7,
            "memberActivityType": "member_follow",
            "createdAt": "2026-11-22T10:20:30.123456Z",
        }
    )
    assert (event.activity_type, event.member_id, event.following_id, event.post_id) == (
        ActivityType.MEMBER_FOLLOW,
        9,
        7,
        None,
    )
    assert event.message_key == message_key(ActivityType.MEMBER_FOLLOW, 7, 9, AT)
    assert event.to_json()["followingId"] == 7 and "followingId" not in parse().to_json()
    with pytest.raises(InvalidEvent, match="followingId is required for MEMBER_UNFOLLOW"):
        ActivityEvent.new(ActivityType.MEMBER_UNFOLLOW, 9, post_id=31)


def test_comment_events_need_their_comment_id():
    with pytest.raises(InvalidEvent, match="commentId is required for LIKE_COMMENT"):
        parse(memberActivityType="LIKE_COMMENT")


@pytest.mark.parametrize(
    "array, expected",
    [
        ([2025, 11, 27], datetime(2025, 11, 27, tzinfo=timezone.utc)),
        ([2025, 11, 27, 10, 20], datetime(2025, 11, 27, 10, 20, tzinfo=timezone.utc)),
        ([2025, 11, 27, 10, 20, 30], datetime(2025, 11, 27, 10, 20, 30, tzinfo=timezone.utc)),
        ([2025, 11, 27, 10, 20, 30, 999999999], datetime(2025, 11, 27, 10, 20, 30, 999999, tzinfo=timezone.utc)),
        ([2025, 11, 27, 10, 20, 30, 1000], datetime(2025, 11, 27, 10, 20, 30, 1, tzinfo=timezone.utc)),
    ],
)
def test_jackson_date_arrays_of_every_length_are_utc(array, expected):
    assert parse(createdAt=array).created_at == expected


@pytest.mark.parametrize(
    "array",
    [[2025, 11], [2025, 11, 27, 10, 20, 30, 0, 0], [2025, "11", 27], [2025, 11, True], [2025, 11, 27.5], [2025, 2, 30]],
)
def test_malformed_date_arrays_are_rejected(array):
    with pytest.raises(InvalidEvent, match="date array"):
        parse(createdAt=array)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-22T10:20:30.123456Z", AT),
        (" 2026-11-22T10:20:30.123456789Z ", AT),  # Java's nine digits, padding around
        ("2026-11-22T10:20:30.123456", AT),  # naive: UTC
        ("2026-11-22T19:20:30.123456+09:00", AT),
        ("2026-11-22T10:20:30Z", AT.replace(microsecond=0)),
    ],
)
def test_iso_dates_with_any_precision_and_offset(text, expected):
    assert parse(createdAt=text).created_at == expected


@pytest.mark.parametrize(
    "value, problem", [("yesterday", "not ISO-8601"), (1732270830, "neither"), ({"epoch": 1}, "neither")]
)
def test_dates_that_are_neither_iso_nor_arrays_are_rejected(value, problem):
    with pytest.raises(InvalidEvent, match=problem):
        parse(createdAt=value)


def test_extra_fields_and_type_headers_are_ignored():
    body = {
        "memberId": 7,
        "postId": 31,
        "commentId": 58,
        "memberActivityType": "COMMENT_CREATE",
        "createdAt": [2026, 11, 22, 10, 20, 30, 123456000],
        "updatedAt": None,
        "__TypeId__": "x.y.Event",
        "id": 99,
        "memberName": "kim",
    }
    event = ActivityEvent.from_bytes(json.dumps(body))
    assert event == ActivityEvent.new(ActivityType.COMMENT_CREATE, 7, post_id=31, comment_id=58, at=AT)


def test_an_empty_or_non_string_key_is_handled():
    value = parse().to_bytes()
    assert ActivityEvent.from_bytes(value, b"").message_key == message_key(ActivityType.POST_CREATE, 31, 7, AT)
    with pytest.raises(InvalidEvent, match="message key must be a string"):
        ActivityEvent.from_json(parse().to_json(), 42)
    with pytest.raises(InvalidEvent, match="not UTF-8"):
        ActivityEvent.from_bytes(value, b"\xff\xfe")
    with pytest.raises(InvalidEvent, match="no value"):
        ActivityEvent.from_bytes(None, b"k")
    with pytest.raises(InvalidEvent, match="memberActivityType is required"):
        ActivityEvent.from_json({"memberId": 7, "postId": 31, "createdAt": "2026-11-22T10:20:30Z"})


def test_a_key_in_another_timezone_is_written_in_utc():
    seoul = AT.astimezone(ZoneInfo("Asia/Seoul"))
    assert message_key(ActivityType.POST_CREATE, 31, 7, seoul) == message_key(ActivityType.POST_CREATE, 31, 7, AT)
    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=31, at=seoul)
    assert event.to_json()["createdAt"] == "2026-11-22T10:20:30.123456Z"


@pytest.mark.parametrize(
    "stamp, expected",
    [
        ("2026-11-22 10:20:30.5", AT.replace(microsecond=500000)),
        ("2026-11-22 10:20:30.000001999", AT.replace(microsecond=1)),
        ("2026-11-22 10:20:30", None),
        ("2026-11-22 10:20:30.", None),
        ("2026-11-22 10:20:30.1234567890", None),
        # the years of every time we accept (dailyfeed.types), both ends in
        ("1970-01-01 00:00:00.0", datetime(1970, 1, 1, tzinfo=timezone.utc)),
        ("9999-12-31 23:59:59.999999999", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)),
        ("1969-12-31 23:59:59.999999999", None),
        ("0001-01-01 00:00:00.0", None),
    ],
)
def test_key_timestamps_of_any_precision(stamp, expected):
    assert key_timestamp(f"member_activity:kafka_event:POST_CREATE###31###7###{stamp}") == expected


def test_a_record_keyed_before_1970_without_created_at_is_rejected():
    with pytest.raises(InvalidEvent, match="createdAt is missing"):
        ActivityEvent.from_json(
            {"memberId": 7, "postId": 31, "memberActivityType": "POST_CREATE"},
            "member_activity:kafka_event:POST_CREATE###31###7###1969-12-31 23:59:59.5",
        )


def test_stored_times_are_read_as_utc():
    """mongomock hands back naive UTC datetimes, FerretDB aware ones; a missing time stays missing."""
    assert as_utc(None) is None
    assert as_utc(AT.replace(tzinfo=None)) == AT and as_utc(AT.replace(tzinfo=None)).tzinfo is timezone.utc
    seoul = AT.astimezone(ZoneInfo("Asia/Seoul"))
    assert as_utc(seoul) == AT and as_utc(seoul).utcoffset() == seoul.utcoffset()


def test_topic_day_of_names_that_are_not_date_topics():
    assert topic_day("member-activity-20261399", "member-activity-") is None
    assert topic_day("other-20261122", "member-activity-") is None
    assert topic_day("member-activity-20261122", "member-activity-") == datetime(2026, 11, 22).date()


def test_each_category_is_published_by_its_content_service():
    assert {c: publishing_service(c) for c in Category} == {
        Category.POST: "post-service",
        Category.POST_LIKE: "post-service",
        Category.COMMENT: "comment-service",
        Category.COMMENT_LIKE: "comment-service",
        Category.MEMBER: None,
    }


def test_activity_types_parse_case_insensitively_and_name_the_unknown():
    assert ActivityType.parse("like_post_cancel") is ActivityType.LIKE_POST_CANCEL
    with pytest.raises(InvalidEvent, match="unknown activity type 'LIKE'"):
        ActivityType.parse("LIKE")


def test_an_unknown_activity_type_is_answered_with_the_known_ones():
    """The message reaches a 400 body or a dead letter's error: it names every type and (at most 60 characters
    of) what was sent."""
    names = ", ".join(t.value for t in ActivityType)
    for sent, shown in (("POKE", "'POKE'"), (5, "5"), ("X" * 100, "'" + "X" * 59)):
        with pytest.raises(InvalidEvent) as err:
            parse(memberActivityType=sent)
        assert str(err.value) == f"memberActivityType must be one of {names} ({shown} is an unknown activity type)"
    with pytest.raises(InvalidEvent) as err:
        event_from_record_request({"memberId": 7, "postId": 31, "activityType": "like"}, Category.POST_LIKE)
    assert str(err.value) == f"activityType must be one of {names} ('like' is an unknown activity type)"


def test_the_documented_activity_type_schema_accepts_exactly_what_parsing_accepts():
    """/asyncapi.json and /openapi.json describe a type by this schema. JSON Schema patterns have no ignore-case
    flag, so the names are spelled out in both cases: a client checking its records by the documents must
    accept every spelling we parse, and refuse what we refuse."""
    schema = EventValue.model_json_schema()["properties"]["memberActivityType"]
    assert RecordBody.model_json_schema()["properties"]["activityType"] == schema
    assert schema["description"] == "the activity type, read in any letter case"  # what a reader of /docs is told
    for activity_type in ActivityType:
        name = activity_type.value
        for spelling in (name, name.lower(), name.title(), name[0].lower() + name[1:]):
            jsonschema.validate(spelling, schema)
            assert parse(memberActivityType=spelling, commentId=58, followingId=9).activity_type is activity_type
    for not_text in (5, None, ["LIKE_POST"]):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(not_text, schema)
    for odd in (
        "LIKEPOST",
        "LIKE-POST",
        "LIKE POST",
        "like_post_",
        "_like_post",
        "LIKE_POS",
        "",
        "LIKE_POSTS",
        "LIKE_CANCEL_POST",
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(odd, schema)
        with pytest.raises(InvalidEvent, match="unknown activity type"):
            parse(memberActivityType=odd, commentId=58, followingId=9)


# --- the feign record call -----------------------------------------------------------------------------------


def test_the_record_call_body_is_the_originals_plus_the_time():
    event = ActivityEvent.new(ActivityType.LIKE_COMMENT, 7, post_id=31, comment_id=58, at=AT)
    assert record_request_body(event) == {
        "memberId": 7,
        "postId": 31,
        "commentId": 58,
        "activityType": "LIKE_COMMENT",
        "messageKey": event.message_key,
        "createdAt": "2026-11-22T10:20:30.123456Z",
    }


def test_the_record_endpoint_keeps_the_callers_key():
    """The key travels with the event: a key the endpoint derived itself would record a second activity."""
    key = message_key(ActivityType.LIKE_POST, 31, 7, AT.replace(microsecond=999))
    body = {
        "memberId": 7,
        "postId": 31,
        "activityType": "LIKE_POST",
        "messageKey": key,
        "createdAt": "2026-11-22T10:20:30.123456Z",
    }
    event = event_from_record_request(body, Category.POST_LIKE)
    assert event.message_key == key and event.created_at == AT
    without_time = event_from_record_request({**body, "createdAt": None}, Category.POST_LIKE)
    assert without_time.created_at == AT.replace(microsecond=999)  # the original sent no time: the key's


def test_a_keyless_record_call_is_keyed_by_its_time_of_receipt():
    """The original's feign body carries no key: the key is made from the time of receipt, which is also the
    action's time unless the body gives createdAt."""
    body = {"memberId": 7, "postId": 31, "activityType": "LIKE_POST"}
    event = event_from_record_request(body, Category.POST_LIKE, received_at=AT)
    assert (event.message_key, event.created_at) == (message_key(ActivityType.LIKE_POST, 31, 7, AT), AT)
    timed = event_from_record_request({**body, "createdAt": "2026-11-22T10:20:29Z"}, Category.POST_LIKE, received_at=AT)
    assert timed.message_key == message_key(ActivityType.LIKE_POST, 31, 7, AT)
    assert timed.created_at == datetime(2026, 11, 22, 10, 20, 29, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "body, problem",
    [
        ([], "request body must be a JSON object"),
        (
            {"memberId": 7, "postId": 31, "activityType": "POST_CREATE", "messageKey": "  "},
            "messageKey must not be blank",
        ),
        ({"memberId": 7, "postId": 31, "activityType": "POST_CREATE", "messageKey": 5}, "messageKey must be a string"),
        ({"memberId": 7, "postId": 31, "activityType": "POST_CREATE", "messageKey": "k" * 513}, "at most 512"),
        (
            {"memberId": 7, "postId": 31, "activityType": "LIKE_POST", "messageKey": "k###2026-11-22 10:20:30.1"},
            "activityType LIKE_POST does not belong to the posts endpoint",
        ),
    ],
)
def test_bad_record_calls_are_rejected_with_the_reason(body, problem):
    with pytest.raises(InvalidEvent, match=problem):
        event_from_record_request(body, Category.POST)


def test_a_key_of_exactly_the_maximum_length_is_accepted():
    key = "k" * 483 + "###2026-11-22 10:20:30.123456"
    assert len(key) == 512
    body = {"memberId": 7, "postId": 31, "activityType": "POST_CREATE", "messageKey": key}
    assert event_from_record_request(body, Category.POST).message_key == key


def test_with_key_changes_only_the_key():
    event = ActivityEvent.new(ActivityType.COMMENT_UPDATE, 8, post_id=31, comment_id=58, at=AT)
    rekeyed = event.with_key("member_activity:kafka_event:COMMENT_UPDATE###58###8###2026-11-22 10:20:30.1")
    assert rekeyed.message_key.endswith("10:20:30.1") and rekeyed.to_json() == event.to_json()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ActivityEvent.from_json([1]), "event must be a JSON object"),
        (lambda: ActivityEvent.from_json(parse().to_json(), 42), "message key must be a string"),
        (
            lambda: ActivityEvent.from_json({"memberId": 7, "postId": 31, "memberActivityType": "POST_CREATE"}),
            "createdAt is missing and the message key carries no timestamp",
        ),
        (lambda: ActivityEvent.from_bytes(None), "record has no value"),
        (lambda: ActivityEvent.from_bytes(b"{}", b"\xff"), "record key is not UTF-8"),
        (lambda: event_from_record_request("x", Category.POST), "request body must be a JSON object"),
        (lambda: event_from_record_request({"memberId": 7, "postId": 31}, Category.POST), "activityType is required"),
        (
            lambda: event_from_record_request(
                {
                    "memberId": 7,
                    "postId": 31,
                    "activityType": "POST_CREATE",
                    "messageKey": "an-old-key-of-another-format",
                },
                Category.POST,
            ),
            "createdAt is missing and the message key carries no timestamp",
        ),
    ],
)
def test_rejections_say_exactly_what_is_wrong(call, message):
    """These messages reach a 400 body or a dead letter's error as they are."""
    with pytest.raises(InvalidEvent) as err:
        call()
    assert str(err.value) == message


def test_a_key_without_separators_carries_no_time():
    assert key_timestamp("an-old-key-of-another-format") is None
    with pytest.raises(InvalidEvent, match="createdAt is missing"):
        ActivityEvent.from_json(
            {"memberId": 7, "postId": 31, "memberActivityType": "POST_CREATE"}, "an-old-key-of-another-format"
        )


def test_keys_and_event_times_are_utc_whatever_the_machines_timezone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Seoul")
    time.tzset()
    try:
        event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=31, at=AT.astimezone(ZoneInfo("Europe/Paris")))
        assert event.message_key == "member_activity:kafka_event:POST_CREATE###31###7###2026-11-22 10:20:30.123456000"
        assert event.to_json()["createdAt"] == "2026-11-22T10:20:30.123456Z"
    finally:
        monkeypatch.undo()
        time.tzset()


# --- the listener's fast path: the common well-formed event, read as EventValue reads it -------------------------


def _read(body, key="member_activity:kafka_event:POST_CREATE###12###7###2026-11-22 10:20:30.123456000"):
    """What from_json makes of a body: the event, or the refusal's message."""
    try:
        return ActivityEvent.from_json(body, key)
    except InvalidEvent as exc:
        return f"refused: {exc}"


def _variants():
    """Every field of a well-formed event (each type's shape) replaced in turn by values at and past the edges of
    what the model accepts."""
    ids = [1, 2**63 - 1, 2**63, 0, -1, True, False, 1.0, "1", None, [1], {"id": 1}]
    types = [
        "POST_CREATE",
        "post_create",
        "Post_Create",
        "POST_CREATE ",
        "PO\u017fT_CREATE",
        "LIKE_CANCEL_POST",
        "",
        None,
        1,
        ["POST_CREATE"],
        {"type": "POST_CREATE"},
    ]
    times = [
        "2026-11-22T10:20:30.123456Z",
        "2026-11-22T10:20:30Z",
        "2026-11-22T10:20:30.123456789Z",
        "2026-11-22T10:20:30.123456+02:00",
        "2026-11-22T10:20:30.123456z",
        " 2026-11-22T10:20:30.123456Z",
        "2026-13-22T10:20:30.123456Z",
        "2026-02-29T10:20:30.123456Z",
        "2026-11-22T24:00:00.000000Z",
        "1969-12-31T23:59:59.999999Z",
        "1970-01-01T00:00:00.000000Z",
        "0000-01-01T00:00:00.000000Z",
        "9999-12-31T23:59:59.999999Z",
        "\uff12026-11-22T10:20:30.123456Z",
        "2026-11-22T10:20:30.12345\u0665Z",
        [2026, 11, 22, 10, 20, 30, 123456000],
        1700000000,
        True,
        None,
        "",
    ]
    for activity_type in ActivityType:
        base = ActivityEvent.new(activity_type, 7, post_id=12, comment_id=40, following_id=9, at=AT).to_json()
        base["followingId"] = 9
        yield base
        for field, values in (
            ("memberId", ids),
            ("postId", ids),
            ("commentId", ids),
            ("followingId", ids),
            ("memberActivityType", types),
            ("createdAt", times),
            ("updatedAt", times),
        ):
            for value in values:
                yield {**base, field: value}
            yield {k: v for k, v in base.items() if k != field}
    yield from ([], "event", None, 7, {}, {"memberId": 7, "extra": {"deep": [1, 2]}})


def test_the_fast_path_reads_every_event_exactly_as_the_model_does(monkeypatch):
    from dailyfeed import events

    bodies = list(_variants())
    fast = [_read(body) for body in bodies]
    monkeypatch.setattr(events, "_common_event_fields", lambda body: None)  # the model alone
    model = [_read(body) for body in bodies]

    for body, by_fast, by_model in zip(bodies, fast, model):
        assert by_fast == by_model, body
        if isinstance(by_model, ActivityEvent):  # equal, and of the same types (an int stays an int, times UTC)
            assert [type(getattr(by_fast, f)) for f in ("member_id", "post_id", "comment_id", "following_id")] == [
                type(getattr(by_model, f)) for f in ("member_id", "post_id", "comment_id", "following_id")
            ]
            assert by_fast.created_at.utcoffset() == by_model.created_at.utcoffset() == timedelta(0)
    assert sum(isinstance(r, str) for r in model) > 300 and sum(isinstance(r, ActivityEvent) for r in model) > 100


def test_the_fast_path_takes_what_our_producers_write_and_leaves_the_rest_to_the_model():
    from dailyfeed.events import _common_event_fields

    ours = ActivityEvent.new(ActivityType.LIKE_COMMENT, 7, post_id=12, comment_id=40, at=AT)
    assert _common_event_fields(ours.to_json()) == (ActivityType.LIKE_COMMENT, 7, 12, 40, None, AT, None)
    assert _common_event_fields({**ours.to_json(), "updatedAt": "2026-11-23T00:00:00.000001Z"})[-1] == datetime(
        2026, 11, 23, 0, 0, 0, 1, tzinfo=timezone.utc
    )
    java = {"memberId": 7, "postId": 12, "memberActivityType": "LIKE_POST", "createdAt": [2026, 11, 22, 10, 20, 30]}
    assert _common_event_fields(java) is None
    assert _common_event_fields({**ours.to_json(), "memberActivityType": "like_comment"}) is None


def test_a_records_trace_context_is_part_of_the_event_it_makes():
    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=12, at=AT)
    parsed = ActivityEvent.from_bytes(event.to_bytes(), event.message_key.encode(), f"00-{'1' * 32}-{'2' * 16}-01")
    assert parsed == event and parsed.traceparent == f"00-{'1' * 32}-{'2' * 16}-01"
    assert ActivityEvent.from_bytes(event.to_bytes(), event.message_key.encode()).traceparent is None


@pytest.mark.parametrize(
    "text, too_deep",
    [
        ("[" * 32 + "]" * 32, False),
        ("[" * 33 + "]" * 33, True),
        ('{"a": "' + "[" * 40 + '"}', False),  # brackets inside a string do not nest
        ("[" + "[]," * 40 + "[]]", False),  # many brackets, two levels
        ('{"a": "\\"' + '[[[", "b": ' + "[" * 31 + "]" * 31 + "}", False),
        ('{"a": "\\"' + '[[[", "b": ' + "[" * 32 + "]" * 32 + "}", True),
    ],
)
def test_the_nesting_limit_counts_levels_not_brackets(text, too_deep):
    from dailyfeed.types import json_depth_exceeds

    assert json_depth_exceeds(text) is too_deep
    if too_deep:
        with pytest.raises(InvalidEvent, match="nested deeper than 32 levels"):
            ActivityEvent.from_bytes(text.encode(), b"k")
