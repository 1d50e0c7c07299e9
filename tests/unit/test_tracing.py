"""W3C trace context (dailyfeed.telemetry.tracing), with the OpenTelemetry API installed and with it hidden: a valid
incoming traceparent is carried on with its trace id, anything else starts a new trace, and the trace travels with
the event (record headers, feign headers), never in the event JSON."""

from __future__ import annotations

import pytest

from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.telemetry import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(params=["otel-api", "no-otel"])
def backend(request, monkeypatch):
    if request.param == "no-otel":
        monkeypatch.setattr(tracing, "otel_trace", None)
    else:
        assert tracing.otel_trace is not None, "the test extra installs opentelemetry-api"
    return request.param


@pytest.mark.parametrize(
    "header, expected",
    [
        (INCOMING, INCOMING),
        (f"01-{TRACE_ID}-00f067aa0ba902b7-01-future-part", f"00-{TRACE_ID}-00f067aa0ba902b7-01"),  # a later version
        (INCOMING.encode(), INCOMING),  # as a Kafka header carries it
        (f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra", None),  # version 00 has exactly four parts
        (f"ff-{TRACE_ID}-00f067aa0ba902b7-01", None),  # version ff is invalid
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),  # all-zero trace id
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),  # all-zero parent id
        (INCOMING.upper(), None),  # upper-case hex is not the format
        ("garbage", None),
        ("", None),
        (None, None),
        (b"\xff\xfe", None),
    ],
)
def test_parse_keeps_valid_traceparents_only(header, expected):
    assert tracing.parse(header) == expected


def test_a_request_with_a_traceparent_carries_its_trace_id_and_ends_clean(backend):
    trace = tracing.start_request({"traceparent": INCOMING}, "POST /api/posts")
    try:
        current = tracing.current()
        assert tracing.parse(current) == current
        assert tracing.trace_id_of(current) == TRACE_ID
    finally:
        tracing.end_request(trace)
    assert tracing.current() is None


@pytest.mark.parametrize("headers", [{}, {"traceparent": "00-nonsense"}])
def test_a_request_without_a_valid_traceparent_starts_a_trace(backend, headers):
    first = tracing.start_request(headers, "GET /")
    one = tracing.current()
    tracing.end_request(first)
    second = tracing.start_request(headers, "GET /")
    other = tracing.current()
    tracing.end_request(second)
    assert tracing.parse(one) == one and tracing.parse(other) == other
    assert tracing.trace_id_of(one) != tracing.trace_id_of(other)


def test_nested_requests_restore_the_outer_trace(backend):
    outer = tracing.start_request({"traceparent": INCOMING}, "POST /api/posts")
    inner = tracing.start_request({}, "POST /api/member-activities/posts")
    assert tracing.trace_id_of(tracing.current()) != TRACE_ID
    tracing.end_request(inner)
    assert tracing.trace_id_of(tracing.current()) == TRACE_ID
    tracing.end_request(outer)
    assert tracing.current() is None


def test_the_event_takes_the_request_trace_but_its_json_and_identity_do_not_change(backend):
    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=1)
    assert tracing.stamp(event) is event  # outside a request: nothing to stamp
    trace = tracing.start_request({"traceparent": INCOMING}, "POST /api/posts")
    try:
        stamped = tracing.stamp(event)
    finally:
        tracing.end_request(trace)
    assert tracing.trace_id_of(stamped.traceparent) == TRACE_ID
    assert stamped.to_json() == event.to_json() and stamped.to_bytes() == event.to_bytes()
    assert stamped == event and stamped.message_key == event.message_key
    assert tracing.stamp(stamped.with_traceparent(f"00-{'1' * 32}-{'2' * 16}-00")).traceparent.startswith("00-111")


def test_record_and_http_headers_carry_the_trace_and_read_back():
    headers = tracing.record_headers(INCOMING)
    assert headers == [("traceparent", INCOMING.encode())]
    assert tracing.from_record_headers(headers) == INCOMING
    assert tracing.from_record_headers([("other", b"x"), ("traceparent", b"junk")]) is None
    assert tracing.record_headers(None) is None and tracing.from_record_headers(None) is None
    assert tracing.headers_for(INCOMING) == {"traceparent": INCOMING} and tracing.headers_for(None) == {}
