"""Which date topics exist to be created, subscribed to, or pruned — no broker needed."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from dailyfeed.config import load_settings
from dailyfeed.events import TOPIC_PATTERN
from dailyfeed.transport.topics import DateTopics, default_keep_days

NOW = datetime(2026, 11, 22, 20, 0, tzinfo=timezone.utc)


def test_start_up_ensures_today_and_tomorrow_in_the_configured_time_zone():
    assert DateTopics("member-activity-", "UTC").upcoming(NOW) == [
        "member-activity-20261122",
        "member-activity-20261123",
    ]
    # 20:00 UTC is already 05:00 the next day in Seoul
    assert DateTopics("member-activity-", "Asia/Seoul").upcoming(NOW) == [
        "member-activity-20261123",
        "member-activity-20261124",
    ]


def test_the_subscription_pattern_matches_date_topics_of_its_prefix_only():
    names = [
        "member-activity-20261122",
        "member-activity-2026112",
        "member-activity-202611221",
        "member-activity-latest",
        "xmember-activity-20261122",
        "t1-member-activity-20261122",
        "member-activity-20261122-dlq",
        "__consumer_offsets",
    ]
    default = DateTopics("member-activity-", "UTC").pattern
    assert [n for n in names if re.match(default, n)] == ["member-activity-20261122"]
    assert [n for n in names if re.match(default, n)] == [n for n in names if re.match(TOPIC_PATTERN, n)]
    prefixed = DateTopics("t1-member-activity-", "UTC").pattern
    assert [n for n in names if re.match(prefixed, n)] == ["t1-member-activity-20261122"]
    # a prefix with regex characters is taken literally
    assert not re.match(DateTopics("a.b-", "UTC").pattern, "axb-20261122")


def test_prune_selects_date_topics_older_than_the_kept_days():
    topics = DateTopics("member-activity-", "UTC")
    names = [
        "member-activity-20261114",
        "member-activity-20261115",
        "member-activity-20261116",
        "member-activity-20261122",
        "member-activity-20261123",
        "member-activity-latest",
        "other-20261101",
        "__consumer_offsets",
    ]
    assert topics.older_than(names, keep_days=7, now=NOW) == ["member-activity-20261114"]
    assert topics.older_than(names, keep_days=6, now=NOW) == ["member-activity-20261114", "member-activity-20261115"]
    # keep 0 days: everything before today goes, today and tomorrow stay
    assert "member-activity-20261122" not in topics.older_than(names, keep_days=0, now=NOW)
    assert topics.older_than(names, keep_days=0, now=NOW)[-1] == "member-activity-20261116"


def test_the_default_kept_days_follow_the_retention_and_topics_get_it():
    settings = load_settings(environ={})
    topics = DateTopics.from_settings(settings)
    assert (topics.partitions, topics.replication_factor) == (6, 1)
    assert topics.topic_config() == {"retention.ms": "604800000"}
    assert default_keep_days(topics) == 7
    assert default_keep_days(DateTopics("p-", "UTC", retention_ms=36 * 3600 * 1000)) == 2
