"""Bulk actions on the dead letters that match a Selection, shared by the CLI (`deadletters discard --matching`,
`retry --status failed`, `purge`) and the console: discard, re-queue failed ones, purge what is done with.

Each dead letter is claimed first (the claim protocol of claims.py), so an action never touches one that a restore
holds right now: that one is skipped, and counted so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from pymongo.database import Database

from ..store import DEAD_LETTER_CLAIMS, DEAD_LETTER_COLLECTIONS
from .claims import new_claim_token
from .model import Status
from .queries import Selection

#: the statuses a discard takes: a completed or discarded dead letter is final
DISCARDABLE = (Status.PENDING, Status.FAILED)
REQUEUEABLE = (Status.FAILED,)
UNDISCARDABLE = (Status.DISCARDED,)  # a discard is undone while the dead letter is kept (not purged)


@dataclass
class BulkResult:
    """What a bulk action did: `done` (discarded, re-queued) and `skipped` (held by a restore right now, or
    changed since it was read). A store failure raises; what was done before it stays done."""

    done: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class PurgeResult:
    dead_letters: int
    claims: int


class BulkActions:
    """Part of DeadLetterStore (needs the claim protocol and the reader)."""

    db: Database

    def discard_matching(self, selection: Selection, *, limit: int | None = None) -> BulkResult:
        """Mark every pending or failed dead letter that matches discarded: no restore will take it."""
        return self._each_claimed(selection, DISCARDABLE, self.discard, limit)

    def requeue_matching(self, selection: Selection, *, limit: int | None = None) -> BulkResult:
        """Put every failed dead letter that matches back to pending (its error and attempts stay)."""
        return self._each_claimed(selection, REQUEUEABLE, self.requeue, limit)

    def undiscard_matching(self, selection: Selection, *, limit: int | None = None) -> BulkResult:
        """Put every discarded dead letter that matches back to pending: a discard undone."""
        return self._each_claimed(selection, UNDISCARDABLE, self.undiscard, limit)

    def _each_claimed(
        self,
        selection: Selection,
        statuses: tuple[Status, ...],
        act: Callable[[str, Any, str], bool],
        limit: int | None,
    ) -> BulkResult:
        result = BulkResult()
        token = new_claim_token()
        try:
            for collection in selection.of(DEAD_LETTER_COLLECTIONS):
                for batch in self.iter_matching(collection, selection, statuses):
                    if limit is not None:
                        batch = batch[: max(0, limit - result.done - result.skipped)]
                        if not batch:
                            return result
                    claimed = self.claim_batch(collection, batch, token, statuses=statuses)
                    result.skipped += len(batch) - len(claimed)
                    for doc in claimed:
                        if act(collection, doc["_id"], token):
                            result.done += 1
                        else:
                            result.skipped += 1  # the lease ran out and another run took it
        finally:
            self.release_all(token)  # whatever a failure left held goes back at once, not when the lease ends
        return result

    def purge_completed(self, older_than: datetime, *, dry_run: bool = False, discarded: bool = False) -> PurgeResult:
        """Delete completed dead letters finished before `older_than` (with `discarded`, discarded ones discarded
        before it too), and claims whose lease ended before it (a claim outlives its dead letter's completion: see
        claims.py); with `dry_run`, only count them. Pending and failed dead letters are kept: someone still has to
        look at them."""
        done = [
            {
                "status": Status.COMPLETED.value,
                "$or": [
                    {"completed_at": {"$lt": older_than}},
                    {"completed_at": None, "updated_at": {"$lt": older_than}},
                ],
            }
        ]
        if discarded:
            done.append({"status": Status.DISCARDED.value, "discarded_at": {"$lt": older_than}})
        stale = {"lease_until": {"$lt": older_than}}
        claims = self.db[DEAD_LETTER_CLAIMS]
        if dry_run:
            return PurgeResult(
                dead_letters=sum(
                    self.db[name].count_documents(query) for name in DEAD_LETTER_COLLECTIONS for query in done
                ),
                claims=claims.count_documents(stale),
            )
        purged = sum(
            self.db[name].delete_many(query).deleted_count for name in DEAD_LETTER_COLLECTIONS for query in done
        )
        return PurgeResult(dead_letters=purged, claims=claims.delete_many(stale).deleted_count)
