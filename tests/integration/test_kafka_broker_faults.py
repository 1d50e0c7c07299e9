"""The broker dies (kill -9) and comes back: writes keep answering success with one publisher dead letter each (the
producer gives up after kafka.producer.send-timeout-ms; a write that hung instead would fail the test by
pytest-timeout, no timing is asserted), and once the broker is back the same producer and listener carry new writes
again.

These tests kill a private broker of their own (tests/support/kafka.py: PrivateBroker), never the shared one."""

from __future__ import annotations

import json
import logging

import pytest

from dailyfeed.extension import get_container
from dailyfeed.store import KAFKA_PUBLISHER_DEAD_LETTERS
from dailyfeed.transport.topics import DateTopics

from ..support.apps import make_app
from ..support.kafka import Api, KafkaApps, activities, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.mongo]


@pytest.fixture
def kafka_apps(private_broker, mongo_uri):
    apps = KafkaApps(make_app, private_broker.bootstrap, mongo_uri)
    yield apps
    apps.close()


def post(api, member, content):
    return api.post(member, "/api/posts", json={"content": content})


def publisher_dead_letters(app):
    return list(get_container(app).db[KAFKA_PUBLISHER_DEAD_LETTERS].find().sort("created_at", 1))


def test_writes_survive_a_killed_broker_as_dead_letters_and_flow_again_once_it_is_back(private_broker, kafka_apps):
    app = kafka_apps.app()
    settings = get_container(app).settings
    api = Api(app)
    first = post(api, 7, "before")
    assert first.status_code == 201
    wait_until(lambda: len(activities(app)) == 1, 60, 0.2, "the first post is recorded")

    private_broker.kill()
    during = []
    for content in ("during 1", "during 2"):
        response = post(api, 7, content)
        assert response.status_code == 201, response.json
        during.append(response.json["data"]["id"])
    liked = api.post(8, f"/api/posts/{during[0]}/like")
    assert liked.status_code == 201

    letters = publisher_dead_letters(app)
    assert [(json.loads(d["payload"])["memberActivityType"], json.loads(d["payload"])["postId"]) for d in letters] == [
        ("POST_CREATE", during[0]),
        ("POST_CREATE", during[1]),
        ("LIKE_POST", during[0]),
    ]
    today = DateTopics.from_settings(settings).upcoming()[0]
    assert all(
        d["topic"] == today and d["status"] == "pending" and d["error"]["type"] == "TransportUnavailable"
        for d in letters
    )
    assert all(api.get(7, f"/api/posts/{post_id}").status_code == 200 for post_id in during)  # the writes stay

    private_broker.start()
    after = post(api, 7, "after")
    assert after.status_code == 201
    assert len(publisher_dead_letters(app)) == 3, "the write after the restart was delivered"
    after_id = after.json["data"]["id"]
    wait_until(
        lambda: after_id in {d["post_id"] for d in activities(app)},
        90,
        0.2,
        "the listener records the write made after the restart",
    )
    keys = [d["message_key"] for d in activities(app)]
    assert len(keys) == len(set(keys))


def test_an_app_started_while_the_broker_is_down_publishes_and_listens_once_it_is_up(
    private_broker, kafka_apps, caplog
):
    private_broker.kill()
    caplog.set_level(logging.ERROR, logger="dailyfeed")
    app = kafka_apps.app()  # start-up cannot create its topics: it says so and serves anyway
    assert any("could not make sure the date topics" in r.getMessage() for r in caplog.records)
    api = Api(app)

    down = post(api, 5, "while down")
    assert down.status_code == 201, down.json
    assert [json.loads(d["payload"])["postId"] for d in publisher_dead_letters(app)] == [down.json["data"]["id"]]

    private_broker.start()
    up = post(api, 5, "once up")
    assert up.status_code == 201
    assert len(publisher_dead_letters(app)) == 1, "the write once the broker is up was delivered"
    up_id = up.json["data"]["id"]
    wait_until(
        lambda: up_id in {d["post_id"] for d in activities(app)},
        90,
        0.2,
        "the listener, started while the broker was down, records it",
    )
