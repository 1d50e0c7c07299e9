"""The publish decision of SPEC section 5 (content/publishing.py): delivered, or kept as a dead letter of the
transport's kind, or neither (PublishFailed, so the caller undoes its change). On both store backends."""
import json
import logging

import pytest

from dailyfeed.content.publishing import ActivityPublisher, PublishFailed
from dailyfeed.deadletters import DeadLetterStore, DeadLetterStoreError
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.extension import get_container
from dailyfeed.store import FEIGN_DEAD_LETTERS, KAFKA_PUBLISHER_DEAD_LETTERS
from dailyfeed.transport.base import CircuitOpen, TransportRejected
from dailyfeed.transport.fake import FakeTransport

POST = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=31)
COMMENT = ActivityEvent.new(ActivityType.COMMENT_CREATE, 8, post_id=31, comment_id=58)


@pytest.fixture
def db(store_app):
    return get_container(store_app).db


@pytest.fixture
def transports():
    return {"post-service": FakeTransport("kafka"), "comment-service": FakeTransport("feign")}


@pytest.fixture
def publisher(db, transports):
    return ActivityPublisher(transports, DeadLetterStore(db))


def test_a_delivered_event_goes_through_its_services_transport_and_leaves_no_dead_letter(publisher, transports, db):
    assert publisher.publish_activity("post-service", POST) is True
    assert publisher.publish_activity("comment-service", COMMENT) is True
    assert transports["post-service"].published == [POST] and transports["comment-service"].published == [COMMENT]
    assert db[KAFKA_PUBLISHER_DEAD_LETTERS].count_documents({}) + db[FEIGN_DEAD_LETTERS].count_documents({}) == 0


@pytest.mark.parametrize("service, collection, event", [("post-service", KAFKA_PUBLISHER_DEAD_LETTERS, POST),
                                                         ("comment-service", FEIGN_DEAD_LETTERS, COMMENT)])
def test_an_undelivered_event_is_kept_in_its_transports_dead_letters_with_the_topic(publisher, transports, db, caplog,
                                                                                    service, collection, event):
    error = CircuitOpen("circuit open (injected)")
    error.topic = "member-activity-20261122"
    transports[service].fail_with(error)
    with caplog.at_level(logging.WARNING):
        assert publisher.publish_activity(service, event) is False
    [letter] = db[collection].find()
    assert (letter["message_key"], letter["topic"], letter["status"]) == (
        event.message_key, "member-activity-20261122", "pending")
    assert letter["error"] == {"type": "CircuitOpen", "message": "circuit open (injected)"}
    assert json.loads(letter["payload"]) == event.to_json()
    other = FEIGN_DEAD_LETTERS if collection == KAFKA_PUBLISHER_DEAD_LETTERS else KAFKA_PUBLISHER_DEAD_LETTERS
    assert db[other].count_documents({}) == 0
    assert f"publishing {event.message_key} by {transports[service].kind} failed (CircuitOpen: circuit open " \
        "(injected)); keeping a dead letter" in caplog.messages


def test_a_rejected_event_is_kept_too(publisher, transports, db):
    transports["post-service"].fail_with(TransportRejected("400 bad request"))
    assert publisher.publish_activity("post-service", POST) is False
    assert db[KAFKA_PUBLISHER_DEAD_LETTERS].find_one()["error"]["type"] == "TransportRejected"


def test_an_event_neither_delivered_nor_kept_raises_publish_failed(db, transports, caplog):
    class Failing(DeadLetterStore):
        def record_publisher_failure(self, *args, **kwargs):
            raise DeadLetterStoreError("dead-letter store unreachable (injected)")

    transports["comment-service"].fail_with()
    with pytest.raises(PublishFailed, match="dead-letter store unreachable") as err:
        ActivityPublisher(transports, Failing(db)).publish_activity("comment-service", COMMENT)
    assert isinstance(err.value.__cause__, DeadLetterStoreError)
    assert f"dead letter for {COMMENT.message_key} could not be stored: dead-letter store unreachable " \
        "(injected)" in caplog.messages
