"""Date topics: which ones exist, creating today's and tomorrow's, deleting old ones (SPEC section 4).

Names come from events.topic_name / topic_day (the one place topics are named); this module only decides
which days to create or delete and talks to the broker's admin API. `TopicAdmin` is the synchronous face used
at start-up and by `dailyfeed topics ensure | prune`; the async functions are shared with the producer, which
makes sure a topic exists before its first send to it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from ..config import Settings
from ..events import topic_day, topic_name, utcnow
from .loop import run_to_end

log = logging.getLogger(__name__)

DAY_MS = 24 * 60 * 60 * 1000
NO_ERROR = 0
TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code
UNKNOWN_TOPIC_OR_PARTITION = 3


class TopicAdminError(Exception):
    """The broker refused or could not be asked to create, list or delete topics."""


@dataclass(frozen=True)
class DateTopics:
    """The date topics of one configuration: `{prefix}{yyyyMMdd}` in `timezone`."""

    prefix: str
    timezone: str
    partitions: int = 6
    replication_factor: int = 1
    retention_ms: int = 7 * DAY_MS

    @classmethod
    def from_settings(cls, settings: Settings) -> "DateTopics":
        return cls(
            prefix=settings["kafka.topic.prefix"],
            timezone=settings["kafka.topic.timezone"],
            partitions=settings["kafka.topic.partitions"],
            replication_factor=settings["kafka.topic.replication-factor"],
            retention_ms=settings["kafka.topic.retention-ms"],
        )

    @property
    def pattern(self) -> str:
        """The listener's subscription: every date topic of this prefix (`^member-activity-\\d{8}$`)."""
        return "^" + re.escape(self.prefix) + r"\d{8}$"

    def at(self, moment: datetime) -> str:
        return topic_name(moment, self.prefix, self.timezone)

    def for_day(self, day: date) -> str:
        return f"{self.prefix}{day.strftime('%Y%m%d')}"

    def today(self, now: datetime | None = None) -> date:
        return (now or utcnow()).astimezone(ZoneInfo(self.timezone)).date()

    def upcoming(self, now: datetime | None = None) -> list[str]:
        """Today's and tomorrow's topics: what start-up and the daily cron make sure of."""
        today = self.today(now)
        return [self.for_day(today), self.for_day(today + timedelta(days=1))]

    def day_of(self, topic: str) -> date | None:
        return topic_day(topic, self.prefix)

    def older_than(self, topics: Iterable[str], keep_days: int, now: datetime | None = None) -> list[str]:
        """Date topics whose day lies more than `keep_days` days before today (today - keep_days is kept)."""
        cutoff = self.today(now) - timedelta(days=keep_days)
        days = {t: self.day_of(t) for t in topics}
        return sorted(t for t, day in days.items() if day is not None and day < cutoff)

    def topic_config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms)}


