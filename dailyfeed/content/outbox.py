"""The event publication registry (a transactional outbox on a store without multi-document transactions): the
event a content change owes is durable before the change can be seen, and a relay publishes what a crashed
process left owed. docs/outbox.md has the same protocol with its reasons.

A publication is one document of `event_publications`: `_id` = the event's message key, the service that
publishes it, the event as it will be sent (its JSON and the traceparent stamped before it was recorded, so a
republish keeps key, createdAt and traceparent), the target that tells whether the change landed, `created_at`, and
`due_at` = created_at + `outbox.grace-s` (until then it is the writer's; the relay takes only publications past due).

A write is this order of single-document writes; after a crash at each point:

1. **record** the publication (insert). Crash after it: the change never landed; the relay finds no marker and
   drops the publication, publishing nothing.
2. **apply** the change, carrying the event's key in the same single-document write: pushed onto the `events` of
   the post or comment (its last MAX_MARKERS), or as the `_id` of the like created; an unlike deletes the like
   by its `_id`. Crash after it: the change is stored and its event owed; the relay sees the marker (the like, or
   for an unlike the like's absence) and publishes the event. A comment's delete marks the comment first and then
   its live replies (update_many); the relay rolls the replies forward (idempotent) before it publishes.
3. **publish**: deliver, or keep a dead letter (ActivityPublisher, SPEC section 5). Crash after it: the relay
   publishes the event again, with its key: the listener and the record endpoint store it once.
4. **complete**: delete the publication (a serving process's completer deletes them in batches, off the request
   path). Crash after it: nothing is owed; or, if the process died before the batch was deleted, the relay
   publishes the event again with its key (stored once downstream).

When the event can be neither delivered nor kept (PublishFailed), the writer first takes the publication's claim
(the claims of the restore jobs, deadletters/claims.py: a document with a unique `_id`, safe on FerretDB v1 where a
conditional update is not atomic). Taken: it undoes the change (removing the marker with it), then drops the
publication, and the write answers 503; a crash between the two leaves a publication whose change is not there,
which the relay drops. Not taken: a relay holds the publication (the write outlived the grace period) and will
publish it, so the change stays and the write succeeds. A change whose apply step raised is undone the same way.

An unlike first marks the publication of the like it removes (if still owed) as landed: the like's absence no
longer tells whether it was ever stored.

**The relay** (`PublicationRelay.run_pass`; in each serving process every `outbox.interval-s`, once at start-up,
and `dailyfeed outbox relay`): reads up to `outbox.batch` publications past due, claims them (one insert of
claims; lost ones are someone else's), reads them again (one the writer completed meanwhile is let go), reads
their targets (one read per collection), then for each: landed → roll forward, publish through the same
ActivityPublisher (delivered, or a dead letter exactly as a request does; neither → left owed for the next pass,
its claim given back; the change is never undone here), complete; not landed → drop. Completed and dropped
publications are deleted with one delete. Two relays never hold one publication at once; a relay that dies
holding some leaves them to the next relay once its lease (`outbox.lease-s`) runs out, and an event it had
published is published again with its key (stored once downstream).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Callable, Iterable, Mapping

from pymongo.database import Database

from ..deadletters import Status
from ..deadletters.claims import ClaimProtocol, new_claim_token
from ..events import ActivityEvent, Service, as_utc, utcnow
from ..store import EVENT_PUBLICATIONS
from ..telemetry import metrics, tracing
from .publishing import ActivityPublisher, PublishFailed
from .repository import ContentRepository

log = logging.getLogger(__name__)

# The protocol's steps, named where a fault-injection hook (`Checkpoint`) is called after each.
RECORDED = "recorded"  # 1. the publication is stored
APPLIED = "applied"  # 2. the change is stored with its marker (a comment's delete: the comment and its replies)
ROOT_APPLIED = "root-applied"  # 2a. a comment's delete: the comment is marked, its replies not yet
PUBLISHED = "published"  # 3. delivered or kept as a dead letter
COMPLETED = "completed"  # 4. the publication is deleted
UNDONE = "undone"  # the change is undone (publish failed), the publication not yet dropped
RELAY_CLAIMED = "relay-claimed"  # the relay holds a batch
RELAY_PUBLISHED = "relay-published"  # the relay published (or dead-lettered) one, not yet completed
STEPS = (RECORDED, ROOT_APPLIED, APPLIED, PUBLISHED, COMPLETED, UNDONE, RELAY_CLAIMED, RELAY_PUBLISHED)

Checkpoint = Callable[[str, str], None]  # (step, message key): called after each step; tests raise there


def no_checkpoint(step: str, key: str) -> None:
    """The checkpoint of a real process: nothing happens between the steps."""


class SimulatedCrash(BaseException):
    """Raised by a test's checkpoint: the process "dies" there. A BaseException, so that no `except Exception` of
    the write path runs, as none would in a process that was killed."""


class Landing(str, Enum):
    """How the relay tells that a change landed."""

    MARKED = "marked"  # the event's key is in the `events` of the document (post, comment)
    PRESENT = "present"  # the document exists (a like, stored under the event's key)
    ABSENT = "absent"  # the document is gone (the like an unlike removed)


@dataclass(frozen=True)
class Target:
    """The document a change touches and how to tell it landed; `thread`: a comment's delete, whose replies the
    relay rolls forward."""

    collection: str
    id: Any
    landing: Landing
    thread: bool = False

    def to_doc(self) -> dict[str, Any]:
        return {"collection": self.collection, "id": self.id, "landing": self.landing.value, "thread": self.thread}

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> "Target":
        return cls(doc["collection"], doc["id"], Landing(doc["landing"]), bool(doc.get("thread")))


@dataclass(frozen=True)
class Publication:
    """An event owed, as the relay reads it back."""

    service: Service
    event: ActivityEvent
    target: Target
    landed: bool  # marked landed by a later change (an unlike of this like)

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> "Publication":
        event = ActivityEvent.from_json(doc["event"], doc["_id"]).with_traceparent(doc.get("traceparent"))
        return cls(Service(doc["service"]), event, Target.of(doc["target"]), bool(doc.get("landed")))


@dataclass(frozen=True)
class RegistryStats:
    outstanding: int
    oldest: datetime | None  # created_at of the oldest outstanding publication

    def oldest_age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.oldest).total_seconds()) if self.oldest else 0.0


class PublicationClaims(ClaimProtocol):
    """The restore jobs' claim/lease protocol, over publications (their `status` is always pending)."""

    def __init__(self, db: Database, lease_seconds: int):
        self.db = db
        self.lease_seconds = lease_seconds


