"""The event publication registry (a transactional outbox on a store without multi-document transactions): the
event a content change owes travels in the change's own single-document write, and a relay publishes what a
crashed (or stalled) writer left owed. docs/outbox.md has the same protocol with its reasons and costs.

**A publication entry** is carried by the document a change writes (post, comment, or the like itself), in its
`pubs` (the last MAX_ENTRIES; repository.py): the event's key, type, member, post and comment, the traceparent
stamped before the write (so a republish keeps key, createdAt — the key's time — and traceparent), the writer's id
(`by`) and `at`, the writer's clock when the write began. The change and its entry land in one write, so "did the
change land" is "is the entry there"; an undo removes both in one write.

**A writer** is one registry (one process start): it keeps the keys of its writes in flight (key, document, `at`)
and states in `outbox_writers` `{_id: writer, settled_before: T, owed: [those in flight at T], beat: T}`: every
entry it wrote with `at` < T is settled (published or kept as a dead letter, undone, or never landed) except those
listed in `owed`. `at` and T are taken under one lock from a clock that never goes back, so a write that began after
the statement has `at` ≥ T. A serving process's completer writes the statement every 50 ms (1 s when idle): one
write per flush, none per publication. A process without one (the CLI, a test) writes it at the start and at the
end of each write.

A write is this order; after a crash at each point:

1. **begin**: the key is in flight (memory; without a completer also stated). Crash after it: nothing landed; a
   relay reading the statement finds no entry (a dead writer's: dropped), publishes nothing.
2. **apply** the change with its entry, one single-document write (a like: inserted under the event's key with
   its entry). A comment's delete writes the comment first (with the entry), then its live replies (update_many).
   Crash after it: the entry is there and owed: listed in the statement (began before it), or at ≥ T (after it);
   once due (at + `outbox.grace-s`) the relay publishes it, rolling a comment's replies forward first.
3. **publish**: deliver, or keep a dead letter (ActivityPublisher, SPEC section 5). Crash after it: as after 2; the
   relay publishes the event again, with its key: the listener and the record endpoint store it once.
4. **complete**: the key leaves the set in flight (the next statement says it is settled). Crash after it, before
   the next statement: the relay republishes it with its key (stored once downstream).

When the event can be neither delivered nor kept (PublishFailed), the writer first takes the entry's claim (the
claims of the restore jobs, deadletters/claims.py, by message key; a later generation also reads the document: a
relay marked it published). Taken: it undoes the change with its entry in one write (a comment's delete: replies
first) and completes; the write answers 503. Not taken: a relay holds it (the write outlived the grace period) and
publishes it; the change stays and the write succeeds. A change whose apply step raised is undone the same way.

**Standalone publications** (`event_publications`, as before): a change that leaves no document to carry its entry —
an unlike — records its publication first (`_id` = key, the event, `target` = the like), removes the like, publishes
and completes (a delete, batched by the completer). Its change landed when the like is gone (or `landed` is set).
An unlike of a like whose entry is not known settled (not relayed, and its writer's statement does not settle it)
first records that like's event as a standalone publication marked landed, then removes the like.

**The relay** (`PublicationRelay.run_pass`; in each serving process every `outbox.interval-s`, once at start-up,
and `dailyfeed outbox relay`): the standalone publications past due, as before; then the writers' statements (one
read of a small collection): a writer whose statement is within the grace and whose owed entries are all younger
than it costs nothing more. Otherwise: its owed entries past due are read by document `_id`, and when its
statement is older than the grace (a dead or idle writer) the entries it wrote from T to now − grace are queried
(index `publications_of_writer`). Each entry there and not marked relayed is claimed (by key; lost ones are
someone else's), read again, published through the same ActivityPublisher (delivered, or a dead letter; neither →
left for the next pass, its claim given back; never undone here) and marked relayed on its document and in its
writer's statement. A listed entry that is not there is dropped once its writer is dead (beat older than
`outbox.lease-s`), else left to its writer. A dead writer with nothing owed loses its statement. A relay that dies
holding entries leaves them to the next relay when its lease (`outbox.lease-s`) runs out; one it had published is
published again with its key (stored once downstream).
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Callable, Iterable, Mapping

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from ..deadletters import Status
from ..deadletters.claims import ClaimProtocol, new_claim_token
from ..events import ActivityEvent, ActivityType, Service, as_utc, key_timestamp, publishing_service, utcnow
from ..store import COMMENT_LIKES, COMMENTS, EVENT_PUBLICATIONS, OUTBOX_WRITERS, POST_LIKES, POSTS
from ..telemetry import metrics, tracing
from .publishing import ActivityPublisher, PublishFailed
from .repository import ENTRIES, ContentRepository

log = logging.getLogger(__name__)

# The protocol's steps, named where a fault-injection hook (`Checkpoint`) is called after each.
BEGUN = "begun"  # 1. the write is in flight (a standalone publication: recorded)
APPLIED = "applied"  # 2. the change is stored with its entry (a comment's delete: the comment and its replies)
ROOT_APPLIED = "root-applied"  # 2a. a comment's delete: the comment is stored, its replies not yet
PUBLISHED = "published"  # 3. delivered or kept as a dead letter
COMPLETED = "completed"  # 4. no longer in flight (a standalone publication: queued for deletion)
UNDONE = "undone"  # the change is undone (publish failed), not yet completed
RELAY_CLAIMED = "relay-claimed"  # the relay holds a batch
RELAY_PUBLISHED = "relay-published"  # the relay published (or dead-lettered) one, not yet marked relayed
STEPS = (BEGUN, ROOT_APPLIED, APPLIED, PUBLISHED, COMPLETED, UNDONE, RELAY_CLAIMED, RELAY_PUBLISHED)

ENTRY_CLAIMS = "outbox_entries"  # what the claims of publication entries name (no collection of that name)
CONTENT = (POSTS, COMMENTS, POST_LIKES, COMMENT_LIKES)  # the collections whose documents carry entries
IDLE_STATEMENT_S = 1.0  # a completer with nothing new states its writer's beat at least this often
MAX_RELAYED = 200  # the keys a writer's statement keeps of those relays settled for it (two batches)

Checkpoint = Callable[[str, str], None]  # (step, message key): called after each step; tests raise there


def no_checkpoint(step: str, key: str) -> None:
    """The checkpoint of a real process: nothing happens between the steps."""


class SimulatedCrash(BaseException):
    """Raised by a test's checkpoint: the process "dies" there. A BaseException, so that no `except Exception` of
    the write path runs, as none would in a process that was killed."""


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _micros(at: datetime) -> int:
    """A time as entries and statements keep it: microseconds since the epoch (a datetime would be cut to
    milliseconds by the store, and a writer that states more often than once a millisecond would run ahead)."""
    return (as_utc(at) - _EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def entry_of(event: ActivityEvent, writer: str | None = None, at: int | None = None) -> dict[str, Any]:
    """The publication entry a change carries. Without a writer (outbox.enabled false) only the key: what an
    undo removes the change by."""
    entry: dict[str, Any] = {"k": event.message_key}
    if writer is None:
        return entry
    entry.update(t=event.activity_type.value, m=event.member_id, p=event.post_id)
    if event.comment_id is not None:
        entry["c"] = event.comment_id
    entry.update(by=writer, at=at)
    if event.traceparent:
        entry["tp"] = event.traceparent
    return entry


def event_of(entry: Mapping[str, Any]) -> ActivityEvent:
    """The event an entry stands for, as its writer had it: key, createdAt (the key's time) and traceparent."""
    key = entry["k"]
    return ActivityEvent(
        member_id=entry["m"],
        activity_type=ActivityType(entry["t"]),
        post_id=entry.get("p"),
        comment_id=entry.get("c"),
        created_at=key_timestamp(key),
        message_key=key,
        traceparent=entry.get("tp"),
    )


@dataclass(frozen=True)
class Target:
    """The document a change writes (an entry's carrier; a standalone publication's like, whose absence says the
    unlike landed)."""

    collection: str
    id: Any

    def to_doc(self) -> dict[str, Any]:
        return {"collection": self.collection, "id": self.id}

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> "Target":
        return cls(doc["collection"], doc["id"])


@dataclass(frozen=True)
class Publication:
    """A standalone publication, as the relay reads it back."""

    service: Service
    event: ActivityEvent
    target: Target
    landed: bool  # recorded for a change known to have landed (the like an unlike removes)

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> "Publication":
        event = ActivityEvent.from_json(doc["event"], doc["_id"]).with_traceparent(doc.get("traceparent"))
        return cls(Service(doc["service"]), event, Target.of(doc["target"]), bool(doc.get("landed")))


@dataclass(frozen=True)
class RegistryStats:
    outstanding: int
    oldest: datetime | None  # when the oldest outstanding write began (or its publication was recorded)

    def oldest_age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.oldest).total_seconds()) if self.oldest else 0.0