def default_keep_days(topics: DateTopics) -> int:
    """The retention in whole days, at least 1: topics older than that hold nothing the broker still keeps."""
    return max(1, -(-topics.retention_ms // DAY_MS))


# --- async admin calls (an AIOKafkaAdminClient that is started) --------------------------------------------------


def _entries(response: Any, field: str) -> list[tuple]:
    return [tuple(entry) for entry in getattr(response, field, [])]


async def create_topics(admin: Any, topics: DateTopics, names: Iterable[str]) -> dict[str, str]:
    """Create the named topics if missing: {name: "created" | "exists"}; raises TopicAdminError otherwise."""
    from aiokafka.admin import NewTopic

    names = list(dict.fromkeys(names))
    if not names:
        return {}
    response = await admin.create_topics(
        [
            NewTopic(name, topics.partitions, topics.replication_factor, topic_configs=topics.topic_config())
            for name in names
        ]
    )
    outcome: dict[str, str] = {}
    failures = []
    for entry in _entries(response, "topic_errors"):
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        if code == NO_ERROR:
            outcome[name] = "created"
        elif code == TOPIC_ALREADY_EXISTS:
            outcome[name] = "exists"
        else:
            failures.append(f"{name}: {_error_name(code)}{f' ({message})' if message else ''}")
    if failures:
        raise TopicAdminError("could not create " + "; ".join(failures))
    return outcome


async def list_date_topics(admin: Any, topics: DateTopics) -> list[str]:
    return sorted(t for t in await admin.list_topics() if topics.day_of(t) is not None)


async def delete_topics(admin: Any, names: list[str]) -> list[str]:
    """Delete the named topics; returns those deleted (a topic already gone counts as deleted)."""
    if not names:
        return []
    response = await admin.delete_topics(names)
    deleted, failures = [], []
    for entry in _entries(response, "topic_error_codes"):
        name, code = entry[0], entry[1]
        if code in (NO_ERROR, UNKNOWN_TOPIC_OR_PARTITION):
            deleted.append(name)
        else:
            failures.append(f"{name}: {_error_name(code)}")
    if failures:
        raise TopicAdminError(
            "could not delete " + "; ".join(failures) + (f" (deleted: {', '.join(deleted)})" if deleted else "")
        )
    return sorted(deleted)


def describe_error(exc: BaseException) -> str:
    """`Type: message`, without repeating the type when the message already starts with it (aiokafka's do)."""
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def _error_name(code: int) -> str:
    from aiokafka import errors

    return errors.for_code(code).__name__


# --- the synchronous face: start-up and the CLI ------------------------------------------------------------------


class TopicAdmin:
    """Each call opens an admin client, does its work within `timeout_s`, and closes the client."""

    def __init__(self, bootstrap_servers: str, topics: DateTopics, timeout_s: float = 10.0):
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> "TopicAdmin":
        timeout_s = max(settings["kafka.producer.send-timeout-ms"] / 1000, 5.0)
        return cls(settings["kafka.bootstrap-servers"], DateTopics.from_settings(settings), timeout_s)

    def ensure_upcoming(self, now: datetime | None = None) -> dict[str, str]:
        """Make sure today's and tomorrow's topics exist: {name: "created" | "exists"}."""
        names = self.topics.upcoming(now)
        return self._run(lambda admin: create_topics(admin, self.topics, names))

    def date_topics(self) -> list[str]:
        return self._run(lambda admin: list_date_topics(admin, self.topics))

    def prune(self, keep_days: int, *, dry_run: bool = False, now: datetime | None = None) -> list[str]:
        """Delete the date topics older than `keep_days` days; returns them (only lists them when dry_run)."""

        async def work(admin: Any) -> list[str]:
            stale = self.topics.older_than(await list_date_topics(admin, self.topics), keep_days, now)
            return stale if dry_run else await delete_topics(admin, stale)

        return self._run(work)

    def _run(self, work) -> Any:
        async def main() -> Any:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                client_id="dailyfeed-topics",
                request_timeout_ms=int(self.timeout_s * 1000),
            )
            try:
                await admin.start()
                return await work(admin)
            finally:
                await admin.close()

        try:
            return run_to_end(main, self.timeout_s)
        except TopicAdminError:
            raise
        except (asyncio.TimeoutError, TimeoutError):
            raise TopicAdminError(
                f"Kafka at {self.bootstrap_servers} did not answer within {self.timeout_s:.0f} s"
            ) from None
        except Exception as exc:
            raise TopicAdminError(f"Kafka at {self.bootstrap_servers}: {describe_error(exc)}") from exc


def ensure_topics_at_startup(settings: Settings) -> bool:
    """Start-up: create today's and tomorrow's topics if missing. A failure is logged, never raised: the app
    still serves (publishes that fail are kept as dead letters) and `dailyfeed topics ensure` can be rerun."""
    admin = TopicAdmin.from_settings(settings)
    try:
        outcome = admin.ensure_upcoming()
    except TopicAdminError as exc:
        log.error(
            "could not make sure the date topics %s exist: %s. The app runs on; until Kafka is reachable "
            "publishes are kept as dead letters. Run `dailyfeed topics ensure` once it is.",
            ", ".join(admin.topics.upcoming()),
            exc,
        )
        return False
    for name, state in outcome.items():
        log.info("date topic %s: %s", name, state)
    return True
