"""Consumer lag read from outside the listener (dailyfeed.transport.lag) on the real broker."""

from __future__ import annotations

import asyncio

import pytest

from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.extension import get_container
from dailyfeed.transport.lag import read_consumer_lag
from dailyfeed.transport.topics import DateTopics, TopicAdmin

from ..support.kafka import produce, topic_names, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.mongo]


def total_lag(settings) -> int:
    return sum(item.lag for item in read_consumer_lag(settings))


def test_lag_counts_what_waits_for_the_group_and_drops_to_zero_once_the_listener_caught_up(kafka_apps):
    quiet = kafka_apps.app(run_background=False)  # no listener yet
    settings = get_container(quiet).settings
    topic = DateTopics.from_settings(settings).upcoming()[0]
    events = [ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=100 + n) for n in range(12)]
    produce(
        settings["kafka.bootstrap-servers"],
        [{"topic": topic, "key": e.message_key, "value": e.to_json()} for e in events],
    )

    lags = read_consumer_lag(settings)
    assert sum(item.lag for item in lags) == 12
    assert {item.topic for item in lags if item.lag} == {topic}
    assert all(item.committed is None for item in lags)  # the group never committed

    kafka_apps.app(tag=settings["kafka.consumer.group-id"][1:])  # same prefix, group and database, with a listener
    wait_until(lambda: total_lag(settings) == 0, 60, 0.5, "the listener catches up")
    assert sum(item.committed or 0 for item in read_consumer_lag(settings)) == 12


def test_topics_are_made_and_the_lag_read_from_code_running_inside_an_event_loop(kafka_apps):
    """An async program embedding the app (or Playwright's sync API in the browser tier) runs an event loop in
    the calling thread, where asyncio.run refuses; the topic admin and the lag read then run in a thread of their
    own instead of failing."""
    settings = get_container(kafka_apps.app(run_background=False)).settings

    async def embedded():
        return TopicAdmin.from_settings(settings).ensure_upcoming(), read_consumer_lag(settings)

    made, lags = asyncio.run(embedded())
    upcoming = DateTopics.from_settings(settings).upcoming()
    assert made == {name: "created" for name in upcoming}
    assert set(upcoming) <= set(topic_names(settings["kafka.bootstrap-servers"]))
    assert {item.topic for item in lags} == set(upcoming) and sum(item.lag for item in lags) == 0
