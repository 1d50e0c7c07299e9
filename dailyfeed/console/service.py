"""What the console shows and does, for the admin API and the page alike: parse a filter into a Selection, read
the overview, lists and details, and run the actions (replay, discard, re-queue) through the restore jobs and the
claim protocol. Answers are plain JSON-ready dicts."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from bson import ObjectId
from bson.errors import InvalidId

from ..bootstrap import Container
from ..deadletters import (
    LISTENER_DEAD_LETTERS,
    PUBLISHER_DEAD_LETTERS,
    SHORT_NAMES,
    Selection,
    Status,
    parse_when,
)
from ..errors import Conflict, InvalidInput, NotFound
from ..events import Category
from ..ops.sources import LagMonitor
from ..restore.jobs import ListenerRestore, Mode, Outcome, PublisherRestore, RecordResult, RestoreOptions, Summary
from ..store import DEAD_LETTER_COLLECTIONS
from ..web import json_time

MAX_IDS = 500  # dead letters chosen by hand in one action
MAX_KEY_PREFIX = 512
MAX_LIST_SKIP = 10_000  # page * size: a list reads at most this many per collection
DETAILS_SHOWN = 100  # per-dead-letter lines an action answers with
COLLECTION_NAMES = {**{short: name for name, short in SHORT_NAMES.items()},
                    **{name: name for name in DEAD_LETTER_COLLECTIONS}}
FILTER_FIELDS = ("collection", "status", "category", "errorType", "key", "keyPrefix", "since", "until")


class ReplayMode:
    REPUBLISH = "republish"  # publisher dead letters through their transport (restore-publisher --mode republish)
    RECORD = "record"  # hand off to the listener side and record here (restore-publisher --mode handoff, then
    # restore-listener): for when the transport is still down, e.g. on the embedded store
    ALL = (REPUBLISH, RECORD)


# --- filters ----------------------------------------------------------------------------------------------------

def selection_from(params: Mapping[str, Any], ids: Iterable[Any] | None = None) -> Selection:
    """A Selection from filter parameters (a query string, a form or a JSON object; names as in FILTER_FIELDS;
    empty values are no filter) and ids chosen by hand. InvalidInput names what is wrong."""
    def text(name: str) -> str | None:
        value = params.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidInput(f"filter {name} must be a string")
        value = value.strip()
        return value or None

    unknown = sorted(set(params) - set(FILTER_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown filter {', '.join(unknown)}; filters are {', '.join(FILTER_FIELDS)}")
    collection = text("collection")
    if collection is not None and collection not in COLLECTION_NAMES:
        raise InvalidInput(f"collection must be one of {', '.join(SHORT_NAMES.values())}, got {collection!r}")
    status = text("status")
    if status is not None and status not in {s.value for s in Status}:
        raise InvalidInput(f"status must be one of {', '.join(s.value for s in Status)}, got {status!r}")
    category = text("category")
    if category is not None:
        category = category.upper()
        if category not in {c.value for c in Category}:
            raise InvalidInput(f"category must be one of {', '.join(c.value for c in Category)}, got {category!r}")
    key_prefix = text("keyPrefix")
    if key_prefix is not None and len(key_prefix) > MAX_KEY_PREFIX:
        raise InvalidInput(f"keyPrefix must be at most {MAX_KEY_PREFIX} characters")
    times = {}
    for name in ("since", "until"):
        value = text(name)
        try:
            times[name] = parse_when(value) if value is not None else None
        except ValueError as exc:
            raise InvalidInput(f"{name}: {exc}") from None
    if times["since"] and times["until"] and times["since"] >= times["until"]:
        raise InvalidInput("since must be before until")
    return Selection(category=category, since=times["since"], until=times["until"], key=text("key"),
                     key_prefix=key_prefix, error_type=text("errorType"),
                     status=Status(status) if status else None,
                     collections=(COLLECTION_NAMES[collection],) if collection else None,
                     ids=parse_ids(ids) if ids is not None else None)


def parse_ids(ids: Iterable[Any]) -> tuple[ObjectId, ...]:
    ids = list(ids)
    if not ids:
        raise InvalidInput("ids must name at least one dead letter")
    if len(ids) > MAX_IDS:
        raise InvalidInput(f"at most {MAX_IDS} ids at once (got {len(ids)}); use a filter for more")
    parsed = []
    for value in ids:
        try:
            parsed.append(ObjectId(value) if isinstance(value, str) else ObjectId(b"bad"))
        except (InvalidId, TypeError):
            raise InvalidInput(f"{value!r} is not a dead-letter id (24 hex digits)") from None
    return tuple(dict.fromkeys(parsed))


def overview(container: Container, lag: LagMonitor | None = None) -> dict[str, Any]:
    """`lag`: the app's consumer-lag monitor (dailyfeed.ops), whose last read the overview shows."""
    store = container.dead_letters
    seen = store.overview()
    now = seen.at
    collections = []
    for name in DEAD_LETTER_COLLECTIONS:
        oldest = seen.stats.oldest_pending.get(name)
        collections.append({
            "collection": name, "name": SHORT_NAMES[name],
            "counts": {s.value: seen.stats.total(name, s.value) for s in Status},
            "oldestPendingAt": json_time(oldest),
            "oldestPendingAgeSeconds": int((now - oldest).total_seconds()) if oldest else None,
            "createdPerHour": seen.created_per_hour[name]})
    return {
        "at": json_time(now),
        "collections": collections,
        "hours": [json_time(start) for start in seen.hour_starts],
        "errorTypes": [{"type": error_type, "open": total,
                        "byCollection": {SHORT_NAMES[name]: by_status
                                         for name, by_status in seen.by_error_type[error_type].items()}}
                       for error_type, total in seen.open_by_error_type()],
        "truncated": seen.truncated,
        "transports": transports(container),
        "consumerLag": consumer_lag(container, lag),
        "publications": publications(container, now),
    }


