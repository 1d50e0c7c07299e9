"""Tasks: a replay, discard, re-queue or undo of a selection that runs in the background, at a rate, with progress
and cancel (SPEC section 8a). The console, the admin API and the CLI start them; the serving process(es) run them
(dailyfeed.background starts a TaskRunner), and the CLI may run one itself while it waits.

A task is one document in `dead_letter_tasks`; every change of it is a single-document update (FerretDB v1 has no
transactions):

| state     | how it gets there                                                  | what is next            |
|-----------|--------------------------------------------------------------------|-------------------------|
| running   | started; or resumed (from failed or cancelled)                      | completed · cancelled · failed |
| completed | nothing of the selection left to act on                            | —                       |
| cancelled | cancel asked; the runner stops between chunks (what moved stays)   | resumed                 |
| failed    | a chunk moved nothing and failed (the reason: its last failure); a | resumed                 |
|           | store fault; a runner that lost its lease is not a failure         |                         |

- At most one running task per collection and selection: a running task holds a lock document per collection
  (`dead_letter_task_locks`, unique `_id` = the selection's fingerprint in that collection); starting or resuming
  a second one is refused (Conflict, naming the running one). The lock goes when the task ends.
- Who runs it: a lease. A runner inserts `dead_letter_task_leases` `<task>/<generation>` (the unique `_id` decides
  between racing processes, as the dead-letter claims do) and then writes that generation and its expiry on the
  task; it renews the expiry after every chunk. A runner killed mid-task leaves a lease that runs out: another
  process takes the next generation and resumes. A runner whose renewal no longer matches (its generation was
  taken over) stops at once.
- Never a dead letter moved twice: each chunk goes through dailyfeed.restore.actions, whose restore jobs and bulk
  actions claim every dead letter before touching it.
- Progress (moved, failed, skipped) is written with the lease renewal after each chunk: a runner killed between a
  chunk's writes and that renewal leaves the chunk uncounted (the dead letters' statuses stay the truth), so after
  a crash `moved` may fall short of what moved by at most one chunk.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Mapping

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from ..deadletters import Selection
from ..deadletters import audit as audit_trail
from ..errors import Conflict, InvalidInput, NotFound
from ..events import as_utc, utcnow
from ..store import DEAD_LETTER_TASKS, TASK_LEASES, TASK_LOCKS
from ..telemetry import metrics
from . import actions
from .jobs import Outcome

if TYPE_CHECKING:
    from ..bootstrap import Container

log = logging.getLogger(__name__)

MAX_RATE = 10_000.0  # dead letters a second a task may be asked to move
NEWEST_FIRST = [("started_at", DESCENDING), ("_id", DESCENDING)]
#: a chunk is about a second of work at the task's rate, at most this many dead letters
MAX_CHUNK = 200


class TaskState(str, Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


RESUMABLE = (TaskState.FAILED, TaskState.CANCELLED)


@dataclass(frozen=True)
class Lease:
    task_id: ObjectId
    generation: int
    owner: str


def task_id_of(text: Any) -> ObjectId:
    try:
        return ObjectId(text) if isinstance(text, str) else ObjectId(b"bad")
    except (InvalidId, TypeError):
        raise InvalidInput(f"{text!r} is not a task id (24 hex digits)") from None


class TaskStore:
    """The tasks in the store: start, read, cancel, resume; and the lease a runner holds while it runs one."""

    def __init__(self, db: Database, *, lease_seconds: int = 30, default_rate: float = 50.0):
        self.db = db
        self.lease_seconds = lease_seconds
        self.default_rate = default_rate

    # --- starting and reading ---------------------------------------------------------------------------------

    def start(
        self,
        action: str,
        selection: Selection,
        *,
        total: int,
        actor: str,
        via: str,
        mode: str | None = None,
        rate: float | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """A new running task (no runner yet: a serving process takes it within tasks.poll-s). Conflict when a
        task runs on one of its collections with the same selection."""
        if action not in actions.ACTIONS:
            raise InvalidInput(f"unknown action {action!r}; actions are {', '.join(actions.ACTIONS)}")
        if rate is not None and not 0 < rate <= MAX_RATE:
            raise InvalidInput(f"rate must be more than 0 and at most {MAX_RATE:g} a second")
        task_id = ObjectId()
        locks = selection.fingerprints()
        if not locks:
            raise InvalidInput("the selection takes no dead-letter collection")
        self._lock(task_id, locks)
        now = utcnow()
        doc = {
            "_id": task_id,
            "action": action,
            "mode": mode,
            "rate": rate or self.default_rate,
            "selection": selection.to_doc(),
            "described": selection.described(),
            "actor": actor,
            "via": via,
            "reason": reason[: audit_trail.MAX_REASON] if reason else None,
            "state": TaskState.RUNNING.value,
            "total": total,
            "moved": 0,
            "failed": 0,
            "skipped": 0,
            "error": None,
            "cancel_requested": False,
            "started_at": now,
            "updated_at": now,
            "finished_at": None,
            "locks": locks,
            "lease_generation": 0,
            "lease_owner": None,
            "lease_until": now,
        }
        try:
            self.db[DEAD_LETTER_TASKS].insert_one(doc)
        except BaseException:
            self._unlock(task_id, locks)
            raise
        audit_trail.record(
            self.db,
            actor=actor,
            action=f"task-{action}",
            outcome="started",
            via=via,
            selection=selection,
            dry_run_count=total,
            reason=reason,
            task=task_id,
        )
        return doc

    def get(self, task_id: Any) -> dict[str, Any]:
        doc = self.db[DEAD_LETTER_TASKS].find_one({"_id": task_id_of(task_id) if isinstance(task_id, str) else task_id})
        if doc is None:
            raise NotFound(f"no task has the id {task_id}")
        return doc

    def list(self, state: TaskState | None = None, *, limit: int = 20) -> list[dict[str, Any]]:
        query = {} if state is None else {"state": state.value}
        return list(self.db[DEAD_LETTER_TASKS].find(query).sort(NEWEST_FIRST).limit(limit))

    # --- cancel and resume ------------------------------------------------------------------------------------

    def cancel(self, task_id: Any, *, actor: str, via: str, reason: str | None = None) -> dict[str, Any]:
        """Ask a running task to stop: its runner stops after the chunk in hand (what moved stays moved). A task
        nobody runs right now (no runner, or one that died) is cancelled here and now."""
        doc = self.get(task_id)
        if doc["state"] != TaskState.RUNNING.value:
            raise Conflict(f"task {doc['_id']} is {doc['state']}; only a running task can be cancelled")
        self.db[DEAD_LETTER_TASKS].update_one(
            {"_id": doc["_id"]}, {"$set": {"cancel_requested": True, "updated_at": utcnow()}}
        )
        audit_trail.record(
            self.db,
            actor=actor,
            action=f"task-{doc['action']}",
            outcome="cancel-requested",
            via=via,
            selection=Selection.from_doc(doc["selection"]),
            reason=reason,
            task=doc["_id"],
            result_count=doc["moved"],
        )
        lease = self.acquire(doc, owner=f"cancel:{actor}")
        if lease is not None:  # nobody was running it: cancel it ourselves
            self.finish(lease, TaskState.CANCELLED)
        return self.get(doc["_id"])

    def resume(self, task_id: Any, *, actor: str, via: str, reason: str | None = None) -> dict[str, Any]:
        """Run a failed or cancelled task again, from what is left of its selection."""
        doc = self.get(task_id)
        if doc["state"] not in {s.value for s in RESUMABLE}:
            raise Conflict(f"task {doc['_id']} is {doc['state']}; only a failed or cancelled task can be resumed")
        self._lock(doc["_id"], doc["locks"])
        changed = self.db[DEAD_LETTER_TASKS].update_one(
            {"_id": doc["_id"], "state": doc["state"]},
            {
                "$set": {
                    "state": TaskState.RUNNING.value,
                    "cancel_requested": False,
                    "error": None,
                    "finished_at": None,
                    "updated_at": utcnow(),
                }
            },
        )
        if not changed.matched_count:
            self._unlock(doc["_id"], doc["locks"])
            raise Conflict(f"task {doc['_id']} has just changed; look at it again")
        audit_trail.record(
            self.db,
            actor=actor,
            action=f"task-{doc['action']}",
            outcome="resumed",
            via=via,
            selection=Selection.from_doc(doc["selection"]),
            reason=reason,
            task=doc["_id"],
        )
        return self.get(doc["_id"])

    # --- the lease of a runner ---------------------------------------------------------------------------------

    def runnable(self) -> list[dict[str, Any]]:
        """Running tasks whose lease is over (never taken, or its runner died), oldest first."""
        now = utcnow()
        running = self.db[DEAD_LETTER_TASKS].find({"state": TaskState.RUNNING.value}).sort(NEWEST_FIRST)
        return [doc for doc in reversed(list(running)) if as_utc(doc["lease_until"]) <= now]

    def acquire(self, doc: Mapping[str, Any], *, owner: str) -> Lease | None:
        """Take the task's next lease generation when its lease is over; None when someone holds it (or took the
        same generation first: the unique `_id` of the lease document decides)."""
        if doc["state"] != TaskState.RUNNING.value or as_utc(doc["lease_until"]) > utcnow():
            return None
        generation = doc["lease_generation"] + 1
        now = utcnow()
        try:
            self.db[TASK_LEASES].insert_one(
                {"_id": f"{doc['_id']}/{generation}", "task": doc["_id"], "owner": owner, "at": now}
            )
        except DuplicateKeyError:
            return None
        self.db[DEAD_LETTER_TASKS].update_one(
            {"_id": doc["_id"]},
            {
                "$set": {
                    "lease_generation": generation,
                    "lease_owner": owner,
                    "updated_at": now,
                    "lease_until": now + timedelta(seconds=self.lease_seconds),
                }
            },
        )
        return Lease(doc["_id"], generation, owner)

    def renew(self, lease: Lease, progress: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Extend the lease and write progress (`$inc` of counts, `$set` of the rest); the task as it is now, or
        None when the lease was taken over (the caller stops)."""
        now = utcnow()
        update: dict[str, Any] = {
            "$set": {"lease_until": now + timedelta(seconds=self.lease_seconds), "updated_at": now}
        }
        counts = {k: v for k, v in (progress or {}).items() if k in ("moved", "failed", "skipped") and v}
        if counts:
            update["$inc"] = counts
        changed = self.db[DEAD_LETTER_TASKS].update_one(
            {"_id": lease.task_id, "lease_generation": lease.generation}, update
        )
        if not changed.matched_count:
            return None
        return self.db[DEAD_LETTER_TASKS].find_one({"_id": lease.task_id})

    def release(self, lease: Lease) -> None:
        """Give the task back unfinished (a runner that stops): another process may resume it at once."""
        self.db[DEAD_LETTER_TASKS].update_one(
            {"_id": lease.task_id, "lease_generation": lease.generation}, {"$set": {"lease_until": utcnow()}}
        )

    def finish(self, lease: Lease, state: TaskState, error: str | None = None) -> bool:
        """End the task in `state` (with the reason of a failure) and free its locks; False when the lease had
        been taken over (the other runner finishes it)."""
        now = utcnow()
        changed = self.db[DEAD_LETTER_TASKS].update_one(
            {"_id": lease.task_id, "lease_generation": lease.generation},
            {"$set": {"state": state.value, "error": error, "finished_at": now, "updated_at": now, "lease_until": now}},
        )
        if not changed.matched_count:
            return False
        doc = self.db[DEAD_LETTER_TASKS].find_one({"_id": lease.task_id})
        self._unlock(lease.task_id, doc["locks"])
        metrics.task_ended(doc["action"], state.value)
        audit_trail.record(
            self.db,
            actor=doc["actor"],
            action=f"task-{doc['action']}",
            outcome=state.value,
            via="task",
            selection=Selection.from_doc(doc["selection"]),
            dry_run_count=doc["total"],
            result_count=doc["moved"],
            reason=doc.get("reason"),
            task=doc["_id"],
            detail=error,
        )
        return True

    # --- locks ------------------------------------------------------------------------------------------------

    def _lock(self, task_id: ObjectId, locks: list[str]) -> None:
        taken = []
        try:
            for lock in locks:
                self.db[TASK_LOCKS].insert_one({"_id": lock, "task": task_id, "at": utcnow()})
                taken.append(lock)
        except DuplicateKeyError:
            holder = self.db[TASK_LOCKS].find_one({"_id": lock}) or {}
            self._unlock(task_id, taken)
            raise Conflict(
                f"task {holder.get('task')} is already running on this selection "
                f"({lock.split('/')[0]}); cancel it or wait for it to end"
            ) from None

    def _unlock(self, task_id: ObjectId, locks: list[str]) -> None:
        for lock in locks:
            self.db[TASK_LOCKS].delete_one({"_id": lock, "task": task_id})


