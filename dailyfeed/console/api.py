"""The admin API under /api/admin/ (SPEC section 8a): an admin-scope token only (`dailyfeed token --admin`);
member and service tokens get 403. Reads are GETs; every action is a POST, and nothing changes on a GET.

    GET  /api/admin/overview                   counts, oldest pending, per hour, by error type, lag, circuits
    GET  /api/admin/dead-letters               the list: filters (service.FILTER_FIELDS), page, size
    GET  /api/admin/dead-letters/<id>          one dead letter: payload, key, origin, error, claim, timestamps
    POST /api/admin/dead-letters/replay        {ids | filter | all, dryRun, mode}
    POST /api/admin/dead-letters/discard       {ids | filter | all, dryRun, expectedCount}
    POST /api/admin/dead-letters/requeue       {ids | filter | all, dryRun}

Bodies and queries are validated by their models (dailyfeed.contract) before a view runs; what the filters mean
(a known collection, status, category, ISO times) is checked once, by service.selection_from, for the API, the
page and the CLI alike.
"""
from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from .. import ops
from ..auth import admin_required
from ..contract import operation
from ..deadletters import Selection
from ..extension import get_container
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


class ListQuery(PageQuery, AdminFilter):
    model_config = ConfigDict(extra="forbid")


class Action(BaseModel):
    """Dead letters chosen by hand (`ids`), or by a filter, or all of them (only when `all` is true)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = Field(default=None, max_length=1000)
    filter: AdminFilter | None = None
    all: StrictBool = False
    dryRun: StrictBool = False


class ReplayBody(Action):
    mode: Literal["republish", "record"] = "republish"


class DiscardBody(Action):
    expectedCount: int | None = Field(default=None, ge=0, description="the count the dry run answered")


def _selection(body: Action) -> Selection:
    params = body.filter.model_dump(exclude_none=True) if body.filter else {}
    selection = service.selection_from(params, body.ids)
    service.check_bulk(selection, body.all)
    return selection


@bp.get("/overview")
@operation(response=dict[str, Any], auth=admin_required, tags=TAGS)
def overview():
    """Dead letters at a glance: counts by status, oldest pending, per hour, by error type; lag; circuits."""
    return success(service.overview(get_container(), ops.state_of(current_app).lag))


@bp.get("/dead-letters")
@operation(query=ListQuery, response=dict[str, Any], auth=admin_required, tags=TAGS)
def dead_letters(query: ListQuery):
    """Dead letters matching the filters, newest first, a page at a time."""
    params = query.model_dump(exclude_none=True, exclude={"page", "size"})
    return success(service.list_page(get_container(), service.selection_from(params), query.page, query.size))


@bp.get("/dead-letters/<dead_letter_id>")
@operation(response=dict[str, Any], auth=admin_required, errors=(404,), tags=TAGS)
def dead_letter(dead_letter_id: str):
    """One dead letter: payload, message key, origin, error, attempts, claim, timestamps."""
    return success(service.detail(get_container(), dead_letter_id))


@bp.post("/dead-letters/replay")
@operation(body=ReplayBody, response=dict[str, Any], auth=admin_required, tags=TAGS)
def replay(body: ReplayBody):
    """Replay pending dead letters through the restore jobs (a dry run first says how many)."""
    answer = service.replay(get_container(), _selection(body), dry_run=body.dryRun, mode=body.mode)
    return success(answer.to_json())


@bp.post("/dead-letters/discard")
@operation(body=DiscardBody, response=dict[str, Any], auth=admin_required, errors=(409,), tags=TAGS)
def discard(body: DiscardBody):
    """Discard pending or failed dead letters; past a dry run, expectedCount must be the count confirmed."""
    answer = service.discard(get_container(), _selection(body), dry_run=body.dryRun, expected=body.expectedCount)
    return success(answer.to_json())


@bp.post("/dead-letters/requeue")
@operation(body=Action, response=dict[str, Any], auth=admin_required, tags=TAGS)
def requeue(body: Action):
    """Put failed dead letters back to pending (their error and attempts stay)."""
    return success(service.requeue(get_container(), _selection(body), dry_run=body.dryRun).to_json())
