"""The dead-letter store: one canonical document shape in all three collections (SPEC section 7).

Publisher dead letters (`kafka_publisher_dead_letters`, `feign_dead_letters`) hold events the content side could
not hand over; listener dead letters (`kafka_listener_dead_letters`) hold records the activity side could not
parse or store. Every document is keyed by its message key (unique index), so recording the same failure twice
updates one document. The payload is always the canonical event JSON (as a string, like the original's), so
every dead letter restores to the activity the live path would have stored.

Restores claim a dead letter before working on it (SPEC section 8). A claim is a document in
`dead_letter_claims` whose `_id` names the dead letter and a lease generation, so the unique `_id` index decides
who holds it. A conditional find_one_and_update alone is not enough on FerretDB v1: its findAndModify reads the
document and then rewrites it by `_id` (internal/handler/msg_findandmodify.go, backends/sqlite UpdateAll), so two
claimants can both "win". The dead letter mirrors its claim (`is_editing`, `lease_until`, `claim_token`,
`lease_generation`) for operators and the original's tools; only the claim holder writes it after that.

The restore jobs claim, mark and finish a batch at a time: one unordered insert of the batch's claims (a claim
refused by the unique `_id` is someone else's), one update of the dead letters by `_id $in`, one update and one
delete to finish them (updates of at most MAX_UPDATE dead letters each): a handful of round trips per batch
instead of several per dead letter. FerretDB v1 (SQLite) still writes each document an update changes with an
UPDATE of its own, in its own transaction, whose `_id` condition (`->'$._id'`) does not match the `_id` index
(`->"_id"`) and so scans the table: those two writes per dead letter (mark, complete), not round trips, are what
a restore costs there, and they grow with the collection.
"""
from __future__ import annotations

import heapq
import json
import threading
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from itertools import islice
from typing import Any, Iterable, Iterator, Mapping

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ..events import ActivityEvent, Category, InvalidEvent, utcnow
from ..store import (
    DEAD_LETTER_CLAIMS,
    DEAD_LETTER_COLLECTIONS,
    FEIGN_DEAD_LETTERS,
    KAFKA_LISTENER_DEAD_LETTERS,
    KAFKA_PUBLISHER_DEAD_LETTERS,
)


