"""log.format = json: every line parses as one JSON object with time, level, logger and message; a publish
failure carries its message_key (and topic, trace_id); text stays the default."""

from __future__ import annotations

import io
import json
import logging

import mongomock
import pytest

from dailyfeed.config import ConfigError, load_settings
from dailyfeed.content.publishing import ActivityPublisher
from dailyfeed.deadletters import DeadLetterStore
from dailyfeed.events import ActivityEvent, ActivityType, PublishType, Service
from dailyfeed.telemetry import logs, tracing
from dailyfeed.transport.base import TransportUnavailable
from dailyfeed.transport.fake import FakeTransport

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def json_lines():
    """Records of the `dailyfeed` loggers formatted as log.format = json would, one string a line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    handler.addFilter(logs.TraceIdFilter())
    logger = logging.getLogger("dailyfeed")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_a_publish_failure_logs_json_with_its_message_key_topic_and_trace_id(json_lines):
    failing = FakeTransport(PublishType.KAFKA)
    error = TransportUnavailable("broker down (injected)")
    error.topic = "member-activity-20261129"
    failing.fail_with(error)
    publisher = ActivityPublisher({Service.POST: failing}, DeadLetterStore(mongomock.MongoClient()["logs_test"]))
    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=3)
    trace = tracing.start_request({"traceparent": TRACEPARENT}, "POST /api/posts")
    try:
        assert publisher.publish_activity(Service.POST, event) is False
    finally:
        tracing.end_request(trace)

    [line] = [entry for entry in json_lines() if entry["logger"] == "dailyfeed.content.publishing"]
    assert line["level"] == "WARNING"
    assert line["message_key"] == event.message_key
    assert line["topic"] == "member-activity-20261129"
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "broker down (injected)" in line["message"]
    assert line["time"].startswith("20") and "T" in line["time"]


def test_every_line_is_json_also_with_a_traceback_and_outside_a_request(json_lines):
    log = logging.getLogger("dailyfeed.test")
    log.info("plain %s", "line")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    plain, failed = json_lines()
    assert plain["message"] == "plain line" and "trace_id" not in plain
    assert failed["level"] == "ERROR" and "ValueError: boom" in failed["exc_info"]


def test_configure_logging_installs_one_handler_and_leaves_a_configured_process_alone(monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    logs.configure_logging("json", "DEBUG")
    logs.configure_logging("text", "INFO")  # again: the same handler, another format
    [handler] = root.handlers
    assert isinstance(handler.formatter, logging.Formatter) and handler.formatter._fmt == logs.TEXT_FORMAT
    assert root.level == logging.INFO

    foreign = logging.NullHandler()
    monkeypatch.setattr(root, "handlers", [foreign])
    logs.configure_logging("json", "INFO")
    assert root.handlers == [foreign]


def test_log_settings_are_checked_at_start_up():
    assert load_settings({"log.format": "JSON", "log.level": "debug"}, environ={})["log.format"] == "json"
    with pytest.raises(ConfigError, match="log.format"):
        load_settings({"log.format": "xml"}, environ={})
    with pytest.raises(ConfigError, match="log.level"):
        load_settings({"log.level": "chatty"}, environ={})


def test_text_lines_escape_control_characters_so_no_value_forges_a_line():
    """Issue 19 (4): a remote error message with newlines planted a fake CRITICAL line in the text format."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("text"))
    logger = logging.getLogger("dailyfeed.test_forged")
    logger.addHandler(handler)
    try:
        remote = "boom\n2026-11-29 10:00:00,000 CRITICAL dailyfeed: all data deleted\r\x1b[2K\u2028x"
        logger.warning("record call failed: %s", remote)
        try:
            raise TransportUnavailable(f"POST answered 500: {remote}")
        except TransportUnavailable:
            logger.exception("publish failed")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    records = [line for line in lines if not line.startswith(" ")]
    assert len(records) == 2 and all(" CRITICAL " not in line.split(": ", 1)[0] for line in records)
    assert records[0].endswith(
        "record call failed: boom\\n2026-11-29 10:00:00,000 CRITICAL dailyfeed: all data deleted\\r\\u001b[2K\\u2028x"
    )
    assert lines[lines.index(records[1]) + 1].startswith("    Traceback")
    assert not any(line.startswith("2026-11-29") for line in lines)
    assert "\x1b" not in stream.getvalue()


def test_flask_runs_coloured_request_lines_read_plainly_and_a_request_still_forges_nothing():
    """`flask run` colours its request lines with ANSI codes: in the text format they are dropped, not shown as
    \\u001b[35m, while a newline a client put in the request line is still escaped."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("text"))
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(handler)
    try:
        werkzeug.warning('127.0.0.1 - - "%s" %s -', "\x1b[35m\x1b[1mPOST /api/posts\nCRITICAL x HTTP/1.1\x1b[0m", 201)
    finally:
        werkzeug.removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        stream.getvalue().splitlines()[0].split("127.0.0.1")[0]
        + '127.0.0.1 - - "POST /api/posts\\nCRITICAL x HTTP/1.1" 201 -'
    ]
