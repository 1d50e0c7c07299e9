"""The admin API under /api/admin/ (SPEC section 8a). Reads: an admin or a viewer token (`dailyfeed token --admin
--name alice`, `--viewer --name bob`); actions: an admin token only (a viewer gets 403); member and service tokens
get 403. Reads are GETs; every action is a POST, nothing changes on a GET, and every action is audited with the
admin's name (the token's subject) and the optional `reason` given with it.

    GET  /api/admin/overview                   counts, oldest pending, per hour, by error type, lag, circuits
    GET  /api/admin/dead-letters               the list: filters (service.FILTER_FIELDS), page, size
    GET  /api/admin/dead-letters/<id>          one dead letter: payload, key, origin, error, claim, timestamps
    GET  /api/admin/groups                     open dead letters by failure group (the filter `group` takes one)
    POST /api/admin/dead-letters/replay        {ids | filter | all, dryRun, mode, reason}
    POST /api/admin/dead-letters/discard       {ids | filter | all, dryRun, expectedCount, reason}
    POST /api/admin/dead-letters/requeue       {ids | filter | all, dryRun, reason}
    POST /api/admin/dead-letters/undiscard     {ids | filter | all, dryRun, reason}: a discard undone
    GET  /api/admin/tasks                      background tasks, newest first (?state=)
    POST /api/admin/tasks                      {action, ids | filter | all, mode, rate, expectedCount, reason}: 201
    GET  /api/admin/tasks/<id>                 a task's progress: moved of total, failed, rate, time left, state
    POST /api/admin/tasks/<id>/cancel          {reason}
    POST /api/admin/tasks/<id>/resume          {reason}: a failed or cancelled task runs again
    GET  /api/admin/audit                      the audit trail, newest first (?actor= | action= | outcome= | task=,
                                               since, until, page, size)

Bodies and queries are validated by their models (dailyfeed.contract) before a view runs; what the filters mean
(a known collection, status, category, ISO times) is checked once, by service.selection_from, for the API, the
page and the CLI alike.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from .. import ops
from ..auth import actor, admin_required, reader_required
from ..contract import operation
from ..deadletters import Selection
from ..deadletters import audit as audit_trail
from ..extension import get_container
from ..restore import actions, tasks
from ..web import PageQuery, success
from . import service

bp = Blueprint("admin_api", __name__, url_prefix="/api/admin")


@bp.after_request
def _not_cached(response):
    # dead letters hold members' activities and errors: no shared or browser cache keeps an answer
    response.headers["Cache-Control"] = "no-store"
    return response


FilterText = Field(default=None, max_length=512)
TAGS = ("admin",)


class AdminFilter(BaseModel):
    """Which dead letters: every filter is optional; an empty one means no filter."""

    model_config = ConfigDict(extra="forbid")

    collection: str | None = Field(default=None, max_length=64, description="kafka-publisher, feign or listener")
    status: str | None = Field(default=None, max_length=16, description="pending, completed, failed or discarded")
    category: str | None = Field(default=None, max_length=16, description="POST, COMMENT, POST_LIKE, …")
    errorType: str | None = FilterText
    key: str | None = FilterText
    keyPrefix: str | None = FilterText
    since: str | None = Field(default=None, max_length=64, description="ISO date or date-time (UTC by default)")
    until: str | None = Field(default=None, max_length=64, description="ISO date or date-time (UTC by default)")
    group: str | None = Field(default=None, max_length=16, description="a failure group's fingerprint")


class ListQuery(PageQuery, AdminFilter):
    model_config = ConfigDict(extra="forbid")


class Action(BaseModel):
    """Dead letters chosen by hand (`ids`), or by a filter, or all of them (only when `all` is true)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = Field(default=None, max_length=1000)
    filter: AdminFilter | None = None
    all: StrictBool = False
    dryRun: StrictBool = False
    expectedCount: int | None = Field(
        default=None, ge=0, le=10**9, description="the count the dry run answered (required to discard)"
    )
    reason: str | None = Field(default=None, max_length=audit_trail.MAX_REASON, description="why, for the audit trail")


class ReplayBody(Action):
    mode: Literal["republish", "record"] = "republish"


class TaskBody(ReplayBody):
    """A task: the action and its selection, at `rate` dead letters a second (default tasks.rate)."""

    action: Literal["replay", "discard", "requeue", "undiscard"]
    rate: float | None = Field(default=None, gt=0, le=tasks.MAX_RATE)


class TaskQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["running", "completed", "cancelled", "failed"] | None = None
    size: int = Field(default=20, ge=1, le=100)


class Why(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=audit_trail.MAX_REASON)


class AuditQueryModel(PageQuery):
    model_config = ConfigDict(extra="forbid")

    actor: str | None = Field(default=None, max_length=100)
    action: str | None = Field(default=None, max_length=32)
    outcome: str | None = Field(default=None, max_length=32)
    task: str | None = Field(default=None, max_length=24)
    since: str | None = Field(default=None, max_length=64)
    until: str | None = Field(default=None, max_length=64)


def _selection(body: Action) -> Selection:
    params = body.filter.model_dump(exclude_none=True) if body.filter else {}
    selection = service.selection_from(params, body.ids, find_group=get_container().dead_letters.find_group)
    actions.check_bulk(selection, body.all)
    return selection


def _perform(name: str, body: Action, **options: Any):
    selection = _selection(body)
    if body.dryRun:
        return success(actions.act(name, get_container(), selection, dry_run=True, **options).to_json())
    answer = actions.perform(
        name,
        get_container(),
        selection,
        actor=actor(),
        via="api",
        reason=body.reason,
        expected=body.expectedCount,
        **options,
    )
    return success(answer.to_json())