class Status(str, Enum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    DISCARDED = "discarded"


PUBLISHER_COLLECTIONS = {"kafka": KAFKA_PUBLISHER_DEAD_LETTERS, "feign": FEIGN_DEAD_LETTERS}
PUBLISHER_DEAD_LETTERS = (KAFKA_PUBLISHER_DEAD_LETTERS, FEIGN_DEAD_LETTERS)
LISTENER_DEAD_LETTERS = (KAFKA_LISTENER_DEAD_LETTERS,)
MAX_RAW_CHARS = 64 * 1024  # a listener dead letter keeps at most this much of a raw record
OLDEST_FIRST = [("created_at", ASCENDING), ("_id", ASCENDING)]
# The most dead letters one update command rewrites. FerretDB v1 writes each document an update matches with a
# statement of its own that scans the table, so one update of a few hundred can outlast the socket timeout (10 s:
# 500 in a collection of 2,000 did, with another load on the server), and the server goes on with it regardless.
MAX_UPDATE = 50
_CLAIM_FIELDS = {"lease_until": "", "claim_token": ""}
# mongomock checks a unique index and then stores with no lock between, and copies documents that other threads
# are updating in place: in-process claims on the embedded store take this lock, so that the unique _id decides
# as it does on a real server. (mongomock is not thread-safe beyond that; concurrent restores need a server.)
_mock_claim_lock = threading.Lock()


class DeadLetterStoreError(Exception):
    """A dead letter could not be written: the caller must not consider the event safe."""


def error_info(error: BaseException | str) -> dict[str, str]:
    if isinstance(error, BaseException):
        return {"type": type(error).__name__, "message": str(error)[:2000]}
    return {"type": "Error", "message": str(error)[:2000]}


class DeadLetterStore:
    def __init__(self, db: Database, lease_seconds: int = 300):
        self.db = db
        self.lease_seconds = lease_seconds

    # --- writing failures -------------------------------------------------------------------------------------

    def record_publisher_failure(self, kind: str, event: ActivityEvent, error: BaseException,
                                 topic: str | None = None) -> None:
        """Keep an event the content side could not publish; raises DeadLetterStoreError if that fails too."""
        self._record(PUBLISHER_COLLECTIONS[kind], event.message_key, event.category.value,
                     json.dumps(event.to_json()), error, topic=topic, origin=None)

    def record_listener_failure(self, *, origin: Mapping[str, Any], error: BaseException,
                                event: ActivityEvent | None = None) -> None:
        """Keep a consumed record the activity side could not parse or store, with where it came from.

        `origin` is {topic, partition, offset, key, value} of the raw record. A record that could not be parsed
        is keyed by its origin, so a redelivery of the same record updates the same dead letter.
        """
        origin = {k: _clip(v) for k, v in origin.items()}
        if event is not None:
            key, category, payload = event.message_key, event.category.value, json.dumps(event.to_json())
        else:
            key = f"unparsed:{origin.get('topic')}:{origin.get('partition')}:{origin.get('offset')}"
            category, payload = None, None
        self._record(KAFKA_LISTENER_DEAD_LETTERS, key, category, payload, error,
                     topic=origin.get("topic"), origin=origin)

    def _record(self, collection: str, key: str, category: str | None, payload: str | None,
                error: BaseException, *, topic: str | None, origin: Mapping[str, Any] | None) -> None:
        """Insert the dead letter; when its key is there already (the same event failed again), count the new
        attempt on it instead. Insert first: an upsert by key scans the collection on FerretDB v1, and dead
        letters are written exactly when something is already failing."""
        now = utcnow()
        failure = {"error": error_info(error), "last_attempt_at": now, "updated_at": now,
                   "status": Status.PENDING.value, "is_completed": False, "is_editing": False}
        try:
            try:
                self.db[collection].insert_one({"message_key": key, "category": category, "payload": payload,
                                                "created_at": now, "topic": topic, "origin": origin, "attempts": 1,
                                                **failure})
            except DuplicateKeyError:
                self.db[collection].update_one({"message_key": key}, {"$set": failure, "$inc": {"attempts": 1}})
        except Exception as exc:  # any store fault: the caller decides (undo the write / do not commit)
            raise DeadLetterStoreError(f"could not store dead letter in {collection}: {exc}") from exc

    # --- claiming (restore jobs) ------------------------------------------------------------------------------

    def candidates(self, collection: str, selection: "Selection", *, after: tuple[datetime, Any] | None = None,
                   limit: int = 50, projection: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Pending dead letters nobody holds (or whose lease ran out), oldest first, after a position."""
        query = selection.claimable_query(utcnow())
        if after is not None:
            created_at, doc_id = after
            query = {"$and": [query, {"$or": [{"created_at": {"$gt": created_at}},
                                              {"created_at": created_at, "_id": {"$gt": doc_id}}]}]}
        cursor = self.db[collection].find(query, projection).sort(OLDEST_FIRST).limit(limit)
        return list(cursor)

    def count_claimable(self, collections: Iterable[str], selection: "Selection") -> int:
        query = selection.claimable_query(utcnow())
        return sum(self.db[name].count_documents(query) for name in collections)

    def iter_claimable(self, collections: Iterable[str], selection: "Selection") -> Iterator[tuple[str, dict]]:
        """Every claimable dead letter of the collections, oldest first across them; reads only (dry runs)."""
        query = selection.claimable_query(utcnow())
        yield from _oldest_first([(name, self.db[name].find(query).sort(OLDEST_FIRST)) for name in collections])

    def claim(self, collection: str, doc_id: Any, token: str,
              statuses: tuple[Status, ...] = (Status.PENDING,)) -> dict[str, Any] | None:
        """Take a dead letter for `token` until its lease runs out; the claimed document, or None when it is no
        longer in one of `statuses` or someone else holds it."""
        with self._atomic():
            doc = self.db[collection].find_one({"_id": doc_id})
            claimed = self._claim_batch(collection, [] if doc is None else [doc], token, statuses)
        return claimed[0] if claimed else None

    def claim_batch(self, collection: str, candidates: Iterable[Mapping[str, Any]], token: str,
                    statuses: tuple[Status, ...] = (Status.PENDING,)) -> list[dict[str, Any]]:
        """Take dead letters of one collection for `token` until their lease runs out.

        `candidates` are whole dead letters as read (by `candidates()`). Returns the claimed ones, in the order
        given, as they are once claimed; a candidate no longer in one of `statuses` or held by someone else is
        left out. Round trips: one insert of every claim and one mark per lease generation among them (usually
        one; per MAX_UPDATE); more only for claims abandoned by a crashed run or a dead letter finished meanwhile.
        """
        with self._atomic():
            return self._claim_batch(collection, list(candidates), token, statuses)

    def _claim_batch(self, collection: str, candidates: list[Mapping[str, Any]], token: str,
                     statuses: tuple[Status, ...]) -> list[dict[str, Any]]:
        now = utcnow()
        lease_until = now + timedelta(seconds=self.lease_seconds)
        docs = {doc["_id"]: doc for doc in candidates if _claimable(doc, now, statuses)}
        won = self._insert_claims(collection, {doc_id: int(doc.get("lease_generation") or 0) + 1
                                               for doc_id, doc in docs.items()}, token, lease_until, now)
        # Holding the claim makes us the only writer of the dead letter: mark it, unless its previous holder (lease
        # run out, but still alive) finished it meanwhile.
        mark = {"is_editing": True, "lease_until": lease_until, "claim_token": token, "updated_at": now}
        in_status = {"$in": [s.value for s in statuses]}
        marked = 0
        for generation in sorted(set(won.values())):
            ids = [doc_id for doc_id, claimed in won.items() if claimed == generation]
            marked += self._update_by_id(collection, ids, {"status": in_status},
                                         {"$set": {**mark, "lease_generation": generation}})
        if marked < len(won):
            stored = {doc["_id"]: doc for doc in self.db[collection].find({"_id": {"$in": list(won)}},
                                                                          {"claim_token": 1, "lease_generation": 1})}
            for doc_id, generation in list(won.items()):
                held = stored.get(doc_id) or {}
                if held.get("claim_token") != token or held.get("lease_generation") != generation:
                    del won[doc_id]  # finished meanwhile: the dead letter is final, our claim on it can go
                    self.db[DEAD_LETTER_CLAIMS].delete_one({"_id": _claim_id(collection, doc_id, generation)})
        return [{**doc, **mark, "lease_generation": won[doc_id]} for doc_id, doc in docs.items() if doc_id in won]

    def _insert_claims(self, collection: str, generations: Mapping[Any, int], token: str, lease_until: datetime,
                       now: datetime) -> dict[Any, int]:
        """Insert the claim of each dead letter (`_id` -> the lease generation to claim) with one unordered insert;
        the dead letters whose claim went in, with its generation. A claim `_id` already taken by a live claim,
        or by one let go a moment ago (its claim document is gone by now), is lost; one whose lease ran out was
        abandoned before it reached the dead letter (its holder crashed): the next generation is tried."""
        claims = self.db[DEAD_LETTER_CLAIMS]
        won: dict[Any, int] = {}
        todo = dict(generations)
        for _ in range(10):
            if not todo:
                break
            ids = list(todo)
            docs = [{"_id": _claim_id(collection, doc_id, todo[doc_id]), "token": token, "lease_until": lease_until,
                     "created_at": now} for doc_id in ids]
            refused = _insert_unordered(claims, docs)
            won.update((doc_id, todo[doc_id]) for n, doc_id in enumerate(ids) if n not in refused)
            if not refused:
                break
            held = {claim["_id"]: claim for claim in
                    claims.find({"_id": {"$in": [docs[n]["_id"] for n in refused]}}, {"lease_until": 1})}
            abandoned = {}
            for n in refused:
                claim = held.get(docs[n]["_id"])
                if claim is not None and as_utc(claim["lease_until"]) <= now:
                    abandoned[ids[n]] = todo[ids[n]] + 1
            todo = abandoned
        return won

    def complete(self, collection: str, doc_id: Any, token: str) -> bool:
        """Mark a claimed dead letter processed; False when the claim had been lost (lease run out)."""
        return self._finish(collection, doc_id, token, _completed(utcnow()))

    def complete_batch(self, collection: str, docs: Iterable[Mapping[str, Any]], token: str) -> list[Any]:
        """Mark claimed dead letters of one collection processed (`docs` as `claim_batch` returned them): one
        update (per MAX_UPDATE), one delete of their claims. The `_id`s completed now; one whose claim had been lost
        (lease run out) to a run that still holds it, or gave it back, is left alone."""
        docs = list(docs)
        if not docs:
            return []
        ids = [doc["_id"] for doc in docs]
        if self._update_by_id(collection, ids, {"claim_token": token}, _completed(utcnow())) < len(ids):
            # some claims were lost meanwhile
            now_stored = self.db[collection].find({"_id": {"$in": ids}}, {"status": 1, "claim_token": 1})
            final = {doc["_id"] for doc in now_stored
                     if doc.get("status") == Status.COMPLETED.value and "claim_token" not in doc}
            ids = [doc_id for doc_id in ids if doc_id in final]
        # The dead letters are final now; their claims can go (see _finish).
        generations = {doc["_id"]: doc.get("lease_generation") for doc in docs}
        self.db[DEAD_LETTER_CLAIMS].delete_many(
            {"_id": {"$in": [_claim_id(collection, doc_id, generations[doc_id]) for doc_id in ids]}})
        return ids

    def fail(self, collection: str, doc_id: Any, token: str, reason: BaseException | str) -> bool:
        """Mark a claimed dead letter as one that cannot be restored, with the reason."""
        now = utcnow()
        return self._finish(collection, doc_id, token, {
            "$set": {"status": Status.FAILED.value, "is_completed": False, "is_editing": False,
                     "error": error_info(reason), "last_attempt_at": now, "updated_at": now},
            "$inc": {"attempts": 1},
            "$unset": _CLAIM_FIELDS})

    def discard(self, collection: str, doc_id: Any, token: str) -> bool:
        now = utcnow()
        return self._finish(collection, doc_id, token, {
            "$set": {"status": Status.DISCARDED.value, "is_completed": False, "is_editing": False,
                     "updated_at": now, "discarded_at": now},
            "$unset": _CLAIM_FIELDS})

    def release(self, collection: str, doc_id: Any, token: str, error: BaseException | str | None = None) -> bool:
        """Give a claimed dead letter back, still pending; with an error it counts as a failed attempt."""
        if not self._holds(collection, doc_id, token):
            return False
        self.db[collection].update_one({"_id": doc_id}, _released(utcnow(), error))
        return True

    def release_batch(self, collection: str, docs: Iterable[Mapping[str, Any]], token: str,
                      error: BaseException | str | None = None) -> int:
        """Give claimed dead letters of one collection back, still pending, with one update (per MAX_UPDATE); with
        an error each counts as a failed attempt. How many were still held."""
        ids = [doc["_id"] for doc in docs]
        if not ids:
            return 0
        return self._update_by_id(collection, ids, {"claim_token": token}, _released(utcnow(), error))

    def release_all(self, token: str) -> int:
        """Give back every dead letter still held by `token` (an interrupted run), without counting an attempt."""
        released = 0
        for name in DEAD_LETTER_COLLECTIONS:
            result = self.db[name].update_many({"claim_token": token, "is_editing": True},
                                               {"$set": {"is_editing": False, "updated_at": utcnow()},
                                                "$unset": _CLAIM_FIELDS})
            released += result.modified_count
        return released

    def _update_by_id(self, collection: str, ids: list[Any], condition: dict[str, Any],
                      update: dict[str, Any]) -> int:
        """`update` the dead letters with these `_id`s that meet `condition`, at most MAX_UPDATE a command; how
        many matched."""
        return sum(self.db[collection].update_many({"_id": {"$in": ids[at:at + MAX_UPDATE]}, **condition},
                                                   update).matched_count
                   for at in range(0, len(ids), MAX_UPDATE))

    def _holds(self, collection: str, doc_id: Any, token: str) -> dict[str, Any] | None:
        doc = self.db[collection].find_one({"_id": doc_id}, {"claim_token": 1, "lease_generation": 1})
        return doc if doc is not None and doc.get("claim_token") == token else None

    def _finish(self, collection: str, doc_id: Any, token: str, update: dict[str, Any]) -> bool:
        doc = self._holds(collection, doc_id, token)
        if doc is None:
            return False
        self.db[collection].update_one({"_id": doc_id}, update)
        # The dead letter is final now; its claim can go. (A released claim stays: a stale claimant of the same
        # generation must still collide with it.)
        self.db[DEAD_LETTER_CLAIMS].delete_one({"_id": _claim_id(collection, doc_id, doc.get("lease_generation"))})
        return True

    def hand_off(self, source: str, doc: Mapping[str, Any], event: ActivityEvent) -> bool:
        """Copy a publisher dead letter into the listener collection, pending, as the original did; False when
        a listener dead letter with that key already existed (handed off before)."""
        return self.hand_off_batch([(source, doc, event)])[0]

    def hand_off_batch(self, items: Iterable[tuple[str, Mapping[str, Any], ActivityEvent]]) -> list[bool]:
        """`hand_off` for (source collection, dead letter, event) triples with one unordered insert: for each,
        whether it was copied (False: already there)."""
        now = utcnow()
        copies = [{"message_key": event.message_key, "category": event.category.value,
                   "payload": json.dumps(event.to_json()), "is_completed": False, "is_editing": False,
                   "created_at": doc.get("created_at", now), "updated_at": now, "topic": doc.get("topic"),
                   "error": doc.get("error"), "attempts": 0, "last_attempt_at": None,
                   "origin": {"handoff_from": source, "dead_letter_id": str(doc["_id"])},
                   "status": Status.PENDING.value}
                  for source, doc, event in items]
        refused = _insert_unordered(self.db[KAFKA_LISTENER_DEAD_LETTERS], copies)
        return [n not in refused for n in range(len(copies))]

    def _atomic(self):
        return _mock_claim_lock if type(self.db).__module__.startswith("mongomock") else nullcontext()

    # --- looking at them (dailyfeed deadletters) --------------------------------------------------------------

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

    def claimable_query(self, now: datetime) -> dict[str, Any]:
        query: dict[str, Any] = {
            "status": Status.PENDING.value,
            # not held, or held by a run whose lease ran out (it crashed)
            "$or": [{"is_editing": {"$ne": True}}, {"lease_until": {"$lte": now}}, {"lease_until": None}],
        }
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


def new_claim_token() -> str:
    return uuid.uuid4().hex


def dead_letter_event(doc: Mapping[str, Any]) -> ActivityEvent:
    """The event a dead letter holds: its canonical payload, keyed by the dead letter's message key; for a
    listener dead letter of a record that could not be parsed (payload null), one more try at its raw record.
    Raises InvalidEvent with the reason when there is no event to be had."""
    payload = doc.get("payload")
    if payload is None:
        origin = doc.get("origin") or {}
        if origin.get("value") is None:
            raise InvalidEvent("dead letter has no payload and no raw record to parse")
        event = ActivityEvent.from_bytes(origin["value"], origin.get("key"))
    else:
        if isinstance(payload, Mapping):
            body = payload
        else:
            try:
                body = json.loads(payload)
            except (TypeError, ValueError) as exc:
                raise InvalidEvent(f"payload is not JSON: {exc}") from None
        key = doc.get("message_key")
        event = ActivityEvent.from_json(body, key if isinstance(key, str) and key else None)
    category = doc.get("category")
    if category is not None and category != event.category.value:
        raise InvalidEvent(f"category {category} does not match the payload's type "
                           f"{event.activity_type.value} ({event.category.value})")
    return event


def _oldest_first(cursors: list[tuple[str, Iterable[dict]]]) -> Iterator[tuple[str, dict]]:
    """(collection, document) pairs of several collections' oldest-first cursors, merged oldest first."""
    def tagged(name: str, docs: Iterable[dict]) -> Iterator[tuple[str, dict]]:
        return ((name, doc) for doc in docs)

    return heapq.merge(*(tagged(name, docs) for name, docs in cursors),
                       key=lambda item: (as_utc(item[1]["created_at"]), item[1]["_id"]))


def _completed(now: datetime) -> dict[str, Any]:
    return {"$set": {"status": Status.COMPLETED.value, "is_completed": True, "is_editing": False,
                     "updated_at": now, "completed_at": now},
            "$unset": _CLAIM_FIELDS}


def _released(now: datetime, error: BaseException | str | None) -> dict[str, Any]:
    update: dict[str, Any] = {"$set": {"is_editing": False, "updated_at": now}, "$unset": _CLAIM_FIELDS}
    if error is not None:
        update["$set"].update({"error": error_info(error), "last_attempt_at": now})
        update["$inc"] = {"attempts": 1}
    return update


def _insert_unordered(collection: Collection, docs: list[dict[str, Any]]) -> set[int]:
    """Insert `docs` with one unordered insert_many: the positions of those a unique index refused (their key is
    already stored); every other one is stored. Any other write error is raised."""
    if not docs:
        return set()
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != 11000 for error in errors):
            raise
        return {error["index"] for error in errors}
    return set()


def _claim_id(collection: str, doc_id: Any, generation: Any) -> str:
    return f"{collection}/{doc_id}/{generation}"


def _claimable(doc: Mapping[str, Any] | None, now: datetime, statuses: tuple[Status, ...]) -> bool:
    if doc is None or doc.get("status") not in {s.value for s in statuses}:
        return False
    if not doc.get("is_editing"):
        return True
    lease_until = doc.get("lease_until")
    return lease_until is None or as_utc(lease_until) <= now


def as_utc(at: datetime | None) -> datetime | None:
    """Datetimes as UTC-aware (mongomock returns naive UTC ones)."""
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=timezone.utc)


def _clip(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            value = value.hex()
    if isinstance(value, str) and len(value) > MAX_RAW_CHARS:
        return value[:MAX_RAW_CHARS] + "…(truncated)"
    return value
