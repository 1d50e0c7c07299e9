"""The dead-letter console page at /admin: server-rendered (Jinja2, autoescaped); console.js (served here, no
other script) only makes it nicer: the progress of running tasks without a reload.

Login: an admin token (`dailyfeed token --admin --name alice`) or a viewer's (`--viewer`), posted once, opens a
session kept in the store (sessions.py) with the token's subject and scope; the HttpOnly, SameSite=Strict cookie for
/admin holds only the session's random id, never the token, and logout ends the session. A viewer sees every page
and no action control, and any action a viewer posts is a 403. Every action is a POST carrying a CSRF token (an
HMAC of the session id, so it cannot be guessed without it) and goes through a confirmation page that shows the
dry-run count first; nothing changes on a GET. Dead letters chosen by hand are acted on at once; a selection by
filter (or all of them) becomes a task that the serving process runs in the background. Every action is audited
with the name of the token the session was opened with. Form numbers follow the API's rules (ASCII digits); a
`back` address that is not a plain /admin path is replaced by /admin before anything is done. Responses carry a
strict Content-Security-Policy (no inline script or style), a second fence behind autoescaping.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, make_response, redirect, render_template, request, url_for
from pymongo.errors import PyMongoError

from .. import ops
from ..auth import may_act, verify_admin_token
from ..contract import operation
from ..deadletters import SHORT_NAMES, Status, age_text
from ..deadletters import audit as audit_trail
from ..errors import DailyfeedError, Forbidden, InvalidInput, error_response
from ..events import Category
from ..extension import get_container
from ..restore import actions, tasks
from ..types import count_from_text
from ..web import MAX_PAGE_SIZE, PAGE_CSP, secure_page
from . import charts, service
from .sessions import ConsoleSessions

PAGE = ("console page",)  # server-rendered HTML; a login session's id travels in an HttpOnly cookie
bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
COOKIE = "dailyfeed_admin"
PAGE_SIZE = 25
ACTIONS = {"replay": "Replay", "discard": "Discard", "requeue": "Re-queue", "undiscard": "Undo discard"}
TASKS_SHOWN = 5
GROUPS_SHOWN = 6
AUDIT_SHOWN = 8
#: the pages' policy, and console.js may poll tasks.json on this origin
CSP = PAGE_CSP.replace("script-src 'self';", "script-src 'self'; connect-src 'self';")
#: Where an action may send the browser back to: a path of the console, printable ASCII, no scheme or host.
BACK = re.compile(r"/admin(?:[/?][!#-\[\]-~]*)?")


class LoggedOut(Exception):
    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


@bp.app_template_filter("when")
def _when(value: str | None) -> str:
    """An ISO time of the API as the page shows it: '2026-11-29 09:40:20 UTC'."""
    return f"{value[:10]} {value[11:19]} UTC" if value else "-"


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return secure_page(response, CSP)


@bp.errorhandler(LoggedOut)
def _logged_out(error: LoggedOut):
    response = make_response(render_template("console/login.html", error=error.reason), 401)
    if request.cookies.get(COOKIE):
        response.delete_cookie(COOKIE, path="/admin")
    return response


@bp.errorhandler(DailyfeedError)
def _refused(error: DailyfeedError):
    return render_template(
        "console/problem.html",
        status=error.status,
        message=error.message,
        back=request.referrer if _same_origin(request.referrer) else url_for(".index"),
    ), error.status


@bp.errorhandler(PyMongoError)
def _store_down(error: PyMongoError):
    return render_template(
        "console/problem.html",
        status=503,
        back=url_for(".index"),
        message="the document store is unavailable; nothing was changed, try again",
    ), 503


class Session:
    """Who is logged in: the session's id (the cookie), the name of the token it was opened with, and whether they
    may act (an admin) or only read (a viewer); both from the session document, never from the request."""

    def __init__(self, session_id: str, document: dict[str, Any]):
        self.id = session_id
        self.name = str(document.get("subject") or "unknown")
        self.can_act = may_act(document)

    def acting(self) -> "Session":
        if not self.can_act:
            raise Forbidden(f"{self.name} has a viewer's token: reading only, no action")
        return self


def _sessions() -> ConsoleSessions:
    return ConsoleSessions(get_container().db)


def _session() -> Session:
    """The live session the cookie names; LoggedOut otherwise."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        raise LoggedOut()
    document = _sessions().find(session_id)
    if document is None:
        raise LoggedOut("your session has ended (logged out, or its token expired); log in again")
    return Session(session_id, dict(document))