def publications(container: Container, now: datetime) -> dict[str, Any] | None:
    """The events owed by stored changes (the publication registry holds only those: one small read); None when
    the registry is off."""
    registry = container.publications
    if registry is None:
        return None
    stats = registry.stats()
    return {"owed": stats.outstanding, "oldestAgeSeconds": int(stats.oldest_age_s(now)) if stats.oldest else None,
            "graceSeconds": container.settings["outbox.grace-s"]}


def transports(container: Container) -> list[dict[str, Any]]:
    """Each service's transport and the state of its circuit breaker (None: the transport has none)."""
    answer = []
    for service, transport in container.transports.items():
        breaker = getattr(transport, "breaker", None)
        answer.append({"service": service.value, "kind": str(transport.kind),
                       "circuit": breaker.state if breaker is not None else None})
    return answer


def consumer_lag(container: Container, monitor: LagMonitor | None) -> dict[str, Any] | None:
    """The listener group's lag per topic-partition as the lag monitor last read it, so a page never waits on Kafka
    (None when no service publishes by Kafka: the app has no monitor then). A failed read is an answer too:
    `error` says why, next to the last read that worked (`readAt`), if there was one."""
    if monitor is None:
        return None
    reading = monitor.reading()
    read_at = datetime.fromtimestamp(reading.read_at, timezone.utc) if reading.read_at is not None else None
    now = time.time()
    return {"group": container.settings["kafka.consumer.group-id"], "error": reading.error,
            "errorAgeSeconds": int(now - reading.failed_at) if reading.failed_at is not None else None,
            "readAt": json_time(read_at),
            "readAgeSeconds": int(now - reading.read_at) if read_at is not None else None,
            "readEverySeconds": monitor.interval_s,
            "partitions": [{"topic": p.topic, "partition": p.partition, "endOffset": p.end_offset,
                            "committed": p.committed, "lag": p.lag, "lagSeconds": int(p.lag_seconds(now))}
                           for p in reading.partitions],
            "total": sum(p.lag for p in reading.partitions) if read_at is not None else None,
            "maxLagSeconds": max((int(p.lag_seconds(now)) for p in reading.partitions), default=0)}


