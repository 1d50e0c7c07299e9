"""The claim/lease protocol of the restore jobs (SPEC section 8): who may work on a dead letter, and for how long.

A claim is a document in `dead_letter_claims` whose `_id` names the dead letter and a lease generation, so the
unique `_id` index decides who holds it. Why a document and not a conditional update of the dead letter: on
FerretDB v1 findAndModify reads the document and then rewrites it by `_id` (internal/handler/msg_findandmodify.go,
backends/sqlite UpdateAll), so two claimants of a conditional find_one_and_update can both "win" (a race test
double-claimed 15-58 % of the dead letters). The dead letter mirrors its claim (`is_editing`, `lease_until`,
`claim_token`, `lease_generation`) for operators and the original's tools; only the claim holder writes it after
that.

The restore jobs claim, mark and finish a batch at a time: one unordered insert of the batch's claims (a claim
refused by the unique `_id` is someone else's), one update of the dead letters by `_id $in`, one update and one
delete to finish them (updates of at most MAX_UPDATE dead letters each). What that costs on FerretDB v1 is in
docs/store-notes.md.
"""
from __future__ import annotations

import threading
import uuid
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from pymongo.database import Database

from ..events import as_utc, utcnow
from ..store import DEAD_LETTER_CLAIMS, DEAD_LETTER_COLLECTIONS
from .model import Status, error_info, insert_unordered

# The most dead letters one update command rewrites. FerretDB v1 writes each document an update matches with a
# statement of its own that scans the table, so one update of a few hundred can outlast the socket timeout (10 s:
# 500 in a collection of 2,000 did, with another load on the server), and the server goes on with it regardless.
MAX_UPDATE = 50
_CLAIM_FIELDS = {"lease_until": "", "claim_token": ""}
# mongomock checks a unique index and then stores with no lock between, and copies documents that other threads
# are updating in place: in-process claims on the embedded store take this lock, so that the unique _id decides
# as it does on a real server. (mongomock is not thread-safe beyond that; concurrent restores need a server.)
_mock_claim_lock = threading.Lock()


class ClaimProtocol:
    """Claiming, finishing and giving back dead letters; part of DeadLetterStore (needs `db`, `lease_seconds`)."""

    db: Database
    lease_seconds: int

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
            refused = insert_unordered(claims, docs)
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

    def requeue(self, collection: str, doc_id: Any, token: str) -> bool:
        """Put a claimed (failed) dead letter back to pending, for the restores to take again: its error and
        attempts stay. Like `release`, the claim document stays (a stale claimant must still collide with it)."""
        if not self._holds(collection, doc_id, token):
            return False
        now = utcnow()
        update = _released(now, None)
        update["$set"].update({"status": Status.PENDING.value, "is_completed": False, "requeued_at": now})
        self.db[collection].update_one({"_id": doc_id}, update)
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

    def claim_of(self, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        """Who holds a dead letter (as read) right now: {token, lease_until}, or None when nobody does (never
        claimed, given back, finished, or a lease that ran out). The one place that answers it, for the console."""
        if not doc.get("is_editing") or doc.get("lease_until") is None:
            return None
        lease_until = as_utc(doc["lease_until"])
        if lease_until <= utcnow():
            return None
        return {"token": doc.get("claim_token"), "lease_until": lease_until}

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

    def _atomic(self):
        return _mock_claim_lock if type(self.db).__module__.startswith("mongomock") else nullcontext()


def new_claim_token() -> str:
    return uuid.uuid4().hex


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



def _claim_id(collection: str, doc_id: Any, generation: Any) -> str:
    return f"{collection}/{doc_id}/{generation}"


def _claimable(doc: Mapping[str, Any] | None, now: datetime, statuses: tuple[Status, ...]) -> bool:
    if doc is None or doc.get("status") not in {s.value for s in statuses}:
        return False
    if not doc.get("is_editing"):
        return True
    lease_until = doc.get("lease_until")
    return lease_until is None or as_utc(lease_until) <= now


