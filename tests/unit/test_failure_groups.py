"""The failure fingerprint's normalisation, table-driven: what is stripped from an error message (keys, times,
dates, ids, addresses, numbers) and what is kept; and the pattern that takes a group back out of the store."""

from __future__ import annotations

import re

import pytest

from dailyfeed.deadletters.groups import Group, group_of, normalise, pattern

KEY = "member_activity:kafka_event:POST_CREATE###12###7###2026-11-22 10:20:30.123456000"

NORMALISED = [
    # (error message, normalised)
    (
        f"publishing {KEY} to member-activity-20261122 on Kafka at 127.0.0.1:9092: KafkaTimeoutError",
        "publishing <key> to member-activity-<n> on Kafka at <addr>: KafkaTimeoutError",
    ),
    (
        "member_activity:kafka_event:LIKE_CANCEL_POST###5###9###2026-01-02 03:04:05.000000001 already recorded",
        "<key> already recorded",
    ),
    (
        "HTTP 503 from http://127.0.0.1:5001/api/member-activities/posts after 3 attempts",
        "HTTP <n> from http://<addr>/api/member-activities/posts after <n> attempts",
    ),
    ("timed out after 10.5 s at 2026-11-22T10:20:30.5Z", "timed out after <n> s at <time>"),
    ("lease ran out at 2026-11-22T10:20:30+01:00", "lease ran out at <time>"),
    ("no topic for 2026-11-22", "no topic for <date>"),
    ("dead letter 65a1b2c3d4e5f6a7b8c9d0e1 is held", "dead letter <id> is held"),
    ("trace 4bf92f35-77b3-4da6-a3ce-929d0e0e4736 lost", "trace <uuid> lost"),
    ("circuit open:   5 of 10 calls failed\n(rate 0.5)", "circuit open: <n> of <n> calls failed (rate <n>)"),
    ("  Expecting value: line 1 column 2 (char 1)  ", "Expecting value: line <n> column <n> (char <n>)"),
    (
        "category POST does not match the payload's type COMMENT_CREATE (COMMENT)",
        "category POST does not match the payload's type COMMENT_CREATE (COMMENT)",
    ),  # words stay words
    ("", ""),
    (None, ""),
]


@pytest.mark.parametrize("message,expected", NORMALISED)
def test_normalise(message, expected):
    assert normalise(message) == expected


@pytest.mark.parametrize("message,expected", NORMALISED)
def test_the_pattern_of_a_normalised_message_matches_the_message(message, expected):
    assert re.search(pattern(expected), message or "")


@pytest.mark.parametrize(
    "one,other,same",
    [
        (
            f"publishing {KEY} to member-activity-20261122",
            "publishing member_activity:kafka_event:LIKE_POST###1###2###"
            "2026-12-01 00:00:00.000000000 to member-activity-20261201",
            True,
        ),
        ("HTTP 503 after 3 attempts", "HTTP 500 after 1 attempts", True),
        ("HTTP 503 after 3 attempts", "HTTP 503 after 3 attempts, then gave up", False),
        ("broker down", "broker  down ", True),
        ("broker down", "Broker down", False),
    ],
)
def test_messages_that_differ_only_in_what_is_stripped_share_a_pattern(one, other, same):
    assert (normalise(one) == normalise(other)) is same
    assert bool(re.search(pattern(normalise(one)), other)) is same


def test_the_fingerprint_is_the_origin_the_error_type_and_the_normalised_message():
    doc = {"topic": "member-activity-20261122", "error": {"type": "TransportUnavailable", "message": "HTTP 503"}}
    group = group_of("kafka_publisher_dead_letters", doc)
    assert group == Group("kafka_publisher_dead_letters", "member-activity-<n>", "TransportUnavailable", "HTTP <n>")
    same = group_of(
        "kafka_publisher_dead_letters",
        {**doc, "topic": "member-activity-20261123", "error": {"type": "TransportUnavailable", "message": "HTTP 500"}},
    )
    assert same.fingerprint == group.fingerprint and re.fullmatch(r"[0-9a-f]{16}", group.fingerprint)
    for other in (
        group_of("feign_dead_letters", doc),
        group_of(
            "kafka_publisher_dead_letters", {**doc, "error": {"type": "TransportRejected", "message": "HTTP 503"}}
        ),
        group_of("kafka_publisher_dead_letters", {**doc, "topic": "other-20261122"}),
    ):
        assert other.fingerprint != group.fingerprint
    assert group_of("feign_dead_letters", {"topic": None, "error": None}) == Group(
        "feign_dead_letters", "", "unknown", ""
    )
