"""The feign transport's own rules, with scripted answers instead of a network: its wire format, which failures it
retries and how it paces them. What every transport does (deliver, fail, refuse, close) is tests/transport."""
from datetime import datetime, timezone

import jwt
import pytest
import requests
from requests.adapters import BaseAdapter

from dailyfeed.config import load_settings
from dailyfeed.delivery import feign_options
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.transport.base import CircuitOpen, TransportUnavailable
from dailyfeed.transport.circuit import CircuitBreaker
from dailyfeed.transport.http import HttpTransport

SECRET = "unit-test-secret-0123456789-0123456789"
EVENT = ActivityEvent.new(ActivityType.LIKE_COMMENT, 7, post_id=1, comment_id=2,
                          at=datetime(2026, 11, 22, tzinfo=timezone.utc))


class Scripted(BaseAdapter):
    """Answers each call with the next item: an HTTP status, or an exception to raise."""

    def __init__(self, *script):
        super().__init__()
        self.script = list(script)
        self.requests = []

    def send(self, request, **kwargs):
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        response = requests.Response()
        response.status_code = item
        response._content = b'{"message": "scripted"}'
        response.request = request
        return response

    def close(self):
        pass


def transport(adapter, breaker=None, settings=None, sleep=lambda seconds: None):
    """The feign transport built from the feign.* settings (test settings by default), its session answered by
    `adapter`; `sleep` receives the pauses between attempts instead of waiting them."""
    session = requests.Session()
    session.mount("http://activity.test", adapter)
    options = feign_options(settings or load_settings())
    return HttpTransport(lambda: "http://activity.test", SECRET, options,
                         breaker or CircuitBreaker(window_size=100, minimum_calls=100), session=session, sleep=sleep)


def test_posts_the_original_body_to_the_category_path_with_a_service_token():
    adapter = Scripted(201)
    transport(adapter).publish(EVENT)
    sent = adapter.requests[0]
    assert sent.url == "http://activity.test/api/member-activities/comments/likes"
    claims = jwt.decode(sent.headers["Authorization"].split()[1], SECRET, algorithms=["HS256"],
                        audience="dailyfeed-activity")
    assert claims["scope"] == "activity:record"
    assert b'"messageKey": "member_activity:kafka_event:LIKE_COMMENT###2###7###' in sent.body


def test_5xx_is_a_failure_retried_three_times():
    adapter = Scripted(503)
    with pytest.raises(TransportUnavailable, match="503"):
        transport(adapter).publish(EVENT)
    assert len(adapter.requests) == 3


def test_connection_errors_and_timeouts_are_retried_until_success():
    adapter = Scripted(requests.ConnectionError("refused"), requests.ReadTimeout("slow"), 200)
    transport(adapter).publish(EVENT)
    assert len(adapter.requests) == 3


def test_open_circuit_fails_fast_without_calling():
    adapter = Scripted(requests.ConnectionError("refused"))
    sender = transport(adapter, CircuitBreaker(window_size=2, minimum_calls=2, failure_rate=1.0, open_wait_s=60))
    for _ in range(2):
        with pytest.raises(TransportUnavailable):
            sender.publish(EVENT)
    calls = len(adapter.requests)
    with pytest.raises(CircuitOpen):
        sender.publish(EVENT)
    assert len(adapter.requests) == calls


@pytest.mark.parametrize("factor, max_backoff, pauses", [
    (2.0, 10.0, [0.1, 0.2, 0.4, 0.8]),   # exponential: each pause twice the one before
    (2.0, 0.3, [0.1, 0.2, 0.3, 0.3]),    # up to the cap
    (1.0, 10.0, [0.1, 0.1, 0.1, 0.1]),   # the default factor: evenly spaced
])
def test_the_configured_backoff_paces_the_attempts(factor, max_backoff, pauses):
    settings = load_settings({"feign.retry.attempts": 5, "feign.retry.backoff-s": 0.1, "feign.retry.factor": factor,
                              "feign.retry.max-backoff-s": max_backoff})
    adapter, slept = Scripted(503), []
    with pytest.raises(TransportUnavailable):
        transport(adapter, settings=settings, sleep=slept.append).publish(EVENT)
    assert len(adapter.requests) == 5
    assert slept == pytest.approx(pauses)


def test_a_success_ends_the_pauses():
    adapter, slept = Scripted(requests.ConnectionError("refused"), 200), []
    transport(adapter, sleep=slept.append).publish(EVENT)
    assert len(adapter.requests) == 2 and len(slept) == 1