def _page(template: str, session: Session, **context: Any) -> str:
    return render_template(template, csrf=_csrf(session.id), me=session, **context)


def _csrf(session_id: str) -> str:
    secret = get_container().settings["auth.jwt-secret"].encode()
    return hmac.new(secret, b"console-csrf:" + session_id.encode(), hashlib.sha256).hexdigest()


def _check_csrf(session_id: str) -> None:
    # bytes: compare_digest refuses str with non-ASCII characters (a 500 instead of a refusal)
    if not hmac.compare_digest(request.form.get("csrf", "").encode(), _csrf(session_id).encode()):
        raise InvalidInput(
            "this form is stale or came from another site (CSRF token missing or wrong); reload the page and try again"
        )


def _same_origin(url: str | None) -> bool:
    return bool(url) and url.startswith(request.host_url)


# --- login ------------------------------------------------------------------------------------------------------


@bp.get("/login")
@operation(media_type="text/html", tags=PAGE, errors=(401,), uses_store=False)
def login_page():
    """The login form: paste an admin token."""
    return render_template("console/login.html", error=None)


@bp.post("/login")
@operation(media_type="text/html", tags=PAGE, status=303, errors=(401,))
def login():
    """Log in: the admin's (or viewer's) token opens a session; its id goes into an HttpOnly, SameSite=Strict
    cookie."""
    token = request.form.get("token", "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        raise LoggedOut("paste an admin token")
    try:
        claims = verify_admin_token(token)
    except DailyfeedError as exc:
        raise LoggedOut(exc.message) from None
    session_id = _sessions().open(
        str(claims.get("sub") or "unknown"),
        str(claims.get("scope")),
        datetime.fromtimestamp(claims["exp"], timezone.utc),
    )
    response = redirect(url_for(".index"), 303)
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="Strict", secure=request.is_secure, path="/admin")
    return response


@bp.post("/logout")
@operation(media_type="text/html", tags=PAGE, status=303, errors=(401, 403))
def logout():
    """Log out (CSRF-checked): the session ends in the store and the cookie is dropped."""
    session_id = request.cookies.get(COOKIE)
    if session_id:
        _check_csrf(session_id)
        _sessions().end(session_id)
    response = redirect(url_for(".login_page"), 303)
    response.delete_cookie(COOKIE, path="/admin")
    return response


# --- pages ------------------------------------------------------------------------------------------------------


@bp.get("/")
@operation(media_type="text/html", tags=PAGE, status=308)
def index_with_slash():
    """The console at /admin (a permanent redirect)."""
    return redirect(url_for(".index"), 308)


@bp.get("")
@operation(media_type="text/html", tags=PAGE, errors=(400, 401))
def index():
    """The console: counts, charts, circuits, lag, and the filtered list of dead letters."""
    session = _session()
    container = get_container()
    params = _filter_args(request.args)
    selection = service.selection_from(params, find_group=container.dead_letters.find_group)
    page = _page_arg()
    listed = service.list_page(container, selection, page, PAGE_SIZE)
    seen = service.overview(container, ops.state_of(current_app).lag)
    chart = charts.hours_chart(_hours(seen["hours"]), {c["name"]: c["createdPerHour"] for c in seen["collections"]})
    errors = charts.meters([(e["type"], e["open"]) for e in seen["errorTypes"]])
    store = tasks.task_store(container)
    recent, _ = audit_trail.entries(container.db, audit_trail.AuditQuery(), limit=AUDIT_SHOWN)
    return _page(
        "console/index.html",
        session,
        overview=seen,
        listed=listed,
        chart=chart,
        error_meters=errors,
        filters=params,
        selection=selection,
        page=page,
        result=_result(request.args),
        age=age_text,
        **_choices(),
        tasks=[tasks.progress_of(doc) for doc in store.list(limit=TASKS_SHOWN)],
        groups=service.failure_groups(container, selection),
        groups_shown=GROUPS_SHOWN,
        audit=[audit_trail.as_json(entry) for entry in recent],
        page_link=lambda n: url_for(".index", **params, page=n),
    )