class PublicationRegistry:
    """The `event_publications` collection: what the write path records and completes, what the relay reads."""

    def __init__(self, db: Database, *, grace_s: float, lease_s: int, clock: Callable[[], datetime] = utcnow):
        self.db = db
        self.collection = db[EVENT_PUBLICATIONS]
        self.grace = timedelta(seconds=grace_s)
        self.claims = PublicationClaims(db, lease_s)
        self._clock = clock
        self.completer: Completer | None = None  # a serving process's: completions batched off the request path

    def complete_published(self, key: str) -> None:
        """Step 4 of a write whose event was published: batched by the serving process's completer when it runs
        (one delete for many writes), else now. Dying before the batch is deleted only republishes those events
        after the grace period, with their keys (stored once downstream)."""
        if self.completer is not None:
            self.completer.add(key)
        else:
            self.complete([key])

    def record(self, service: Service, event: ActivityEvent, target: Target) -> ActivityEvent:
        """Step 1: store the publication; the event as recorded (with the traceparent it will be sent with)."""
        event = tracing.stamp(event)
        now = self._clock()
        self.collection.insert_one(
            {
                "_id": event.message_key,
                "service": service.value,
                "event": event.to_json(),
                "traceparent": event.traceparent,
                "target": target.to_doc(),
                "status": Status.PENDING.value,
                "created_at": now,
                "due_at": now + self.grace,
            }
        )
        return event

    def complete(self, keys: Iterable[str]) -> None:
        """Step 4 (and the drop of an intent whose change is not there): the publications are gone."""
        keys = list(keys)
        if len(keys) == 1:
            self.collection.delete_one({"_id": keys[0]})  # by _id alone: the one filter FerretDB v1 pushes down
        elif keys:
            self.collection.delete_many({"_id": {"$in": keys}})

    def mark_landed(self, key: Any) -> None:
        """A later change proves this publication's change landed (an unlike of its like); nothing when it is not
        owed (any more)."""
        self.collection.update_one({"_id": key}, {"$set": {"landed": True}})

    def hold(self, key: str) -> str | None:
        """Take the claim of a publication (before the writer undoes its change): a claim token, or None when a
        relay holds it or has completed it."""
        token = new_claim_token()
        return token if self.claims.claim(EVENT_PUBLICATIONS, key, token) is not None else None

    def due(self, limit: int) -> list[dict[str, Any]]:
        """The publications past due, oldest due first."""
        return list(
            self.collection.find({"due_at": {"$lte": self._clock()}}).sort([("due_at", 1), ("_id", 1)]).limit(limit)
        )

    def by_keys(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return {doc["_id"]: doc for doc in self.collection.find({"_id": {"$in": keys}})}

    def stats(self) -> RegistryStats:
        """How many are owed and since when (one read of their created_at: the collection holds only what is
        owed right now)."""
        count, oldest = 0, None
        for doc in self.collection.find({}, {"_id": 0, "created_at": 1}):
            count += 1
            created = as_utc(doc.get("created_at"))
            if created is not None and (oldest is None or created < oldest):
                oldest = created
        return RegistryStats(count, oldest)


class Outcome(str, Enum):
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    DROPPED = "dropped"  # its change never landed (or was undone)
    LEFT = "left"  # neither delivered nor kept: still owed, for the next pass


@dataclass
class RelaySummary:
    counts: dict[Outcome, int] = field(default_factory=lambda: {o: 0 for o in Outcome})
    skipped: int = 0  # held by another relay or the writer, or completed meanwhile

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def settled(self) -> int:
        return self.total - self.counts[Outcome.LEFT]

    def line(self) -> str:
        parts = ", ".join(f"{o.value.replace('_', ' ')} {n}" for o, n in self.counts.items())
        return f"{parts}, skipped {self.skipped}"


class PublicationRelay:
    """Publishes the publications a writer did not complete within the grace period."""

    def __init__(
        self,
        registry: PublicationRegistry,
        repository: ContentRepository,
        publisher: ActivityPublisher,
        *,
        batch: int,
        checkpoint: Checkpoint = no_checkpoint,
    ):
        self.registry = registry
        self.repo = repository
        self.publisher = publisher
        self.batch = batch
        self.checkpoint = checkpoint

    def run_pass(self, report: Callable[[str, Outcome], None] | None = None) -> RelaySummary:
        """Relay one batch of due publications; `report(key, outcome)` for each settled."""
        summary = RelaySummary()
        due = self.registry.due(self.batch)
        if not due:
            return summary
        token = new_claim_token()
        claims = self.registry.claims
        held = claims.claim_batch(EVENT_PUBLICATIONS, due, token)
        summary.skipped += len(due) - len(held)
        current = self.registry.by_keys([doc["_id"] for doc in held])
        gone = [doc for doc in held if doc["_id"] not in current]  # completed by its writer since it was read
        if gone:
            claims.release_batch(EVENT_PUBLICATIONS, gone, token)
            summary.skipped += len(gone)
        held = [doc for doc in held if doc["_id"] in current]
        for doc in held:
            self.checkpoint(RELAY_CLAIMED, doc["_id"])
        publications = {doc["_id"]: Publication.of(current[doc["_id"]]) for doc in held}
        landed = self._landed(publications)
        settled: list[str] = []
        left: list[dict[str, Any]] = []
        for doc in held:
            key, publication = doc["_id"], publications[doc["_id"]]
            outcome = self._settle(publication, key in landed)
            if outcome is Outcome.LEFT:
                left.append(doc)
            else:
                self.checkpoint(RELAY_PUBLISHED, key)
                settled.append(key)
            summary.add(outcome)
            metrics.relayed(outcome.value)
            log.info("relayed publication %s: %s", key, outcome.value, extra={"message_key": key})
            if report is not None:
                report(key, outcome)
        self.registry.complete(settled)
        if left:
            claims.release_batch(EVENT_PUBLICATIONS, left, token)
        return summary

    def preview(self, report: Callable[[str, Outcome], None] | None = None) -> RelaySummary:
        """What a pass would do, changing nothing: due publications whose change landed would be published
        (counted as delivered), the others dropped."""
        summary = RelaySummary()
        publications = {doc["_id"]: Publication.of(doc) for doc in self.registry.due(self.batch)}
        landed = self._landed(publications)
        for key in publications:
            outcome = Outcome.DELIVERED if key in landed else Outcome.DROPPED
            summary.add(outcome)
            if report is not None:
                report(key, outcome)
        return summary

    def _settle(self, publication: Publication, landed: bool) -> Outcome:
        if not landed:
            return Outcome.DROPPED
        if publication.target.thread:
            self._delete_replies(publication.target.id)
        try:
            delivered = self.publisher.publish_activity(publication.service, publication.event)
        except PublishFailed:
            return Outcome.LEFT
        return Outcome.DELIVERED if delivered else Outcome.DEAD_LETTERED

    def _landed(self, publications: Mapping[str, Publication]) -> set[str]:
        """The keys of the publications whose change is in the store: one read per collection of their targets."""
        by_collection: dict[str, list[str]] = {}
        for key, publication in publications.items():
            by_collection.setdefault(publication.target.collection, []).append(key)
        landed = set()
        for collection, keys in by_collection.items():
            docs = self.repo.documents(collection, [publications[k].target.id for k in keys], {"events": 1})
            for key in keys:
                publication = publications[key]
                doc = docs.get(publication.target.id)
                if publication.landed or _landed(publication.target.landing, key, doc):
                    landed.add(key)
        return landed

    def _delete_replies(self, comment_id: int) -> None:
        """Roll a comment's delete forward: its replies that are still live (idempotent)."""
        replies = self.repo.live_thread_ids(comment_id)[1:]
        if replies:
            self.repo.set_comments_deleted(replies, True)


def _landed(landing: Landing, key: str, doc: Mapping[str, Any] | None) -> bool:
    if landing is Landing.MARKED:
        return doc is not None and key in (doc.get("events") or ())
    if landing is Landing.PRESENT:
        return doc is not None
    return doc is None


class Completer:
    """Deletes completed publications in batches, in a thread of its own: a write's completion costs the request
    no store round trip. Started with the relay in a serving process; what is queued is deleted when it stops."""

    def __init__(self, registry: PublicationRegistry, flush_s: float = 0.05, max_batch: int = 500):
        self.registry = registry
        self.flush_s = flush_s
        self.max_batch = max_batch
        self._keys: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dailyfeed-outbox-completer", daemon=True)

    def start(self) -> None:
        self.registry.completer = self
        self._thread.start()

    def add(self, key: str) -> None:
        with self._lock:
            self._keys.append(key)

    def flush(self) -> None:
        with self._lock:
            keys, self._keys = self._keys[: self.max_batch], self._keys[self.max_batch :]
        if not keys:
            return
        try:
            self.registry.complete(keys)
        except Exception:  # the store failed: keep them for the next flush (or the relay republishes them)
            log.warning("could not complete %d publications; trying again", len(keys), exc_info=True)
            with self._lock:
                self._keys[:0] = keys

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)
        self.registry.completer = None
        for _ in range(100):
            with self._lock:
                if not self._keys:
                    return
            self.flush()


class RelayWorker:
    """The relay in a serving process: one pass at start-up, then one every `interval_s`, in a thread of its own;
    stopped with the container."""

    def __init__(self, relay: PublicationRelay, interval_s: float):
        self.relay = relay
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dailyfeed-outbox-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # a full batch settled means more may be due: go on at once
                if self.relay.run_pass().settled >= self.relay.batch:
                    continue
            except Exception:  # the store or a transport failed: the publications stay owed, try again later
                log.exception("the publication relay failed; retrying in %.0f s", self.interval_s)
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)
