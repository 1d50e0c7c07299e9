"""The read side of the dead letters: selections, lists, lookups and stats, shared by the restore jobs, the CLI
(`dailyfeed deadletters`) and any page that shows them."""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Mapping

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.database import Database

from ..events import Category, as_utc, utcnow
from ..store import DEAD_LETTER_COLLECTIONS
from ..types import MAX_YEAR, MIN_YEAR, BadTimestamp, parse_timestamp
from .groups import GROUP_SCAN_LIMIT, Group, GroupSummary, summarise
from .model import NEWEST_FIRST, OLDEST_FIRST, Status

#: at most this many dead letters per collection are read for one overview chart
OVERVIEW_SCAN_LIMIT = 20_000


class DeadLetterReader:
    """Reading dead letters; part of DeadLetterStore (needs `db`, and `held_ids` of the claim protocol)."""

    db: Database
    held_ids: Callable[[str], set[Any]]

    def candidates(
        self,
        collection: str,
        selection: "Selection",
        *,
        after: tuple[datetime, Any] | None = None,
        limit: int = 50,
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Pending dead letters, oldest first, after a position. Claims are not on the dead letters: one held by
        another run is among them, and claiming it is what tells (claim_batch leaves it out)."""
        if not selection.takes(collection):
            return []
        query = selection.claimable_query()
        if after is not None:
            created_at, doc_id = after
            query = {
                "$and": [
                    query,
                    {"$or": [{"created_at": {"$gt": created_at}}, {"created_at": created_at, "_id": {"$gt": doc_id}}]},
                ]
            }
        cursor = self.db[collection].find(query, projection).sort(OLDEST_FIRST).limit(limit)
        return list(cursor)

    def count_claimable(self, collections: Iterable[str], selection: "Selection") -> int:
        """Pending dead letters of the selection that nobody holds right now."""
        query = selection.claimable_query()
        total = 0
        for name in selection.of(collections):
            total += self.db[name].count_documents(query)
            held = list(self.held_ids(name))
            if held:
                total -= self.db[name].count_documents({**query, "_id": {"$in": held}})
        return total

    def iter_claimable(self, collections: Iterable[str], selection: "Selection") -> Iterator[tuple[str, dict]]:
        """Every claimable dead letter of the collections (pending, nobody holds it right now), oldest first across
        them; reads only (dry runs)."""
        query = selection.claimable_query()

        def free(name: str) -> Iterator[dict]:
            held = self.held_ids(name)
            return (doc for doc in self.db[name].find(query).sort(OLDEST_FIRST) if doc["_id"] not in held)

        yield from _oldest_first([(name, free(name)) for name in selection.of(collections)])

    def list_dead_letters(
        self, selection: "Selection | None" = None, *, skip: int = 0, limit: int = 50, newest_first: bool = False
    ) -> tuple[list[tuple[str, dict]], int]:
        """Up to `limit` (collection, document) pairs after the first `skip`, oldest (or newest) first across the
        collections, and how many match. Reads at most skip + limit per collection (callers bound `skip`)."""
        selection = selection or Selection()
        query = selection.query()
        names = selection.of(DEAD_LETTER_COLLECTIONS)
        order = NEWEST_FIRST if newest_first else OLDEST_FIRST
        cursors = [(name, self.db[name].find(query).sort(order).limit(skip + limit)) for name in names]
        found = list(islice(_oldest_first(cursors, reverse=newest_first), skip, skip + limit))
        return found, sum(self.db[name].count_documents(query) for name in names)

    def count(self, selection: "Selection", statuses: Iterable[Status] | None = None) -> int:
        """How many dead letters match (in `statuses`, when given: those an action takes)."""
        query = selection.query(statuses)
        return sum(self.db[name].count_documents(query) for name in selection.of(DEAD_LETTER_COLLECTIONS))

    def iter_matching(
        self, collection: str, selection: "Selection", statuses: Iterable[Status] | None = None, *, batch: int = 50
    ) -> Iterator[list[dict[str, Any]]]:
        """The dead letters of a collection that match, oldest first, a batch at a time, each batch read when
        the previous one was handled (a keyset cursor: what the caller changes meanwhile is not read again)."""
        if not selection.takes(collection):
            return
        query = selection.query(statuses)
        after: tuple[datetime, Any] | None = None
        while True:
            page_query = (
                query
                if after is None
                else {
                    "$and": [
                        query,
                        {
                            "$or": [
                                {"created_at": {"$gt": after[0]}},
                                {"created_at": after[0], "_id": {"$gt": after[1]}},
                            ]
                        },
                    ]
                }
            )
            docs = list(self.db[collection].find(page_query).sort(OLDEST_FIRST).limit(batch))
            if not docs:
                return
            yield docs
            after = (docs[-1]["created_at"], docs[-1]["_id"])

    def lookup(self, id_or_key: str, collections: Iterable[str] = DEAD_LETTER_COLLECTIONS) -> list[tuple[str, dict]]:
        """Dead letters by `_id` or by message key (one key can be in a publisher and the listener collection)."""
        try:
            query: dict[str, Any] = {"$or": [{"_id": ObjectId(id_or_key)}, {"message_key": id_or_key}]}
        except (InvalidId, TypeError):
            query = {"message_key": id_or_key}
        return [(name, doc) for name in collections for doc in self.db[name].find(query)]

    def failure_groups(
        self, selection: "Selection | None" = None, *, scan_limit: int = GROUP_SCAN_LIMIT
    ) -> tuple[list[GroupSummary], bool]:
        """The failure groups of the open (pending or failed) dead letters the selection takes, most dead letters
        first, and whether a scan hit its bound (then the counts are of the newest part only)."""
        selection = selection or Selection()
        query = selection.query((Status.PENDING, Status.FAILED))
        fields = {
            "error": 1,
            "topic": 1,
            "created_at": 1,
            "last_attempt_at": 1,
            "status": 1,
            "message_key": 1,
            "category": 1,
        }
        found: list[tuple[str, dict]] = []
        truncated = False
        for name in selection.of(DEAD_LETTER_COLLECTIONS):
            docs = list(self.db[name].find(query, fields).sort(NEWEST_FIRST).limit(scan_limit))
            truncated |= len(docs) == scan_limit
            found += [(name, doc) for doc in docs]
        return summarise(found), truncated

    def find_group(self, fingerprint: str) -> Group | None:
        """The failure group of open dead letters with this fingerprint, if there is one now."""
        groups, _ = self.failure_groups()
        return next((s.group for s in groups if s.group.fingerprint == fingerprint), None)

    def stats(self) -> "DeadLetterStats":
        """Counts by collection, status and category, and the oldest pending dead letter of each collection.
        Plain count queries: FerretDB v1 has few $group accumulators."""
        counts: dict[str, dict[str, dict[str | None, int]]] = {}
        oldest: dict[str, datetime | None] = {}
        categories: list[str | None] = [c.value for c in Category] + [None]
        for name in DEAD_LETTER_COLLECTIONS:
            by_status: dict[str, dict[str | None, int]] = {}
            for status in Status:
                if not self.db[name].count_documents({"status": status.value}, limit=1):
                    continue
                by_category = {
                    c: self.db[name].count_documents({"status": status.value, "category": c}) for c in categories
                }
                by_status[status.value] = {c: n for c, n in by_category.items() if n}
            counts[name] = by_status
            first = self.db[name].find_one({"status": Status.PENDING.value}, {"created_at": 1}, sort=OLDEST_FIRST)
            oldest[name] = as_utc(first["created_at"]) if first else None
        return DeadLetterStats(counts=counts, oldest_pending=oldest)

    def overview(
        self, *, hours: int = 48, scan_limit: int = OVERVIEW_SCAN_LIMIT, now: datetime | None = None
    ) -> "Overview":
        """What the console's overview shows: the stats, dead letters created per hour over the last `hours`
        (newest hour last), and open (pending or failed) dead letters by error type. Counts and a bounded scan of
        two small fields per collection, no $group (FerretDB v1); `truncated` tells when a scan hit its bound."""
        now = now or utcnow()
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
        per_hour = {name: [0] * hours for name in DEAD_LETTER_COLLECTIONS}
        by_error: dict[str, dict[str, dict[str, int]]] = {}  # error type -> collection -> status -> count
        truncated = False
        open_statuses = [Status.PENDING.value, Status.FAILED.value]
        for name in DEAD_LETTER_COLLECTIONS:
            created = list(
                self.db[name].find({"created_at": {"$gte": start}}, {"created_at": 1, "_id": 0}).limit(scan_limit)
            )
            truncated |= len(created) == scan_limit
            for doc in created:
                slot = int((as_utc(doc["created_at"]) - start).total_seconds() // 3600)
                if 0 <= slot < hours:
                    per_hour[name][slot] += 1
            open_docs = list(
                self.db[name]
                .find({"status": {"$in": open_statuses}}, {"error.type": 1, "status": 1, "_id": 0})
                .limit(scan_limit)
            )
            truncated |= len(open_docs) == scan_limit
            for doc in open_docs:
                error_type = str((doc.get("error") or {}).get("type") or "unknown")
                counts = by_error.setdefault(error_type, {}).setdefault(name, {})
                counts[doc["status"]] = counts.get(doc["status"], 0) + 1
        return Overview(
            stats=self.stats(),
            hour_starts=[start + timedelta(hours=n) for n in range(hours)],
            created_per_hour=per_hour,
            by_error_type=by_error,
            truncated=truncated,
            at=now,
        )


def parse_when(text: str) -> datetime:
    """A filter's time: an ISO date (midnight UTC) or date-time (UTC unless it carries an offset), within the years
    1970-9999 once converted to UTC (the one rule of types.parse_timestamp). ValueError with the reason otherwise."""
    text = str(text).strip()
    try:
        iso = datetime.combine(date.fromisoformat(text), datetime.min.time()).isoformat() if len(text) == 10 else text
        return parse_timestamp(iso)
    except BadTimestamp as exc:
        if "outside the years" in str(exc):
            raise ValueError(f"{text[:80]!r} is outside the years {MIN_YEAR}-{MAX_YEAR} (UTC)") from None
        raise ValueError(_NOT_ISO.format(text[:80])) from None
    except ValueError:
        raise ValueError(_NOT_ISO.format(text[:80])) from None


_NOT_ISO = "{!r} is not an ISO date (2026-11-22) or date-time (2026-11-22T10:00:00Z)"


@dataclass(frozen=True)
class Selection:
    """Which dead letters a restore, a list or a bulk action takes: the filters of the CLI (`--category`,
    `--since`, `--key`, and for `deadletters discard --matching` the rest) and of the console, one object for both.

    `status` narrows lists and bulk actions; a restore always takes pending ones (`claimable_query`). `ids` are the
    dead letters picked by hand (`_id`s, of any collection). An empty selection matches every dead letter: bulk
    actions refuse one unless asked for all (`is_empty`)."""

    category: str | None = None
    since: datetime | None = None
    key: str | None = None
    until: datetime | None = None  # created before this
    key_prefix: str | None = None
    error_type: str | None = None
    status: Status | None = None
    collections: tuple[str, ...] | None = None  # None: all three
    ids: tuple[Any, ...] | None = None
    keys: tuple[str, ...] | None = None  # message keys picked (a console replay's hand-off copies)
    group: tuple[str, ...] | None = None  # a failure group (groups.Group.to_list()): its dead letters

    def claimable_query(self) -> dict[str, Any]:
        """The pending dead letters of the selection. Whether someone holds one is in its claims, not on it."""
        return {"status": Status.PENDING.value, **self.filters()}

    def filters(self) -> dict[str, Any]:
        """The filters of this selection, without the status: a query fragment for any dead-letter collection."""
        query: dict[str, Any] = {}
        if self.category is not None:
            query["category"] = self.category
        created: dict[str, Any] = {}
        if self.since is not None:
            created["$gte"] = self.since
        if self.until is not None:
            created["$lt"] = self.until
        if created:
            query["created_at"] = created
        if self.key is not None:
            query["message_key"] = self.key
        elif self.keys is not None:
            query["message_key"] = {"$in": list(self.keys)}
        elif self.key_prefix is not None:
            # anchored and escaped: an index range scan on a real MongoDB
            query["message_key"] = {"$regex": "^" + re.escape(self.key_prefix)}
        if self.error_type is not None:
            query["error.type"] = self.error_type
        if self.group is not None:
            query.update(Group(*self.group).query())
        if self.ids is not None:
            query["_id"] = {"$in": list(self.ids)}
        return query

    def query(self, statuses: Iterable[Status] | None = None) -> dict[str, Any]:
        """The filters plus the status: this selection's, narrowed to `statuses` (those an action takes) when
        given; a status outside them matches nothing."""
        query = self.filters()
        wanted = None if self.status is None else {self.status}
        if statuses is not None:
            wanted = set(statuses) if wanted is None else wanted & set(statuses)
        if wanted is not None:
            values = sorted(s.value for s in wanted)
            query["status"] = values[0] if len(values) == 1 else {"$in": values}
        return query

    def to_doc(self) -> dict[str, Any]:
        """The selection as a document (a task keeps it, the audit trail records it); `from_doc` reads it back."""
        doc: dict[str, Any] = {}
        for name in SELECTION_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, Status):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            doc[name] = value
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> "Selection":
        values: dict[str, Any] = {}
        for name, value in doc.items():
            if name not in SELECTION_FIELDS or value is None:
                continue
            if name == "status":
                value = Status(value)
            elif isinstance(value, list):
                value = tuple(value)
            elif isinstance(value, datetime):
                value = as_utc(value)
            values[name] = value
        return cls(**values)

    def fingerprints(self) -> list[str]:
        """One name per collection this selection takes, the same for the same filters: a running task holds a lock
        under each, so that two tasks never run on one collection and selection at once."""
        doc = {k: v for k, v in self.to_doc().items() if k != "collections"}
        for name in ("since", "until"):
            if name in doc:
                doc[name] = as_utc(doc[name]).isoformat()
        for name in ("ids", "keys"):
            if name in doc:
                doc[name] = sorted(str(v) for v in doc[name])
        text = json.dumps(doc, sort_keys=True, default=str)
        return [
            f"{collection}/{hashlib.sha256(text.encode()).hexdigest()[:32]}"
            for collection in self.of(DEAD_LETTER_COLLECTIONS)
        ]

    def takes(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def of(self, collections: Iterable[str]) -> list[str]:
        """The collections of `collections` this selection takes."""
        return [name for name in collections if self.takes(name)]

    @property
    def is_empty(self) -> bool:
        """No filter at all (a status or collection alone still counts as a filter)."""
        return self == Selection()

    def described(self) -> str:
        """The filters in words, for a confirmation: 'category POST, key prefix abc'."""
        parts = []
        for label, value in (
            ("collection", ", ".join(self.collections or ())),
            ("status", self.status),
            ("category", self.category),
            ("error type", self.error_type),
            ("key", self.key),
            ("key prefix", self.key_prefix),
            ("since", self.since),
            ("until", self.until),
        ):
            if value:
                parts.append(f"{label} {value.value if isinstance(value, Status) else value}")
        if self.group is not None:
            group = Group(*self.group)
            parts.append(f"group {group.fingerprint} ({group.error_type}: {group.message[:80]})")
        if self.ids is not None or self.keys is not None:
            parts.append(f"{len(self.ids or self.keys or ())} chosen")
        return ", ".join(parts) or "all dead letters"


SELECTION_FIELDS = tuple(Selection.__dataclass_fields__)


@dataclass(frozen=True)
class DeadLetterStats:
    counts: dict[str, dict[str, dict[str | None, int]]]  # collection -> status -> category -> count
    oldest_pending: dict[str, datetime | None]

    def total(self, collection: str, status: str) -> int:
        return sum(self.counts.get(collection, {}).get(status, {}).values())


@dataclass(frozen=True)
class Overview:
    stats: DeadLetterStats
    hour_starts: list[datetime]  # the start of each hour counted, oldest first
    created_per_hour: dict[str, list[int]]  # collection -> dead letters created in each hour
    by_error_type: dict[str, dict[str, dict[str, int]]]  # error type -> collection -> status -> count (open ones)
    truncated: bool  # a scan hit its bound: the charts count only part
    at: datetime

    def open_by_error_type(self) -> list[tuple[str, int]]:
        """(error type, open dead letters of it), most first."""
        totals = {
            error_type: sum(n for by_status in by_collection.values() for n in by_status.values())
            for error_type, by_collection in self.by_error_type.items()
        }
        return sorted(totals.items(), key=lambda item: (-item[1], item[0]))


def _oldest_first(cursors: list[tuple[str, Iterable[dict]]], reverse: bool = False) -> Iterator[tuple[str, dict]]:
    """(collection, document) pairs of several collections' oldest-first cursors, merged oldest first (newest
    first with `reverse`, for newest-first cursors)."""

    def tagged(name: str, docs: Iterable[dict]) -> Iterator[tuple[str, dict]]:
        return ((name, doc) for doc in docs)

    return heapq.merge(
        *(tagged(name, docs) for name, docs in cursors),
        key=lambda item: (as_utc(item[1]["created_at"]), item[1]["_id"]),
        reverse=reverse,
    )
