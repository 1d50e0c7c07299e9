"""The transport contract, one suite for every transport (conftest.py: the fake, feign, Kafka): an event published
arrives with its message key and the trace of the request that caused it; each kind of failure of the other side is
the TransportError the publisher keeps as a dead letter (naming the topic where there is one), and once that side
is back the same transport delivers again; a closed transport publishes nothing."""

from __future__ import annotations

import pytest

from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.transport.base import CircuitOpen, TransportUnavailable

from ..support.transports import ERRORS, Failure, Received

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def new_event(member_id: int = 7, post_id: int = 31) -> ActivityEvent:
    return ActivityEvent.new(ActivityType.POST_CREATE, member_id, post_id=post_id)


def deliver(backend, event: ActivityEvent) -> Received:
    backend.transport.publish(event)
    return backend.wait_received(event.message_key)


def test_a_published_event_arrives_with_its_key_and_the_trace_of_its_request(backend):
    event = new_event(member_id=7).with_traceparent(TRACEPARENT)
    assert deliver(backend, event) == Received(event.message_key, 7, "POST_CREATE", TRACE_ID)
    liked = ActivityEvent.new(ActivityType.LIKE_POST, 9, post_id=31).with_traceparent(TRACEPARENT)
    assert deliver(backend, liked) == Received(liked.message_key, 9, "LIKE_POST", TRACE_ID)


@pytest.mark.timeout(120)  # a publish that hung on the failed side fails here; no timing is asserted
def test_each_failure_is_the_error_a_dead_letter_keeps_and_the_transport_delivers_once_the_other_side_is_back(failing):
    backend, kind = failing
    deliver(backend, new_event(post_id=1))  # connected first: the failure comes to a transport in use
    says = backend.fail(kind)
    try:
        for n in (2, 3):  # twice: the first failure leaves the transport ready to try again
            event = new_event(post_id=n)
            with pytest.raises(ERRORS[kind]) as caught:
                backend.transport.publish(event)
            assert not isinstance(caught.value, CircuitOpen)
            assert says in str(caught.value)
            assert caught.value.topic == backend.topic_of(event)  # where the dead letter says it was going
    finally:
        backend.heal()
    after = new_event(post_id=4)
    assert deliver(backend, after).message_key == after.message_key


def test_a_refused_event_is_asked_once_and_not_stored(refusing):
    before = refusing.asked()
    event = new_event()
    with pytest.raises(ERRORS[Failure.REFUSES]):
        refusing.transport.publish(event)
    assert refusing.asked() - before == 1  # not retried: the same request would be refused again
    assert event.message_key not in {r.message_key for r in refusing.received()}


def test_a_closed_transport_publishes_nothing_and_may_be_closed_twice(backend):
    deliver(backend, new_event(post_id=1))
    backend.transport.close()
    backend.transport.close()
    with pytest.raises(TransportUnavailable, match="closed"):
        backend.transport.publish(new_event(post_id=2))