@bp.get("/overview")
@operation(response=dict[str, Any], auth=reader_required, tags=TAGS)
def overview():
    """Dead letters at a glance: counts by status, oldest pending, per hour, by error type; lag; circuits."""
    return success(service.overview(get_container(), ops.state_of(current_app).lag))


@bp.get("/dead-letters")
@operation(query=ListQuery, response=dict[str, Any], auth=reader_required, tags=TAGS)
def dead_letters(query: ListQuery):
    """Dead letters matching the filters, newest first, a page at a time."""
    params = query.model_dump(exclude_none=True, exclude={"page", "size"})
    container = get_container()
    selection = service.selection_from(params, find_group=container.dead_letters.find_group)
    return success(service.list_page(container, selection, query.page, query.size))


@bp.get("/groups")
@operation(query=AdminFilter, response=dict[str, Any], auth=reader_required, tags=TAGS)
def groups(query: AdminFilter):
    """Open dead letters grouped by failure fingerprint (error type, message stripped of ids, numbers, keys and
    times, origin): count, first and last seen, an example. Act on one with the filter `group`."""
    container = get_container()
    selection = service.selection_from(
        query.model_dump(exclude_none=True), find_group=container.dead_letters.find_group
    )
    return success(service.failure_groups(container, selection))


@bp.get("/dead-letters/<dead_letter_id>")
@operation(response=dict[str, Any], auth=reader_required, errors=(404,), tags=TAGS)
def dead_letter(dead_letter_id: str):
    """One dead letter: payload, message key, origin, error, attempts, claim, timestamps."""
    return success(service.detail(get_container(), dead_letter_id))


@bp.post("/dead-letters/replay")
@operation(body=ReplayBody, response=dict[str, Any], auth=admin_required, tags=TAGS)
def replay(body: ReplayBody):
    """Replay pending dead letters through the restore jobs (a dry run first says how many)."""
    return _perform("replay", body, mode=body.mode)


@bp.post("/dead-letters/discard")
@operation(body=Action, response=dict[str, Any], auth=admin_required, errors=(409,), tags=TAGS)
def discard(body: Action):
    """Discard pending or failed dead letters; past a dry run, expectedCount must be the count confirmed."""
    return _perform("discard", body)


@bp.post("/dead-letters/requeue")
@operation(body=Action, response=dict[str, Any], auth=admin_required, tags=TAGS)
def requeue(body: Action):
    """Put failed dead letters back to pending (their error and attempts stay)."""
    return _perform("requeue", body)


@bp.post("/dead-letters/undiscard")
@operation(body=Action, response=dict[str, Any], auth=admin_required, tags=TAGS)
def undiscard(body: Action):
    """Undo a discard: discarded dead letters (still kept) go back to pending."""
    return _perform("undiscard", body)


# --- tasks ------------------------------------------------------------------------------------------------------


@bp.get("/tasks")
@operation(query=TaskQuery, response=dict[str, Any], auth=reader_required, tags=TAGS)
def task_list(query: TaskQuery):
    """Background tasks, newest first, with their progress."""
    state = tasks.TaskState(query.state) if query.state else None
    found = tasks.task_store(get_container()).list(state, limit=query.size)
    return success({"content": [tasks.progress_of(doc) for doc in found]})


@bp.post("/tasks")
@operation(body=TaskBody, response=dict[str, Any], status=201, auth=admin_required, errors=(409,), tags=TAGS)
def task_start(body: TaskBody):
    """Start a task: replay, discard, re-queue or undo a discard of a selection, in the background at a rate."""
    doc = tasks.start(
        get_container(),
        body.action,
        _selection(body),
        actor=actor(),
        via="api",
        mode=body.mode if body.action == "replay" else None,
        rate=body.rate,
        reason=body.reason,
        expected=body.expectedCount,
    )
    return success(tasks.progress_of(doc), 201)


@bp.get("/tasks/<task_id>")
@operation(response=dict[str, Any], auth=reader_required, errors=(404,), tags=TAGS)
def task(task_id: str):
    """A task's progress: moved of total, failed, started, rate, time left, state (and why it failed)."""
    return success(tasks.progress_of(tasks.task_store(get_container()).get(task_id)))


@bp.post("/tasks/<task_id>/cancel")
@operation(body=Why, response=dict[str, Any], auth=admin_required, errors=(404, 409), tags=TAGS)
def task_cancel(task_id: str, body: Why):
    """Cancel a running task: it stops after the chunk in hand; what moved stays moved."""
    doc = tasks.task_store(get_container()).cancel(task_id, actor=actor(), via="api", reason=body.reason)
    return success(tasks.progress_of(doc))


@bp.post("/tasks/<task_id>/resume")
@operation(body=Why, response=dict[str, Any], auth=admin_required, errors=(404, 409), tags=TAGS)
def task_resume(task_id: str, body: Why):
    """Run a failed or cancelled task again, on what is left of its selection."""
    doc = tasks.task_store(get_container()).resume(task_id, actor=actor(), via="api", reason=body.reason)
    return success(tasks.progress_of(doc))


# --- audit ------------------------------------------------------------------------------------------------------


@bp.get("/audit")
@operation(query=AuditQueryModel, response=dict[str, Any], auth=reader_required, tags=TAGS)
def audit(query: AuditQueryModel):
    """The audit trail, newest first: who did what, when, on which selection, with which counts and outcome."""
    found, total = audit_trail.entries(
        get_container().db, service.audit_query_from(query.model_dump()), skip=query.page * query.size, limit=query.size
    )
    return success(
        {
            "content": [audit_trail.as_json(entry) for entry in found],
            "page": query.page,
            "size": query.size,
            "total": total,
            "hasNext": (query.page + 1) * query.size < total,
        }
    )