def list_page(container: Container, selection: Selection, page: int, size: int) -> dict[str, Any]:
    if page * size > MAX_LIST_SKIP:
        raise InvalidInput(f"page * size must be at most {MAX_LIST_SKIP}; narrow the filter instead")
    found, total = container.dead_letters.list_dead_letters(selection, skip=page * size, limit=size,
                                                            newest_first=True)
    claims: dict[str, dict[Any, dict[str, Any]]] = {}  # one read of the claims per collection on the page
    for name in {name for name, _ in found}:
        claims[name] = container.dead_letters.claims_of(name, [doc for n, doc in found if n == name])
    return {"content": [summary_of(container, name, doc, claims[name].get(doc["_id"])) for name, doc in found],
            "page": page, "size": size,
            "total": total, "hasNext": (page + 1) * size < total}


def summary_of(container: Container, collection: str, doc: Mapping[str, Any],
               claim: Mapping[str, Any] | None | bool = False) -> dict[str, Any]:
    """A dead letter as the list shows it; `claim` as claims_of found it (False: read it now)."""
    error = doc.get("error") or {}
    if claim is False:
        claim = container.dead_letters.claim_of(collection, doc)
    return {"id": str(doc["_id"]), "collection": SHORT_NAMES.get(collection, collection),
            "messageKey": doc.get("message_key"), "category": doc.get("category"), "status": doc.get("status"),
            "topic": doc.get("topic"), "error": {"type": error.get("type"), "message": error.get("message")},
            "attempts": doc.get("attempts", 0), "createdAt": json_time(doc.get("created_at")),
            "updatedAt": json_time(doc.get("updated_at")), "lastAttemptAt": json_time(doc.get("last_attempt_at")),
            "claim": None if claim is None else {"held": True, "leaseUntil": json_time(claim["lease_until"])}}


def detail(container: Container, dead_letter_id: str) -> dict[str, Any]:
    [doc_id] = parse_ids([dead_letter_id])
    found = container.dead_letters.lookup(str(doc_id))
    found = [(name, doc) for name, doc in found if doc["_id"] == doc_id]
    if not found:
        raise NotFound(f"no dead letter has the id {dead_letter_id}")
    name, doc = found[0]
    payload = doc.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            pass  # shown as the text it is
    origin = doc.get("origin")
    return {**summary_of(container, name, doc), "payload": payload,
            "origin": {k: _plain(v) for k, v in origin.items()} if isinstance(origin, Mapping) else origin,
            "completedAt": json_time(doc.get("completed_at")), "discardedAt": json_time(doc.get("discarded_at")),
            "requeuedAt": json_time(doc.get("requeued_at"))}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return json_time(value)
    if isinstance(value, ObjectId):
        return str(value)
    return value


# --- actions ----------------------------------------------------------------------------------------------------

@dataclass
class ActionAnswer:
    action: str
    dry_run: bool
    counts: dict[str, int]
    selection: str
    details: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "dryRun": self.dry_run, **self.counts, "selection": self.selection,
                "details": self.details}


def check_bulk(selection: Selection, everything: bool) -> None:
    """Bulk actions refuse an empty filter unless asked for all."""
    if selection.is_empty and not everything:
        raise InvalidInput("no filter and no ids: this would act on every dead letter; give a filter or ids, "
                           "or ask for all explicitly (\"all\": true)")


