"""The read side of the dead letters: selections, lists, lookups and stats, shared by the restore jobs, the CLI
(`dailyfeed deadletters`) and any page that shows them."""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Mapping

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.database import Database

from ..events import Category, as_utc
from ..store import DEAD_LETTER_COLLECTIONS
from .model import OLDEST_FIRST, Status


class DeadLetterReader:
    """Reading dead letters; part of DeadLetterStore (needs `db`, and `held_ids` of the claim protocol)."""

    db: Database
    held_ids: Callable[[str], set[Any]]

    def candidates(self, collection: str, selection: "Selection", *, after: tuple[datetime, Any] | None = None,
                   limit: int = 50, projection: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Pending dead letters, oldest first, after a position. Claims are not on the dead letters: one held by
        another run is among them, and claiming it is what tells (claim_batch leaves it out)."""
        query = selection.claimable_query()
        if after is not None:
            created_at, doc_id = after
            query = {"$and": [query, {"$or": [{"created_at": {"$gt": created_at}},
                                              {"created_at": created_at, "_id": {"$gt": doc_id}}]}]}
        cursor = self.db[collection].find(query, projection).sort(OLDEST_FIRST).limit(limit)
        return list(cursor)

    def count_claimable(self, collections: Iterable[str], selection: "Selection") -> int:
        """Pending dead letters of the selection that nobody holds right now."""
        query = selection.claimable_query()
        total = 0
        for name in collections:
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

        yield from _oldest_first([(name, free(name)) for name in collections])

    def list_dead_letters(self, *, status: Status | None = None, category: str | None = None,
             collections: Iterable[str] = DEAD_LETTER_COLLECTIONS, limit: int = 50) -> tuple[list, int]:
        """Up to `limit` (collection, document) pairs, oldest first across the collections, and how many match."""
        query: dict[str, Any] = {}
        if status is not None:
            query["status"] = status.value
        if category is not None:
            query["category"] = category
        names = list(collections)
        found = list(islice(_oldest_first([(name, self.db[name].find(query).sort(OLDEST_FIRST).limit(limit))
                                           for name in names]), limit))
        return found, sum(self.db[name].count_documents(query) for name in names)

    def lookup(self, id_or_key: str, collections: Iterable[str] = DEAD_LETTER_COLLECTIONS) -> list[tuple[str, dict]]:
        """Dead letters by `_id` or by message key (one key can be in a publisher and the listener collection)."""
        try:
            query: dict[str, Any] = {"$or": [{"_id": ObjectId(id_or_key)}, {"message_key": id_or_key}]}
        except (InvalidId, TypeError):
            query = {"message_key": id_or_key}
        return [(name, doc) for name in collections for doc in self.db[name].find(query)]

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
                by_category = {c: self.db[name].count_documents({"status": status.value, "category": c})
                               for c in categories}
                by_status[status.value] = {c: n for c, n in by_category.items() if n}
            counts[name] = by_status
            first = self.db[name].find_one({"status": Status.PENDING.value}, {"created_at": 1}, sort=OLDEST_FIRST)
            oldest[name] = as_utc(first["created_at"]) if first else None
        return DeadLetterStats(counts=counts, oldest_pending=oldest)


@dataclass(frozen=True)
class Selection:
    """Which dead letters a restore takes: filters of `--category`, `--since`, `--key`."""

    category: str | None = None
    since: datetime | None = None
    key: str | None = None

    def claimable_query(self) -> dict[str, Any]:
        """The pending dead letters of the selection. Whether someone holds one is in its claims, not on it."""
        query: dict[str, Any] = {"status": Status.PENDING.value}
        if self.category is not None:
            query["category"] = self.category
        if self.since is not None:
            query["created_at"] = {"$gte": self.since}
        if self.key is not None:
            query["message_key"] = self.key
        return query


@dataclass(frozen=True)
class DeadLetterStats:
    counts: dict[str, dict[str, dict[str | None, int]]]  # collection -> status -> category -> count
    oldest_pending: dict[str, datetime | None]

    def total(self, collection: str, status: str) -> int:
        return sum(self.counts.get(collection, {}).get(status, {}).values())


def _oldest_first(cursors: list[tuple[str, Iterable[dict]]]) -> Iterator[tuple[str, dict]]:
    """(collection, document) pairs of several collections' oldest-first cursors, merged oldest first."""
    def tagged(name: str, docs: Iterable[dict]) -> Iterator[tuple[str, dict]]:
        return ((name, doc) for doc in docs)

    return heapq.merge(*(tagged(name, docs) for name, docs in cursors),
                       key=lambda item: (as_utc(item[1]["created_at"]), item[1]["_id"]))


