"""The other side of each transport, for the transport contract suite (tests/transport): a backend holds a transport
and what it delivers to, reads back what arrived there, and can put that side in each kind of failure and heal it.

- fake: the in-memory FakeTransport, failing on demand;
- feign: the real HttpTransport against the real app served by waitress on local ports (as `dailyfeed serve` runs
  it); the app is stopped (nothing listens), frozen (it accepts and never answers) or made to refuse (the request
  reaches it without its token: 401);
- kafka: the real KafkaTransport against a real broker; for the failure kinds a private broker that is killed
  (kill -9) or frozen (SIGSTOP), never the shared one.

Like arroyo's backend mixins: one suite, one small adapter per backend.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from dailyfeed import server
from dailyfeed.config import load_settings
from dailyfeed.events import ActivityEvent, PublishType
from dailyfeed.extension import get_container
from dailyfeed.store import MEMBER_ACTIVITIES
from dailyfeed.telemetry.tracing import trace_id_of
from dailyfeed.transport import build_http_transport, build_kafka_transport
from dailyfeed.transport.base import TransportRejected, TransportUnavailable
from dailyfeed.transport.fake import FakeTransport
from dailyfeed.transport.topics import DateTopics

from .apps import close_app, make_app
from .kafka import PrivateBroker, drop_topics, wait_until
from .records import find_record

RECORD_PATH = "/api/member-activities/"


class Failure(str, Enum):
    """What can happen to the other side of a transport."""

    DOWN = "down"  # nothing listens any more (a stopped service, a killed broker)
    FROZEN = "frozen"  # connections are accepted and never answered (a hung process)
    REFUSES = "refuses"  # it answers and refuses the event (4xx): retrying the same request will not help


#: the error a publish raises in each failure
ERRORS = {Failure.DOWN: TransportUnavailable, Failure.FROZEN: TransportUnavailable, Failure.REFUSES: TransportRejected}


@dataclass(frozen=True)
class Received:
    """An event as the other side got it."""

    message_key: str
    member_id: int
    activity_type: str
    trace_id: str | None


class Backend:
    """A transport (`transport`) and its other side. Subclasses say which failures they can have and read back
    what arrived; a side without topics names none in its errors."""

    name: str
    failures: tuple[Failure, ...]
    transport: Any

    def received(self) -> list[Received]:
        raise NotImplementedError

    def wait_received(self, key: str) -> Received:
        wait_until(lambda: any(r.message_key == key for r in self.received()), 10, 0.05, f"{key} arrives")
        [found] = [r for r in self.received() if r.message_key == key]
        return found

    def asked(self) -> int:
        """How many requests reached the other side."""
        raise NotImplementedError

    def topic_of(self, event: ActivityEvent) -> str | None:
        return None

    def fail(self, kind: Failure) -> str:
        """Put the other side in this failure; returns what the publish error says about it."""
        raise NotImplementedError

    def heal(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class FakeBackend(Backend):
    name = "fake"
    failures = (Failure.DOWN, Failure.FROZEN, Failure.REFUSES)
    ERRORS = {
        Failure.DOWN: TransportUnavailable("fake: connection refused"),
        Failure.FROZEN: TransportUnavailable("fake: no answer within the timeout"),
        Failure.REFUSES: TransportRejected("fake: answered 400"),
    }

    def __init__(self):
        self.transport = FakeTransport(PublishType.FEIGN)

    def received(self) -> list[Received]:
        return [
            Received(e.message_key, e.member_id, e.activity_type.value, trace_id_of(e.traceparent))
            for e in self.transport.published
        ]

    def asked(self) -> int:
        return self.transport.attempts

    def fail(self, kind: Failure) -> str:
        self.transport.fail_with(self.ERRORS[kind])
        return str(self.ERRORS[kind])

    def heal(self) -> None:
        self.transport.recover()

    def close(self) -> None:
        self.transport.close()


class Gate:
    """WSGI middleware in front of the app: counts the record calls, holds them unanswered while frozen, and takes
    their token away while refusing (so the app itself answers 401)."""

    def __init__(self, app: Callable):
        self.app = app
        self.asked = 0
        self.refusing = False
        self.open = threading.Event()
        self.open.set()

    def __call__(self, environ: dict[str, Any], start_response: Callable):
        if environ.get("PATH_INFO", "").startswith(RECORD_PATH):
            self.asked += 1
            self.open.wait(timeout=60)  # frozen: the caller times out; bounded so the server can still stop
            if self.refusing:
                environ.pop("HTTP_AUTHORIZATION", None)
        return self.app(environ, start_response)


class FeignBackend(Backend):
    name = "feign"
    failures = (Failure.DOWN, Failure.FROZEN, Failure.REFUSES)

    def __init__(self):
        self.app = make_app()
        self.gate = Gate(self.app)
        self.running: server.RunningServer | None = None
        self._serve(port=0, activity_port=0)
        self.ports = (self.running.main.effective_port, self.running.activity.effective_port)
        url = self.running.activity_url
        # short timeouts and two attempts: a frozen app costs a second, not the production 10 s read timeout
        settings = get_container(self.app).settings.with_overrides(
            {"feign.read-timeout-s": 0.5, "feign.retry.attempts": 2}
        )
        self.transport = build_http_transport(settings, lambda: url)

    def _serve(self, port: int, activity_port: int) -> None:
        self.running = server.start(
            lambda activity_url: self.gate, host="127.0.0.1", port=port, activity_port=activity_port, threads=2
        )

    def received(self) -> list[Received]:
        return [
            Received(d["message_key"], d["member_id"], d["member_activity_type"], trace_id_of(d.get("traceparent")))
            for d in get_container(self.app).db[MEMBER_ACTIVITIES].find()
        ]

    def asked(self) -> int:
        return self.gate.asked

    def fail(self, kind: Failure) -> str:
        if kind is Failure.DOWN:
            self.running.close()
            self.running = None
            return "ConnectionError"
        if kind is Failure.FROZEN:
            self.gate.open.clear()
            return "ReadTimeout"
        self.gate.refusing = True
        return "answered 401"

    def heal(self) -> None:
        if self.running is None:
            self._serve(*self.ports)
        self.gate.refusing = False
        self.gate.open.set()

    def close(self) -> None:
        self.transport.close()
        self.heal()  # releases held requests, so the server stops at once
        self.running.close()
        close_app(self.app)


class KafkaBackend(Backend):
    name = "kafka"
    failures = (Failure.DOWN, Failure.FROZEN)  # a broker that answers does not refuse an event of ours

    def __init__(self, bootstrap: str, broker: PrivateBroker | None = None):
        self.bootstrap = bootstrap
        self.broker = broker  # only a private broker may be broken
        self.broken: Failure | None = None
        self.settings = load_settings(
            {
                "kafka.bootstrap-servers": bootstrap,
                "kafka.topic.partitions": 1,
                "kafka.topic.prefix": f"c{uuid.uuid4().hex[:8]}-member-activity-",
            }
        )
        self.topics = DateTopics.from_settings(self.settings)
        self.transport = build_kafka_transport(self.settings)

    def wait_received(self, key: str) -> Received:
        record = find_record(self.bootstrap, self.topics.upcoming()[0], key)
        value = json.loads(record["value"])
        return Received(
            record["key"],
            value["memberId"],
            value["memberActivityType"],
            trace_id_of(record["headers"].get("traceparent")),
        )

    def topic_of(self, event: ActivityEvent) -> str | None:
        return self.topics.at(event.created_at)

    def fail(self, kind: Failure) -> str:
        assert self.broker is not None, "failure kinds need a private broker"
        self.broken = kind
        if kind is Failure.DOWN:
            self.broker.kill()
        else:
            self.broker.freeze()
        return self.settings["kafka.topic.prefix"]  # the error names the topic it could not publish to

    def heal(self) -> None:
        if self.broken is Failure.DOWN:
            self.broker.start()
        elif self.broken is Failure.FROZEN:
            self.broker.thaw()
        self.broken = None

    def close(self) -> None:
        self.transport.close()
        drop_topics(self.bootstrap, self.settings["kafka.topic.prefix"])