class PublicationClaims(ClaimProtocol):
    """The restore jobs' claim/lease protocol, over standalone publications (their `status` is always pending) and
    publication entries (by key; whoever takes one reads its document again)."""

    def __init__(self, db: Database, lease_seconds: int):
        self.db = db
        self.lease_seconds = lease_seconds

    def _statuses(self, collection: str, doc_ids: list[Any]) -> dict[Any, Any]:
        if collection == ENTRY_CLAIMS:
            return dict.fromkeys(doc_ids, Status.PENDING.value)
        return super()._statuses(collection, doc_ids)


class Writer:
    """This process's writer: the writes in flight and its statement in `outbox_writers` (module docstring)."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow):
        self.id = uuid.uuid4().hex[:16]
        self.collection = db[OUTBOX_WRITERS]
        self.batched = False  # a completer states it; else each write does, at its start and end
        self._clock = clock
        self._lock = threading.Lock()
        self._stating = threading.Lock()  # statements are written in the order they were taken
        self._in_flight: dict[str, dict[str, Any]] = {}
        self._last = 0  # the last statement's T: `at` never goes below it
        self._stated_at = 0
        self._changed = True

    def begin(self, event: ActivityEvent, target: Target) -> dict[str, Any]:
        """Step 1: the write is in flight; the entry its change carries."""
        with self._lock:
            at = max(_micros(self._clock()), self._last)
            self._in_flight[event.message_key] = {
                "k": event.message_key,
                "c": target.collection,
                "id": target.id,
                "at": at,
            }
            self._changed = True
        if not self.batched:
            self.state()
        return entry_of(event, self.id, at)

    def complete(self, key: str) -> None:
        """Step 4: settled (published or kept, undone, or refused)."""
        with self._lock:
            self._changed = self._in_flight.pop(key, None) is not None or self._changed
        if not self.batched:
            self.state()

    def in_flight(self, key: str) -> bool:
        with self._lock:
            return key in self._in_flight

    def state(self) -> None:
        """Write the statement when something changed since the last one (or the beat is due)."""
        with self._stating:
            with self._lock:
                clock = self._clock()
                now = max(_micros(clock), self._last)
                if not self._changed and now - self._stated_at < IDLE_STATEMENT_S * 1_000_000:
                    return
                # a microsecond on: every write begun by now has `at` < it, and every later one `at` >= it
                self._last = now + 1
                statement = {"settled_before": self._last, "beat": clock, "owed": list(self._in_flight.values())}
                self._changed = False
            try:
                self.collection.update_one({"_id": self.id}, {"$set": statement}, upsert=True)
            except Exception:
                with self._lock:
                    self._changed = True
                raise
            self._stated_at = now

    def close(self) -> None:
        """A process that stops: nothing in flight → its statement goes (nothing is owed), else the last one."""
        with self._lock:
            idle = not self._in_flight
        if idle:
            self.collection.delete_one({"_id": self.id})
        else:
            self.state()


class PublicationRegistry:
    """The registry: this process's writer, the standalone publications, and what the relay reads of both."""

    def __init__(self, db: Database, *, grace_s: float, lease_s: int, clock: Callable[[], datetime] = utcnow):
        self.db = db
        self.collection = db[EVENT_PUBLICATIONS]
        self.writers = db[OUTBOX_WRITERS]
        self.grace = timedelta(seconds=grace_s)
        self.lease = timedelta(seconds=lease_s)
        self.claims = PublicationClaims(db, lease_s)
        self.writer = Writer(db, clock)
        self._clock = clock
        self.completer: Completer | None = None  # a serving process's: statements and deletions off the request path

    def now(self) -> datetime:
        return self._clock()

    def begin(
        self, service: Service, event: ActivityEvent, target: Target, *, standalone: bool
    ) -> tuple[ActivityEvent, dict[str, Any] | None]:
        """Step 1 of a write: the event as it will be sent (with the request's traceparent) and the entry its change
        carries; a standalone one is recorded instead (no entry)."""
        event = tracing.stamp(event)
        if standalone:
            self.record(service, event, target)
            return event, None
        return event, self.writer.begin(event, target)

    def complete_write(self, key: str, *, standalone: bool, published: bool = True) -> None:
        """Step 4: the write owes nothing more. A standalone publication whose event was published is deleted by
        the completer when it runs (one delete for many), else now."""
        if not standalone:
            self.writer.complete(key)
        elif published and self.completer is not None:
            self.completer.add(key)
        else:
            self.complete([key])

    def record(self, service: Service, event: ActivityEvent, target: Target, *, landed: bool = False) -> None:
        """A standalone publication (the event as recorded, with its traceparent)."""
        now = self._clock()
        doc = {
            "_id": event.message_key,
            "service": service.value,
            "event": event.to_json(),
            "traceparent": event.traceparent,
            "target": target.to_doc(),
            "status": Status.PENDING.value,
            "created_at": now,
            "due_at": now + self.grace,
        }
        if landed:
            doc["landed"] = True
        self.collection.insert_one(doc)

    def complete(self, keys: Iterable[str]) -> None:
        """Standalone publications settled (or dropped: their change is not there) are gone."""
        keys = list(keys)
        if len(keys) == 1:
            self.collection.delete_one({"_id": keys[0]})  # by _id alone: the one filter FerretDB v1 pushes down
        elif keys:
            self.collection.delete_many({"_id": {"$in": keys}})

    def keep_owed_like(self, like: Mapping[str, Any], collection: str) -> None:
        """Before an unlike removes `like`: when its entry is not known settled, its event becomes a standalone
        publication marked landed (the like's absence will no longer say it was stored)."""
        entry = next((e for e in like.get(ENTRIES) or () if e.get("k") == like["_id"] and "by" in e), None)
        if entry is None or not self._owed(entry):
            return
        event = event_of(entry)
        try:
            self.record(publishing_service(event.category), event, Target(collection, like["_id"]), landed=True)
        except DuplicateKeyError:
            pass  # recorded by an earlier attempt of this unlike

    def _owed(self, entry: Mapping[str, Any]) -> bool:
        key = entry["k"]
        if entry["by"] == self.writer.id:
            return self.writer.in_flight(key)
        statement = self.writers.find_one({"_id": entry["by"]})
        if statement is None:  # a dead writer's, gone once nothing it wrote was owed
            return False
        if key in (statement.get("relayed") or ()):
            return False
        return entry["at"] >= statement["settled_before"] or any(
            owed["k"] == key for owed in statement.get("owed") or ()
        )

    def hold(self, key: str, *, standalone: bool) -> str | None:
        """Take the claim of a write's publication (before its writer undoes the change): a claim token, or None
        when a relay holds it, or has completed it (standalone) or published it (an entry marked relayed)."""
        token = new_claim_token()
        if standalone:
            return token if self.claims.claim(EVENT_PUBLICATIONS, key, token) is not None else None
        [held] = self.claims.claim_batch(ENTRY_CLAIMS, [{"_id": key, "status": Status.PENDING.value}], token) or [None]
        if held is None:
            return None
        if held["lease_generation"] > 1:  # a relay held it before: it may have published it, and then says so
            statement = self.writers.find_one({"_id": self.writer.id}, {"relayed": 1})
            if statement is not None and key in (statement.get("relayed") or ()):
                return None
        return token

    def due(self, limit: int) -> list[dict[str, Any]]:
        """The standalone publications past due, oldest due first."""
        return list(
            self.collection.find({"due_at": {"$lte": self._clock()}}).sort([("due_at", 1), ("_id", 1)]).limit(limit)
        )

    def by_keys(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return {doc["_id"]: doc for doc in self.collection.find({"_id": {"$in": keys}})}

    def relayed(self, writers: Iterable[str]) -> set[str]:
        """The keys relays said they settled for these writers (one read of their statements)."""
        found = self.writers.find({"_id": {"$in": list(writers)}}, {"relayed": 1})
        return {key for statement in found for key in statement.get("relayed") or ()}

    def statements(self) -> list[dict[str, Any]]:
        """Every writer's statement (one read: one document per serving process)."""
        return list(self.writers.find())

    def stats(self) -> RegistryStats:
        """How many are owed and since when, without reading a content document: the writes in flight of each
        writer's last statement (less those relays settled) and the standalone publications."""
        count, oldest = 0, None
        owed = [doc.get("created_at") for doc in self.collection.find({}, {"_id": 0, "created_at": 1})]
        for statement in self.writers.find({}, {"owed": 1, "relayed": 1}):
            done = set(statement.get("relayed") or ())
            owed += [_time(o["at"]) for o in statement.get("owed") or () if o["k"] not in done]
        for at in owed:
            count += 1
            at = as_utc(at)
            if at is not None and (oldest is None or at < oldest):
                oldest = at
        return RegistryStats(count, oldest)


class Outcome(str, Enum):
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    DROPPED = "dropped"  # its change never landed (or was undone)
    LEFT = "left"  # neither delivered nor kept: still owed, for the next pass


@dataclass
class RelaySummary:
    counts: dict[Outcome, int] = field(default_factory=lambda: {o: 0 for o in Outcome})
    skipped: int = 0  # held by another relay or the writer, settled meanwhile, or still its live writer's

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


@dataclass(frozen=True)
class OwedEntry:
    """An entry the relay found owed: its document and writer."""

    writer: str
    collection: str
    doc_id: Any
    entry: Mapping[str, Any]

    @property
    def key(self) -> str:
        return self.entry["k"]


@dataclass
class Findings:
    """What one read of the writers' statements found: entries owed and due (oldest first, a batch), listed keys
    whose entry is not there (by writer), the dead writers (their statement's beat is older than the lease) and
    those of them whose every owed entry is in the batch."""

    owed: list[OwedEntry] = field(default_factory=list)
    absent: dict[str, list[str]] = field(default_factory=dict)
    dead: dict[str, dict[str, Any]] = field(default_factory=dict)  # writer -> its statement as read
    whole: set[str] = field(default_factory=set)


class PublicationRelay:
    """Publishes what writers left owed past the grace period: entries and standalone publications."""

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
        """Relay one batch of each kind; `report(key, outcome)` for each settled."""
        summary = RelaySummary()
        self._relay_standalone(summary, report)
        self._relay_entries(summary, report)
        return summary

    def preview(self, report: Callable[[str, Outcome], None] | None = None) -> RelaySummary:
        """What a pass would do, changing nothing: owed changes that landed would be published (counted as
        delivered), the others dropped."""
        summary = RelaySummary()
        publications = {doc["_id"]: Publication.of(doc) for doc in self.registry.due(self.batch)}
        landed = self._landed(publications)
        found = self._find()
        outcomes = [(key, Outcome.DELIVERED if key in landed else Outcome.DROPPED) for key in publications]
        outcomes += [(owed.key, Outcome.DELIVERED) for owed in found.owed]
        outcomes += [(key, Outcome.DROPPED) for writer in found.dead for key in found.absent.get(writer, ())]
        for key, outcome in outcomes:
            summary.add(outcome)
            if report is not None:
                report(key, outcome)
        return summary

    # --- entries ----------------------------------------------------------------------------------------------

    def _find(self) -> Findings:
        now = self.registry.now()
        due = _micros(now - self.registry.grace)
        found = Findings()
        for statement in self.registry.statements():
            writer = statement["_id"]
            if as_utc(statement["beat"]) < now - self.registry.lease:
                found.dead[writer] = statement
            done = set(statement.get("relayed") or ())
            listed = [o for o in statement.get("owed") or () if o["k"] not in done and o["at"] <= due]
            by_collection: dict[str, list[dict[str, Any]]] = {}
            for owed in listed:
                by_collection.setdefault(owed["c"], []).append(owed)
            for collection, items in by_collection.items():
                docs = self.repo.documents(collection, [o["id"] for o in items], {ENTRIES: 1})
                for owed in items:
                    entry = _entry(docs.get(owed["id"]), owed["k"])
                    if entry is None:
                        found.absent.setdefault(writer, []).append(owed["k"])
                    else:
                        found.owed.append(OwedEntry(writer, collection, owed["id"], entry))
            since = statement["settled_before"]
            if since <= due:  # a dead or idle writer: what it wrote since its statement
                seen = done | {o.key for o in found.owed}
                for collection in CONTENT:
                    for doc in self.repo.entries_of_writer(collection, writer, since, due):
                        found.owed += [
                            OwedEntry(writer, collection, doc["_id"], entry)
                            for entry in doc.get(ENTRIES) or ()
                            if entry.get("by") == writer and since <= entry["at"] <= due and entry["k"] not in seen
                        ]
        found.owed.sort(key=lambda o: (o.entry["at"], o.key))
        beyond = {o.writer for o in found.owed[self.batch :]}
        del found.owed[self.batch :]
        found.whole = set(found.dead) - beyond
        return found

    def _relay_entries(self, summary: RelaySummary, report: Callable[[str, Outcome], None] | None) -> None:
        found = self._find()
        settled: dict[str, list[OwedEntry | str]] = {}  # writer -> what was settled for it now
        for writer in found.dead:  # a dead writer's listed write whose change is not there never landed
            for key in found.absent.get(writer, ()):
                self._report(summary, report, key, Outcome.DROPPED)
                settled.setdefault(writer, []).append(key)
        summary.skipped += sum(len(keys) for writer, keys in found.absent.items() if writer not in found.dead)
        unsettled = self._publish_entries(found.owed, summary, report, settled) if found.owed else set()
        for writer in set(settled) | found.dead.keys():
            self._restate(writer, settled.get(writer, []), found, unsettled)

    def _restate(self, writer: str, settled: list[OwedEntry | str], found: Findings, unsettled: set[str]) -> None:
        """Say in a writer's statement what the relay settled for it (so that no relay publishes it again). A dead
        writer's statement goes once everything it owed is settled, else it moves on past what was settled."""
        writers = self.registry.writers
        keys = [s if isinstance(s, str) else s.key for s in settled]
        statement = found.dead.get(writer)
        if statement is None:
            writers.update_one({"_id": writer}, {"$push": {"relayed": {"$each": keys, "$slice": -MAX_RELAYED}}})
            return
        alive = {"_id": writer, "beat": statement["beat"]}  # unless it came back meanwhile
        if writer in found.whole and writer not in unsettled:
            writers.delete_one(alive)
            return
        update: dict[str, Any] = {"$push": {"relayed": {"$each": keys, "$slice": -MAX_RELAYED}}}
        relayed_at = [s.entry["at"] for s in settled if not isinstance(s, str)]
        if relayed_at and writer not in unsettled:
            # its entries are relayed oldest first: every one before the newest relayed is settled (those at that
            # very time are found again, and told apart by `relayed`)
            update["$set"] = {"settled_before": max(*relayed_at, statement["settled_before"])}
        if keys:
            writers.update_one(alive, update)

    def _publish_entries(
        self,
        owed: list[OwedEntry],
        summary: RelaySummary,
        report: Callable[[str, Outcome], None] | None,
        settled: dict[str, list[OwedEntry | str]],
    ) -> set[str]:
        """Claim, read again, publish; the writers of which something stays owed."""
        token = new_claim_token()
        claims = self.registry.claims
        held = claims.claim_batch(ENTRY_CLAIMS, [{"_id": o.key, "status": Status.PENDING.value} for o in owed], token)
        claimed = {doc["_id"]: doc for doc in held}
        unsettled = {o.writer for o in owed if o.key not in claimed}
        summary.skipped += len(owed) - len(held)
        owed = [o for o in owed if o.key in claimed]
        # read again, now that they are held: one its writer undid, or another relay (whose lease ran out while it
        # worked) published, since it was read is let go
        current: set[str] = set()
        by_collection: dict[str, list[OwedEntry]] = {}
        for o in owed:
            by_collection.setdefault(o.collection, []).append(o)
        for collection, items in by_collection.items():
            docs = self.repo.documents(collection, [o.doc_id for o in items], {ENTRIES: 1})
            current |= {o.key for o in items if _entry(docs.get(o.doc_id), o.key) is not None}
        if owed:
            current -= self.registry.relayed({o.writer for o in owed})
        gone = [claimed[o.key] for o in owed if o.key not in current]
        if gone:
            claims.release_batch(ENTRY_CLAIMS, gone, token)
            summary.skipped += len(gone)
        owed = [o for o in owed if o.key in current]
        for o in owed:
            self.checkpoint(RELAY_CLAIMED, o.key)
        left = []
        for o in owed:
            event = event_of(o.entry)
            if event.activity_type is ActivityType.COMMENT_DELETE:
                self._delete_replies(o.doc_id)
            outcome = self._publish(publishing_service(event.category), event)
            if outcome is Outcome.LEFT:
                left.append(claimed[o.key])
                unsettled.add(o.writer)
            else:
                self.checkpoint(RELAY_PUBLISHED, o.key)
                settled.setdefault(o.writer, []).append(o)
            self._report(summary, report, o.key, outcome)
        if left:
            claims.release_batch(ENTRY_CLAIMS, left, token)
        return unsettled

    # --- standalone publications ------------------------------------------------------------------------------

    def _relay_standalone(self, summary: RelaySummary, report: Callable[[str, Outcome], None] | None) -> None:
        due = self.registry.due(self.batch)
        if not due:
            return
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
            outcome = self._publish(publication.service, publication.event) if key in landed else Outcome.DROPPED
            if outcome is Outcome.LEFT:
                left.append(doc)
            else:
                self.checkpoint(RELAY_PUBLISHED, key)
                settled.append(key)
            self._report(summary, report, key, outcome)
        self.registry.complete(settled)
        if left:
            claims.release_batch(EVENT_PUBLICATIONS, left, token)

    def _landed(self, publications: Mapping[str, Publication]) -> set[str]:
        """The keys of the standalone publications whose change is in the store (marked landed, or the like their
        unlike removes is gone): one read per collection of their targets."""
        by_collection: dict[str, list[str]] = {}
        for key, publication in publications.items():
            by_collection.setdefault(publication.target.collection, []).append(key)
        landed = set()
        for collection, keys in by_collection.items():
            docs = self.repo.documents(collection, [publications[k].target.id for k in keys], {"_id": 1})
            landed |= {k for k in keys if publications[k].landed or publications[k].target.id not in docs}
        return landed

    # --- shared -----------------------------------------------------------------------------------------------

    def _publish(self, service: Service, event: ActivityEvent) -> Outcome:
        try:
            delivered = self.publisher.publish_activity(service, event)
        except PublishFailed:
            return Outcome.LEFT
        return Outcome.DELIVERED if delivered else Outcome.DEAD_LETTERED

    @staticmethod
    def _report(
        summary: RelaySummary, report: Callable[[str, Outcome], None] | None, key: str, outcome: Outcome
    ) -> None:
        summary.add(outcome)
        metrics.relayed(outcome.value)
        log.info("relayed publication %s: %s", key, outcome.value, extra={"message_key": key})
        if report is not None:
            report(key, outcome)

    def _delete_replies(self, comment_id: int) -> None:
        """Roll a comment's delete forward: its replies that are still live (idempotent)."""
        replies = self.repo.live_thread_ids(comment_id)[1:]
        if replies:
            self.repo.set_comments_deleted(replies, True)


def _entry(doc: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    """The entry `key` of a document, when it is there."""
    return None if doc is None else next((e for e in doc.get(ENTRIES) or () if e.get("k") == key), None)


class Completer:
    """In a thread of its own, every `flush_s`: states the writer (one write) and deletes the completed standalone
    publications (one delete): a write's completion costs the request no store round trip. Started with the relay
    in a serving process; at stop the last statement (none when nothing is in flight) and what is queued."""

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
        self.registry.writer.batched = True
        self.flush()  # stated before the first write: a relay knows this writer from its start
        self._thread.start()

    def add(self, key: str) -> None:
        with self._lock:
            self._keys.append(key)

    def flush(self) -> None:
        try:
            self.registry.writer.state()
        except Exception:  # the store failed: stated again at the next flush
            log.warning("could not state the writer's settled publications; trying again", exc_info=True)
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
        self.registry.writer.batched = False
        for _ in range(100):
            with self._lock:
                if not self._keys:
                    break
            self.flush()
        try:
            self.registry.writer.close()
        except Exception:
            log.warning("could not state the writer at stop", exc_info=True)


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
