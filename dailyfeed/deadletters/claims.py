"""The claim/lease protocol of the restore jobs (SPEC section 8): who may work on a dead letter, and for how long.

A claim is a document in `dead_letter_claims` whose `_id` names the dead letter and a lease generation
(`<collection>/<dead letter _id>/<generation>`), so the unique `_id` index decides who holds it. Why a document and
not a conditional update of the dead letter: on FerretDB v1 findAndModify reads the document and then rewrites it
by `_id` (internal/handler/msg_findandmodify.go, backends/sqlite UpdateAll), so two claimants of a conditional
find_one_and_update can both "win" (a race test double-claimed 15-58 % of the dead letters).

Claims live only there: the dead letter is not written when it is claimed (the original's `is_editing` stays
false; README, "Restore claims"), so the only write a restored dead letter costs is its completion. The rules:

- A claim document, once inserted, is never deleted: only its lease ends (run out, or ended when it is given back
  or the dead letter is marked failed or discarded). So the generations of a dead letter only go up.
- A claimant inserts generation 1. A claim refused by the unique `_id` is someone else's: when the newest claim of
  that dead letter is still leased, it is lost; when its lease is over, the claimant inserts the next generation,
  and racing claimants collide on that one. So at most one claim of a dead letter is leased at any time.
- Only the holder of the newest claim writes the dead letter, so a dead letter that gets its generation 1 was
  never claimed, hence never finished, since it was read: that claim needs no check. A later generation is checked
  with one read of the dead letter (one finished after it was read is let go again, its lease ended).
- Completing a dead letter leaves its claim as it is: nobody claims a completed dead letter, and a claimant that
  read it before it was completed collides with that claim.

Claims are kept like the dead letters they name (completed dead letters are kept too): one small document per
dead letter claimed. The restore jobs claim and finish a batch at a time: one unordered insert of the batch's
claims, then one update completing the dead letters (per MAX_UPDATE). What that costs on FerretDB v1 is in
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
from ..store import DEAD_LETTER_CLAIMS
from .model import Status, error_info, insert_unordered

# The most dead letters one update command rewrites. FerretDB v1 writes each document an update matches with a
# statement of its own that scans the table, so one update of a few hundred can outlast the socket timeout (10 s:
# 500 in a collection of 2,000 did, with another load on the server), and the server goes on with it regardless.
MAX_UPDATE = 50
FINAL = {Status.COMPLETED.value, Status.DISCARDED.value}  # no claim is taken on these
# Finishing a dead letter also removes the claim mirror a version before this one wrote onto it.
_MIRROR_FIELDS = {"lease_until": "", "claim_token": "", "lease_generation": ""}
# mongomock checks a unique index and then stores with no lock between, and copies documents that other threads
# are updating in place: in-process claims on the embedded store take this lock, so that the unique _id decides
# as it does on a real server. (mongomock is not thread-safe beyond that; concurrent restores need a server.)
_mock_claim_lock = threading.Lock()


class ClaimProtocol:
    """Claiming, finishing and giving back dead letters; part of DeadLetterStore (needs `db`, `lease_seconds`)."""

    db: Database
    lease_seconds: int

    def claim(
        self, collection: str, doc_id: Any, token: str, statuses: tuple[Status, ...] = (Status.PENDING,)
    ) -> dict[str, Any] | None:
        """Take a dead letter for `token` until its lease runs out; the claimed document, or None when it is no
        longer in one of `statuses` or someone else holds it."""
        with self._atomic():
            doc = self.db[collection].find_one({"_id": doc_id})
            claimed = self._claim_batch(collection, [] if doc is None else [doc], token, statuses)
        return claimed[0] if claimed else None

    def claim_batch(
        self,
        collection: str,
        candidates: Iterable[Mapping[str, Any]],
        token: str,
        statuses: tuple[Status, ...] = (Status.PENDING,),
    ) -> list[dict[str, Any]]:
        """Take dead letters of one collection for `token` until their lease runs out.

        `candidates` are whole dead letters as read (by `candidates()`). Returns the claimed ones, in the order
        given, with their claim (`claim_token`, `lease_until`, `lease_generation`: what finishing them needs); a
        candidate no longer in one of `statuses` or held by someone else is left out. Round trips: one insert of
        every claim; more only for a dead letter claimed before (held, finished, given back, or abandoned by a
        crashed run): a read of its claims, and of the dead letter once it gets a later generation.
        """
        with self._atomic():
            return self._claim_batch(collection, list(candidates), token, statuses)

    def _claim_batch(
        self, collection: str, candidates: list[Mapping[str, Any]], token: str, statuses: tuple[Status, ...]
    ) -> list[dict[str, Any]]:
        now = utcnow()
        lease_until = now + timedelta(seconds=self.lease_seconds)
        wanted = {s.value for s in statuses}
        docs = {doc["_id"]: doc for doc in candidates if doc.get("status") in wanted}
        won = self._insert_claims(collection, list(docs), token, lease_until, now)
        later = [doc_id for doc_id, generation in won.items() if generation > 1]
        if later:
            # claimed before: it may have been finished since it was read, and the dead letter says so
            current = self._statuses(collection, later)
            gone = [doc_id for doc_id in later if current.get(doc_id) not in wanted]
            self._end_leases([_claim_id(collection, doc_id, won.pop(doc_id)) for doc_id in gone], now)
        return [
            {**doc, "claim_token": token, "lease_until": lease_until, "lease_generation": won[doc_id]}
            for doc_id, doc in docs.items()
            if doc_id in won
        ]

    def _statuses(self, collection: str, doc_ids: list[Any]) -> dict[Any, Any]:
        """The status of each of these dead letters as stored now (what a later generation's claim is checked by)."""
        return {
            doc["_id"]: doc.get("status") for doc in self.db[collection].find({"_id": {"$in": doc_ids}}, {"status": 1})
        }

    def _insert_claims(
        self, collection: str, doc_ids: list[Any], token: str, lease_until: datetime, now: datetime
    ) -> dict[Any, int]:
        """Insert a claim of each dead letter with one unordered insert; the dead letters whose claim went in, with
        its generation. Generation 1 first; for a refused one, the next after its newest claim when that one's
        lease is over (abandoned or given back), else it is lost."""
        claims = self.db[DEAD_LETTER_CLAIMS]
        won: dict[Any, int] = {}
        todo = dict.fromkeys(doc_ids, 1)
        for _ in range(10):
            if not todo:
                break
            ids = list(todo)
            refused = insert_unordered(
                claims,
                [
                    {
                        "_id": _claim_id(collection, doc_id, todo[doc_id]),
                        "collection": collection,
                        "dead_letter": doc_id,
                        "generation": todo[doc_id],
                        "token": token,
                        "lease_until": lease_until,
                        "created_at": now,
                    }
                    for doc_id in ids
                ],
            )
            won.update((doc_id, todo[doc_id]) for n, doc_id in enumerate(ids) if n not in refused)
            if not refused:
                break
            newest = self._newest_claims(collection, [ids[n] for n in refused])
            todo = {doc_id: claim["generation"] + 1 for doc_id, claim in newest.items() if _over(claim, now)}
        return won

    def complete(self, collection: str, doc_id: Any, token: str) -> bool:
        """Mark a claimed dead letter processed; False when the claim had been lost (lease run out)."""
        return bool(self.complete_batch(collection, [self._claim_of_token(collection, doc_id, token)], token))

    def complete_batch(self, collection: str, docs: Iterable[Mapping[str, Any]], token: str) -> list[Any]:
        """Mark claimed dead letters of one collection processed (`docs` as `claim_batch` returned them): one
        update (per MAX_UPDATE), the only write; their claims stay as they are. The `_id`s completed now; one whose
        claim had been lost (lease run out) to a run that still holds it, or gave it back, is left alone."""
        held = self._held(collection, docs, token)
        if held:
            self._update_by_id(collection, list(held), _completed(utcnow()))
        return list(held)

    def fail(self, collection: str, doc_id: Any, token: str, reason: BaseException | str) -> bool:
        """Mark a claimed dead letter as one that cannot be restored, with the reason."""
        now = utcnow()
        return self._finish(
            collection,
            doc_id,
            token,
            {
                "$set": {
                    "status": Status.FAILED.value,
                    "is_completed": False,
                    "is_editing": False,
                    "error": error_info(reason),
                    "last_attempt_at": now,
                    "updated_at": now,
                },
                "$inc": {"attempts": 1},
                "$unset": _MIRROR_FIELDS,
            },
        )

    def discard(self, collection: str, doc_id: Any, token: str) -> bool:
        now = utcnow()
        return self._finish(
            collection,
            doc_id,
            token,
            {
                "$set": {
                    "status": Status.DISCARDED.value,
                    "is_completed": False,
                    "is_editing": False,
                    "updated_at": now,
                    "discarded_at": now,
                },
                "$unset": _MIRROR_FIELDS,
            },
        )

    def release(self, collection: str, doc_id: Any, token: str, error: BaseException | str | None = None) -> bool:
        """Give a claimed dead letter back, still pending; with an error it counts as a failed attempt."""
        return self.release_batch(collection, [self._claim_of_token(collection, doc_id, token)], token, error) == 1

    def requeue(self, collection: str, doc_id: Any, token: str) -> bool:
        """Put a claimed (failed) dead letter back to pending, for the restores to take again: its error and
        attempts stay. Like `release`, the claim document stays (a stale claimant must still collide with it)."""
        return self._back_to_pending(collection, doc_id, token, "requeued_at")

    def undiscard(self, collection: str, doc_id: Any, token: str) -> bool:
        """Undo a discard: a claimed discarded dead letter goes back to pending (its error and attempts stay)."""
        return self._back_to_pending(collection, doc_id, token, "undiscarded_at", unset={"discarded_at": ""})

    def _back_to_pending(
        self, collection: str, doc_id: Any, token: str, stamp: str, unset: Mapping[str, str] | None = None
    ) -> bool:
        """A claimed dead letter made pending again, `stamp` naming when and why; its error and attempts stay."""
        now = utcnow()
        update: dict[str, Any] = {
            "$set": {
                "status": Status.PENDING.value,
                "is_completed": False,
                "is_editing": False,
                "updated_at": now,
                stamp: now,
            }
        }
        if unset:
            update["$unset"] = dict(unset)
        return self._finish(collection, doc_id, token, update)

    def release_batch(
        self, collection: str, docs: Iterable[Mapping[str, Any]], token: str, error: BaseException | str | None = None
    ) -> int:
        """Give claimed dead letters of one collection back, still pending: their claims' leases end (one update
        of the claims); with an error each counts as a failed attempt (one update of the dead letters, per
        MAX_UPDATE). How many were still held."""
        held = self._held(collection, docs, token)
        if not held:
            return 0
        now = utcnow()
        if error is not None:
            self._update_by_id(
                collection,
                list(held),
                {
                    "$set": {"error": error_info(error), "last_attempt_at": now, "updated_at": now},
                    "$inc": {"attempts": 1},
                },
            )
        self._end_leases([_claim_id(collection, doc_id, generation) for doc_id, generation in held.items()], now)
        return len(held)

    def release_all(self, token: str) -> int:
        """Give back every dead letter still held by `token` (an interrupted run), without counting an attempt: the
        leases of its claims on dead letters that are not final end (one read of them per collection)."""
        now = utcnow()
        leased: dict[str, dict[Any, str]] = {}
        for claim in self.db[DEAD_LETTER_CLAIMS].find({"token": token, "lease_until": {"$gt": now}}):
            if not _over(claim, now):
                leased.setdefault(claim["collection"], {})[claim["dead_letter"]] = claim["_id"]
        held = []
        for collection, claims in leased.items():
            held += [
                claims[doc["_id"]]
                for doc in self.db[collection].find({"_id": {"$in": list(claims)}}, {"status": 1})
                if doc.get("status") not in FINAL
            ]
        self._end_leases(held, now)
        return len(held)

    def claim_of(self, collection: str, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        """Who holds a dead letter of `collection` (as read) right now: {token, lease_until}, or None when nobody
        does (never claimed, given back, finished, or a lease that ran out). The one place that answers it, for the
        console; it reads the claims (`claims_of` for many at once)."""
        return self.claims_of(collection, [doc]).get(doc["_id"])

    def claims_of(self, collection: str, docs: Iterable[Mapping[str, Any]]) -> dict[Any, dict[str, Any]]:
        """`claim_of` for many dead letters (as read) of one collection with one read: `_id` -> {token, lease_until}
        of those held right now. A completed or discarded one is held by nobody (its last claim is left as it was)."""
        now = utcnow()
        open_ = [doc["_id"] for doc in docs if doc.get("status") not in FINAL]
        return {
            doc_id: {"token": claim["token"], "lease_until": as_utc(claim["lease_until"])}
            for doc_id, claim in self._newest_claims(collection, open_).items()
            if not _over(claim, now)
        }

    def held_ids(self, collection: str) -> set[Any]:
        """The dead letters of `collection` whose claim is leased right now (one read of those claims); completed
        ones among them are held by nobody: intersect with what is pending."""
        now = utcnow()
        return {
            claim["dead_letter"]
            for claim in self.db[DEAD_LETTER_CLAIMS].find({"collection": collection, "lease_until": {"$gt": now}})
            if not _over(claim, now)
        }

    # --- helpers ----------------------------------------------------------------------------------------------

    def _newest_claims(self, collection: str, doc_ids: list[Any]) -> dict[Any, dict[str, Any]]:
        """The newest claim (highest generation) of each of these dead letters that has one."""
        newest: dict[Any, dict[str, Any]] = {}
        if not doc_ids:
            return newest
        for claim in self.db[DEAD_LETTER_CLAIMS].find({"collection": collection, "dead_letter": {"$in": doc_ids}}):
            held = newest.get(claim["dead_letter"])
            if held is None or claim["generation"] > held["generation"]:
                newest[claim["dead_letter"]] = claim
        return newest

    def _held(self, collection: str, docs: Iterable[Mapping[str, Any] | None], token: str) -> dict[Any, int]:
        """Which of these claimed dead letters (`claim_batch`'s documents; a None is none) `token` still holds, with
        the generation: all whose lease has not run out (nobody takes a leased claim over; only its holder gives it
        back), and of the others those whose newest claim is still this one and was not given back (one read)."""
        now = utcnow()
        docs = [doc for doc in docs if doc is not None and doc.get("claim_token") == token]
        held = {doc["_id"]: doc["lease_generation"] for doc in docs if as_utc(doc["lease_until"]) > now}
        late = [doc for doc in docs if doc["_id"] not in held]
        if late:
            newest = self._newest_claims(collection, [doc["_id"] for doc in late])
            for doc in late:
                claim = newest.get(doc["_id"])
                if (
                    claim is not None
                    and claim["token"] == token
                    and claim["generation"] == doc["lease_generation"]
                    and claim.get("released_at") is None
                ):  # given back (or finished) by its holder: let go
                    held[doc["_id"]] = doc["lease_generation"]
        return {doc["_id"]: held[doc["_id"]] for doc in docs if doc["_id"] in held}

    def _claim_of_token(self, collection: str, doc_id: Any, token: str) -> dict[str, Any] | None:
        """A dead letter as `claim_batch` would have returned it to `token`, from its newest claim; None when that
        claim is not `token`'s (for the one-at-a-time calls, which are given only the `_id`)."""
        claim = self._newest_claims(collection, [doc_id]).get(doc_id)
        if claim is None or claim["token"] != token:
            return None
        return {
            "_id": doc_id,
            "claim_token": token,
            "lease_until": claim["lease_until"],
            "lease_generation": claim["generation"],
        }

    def _finish(self, collection: str, doc_id: Any, token: str, update: dict[str, Any]) -> bool:
        """Mark failed, discarded or pending again (requeue): the dead letter, then the claim's lease ends (a
        failed one may be claimed again, by a discard or a requeue)."""
        held = self._held(collection, [self._claim_of_token(collection, doc_id, token)], token)
        if not held:
            return False
        self.db[collection].update_one({"_id": doc_id}, update)
        self._end_leases([_claim_id(collection, doc_id, held[doc_id])], utcnow())
        return True

    def _end_leases(self, claim_ids: list[str], now: datetime) -> None:
        if claim_ids:
            self.db[DEAD_LETTER_CLAIMS].update_many(
                {"_id": {"$in": claim_ids}}, {"$set": {"lease_until": now, "released_at": now}}
            )

    def _update_by_id(self, collection: str, ids: list[Any], update: dict[str, Any]) -> int:
        """`update` the dead letters with these `_id`s, at most MAX_UPDATE a command; how many matched."""
        return sum(
            self.db[collection].update_many({"_id": {"$in": ids[at : at + MAX_UPDATE]}}, update).matched_count
            for at in range(0, len(ids), MAX_UPDATE)
        )

    def _atomic(self):
        return _mock_claim_lock if type(self.db).__module__.startswith("mongomock") else nullcontext()


def new_claim_token() -> str:
    return uuid.uuid4().hex


def _completed(now: datetime) -> dict[str, Any]:
    return {
        "$set": {
            "status": Status.COMPLETED.value,
            "is_completed": True,
            "is_editing": False,
            "updated_at": now,
            "completed_at": now,
        },
        "$unset": _MIRROR_FIELDS,
    }


def _over(claim: Mapping[str, Any], now: datetime) -> bool:
    """A claim nobody holds any more: given back, or its lease ran out."""
    return claim.get("released_at") is not None or as_utc(claim["lease_until"]) <= now


def _claim_id(collection: str, doc_id: Any, generation: Any) -> str:
    return f"{collection}/{doc_id}/{generation}"
