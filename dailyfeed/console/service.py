"""What the console shows, for the admin API and the page alike: parse a filter into a Selection, read the
overview, lists and details. Answers are plain JSON-ready dicts. What it does (replay, discard, re-queue) is
dailyfeed.restore.actions, the one module of dead-letter actions that the CLI calls too."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from bson import ObjectId
from bson.errors import InvalidId

from ..bootstrap import Container
from ..deadletters import (
    SHORT_NAMES,
    Selection,
    Status,
    parse_when,
)
from ..deadletters.audit import AUDIT_FILTERS, AuditQuery
from ..deadletters.groups import Group
from ..errors import InvalidInput, NotFound
from ..events import Category
from ..ops.sources import LagMonitor
from ..store import DEAD_LETTER_COLLECTIONS
from ..web import json_time

MAX_IDS = 500  # dead letters chosen by hand in one action
MAX_KEY_PREFIX = 512
MAX_LIST_SKIP = 10_000  # page * size: a list reads at most this many per collection
COLLECTION_NAMES = {
    **{short: name for name, short in SHORT_NAMES.items()},
    **{name: name for name in DEAD_LETTER_COLLECTIONS},
}
FILTER_FIELDS = ("collection", "status", "category", "errorType", "key", "keyPrefix", "since", "until", "group")
GROUPS_SHOWN = 50


# --- filters ----------------------------------------------------------------------------------------------------


def selection_from(
    params: Mapping[str, Any],
    ids: Iterable[Any] | None = None,
    *,
    find_group: Callable[[str], Group | None] | None = None,
) -> Selection:
    """A Selection from filter parameters (a query string, a form or a JSON object; names as in FILTER_FIELDS;
    empty values are no filter) and ids chosen by hand. A failure group (`group`, its fingerprint) is looked up
    with `find_group`. InvalidInput names what is wrong; NotFound a group with no open dead letter now."""

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
    collections = (COLLECTION_NAMES[collection],) if collection else None
    group = _group(text("group"), find_group, collections)
    return Selection(
        category=category,
        since=times["since"],
        until=times["until"],
        key=text("key"),
        key_prefix=key_prefix,
        error_type=text("errorType"),
        status=Status(status) if status else None,
        collections=(group.collection,) if group else collections,
        ids=parse_ids(ids) if ids is not None else None,
        group=tuple(group.to_list()) if group else None,
    )


def _group(
    fingerprint: str | None, find_group: Callable[[str], Group | None] | None, collections: tuple[str, ...] | None
) -> Group | None:
    if fingerprint is None:
        return None
    if not re.fullmatch(r"[0-9a-f]{16}", fingerprint):
        raise InvalidInput(f"group must be a failure group's fingerprint (16 hex digits), got {fingerprint[:40]!r}")
    if find_group is None:
        raise InvalidInput("a failure group cannot be a filter here")
    group = find_group(fingerprint)
    if group is None:
        raise NotFound(f"no open dead letter is in the failure group {fingerprint} now (resolved, or never was)")
    if collections is not None and group.collection not in collections:
        raise InvalidInput(
            f"the failure group {fingerprint} is of {SHORT_NAMES[group.collection]}, not of the collection filtered by"
        )
    return group


def failure_groups(container: Container, selection: Selection) -> dict[str, Any]:
    """The failure groups of the open dead letters the selection takes, most dead letters first."""
    found, truncated = container.dead_letters.failure_groups(selection)
    return {
        "content": [
            {
                "fingerprint": s.group.fingerprint,
                "collection": SHORT_NAMES[s.group.collection],
                "topic": s.group.topic or None,
                "errorType": s.group.error_type,
                "message": s.group.message,
                "count": s.count,
                "statuses": s.statuses,
                "firstSeen": json_time(s.first_seen),
                "lastSeen": json_time(s.last_seen),
                "example": {
                    "id": str(s.example["_id"]),
                    "messageKey": s.example.get("message_key"),
                    "message": (s.example.get("error") or {}).get("message"),
                },
            }
            for s in found[:GROUPS_SHOWN]
        ],
        "total": len(found),
        "truncated": truncated,
    }


def audit_query_from(params: Mapping[str, Any]) -> AuditQuery:
    """The audit trail's filters (a query string or a form): one of actor, action, outcome, task; since, until."""
    chosen = [name for name in AUDIT_FILTERS if params.get(name)]
    if len(chosen) > 1:
        raise InvalidInput(
            f"filter the audit trail by one of {', '.join(AUDIT_FILTERS)} at a time, not {' and '.join(chosen)}"
        )
    times = {}
    for name in ("since", "until"):
        try:
            times[name] = parse_when(params[name]) if params.get(name) else None
        except ValueError as exc:
            raise InvalidInput(f"{name}: {exc}") from None
    task = params.get("task") or None
    if task is not None:
        try:
            task = ObjectId(task)
        except (InvalidId, TypeError):
            raise InvalidInput(f"task: {task!r} is not a task id (24 hex digits)") from None
    return AuditQuery(
        actor=params.get("actor") or None,
        action=params.get("action") or None,
        outcome=params.get("outcome") or None,
        task=task,
        **times,
    )


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
        collections.append(
            {
                "collection": name,
                "name": SHORT_NAMES[name],
                "counts": {s.value: seen.stats.total(name, s.value) for s in Status},
                "oldestPendingAt": json_time(oldest),
                "oldestPendingAgeSeconds": int((now - oldest).total_seconds()) if oldest else None,
                "createdPerHour": seen.created_per_hour[name],
            }
        )
    return {
        "at": json_time(now),
        "collections": collections,
        "hours": [json_time(start) for start in seen.hour_starts],
        "errorTypes": [
            {
                "type": error_type,
                "open": total,
                "byCollection": {
                    SHORT_NAMES[name]: by_status for name, by_status in seen.by_error_type[error_type].items()
                },
            }
            for error_type, total in seen.open_by_error_type()
        ],
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
    return {
        "owed": stats.outstanding,
        "oldestAgeSeconds": int(stats.oldest_age_s(now)) if stats.oldest else None,
        "graceSeconds": container.settings["outbox.grace-s"],
    }


def transports(container: Container) -> list[dict[str, Any]]:
    """Each service's transport and the state of its circuit breaker (None: the transport has none)."""
    answer = []
    for service, transport in container.transports.items():
        breaker = getattr(transport, "breaker", None)
        answer.append(
            {
                "service": service.value,
                "kind": str(transport.kind),
                "circuit": breaker.state if breaker is not None else None,
            }
        )
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
    return {
        "group": container.settings["kafka.consumer.group-id"],
        "error": reading.error,
        "errorAgeSeconds": int(now - reading.failed_at) if reading.failed_at is not None else None,
        "readAt": json_time(read_at),
        "readAgeSeconds": int(now - reading.read_at) if read_at is not None else None,
        "readEverySeconds": monitor.interval_s,
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "endOffset": p.end_offset,
                "committed": p.committed,
                "lag": p.lag,
                "lagSeconds": int(p.lag_seconds(now)),
            }
            for p in reading.partitions
        ],
        "total": sum(p.lag for p in reading.partitions) if read_at is not None else None,
        "maxLagSeconds": max((int(p.lag_seconds(now)) for p in reading.partitions), default=0),
    }


