"""The feign transport's own rules, with scripted answers instead of a network: its wire format, which failures it
retries and how it paces them. What every transport does (deliver, fail, refuse, close) is tests/transport."""

import logging
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import jwt
import pytest
import requests
from requests.adapters import BaseAdapter

from dailyfeed import tokens
from dailyfeed.config import load_settings
from dailyfeed.delivery import feign_options
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.transport import http
from dailyfeed.transport.base import CircuitOpen, TransportRejected, TransportUnavailable
from dailyfeed.transport.circuit import CircuitBreaker
from dailyfeed.transport.http import HttpTransport

SECRET = "unit-test-secret-0123456789-0123456789"
EVENT = ActivityEvent.new(
    ActivityType.LIKE_COMMENT, 7, post_id=1, comment_id=2, at=datetime(2026, 11, 22, tzinfo=timezone.utc)
)


class Scripted(BaseAdapter):
    """Answers each call with the next item: an HTTP status, (status, body bytes), or an exception to raise."""

    def __init__(self, *script):
        super().__init__()
        self.script = list(script)
        self.requests = []

    def send(self, request, **kwargs):
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        status, body = item if isinstance(item, tuple) else (item, b'{"message": "scripted"}')
        response = requests.Response()
        response.status_code = status
        response._content = body
        response.request = request
        return response

    def close(self):
        pass


def transport(adapter, breaker=None, settings=None, sleep=lambda seconds: None, base_url="http://activity.test"):
    """The feign transport built from the feign.* settings (test settings by default), its session answered by
    `adapter`; `sleep` receives the pauses between attempts instead of waiting them."""
    session = requests.Session()
    session.mount("http://activity.test", adapter)
    options = feign_options(settings or load_settings())
    return HttpTransport(
        lambda: base_url,
        SECRET,
        options,
        breaker or CircuitBreaker(window_size=100, minimum_calls=100),
        session=session,
        sleep=sleep,
    )


def test_posts_the_original_body_to_the_category_path_with_a_service_token():
    adapter = Scripted(201)
    transport(adapter).publish(EVENT)
    sent = adapter.requests[0]
    assert sent.url == "http://activity.test/api/member-activities/comments/likes"
    claims = jwt.decode(
        sent.headers["Authorization"].split()[1], SECRET, algorithms=["HS256"], audience="dailyfeed-activity"
    )
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


@pytest.mark.parametrize(
    "factor, max_backoff, pauses",
    [
        (2.0, 10.0, [0.1, 0.2, 0.4, 0.8]),  # exponential: each pause twice the one before
        (2.0, 0.3, [0.1, 0.2, 0.3, 0.3]),  # up to the cap
        (1.0, 10.0, [0.1, 0.1, 0.1, 0.1]),  # the default factor: evenly spaced
    ],
)
def test_the_configured_backoff_paces_the_attempts(factor, max_backoff, pauses):
    settings = load_settings(
        {
            "feign.retry.attempts": 5,
            "feign.retry.backoff-s": 0.1,
            "feign.retry.factor": factor,
            "feign.retry.max-backoff-s": max_backoff,
        }
    )
    adapter, slept = Scripted(503), []
    with pytest.raises(TransportUnavailable):
        transport(adapter, settings=settings, sleep=slept.append).publish(EVENT)
    assert len(adapter.requests) == 5
    assert slept == pytest.approx(pauses)


def test_a_success_ends_the_pauses():
    adapter, slept = Scripted(requests.ConnectionError("refused"), 200), []
    transport(adapter, sleep=slept.append).publish(EVENT)
    assert len(adapter.requests) == 2 and len(slept) == 1


@pytest.mark.parametrize(
    "base_url, url",
    [
        ("http://activity.test/", "http://activity.test/api/member-activities/comments/likes"),
        ("http://activity.test/edge/APP-X/", "http://activity.test/edge/APP-X/api/member-activities/comments/likes"),
    ],
)
def test_the_record_path_is_joined_to_the_base_url_with_one_slash(base_url, url):
    adapter = Scripted(201)
    transport(adapter, base_url=base_url).publish(EVENT)
    assert adapter.requests[0].url == url