def progress_of(doc: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """A task as the API, the page and the CLI show it: moved of total, failed, started, rate, time left."""
    now = now or utcnow()
    started = as_utc(doc["started_at"])
    finished = as_utc(doc["finished_at"]) if doc.get("finished_at") else None
    elapsed = max(((finished or now) - started).total_seconds(), 0.001)
    rate = doc["moved"] / elapsed
    left = max(doc["total"] - doc["moved"], 0)
    return {
        "id": str(doc["_id"]),
        "action": doc["action"],
        "mode": doc.get("mode"),
        "state": doc["state"],
        "selection": doc["described"],
        "actor": doc["actor"],
        "reason": doc.get("reason"),
        "total": doc["total"],
        "moved": doc["moved"],
        "failed": doc["failed"],
        "skipped": doc["skipped"],
        "percent": 100 if not doc["total"] else min(100, int(100 * doc["moved"] / doc["total"])),
        "rateLimit": doc["rate"],
        "ratePerSecond": round(rate, 2),
        "secondsLeft": int(left / rate) if rate and doc["state"] == TaskState.RUNNING.value and left else None,
        "cancelRequested": doc.get("cancel_requested", False),
        "error": doc.get("error"),
        "startedAt": audit_trail.iso(started),
        "finishedAt": audit_trail.iso(finished),
        "runner": doc.get("lease_owner") if doc["state"] == TaskState.RUNNING.value else None,
    }


def task_store(container: Container) -> TaskStore:
    settings = container.settings
    return TaskStore(container.db, lease_seconds=settings["tasks.lease-s"], default_rate=settings["tasks.rate"])


def start(
    container: Container,
    action: str,
    selection: Selection,
    *,
    actor: str,
    via: str,
    mode: str | None = None,
    rate: float | None = None,
    reason: str | None = None,
    expected: int | None = None,
) -> dict[str, Any]:
    """Start a task of `action` on `selection` after counting what it would take (its dry run). A discard must
    be confirmed: `expected` is the count the operator saw, and a different count now is a Conflict."""
    total = actions.count(action, container, selection, mode=mode)
    if action == "discard":
        if expected is None:
            raise InvalidInput("expectedCount is required: the count a dry run answered, as confirmed")
        if expected != total:
            raise Conflict(
                f"the selection now matches {total} dead letters to discard, not {expected}; "
                "look again and confirm the new count"
            )
    return task_store(container).start(
        action, selection, total=total, actor=actor, via=via, mode=mode, rate=rate, reason=reason
    )


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class TaskRunner:
    """Runs tasks a chunk at a time: each chunk is about a second of work at the task's rate; between chunks the
    lease is renewed, progress written and a cancel honoured."""

    def __init__(
        self,
        container: Container,
        tasks: TaskStore,
        *,
        owner: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.container = container
        self.tasks = tasks
        self.owner = owner or runner_name()
        self._sleep = sleep

    def run_pending(self, stop: threading.Event | None = None) -> int:
        """Run every task that nobody runs (new ones, and those of a runner that died), each to its end; how many
        were taken."""
        taken = 0
        for doc in self.tasks.runnable():
            if stop is not None and stop.is_set():
                break
            lease = self.tasks.acquire(doc, owner=self.owner)
            if lease is not None:
                taken += 1
                self.run(lease, stop=stop)
        return taken

    def run(
        self,
        lease: Lease,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Run the task of `lease` until it ends, its lease is lost, or `stop` is set (the lease then runs out
        and another process resumes it)."""
        doc = self.tasks.renew(lease)
        try:
            while doc is not None:
                if on_progress is not None:
                    on_progress(doc)
                if doc.get("cancel_requested"):
                    self.tasks.finish(lease, TaskState.CANCELLED)
                    return
                if stop is not None and stop.is_set():
                    self.tasks.release(lease)
                    return
                outcome = self._chunk(doc)
                if outcome.state is not None:
                    self.tasks.renew(lease, outcome.progress)
                    self.tasks.finish(lease, outcome.state, outcome.error)
                    return
                doc = self.tasks.renew(lease, outcome.progress)
        except PyMongoError as exc:
            log.warning(
                "task %s stopped by a store fault (%s); its lease runs out and it is resumed", lease.task_id, exc
            )
        except Exception as exc:  # noqa: BLE001  a bug or a refusal: the task says why instead of running on
            log.exception("task %s failed", lease.task_id)
            self.tasks.finish(lease, TaskState.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            if on_progress is not None and doc is not None:
                on_progress(self.tasks.get(lease.task_id))

    def _chunk(self, doc: Mapping[str, Any]) -> "ChunkOutcome":
        rate = float(doc["rate"])
        size = max(1, min(MAX_CHUNK, int(rate)))
        selection = Selection.from_doc(doc["selection"])
        started = time.monotonic()
        failures: list[str] = []

        def noted(result) -> None:
            if result.outcome is Outcome.FAILED:
                failures.append(result.detail)

        answer = actions.act(
            doc["action"],
            self.container,
            selection,
            dry_run=False,
            mode=doc.get("mode"),
            expected=actions.CONFIRMED,
            limit=size,
            report=noted,
        )
        counts = answer.counts
        progress = {"moved": answer.done, "failed": counts.get("failed", 0), "skipped": counts.get("skipped", 0)}
        # paced a chunk at a time: what this chunk moved takes at least its share of a second
        self._sleep(max(0.0, answer.done / rate - (time.monotonic() - started)))
        if answer.done:
            return ChunkOutcome(progress)
        if progress["failed"]:
            return ChunkOutcome(progress, TaskState.FAILED, failures[-1] if failures else "every dead letter failed")
        if progress["skipped"] and doc["action"] == "replay":
            # held by another restore right now, or its transport is down: wait for it rather than end early
            self._sleep(1.0)
            return ChunkOutcome(progress)
        return ChunkOutcome(progress, TaskState.COMPLETED)


@dataclass(frozen=True)
class ChunkOutcome:
    progress: dict[str, int]
    state: TaskState | None = None  # None: go on
    error: str | None = None


class TaskWorker:
    """What a serving process runs in a thread of its own (dailyfeed.background): every tasks.poll-s, the tasks
    nobody runs; every deadletters.retention-interval-s, the retention purge."""

    def __init__(
        self,
        container: Container,
        *,
        poll_s: float,
        upkeep: Callable[[], None] | None = None,
        upkeep_every_s: float = 3600.0,
    ):
        self.runner = TaskRunner(container, task_store(container))
        self.poll_s = poll_s
        self.upkeep = upkeep
        self.upkeep_every_s = upkeep_every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dailyfeed-tasks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        next_upkeep = time.monotonic()
        while not self._stop.is_set():
            try:
                self.runner.run_pending(self._stop)
                if self.upkeep is not None and time.monotonic() >= next_upkeep:
                    next_upkeep = time.monotonic() + self.upkeep_every_s
                    self.upkeep()
            except Exception:  # noqa: BLE001  the store may be down: try again at the next poll
                log.exception("background tasks: a pass failed; trying again in %.1f s", self.poll_s)
            self._stop.wait(self.poll_s)