def list_page(container: Container, selection: Selection, page: int, size: int) -> dict[str, Any]:
    if page * size > MAX_LIST_SKIP:
        raise InvalidInput(f"page * size must be at most {MAX_LIST_SKIP}; narrow the filter instead")
    found, total = container.dead_letters.list_dead_letters(selection, skip=page * size, limit=size, newest_first=True)
    claims: dict[str, dict[Any, dict[str, Any]]] = {}  # one read of the claims per collection on the page
    for name in {name for name, _ in found}:
        claims[name] = container.dead_letters.claims_of(name, [doc for n, doc in found if n == name])
    return {
        "content": [summary_of(container, name, doc, claims[name].get(doc["_id"])) for name, doc in found],
        "page": page,
        "size": size,
        "total": total,
        "hasNext": (page + 1) * size < total,
    }


def summary_of(
    container: Container, collection: str, doc: Mapping[str, Any], claim: Mapping[str, Any] | None | bool = False
) -> dict[str, Any]:
    """A dead letter as the list shows it; `claim` as claims_of found it (False: read it now)."""
    error = doc.get("error") or {}
    if claim is False:
        claim = container.dead_letters.claim_of(collection, doc)
    return {
        "id": str(doc["_id"]),
        "collection": SHORT_NAMES.get(collection, collection),
        "messageKey": doc.get("message_key"),
        "category": doc.get("category"),
        "status": doc.get("status"),
        "topic": doc.get("topic"),
        "error": {"type": error.get("type"), "message": error.get("message")},
        "attempts": doc.get("attempts", 0),
        "createdAt": json_time(doc.get("created_at")),
        "updatedAt": json_time(doc.get("updated_at")),
        "lastAttemptAt": json_time(doc.get("last_attempt_at")),
        "claim": None if claim is None else {"held": True, "leaseUntil": json_time(claim["lease_until"])},
    }


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
    return {
        **summary_of(container, name, doc),
        "payload": payload,
        "origin": {k: _plain(v) for k, v in origin.items()} if isinstance(origin, Mapping) else origin,
        "completedAt": json_time(doc.get("completed_at")),
        "discardedAt": json_time(doc.get("discarded_at")),
        "requeuedAt": json_time(doc.get("requeued_at")),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return json_time(value)
    if isinstance(value, ObjectId):
        return str(value)
    return value