@pytest.mark.parametrize("status", [300, 301, 400, 404, 409, 422, 499])
def test_an_answer_that_is_neither_success_nor_5xx_is_a_refusal_not_retried(status):
    adapter = Scripted((status, b'{"message": "memberId must be an integer"}'))
    with pytest.raises(TransportRejected) as refused:
        transport(adapter).publish(EVENT)
    assert str(refused.value) == (
        f"POST http://activity.test/api/member-activities/comments/likes answered {status}: memberId must be an integer"
    )
    assert len(adapter.requests) == 1


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_is_a_delivery(status):
    adapter = Scripted(status)
    transport(adapter).publish(EVENT)
    assert len(adapter.requests) == 1


def test_a_500_is_retried_and_the_failure_says_what_the_service_answered():
    adapter = Scripted((500, b'{"status": 500}'))
    with pytest.raises(TransportUnavailable) as failed:
        transport(adapter).publish(EVENT)
    assert str(failed.value) == "POST http://activity.test/api/member-activities/comments/likes answered 500: "
    assert len(adapter.requests) == 3


def test_a_non_json_answer_is_quoted_in_part():
    adapter = Scripted((502, b"<html>" + b"x" * 1000))
    with pytest.raises(TransportUnavailable) as failed:
        transport(adapter).publish(EVENT)
    assert str(failed.value).endswith(" answered 502: <html>" + "x" * 294)
    adapter = Scripted((409, b'{"message": "' + b"y" * 1000 + b'"}'))
    with pytest.raises(TransportRejected) as refused:
        transport(adapter).publish(EVENT)
    assert str(refused.value).endswith(" answered 409: " + "y" * 300)


def test_each_failed_attempt_is_logged_with_its_message_key(caplog):
    adapter = Scripted(requests.ConnectionError("refused"), 201)
    with caplog.at_level(logging.INFO, logger="dailyfeed.transport.http"):
        transport(adapter).publish(EVENT)
    [record] = [r for r in caplog.records if r.name == "dailyfeed.transport.http"]
    assert record.getMessage() == (
        f"record call for {EVENT.message_key} failed (attempt 1/3): POST "
        "http://activity.test/api/member-activities/comments/likes: ConnectionError: "
        "refused"
    )
    assert record.message_key == EVENT.message_key


def test_the_service_token_is_renewed_while_it_has_a_minute_left(monkeypatch):
    """The record endpoint refuses an expired token: every call must carry one with time to spare."""
    clock = {"monotonic": 10_000.0, "wall": datetime(2026, 11, 22, tzinfo=timezone.utc)}
    monkeypatch.setattr(http, "time", SimpleNamespace(monotonic=lambda: clock["monotonic"], sleep=lambda s: None))
    monkeypatch.setattr(tokens, "utcnow", lambda: clock["wall"])
    adapter = Scripted(201)
    sender = transport(adapter)
    minted = []
    for age in (0, 120, 240, 241, 300, 481, 482):
        clock["monotonic"] = 10_000.0 + age
        clock["wall"] = datetime(2026, 11, 22, tzinfo=timezone.utc) + timedelta(seconds=age)
        sender.publish(EVENT)
        claims = jwt.decode(
            adapter.requests[-1].headers["Authorization"].split()[1],
            SECRET,
            algorithms=["HS256"],
            audience="dailyfeed-activity",
            options={"verify_exp": False},
        )
        assert claims["exp"] - clock["wall"].timestamp() >= 60, age
        minted.append(claims["iat"] - 1_795_305_600)  # seconds since the first call
    # renewed once less than a minute is left (after 240 s of its 300), not once per call
    assert minted == [0, 0, 0, 241, 241, 241, 482]


def test_a_closed_transport_says_so_and_calls_nobody():
    adapter = Scripted(201)
    sender = transport(adapter)
    sender.close()
    with pytest.raises(TransportUnavailable) as failed:
        sender.publish(EVENT)
    assert str(failed.value) == "the feign transport is closed" and adapter.requests == []
