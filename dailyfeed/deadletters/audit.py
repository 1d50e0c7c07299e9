"""The audit trail of every action on dead letters (replay, discard, re-queue, undo of a discard, a task started,
cancelled, resumed or finished, a retention purge): who, when, through what (api, page, cli, task, retention), the
selection (ids or filter), the count the dry run answered, the count the action changed, the outcome and an
optional reason given with it.

Append-only: `record` inserts, nothing here or elsewhere updates or deletes an entry (the retention purge of dead
letters leaves it alone). Any part that acts on dead letters records through `record` (the console, the CLI, the
task runner, the automatic redrive).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.database import Database

from ..events import as_utc, utcnow
from ..store import AUDIT
from .queries import Selection

MAX_REASON = 500  # characters of a reason given with an action
MAX_ACTOR = 100
NEWEST_FIRST = [("at", DESCENDING), ("_id", DESCENDING)]
AUDIT_FILTERS = ("actor", "action", "outcome", "task")  # at most one of them at a time, with since/until


def record(
    db: Database,
    *,
    actor: str,
    action: str,
    outcome: str,
    via: str,
    selection: Selection | None = None,
    dry_run_count: int | None = None,
    result_count: int | None = None,
    reason: str | None = None,
    task: Any = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """Append one entry to the audit trail and return it. `outcome`: done, started, cancelled, resumed, completed,
    failed, refused; `via`: api, page, cli, task, retention (or the caller's own word)."""
    entry = {
        "at": utcnow(),
        "actor": str(actor)[:MAX_ACTOR],
        "action": action,
        "via": via,
        "outcome": outcome,
        "selection": selection.to_doc() if selection is not None else None,
        "described": selection.described() if selection is not None else None,
        "dry_run_count": dry_run_count,
        "result_count": result_count,
        "reason": reason[:MAX_REASON] if reason else None,
        "task": task,
        "detail": detail,
    }
    db[AUDIT].insert_one(entry)
    return entry


@dataclass(frozen=True)
class AuditQuery:
    """Which entries: one of actor, action, outcome or task (an indexed equality), a time window."""

    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    task: Any = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> dict[str, Any]:
        query: dict[str, Any] = {name: getattr(self, name) for name in AUDIT_FILTERS if getattr(self, name) is not None}
        at: dict[str, Any] = {}
        if self.since is not None:
            at["$gte"] = self.since
        if self.until is not None:
            at["$lt"] = self.until
        if at:
            query["at"] = at
        return query


def entries(db: Database, query: AuditQuery, *, skip: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
    """Entries newest first, a page at a time, and how many match."""
    found = list(db[AUDIT].find(query.query()).sort(NEWEST_FIRST).skip(skip).limit(limit))
    return found, db[AUDIT].count_documents(query.query())


def iso(at: datetime | None) -> str | None:
    """A stored time as the API shows it: ISO-8601 UTC with a Z."""
    return as_utc(at).isoformat(timespec="milliseconds").replace("+00:00", "Z") if at else None


def as_json(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry as the API and the page show it."""
    return {
        "id": str(entry["_id"]),
        "at": iso(entry.get("at")),
        "actor": entry.get("actor"),
        "action": entry.get("action"),
        "via": entry.get("via"),
        "outcome": entry.get("outcome"),
        "selection": entry.get("described"),
        "dryRunCount": entry.get("dry_run_count"),
        "resultCount": entry.get("result_count"),
        "reason": entry.get("reason"),
        "detail": entry.get("detail"),
        "task": str(entry["task"]) if isinstance(entry.get("task"), ObjectId) else entry.get("task"),
    }
