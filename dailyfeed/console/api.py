"""The admin API under /api/admin/ (SPEC section 8a): an admin-scope token only (`dailyfeed token --admin`);
member and service tokens get 403. Reads are GETs; every action is a POST, and nothing changes on a GET.

    GET  /api/admin/overview                   counts, oldest pending, per hour, by error type, lag, circuits
    GET  /api/admin/dead-letters               the list: filters (service.FILTER_FIELDS), page, size
    GET  /api/admin/dead-letters/<id>          one dead letter: payload, key, origin, error, claim, timestamps
    POST /api/admin/dead-letters/replay        {ids | filter | all, dryRun, mode}
    POST /api/admin/dead-letters/discard       {ids | filter | all, dryRun, expectedCount}
    POST /api/admin/dead-letters/requeue       {ids | filter | all, dryRun}
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from ..auth import admin_required
from ..deadletters import Selection
from ..errors import InvalidInput
from ..extension import get_container
from ..web import json_body, page_params, success
from . import service

bp = Blueprint("admin_api", __name__, url_prefix="/api/admin")


@bp.before_request
@admin_required
def _admin_only() -> None:
    return None


@bp.get("/overview")
def overview():
    return success(service.overview(get_container()))


@bp.get("/dead-letters")
def dead_letters():
    page, size = page_params()
    params = {k: v for k, v in request.args.items() if k not in ("page", "size")}
    return success(service.list_page(get_container(), service.selection_from(params), page, size))


@bp.get("/dead-letters/<dead_letter_id>")
def dead_letter(dead_letter_id: str):
    return success(service.detail(get_container(), dead_letter_id))


@bp.post("/dead-letters/replay")
def replay():
    body, selection, dry_run = _action("replay", allowed={"ids", "filter", "all", "dryRun", "mode"})
    mode = body.get("mode", service.ReplayMode.REPUBLISH)
    return success(service.replay(get_container(), selection, dry_run=dry_run, mode=mode).to_json())


@bp.post("/dead-letters/discard")
def discard():
    body, selection, dry_run = _action("discard", allowed={"ids", "filter", "all", "dryRun", "expectedCount"})
    expected = body.get("expectedCount")
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int) or expected < 0):
        raise InvalidInput("expectedCount must be a count (0 or more)")
    return success(service.discard(get_container(), selection, dry_run=dry_run, expected=expected).to_json())


@bp.post("/dead-letters/requeue")
def requeue():
    _, selection, dry_run = _action("requeue", allowed={"ids", "filter", "all", "dryRun"})
    return success(service.requeue(get_container(), selection, dry_run=dry_run).to_json())


def _action(name: str, *, allowed: set[str]) -> tuple[dict[str, Any], Selection, bool]:
    """The body of an action: ids chosen by hand, or a filter, or all (explicitly), and whether it is a dry run."""
    body = json_body()
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field {', '.join(unknown)} for {name}; fields are {', '.join(sorted(allowed))}")
    for flag in ("all", "dryRun"):
        if not isinstance(body.get(flag, False), bool):
            raise InvalidInput(f"{flag} must be true or false")
    ids = body.get("ids")
    if ids is not None and not isinstance(ids, list):
        raise InvalidInput("ids must be a list of dead-letter ids")
    params = body.get("filter") or {}
    if not isinstance(params, dict):
        raise InvalidInput("filter must be an object of filters")
    selection = service.selection_from(params, ids)
    service.check_bulk(selection, body.get("all", False))
    return body, selection, body.get("dryRun", False)