@bp.get("/dead-letters/<dead_letter_id>")
@operation(media_type="text/html", tags=PAGE, errors=(401, 404))
def detail(dead_letter_id: str):
    """One dead letter: payload, error, origin, claim, with its actions."""
    session = _session()
    letter = service.detail(get_container(), dead_letter_id)
    return _page(
        "console/detail.html",
        session,
        letter=letter,
        payload=_pretty(letter["payload"]),
        origin=letter["origin"],
        origin_value=_pretty(_maybe_json((letter["origin"] or {}).get("value")))
        if isinstance(letter["origin"], dict)
        else None,
        result=_result(request.args),
    )


@bp.post("/actions")
@operation(media_type="text/html", tags=PAGE, errors=(303, 400, 401, 403, 409))
def action():
    """Every console action: first a confirmation page with the dry-run count (step=confirm), then the action
    itself (step=run): dead letters chosen by hand at once, after which the browser is sent back (303) to the list
    with the counts; a selection by filter as a task, after which the list shows its progress."""
    session = _session().acting()
    _check_csrf(session.id)
    container = get_container()
    back = request.form.get("back") or ""
    if not BACK.fullmatch(back):
        back = url_for(".index")
    name = request.form.get("action", "")
    if name not in ACTIONS:
        raise InvalidInput(f"unknown action {name!r}")
    scope = request.form.get("scope", "chosen")
    params = _filter_args(request.form)
    ids = request.form.getlist("ids")
    if scope == "chosen":
        if not ids:
            raise InvalidInput("choose at least one dead letter first (the boxes in the list)")
        selection = service.selection_from({}, ids)
    elif scope in ("matching", "all"):
        selection = service.selection_from(params, find_group=container.dead_letters.find_group)
        actions.check_bulk(selection, scope == "all")
    else:
        raise InvalidInput(f"unknown scope {scope!r}")
    mode = request.form.get("mode", actions.ReplayMode.REPUBLISH)
    reason = request.form.get("reason", "").strip()[: audit_trail.MAX_REASON] or None
    if request.form.get("step") != "run":
        if scope == "chosen":
            preview = actions.act(name, container, selection, dry_run=True, mode=mode).to_json()
        else:  # a task: its count, without a replay's preview of each dead letter
            preview = {
                "matching": actions.count(name, container, selection, mode=mode),
                "selection": selection.described(),
            }
        return _page(
            "console/confirm.html",
            session,
            action=name,
            label=ACTIONS[name],
            preview=preview,
            scope=scope,
            ids=ids,
            filters=params,
            mode=mode,
            back=back,
            modes=actions.ReplayMode.ALL,
            default_rate=container.settings["tasks.rate"],
        )
    if scope != "chosen":
        doc = tasks.start(
            container,
            name,
            selection,
            actor=session.name,
            via="page",
            mode=mode,
            reason=reason,
            rate=_rate_field(),
            expected=_number_field("expected"),
        )
        return redirect(f"{url_for('.index')}?{urlencode({'task': str(doc['_id'])})}#tasks", 303)
    answer = actions.perform(
        name,
        container,
        selection,
        actor=session.name,
        via="page",
        reason=reason,
        mode=mode,
        expected=_number_field("expected"),
    )
    counts = {k: v for k, v in answer.counts.items()}
    separator = "&" if "?" in back else "?"
    return redirect(f"{back}{separator}{urlencode({'done': name, **counts})}", 303)