def replay(container: Container, selection: Selection, *, dry_run: bool,
           mode: str = ReplayMode.REPUBLISH) -> ActionAnswer:
    """Restore the pending dead letters that match, through the restore jobs (their claims keep a CLI restore
    running at once off the same dead letters). A dry run changes nothing and says what a replay would do."""
    if mode not in ReplayMode.ALL:
        raise InvalidInput(f"mode must be one of {', '.join(ReplayMode.ALL)}, got {mode!r}")
    if selection.status not in (None, Status.PENDING):
        raise InvalidInput("a replay takes pending dead letters; re-queue failed ones first")
    summary = Summary()
    details: list[dict[str, str]] = []

    def report(result: RecordResult) -> None:
        if len(details) < DETAILS_SHOWN:
            details.append({"outcome": result.outcome.value, "collection": SHORT_NAMES.get(result.collection,
                                                                                             result.collection),
                            "key": result.key, "detail": result.detail})

    store = container.dead_letters
    jobs: list[Any] = []
    if selection.of(PUBLISHER_DEAD_LETTERS):
        jobs.append(PublisherRestore(store, container.transports, RestoreOptions(selection=selection),
                                     mode=Mode.HANDOFF if mode == ReplayMode.RECORD else Mode.REPUBLISH))
    if selection.of(LISTENER_DEAD_LETTERS):
        jobs.append(ListenerRestore(store, container.activity_service, RestoreOptions(selection=selection)))
    for job in jobs:
        if dry_run:
            summary.merge(job.preview(report=report))
            continue
        if isinstance(job, PublisherRestore) and job.mode is Mode.HANDOFF:
            summary.merge(_hand_off_and_record(container, job, report))
        else:
            summary.merge(job.run(report=report))
    return ActionAnswer("replay", dry_run, {"restored": summary.restored, "skipped": summary.skipped,
                                            "failed": summary.failed}, selection.described(), details)


def _hand_off_and_record(container: Container, job: PublisherRestore, report) -> Summary:
    """A "record" replay: hand the publisher dead letters off to the listener side, then record those copies
    here. A copy that cannot be recorded stays a pending listener dead letter with the reason, never lost.

    The answer counts what this call moved: an activity is "restored" by the call that recorded it. A copy this
    call handed off but another replay running at once recorded first counts there, and here as skipped (so that
    concurrent replays add up to the dead letters there were, not more)."""
    handed: list[str] = []
    summary = Summary()

    def handed_off(result: RecordResult) -> None:
        if result.outcome is Outcome.RESTORED:
            handed.append(result.key)
        else:
            summary.add(result)
            report(result)

    job.run(report=handed_off)
    if handed:
        settled: set[str] = set()

        def recorded(result: RecordResult) -> None:
            settled.add(result.key)
            report(result)

        summary.merge(ListenerRestore(container.dead_letters, container.activity_service, RestoreOptions(
            selection=Selection(collections=LISTENER_DEAD_LETTERS, keys=tuple(handed)))).run(report=recorded))
        for key in handed:
            if key not in settled:
                result = RecordResult(Outcome.SKIPPED, LISTENER_DEAD_LETTERS[0], key,
                                      "handed off here, recorded by another restore running at once")
                summary.add(result)
                report(result)
    return summary


def discard(container: Container, selection: Selection, *, dry_run: bool, expected: int | None) -> ActionAnswer:
    """Discard the pending or failed dead letters that match. Past a dry run, `expected` must be the count the
    dry run answered (what the operator confirmed): a different count now is a 409, and nothing is changed."""
    from ..deadletters.bulk import DISCARDABLE

    matching = container.dead_letters.count(selection, DISCARDABLE)
    if dry_run:
        return ActionAnswer("discard", True, {"matching": matching}, selection.described())
    if expected is None:
        raise InvalidInput("expectedCount is required: the count a dry run answered, as confirmed")
    if expected != matching:
        raise Conflict(f"the selection now matches {matching} dead letters to discard, not {expected}; "
                       "look again and confirm the new count")
    done = container.dead_letters.discard_matching(selection)
    return ActionAnswer("discard", False, {"discarded": done.done, "skipped": done.skipped, "failed": 0},
                        selection.described())


def requeue(container: Container, selection: Selection, *, dry_run: bool) -> ActionAnswer:
    """Put the failed dead letters that match back to pending (their error and attempts stay)."""
    from ..deadletters.bulk import REQUEUEABLE

    if dry_run:
        return ActionAnswer("requeue", True, {"matching": container.dead_letters.count(selection, REQUEUEABLE)},
                            selection.described())
    done = container.dead_letters.requeue_matching(selection)
    return ActionAnswer("requeue", False, {"requeued": done.done, "skipped": done.skipped, "failed": 0},
                        selection.described())
