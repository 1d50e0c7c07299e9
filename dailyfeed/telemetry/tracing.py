"""W3C trace context: the `traceparent` of a request travels with its activity event into the Kafka record's
headers, the feign call's headers and every dead letter, and is sent again when a restore republishes.

The current request's traceparent lives in a context variable (each request runs in its own thread, so each has
its own), set by `start_request` and reset by `end_request`; the content side stamps it on the event it publishes
(`stamp`), and from then on it travels with the event (ActivityEvent.traceparent), never in the event JSON.

With the OpenTelemetry API installed (`pip install 'dailyfeed[otel]'`) the incoming header is read by the
configured propagator and each request is a server span, child of it, through the global tracer: with an SDK and
an exporter configured that span is recorded and its traceparent travels on; with none (the default) the API's
no-op tracer records nothing and the incoming traceparent travels on unchanged, for a few microseconds a request.
Without the API the header is parsed and formatted below: its format is fixed by the W3C specification, a few
lines, and nothing is recorded. A request without a valid traceparent starts a trace (random ids, not sampled).
"""

from __future__ import annotations

import random
import re
from contextvars import ContextVar, Token
from typing import Any, Iterable, Mapping

try:  # the optional extra `otel`
    from opentelemetry import context as otel_context
    from opentelemetry import propagate as otel_propagate
    from opentelemetry import trace as otel_trace
except ImportError:  # pragma: no cover - exercised by tests that hide the API
    otel_trace = None

TRACEPARENT = "traceparent"
_PATTERN = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_current: ContextVar[str | None] = ContextVar("dailyfeed_traceparent", default=None)
_tracer: Any = None


def parse(header: Any) -> str | None:
    """A valid traceparent as version 00 (what we send on), or None for anything else (W3C Trace Context §3.2)."""
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(header, str):
        return None
    match = _PATTERN.fullmatch(header.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return f"00-{trace_id}-{span_id}-{flags}"


def trace_id_of(traceparent: str | None) -> str | None:
    return traceparent[3:35] if traceparent else None


def new_traceparent() -> str:
    """A new trace, started here: random ids, not sampled (nothing records it unless an SDK does)."""
    return f"00-{random.getrandbits(128) or 1:032x}-{random.getrandbits(64) or 1:016x}-00"


def current() -> str | None:
    """The traceparent of the request being served in this thread (None outside a request)."""
    return _current.get()


def stamp(event: Any) -> Any:
    """The event with the current request's traceparent, unless it carries one already."""
    if event.traceparent is not None:
        return event
    traceparent = _current.get()
    return event if traceparent is None else event.with_traceparent(traceparent)


def headers_for(traceparent: str | None) -> dict[str, str]:
    """HTTP headers that carry the trace on (the feign call)."""
    return {TRACEPARENT: traceparent} if traceparent else {}


def record_headers(traceparent: str | None) -> list[tuple[str, bytes]] | None:
    """Kafka record headers that carry the trace on; None when there is no trace (no headers at all)."""
    return [(TRACEPARENT, traceparent.encode("ascii"))] if traceparent else None


def from_record_headers(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    """The traceparent of a consumed record, if it carries a valid one."""
    for name, value in headers or ():
        if name == TRACEPARENT:
            return parse(value)
    return None


# --- the request's trace ---------------------------------------------------------------------------------------


class RequestTrace:
    """What `end_request` undoes."""

    __slots__ = ("token", "span", "otel_token")

    def __init__(self, token: Token, span: Any = None, otel_token: Any = None):
        self.token, self.span, self.otel_token = token, span, otel_token


def start_request(headers: Mapping[str, str], name: str) -> RequestTrace:
    """Take the trace of an incoming request (its `traceparent` header), or start one; make it current."""
    if otel_trace is None:
        traceparent = parse(headers.get(TRACEPARENT)) or new_traceparent()
        return RequestTrace(_current.set(traceparent))
    return _start_with_otel(headers, name)


def end_request(trace: RequestTrace | None) -> None:
    if trace is None:
        return
    if trace.span is not None:
        trace.span.end()
        otel_context.detach(trace.otel_token)
    _current.reset(trace.token)


def _start_with_otel(headers: Mapping[str, str], name: str) -> RequestTrace:
    global _tracer
    if _tracer is None:
        _tracer = otel_trace.get_tracer("dailyfeed")
    parent = otel_propagate.extract(headers)
    span = _tracer.start_span(name, context=parent, kind=otel_trace.SpanKind.SERVER)
    span_context = span.get_span_context()
    if not span_context.is_valid:  # no SDK and no incoming trace: the no-op tracer has none to give, start one
        span_context = otel_trace.SpanContext(
            trace_id=random.getrandbits(128) or 1,
            span_id=random.getrandbits(64) or 1,
            is_remote=False,
            trace_flags=otel_trace.TraceFlags(0),
        )
        span = otel_trace.NonRecordingSpan(span_context)
    otel_token = otel_context.attach(otel_trace.set_span_in_context(span, parent))
    traceparent = f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"
    return RequestTrace(_current.set(traceparent), span, otel_token)