@bp.post("/tasks/<task_id>/<command>")
@operation(media_type="text/html", tags=PAGE, status=303, errors=(400, 401, 403, 404, 409))
def task_command(task_id: str, command: str):
    """Cancel or resume a task (CSRF-checked); back to the list's tasks."""
    session = _session().acting()
    _check_csrf(session.id)
    store = tasks.task_store(get_container())
    if command == "cancel":
        store.cancel(task_id, actor=session.name, via="page")
    elif command == "resume":
        store.resume(task_id, actor=session.name, via="page")
    else:
        raise InvalidInput(f"unknown task command {command!r}; cancel or resume")
    return redirect(f"{url_for('.index')}#tasks", 303)


@bp.get("/tasks.json")
@operation(response=dict[str, Any], tags=PAGE, errors=(401,))
def task_progress():
    """The progress of the newest tasks, for console.js to show as they go (the same as the list's section)."""
    try:
        _session()
    except LoggedOut as exc:  # a script asked: the JSON error, not the login page
        return error_response(401, exc.reason or "log in to the console first")
    found = tasks.task_store(get_container()).list(limit=TASKS_SHOWN)
    return {"tasks": [tasks.progress_of(doc) for doc in found]}


@bp.get("/audit")
@operation(media_type="text/html", tags=PAGE, errors=(400, 401))
def audit():
    """The audit trail, newest first, filtered by one of actor, action, outcome or task, and a time window."""
    session = _session()
    params = {name: request.args.get(name, "").strip() for name in (*audit_trail.AUDIT_FILTERS, "since", "until")}
    params = {name: value for name, value in params.items() if value}
    page = _page_arg()
    found, total = audit_trail.entries(
        get_container().db, service.audit_query_from(params), skip=page * PAGE_SIZE, limit=PAGE_SIZE
    )
    return _page(
        "console/audit.html",
        session,
        entries=[audit_trail.as_json(e) for e in found],
        total=total,
        filters=params,
        page=page,
        page_size=PAGE_SIZE,
        page_link=lambda n: url_for(".audit", **params, page=n),
    )


# --- helpers ----------------------------------------------------------------------------------------------------


def _filter_args(source) -> dict[str, str]:
    return {name: source.get(name, "").strip() for name in service.FILTER_FIELDS if source.get(name, "").strip()}


def _page_arg() -> int:
    page = count_from_text(request.args.get("page", "0"))
    if page is None or page * PAGE_SIZE > service.MAX_LIST_SKIP:
        raise InvalidInput(f"page must be a number from 0 to {service.MAX_LIST_SKIP // PAGE_SIZE} (ASCII digits)")
    return page


def _rate_field() -> float | None:
    raw = request.form.get("rate", "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"rate must be a number of dead letters a second, got {raw[:20]!r}") from None


def _number_field(name: str) -> int | None:
    """A form's count: None when missing; InvalidInput when it is not ASCII digits (the API's rule)."""
    raw = request.form.get(name, "")
    if not raw:
        return None
    number = count_from_text(raw)
    if number is None:
        raise InvalidInput(f"{name} must be a count in ASCII digits (at most 18)")
    return number


def _result(args) -> dict[str, Any] | None:
    """The counts of the action just done, from the redirect's query (numbers only: nothing else is shown)."""
    name = args.get("done")
    if name not in ACTIONS:
        return None
    counts = {
        k: count_from_text(v)
        for k, v in args.items()
        if k in ("restored", "skipped", "failed", "discarded", "requeued", "undone") and count_from_text(v) is not None
    }
    return {"action": name, "counts": counts}


def _hours(values: list[str]):
    from datetime import datetime

    return [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]


def _choices() -> dict[str, Any]:
    return {
        "collections": list(SHORT_NAMES.values()),
        "statuses": [s.value for s in Status],
        "categories": [c.value for c in Category],
        "page_size": PAGE_SIZE,
        "max_page_size": MAX_PAGE_SIZE,
    }


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)
