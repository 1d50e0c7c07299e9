"""The restore and dead-letter commands of SPEC section 8: `restore-publisher`, `restore-listener` and
`deadletters list | show | discard | stats`. They run inside the app (its store, transports and activity service);
the work itself is in jobs.py and the dailyfeed.deadletters package.

Exit status: 0 when nothing failed, 1 when a dead letter failed or the store could not be reached, 2 for bad
options (click's usage error), 130 when a run without --watch was interrupted.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Callable

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext
from pymongo.errors import PyMongoError

from ..clistore import store_call as _store_call
from ..deadletters import SHORT_NAMES, Selection, Status, age_text, new_claim_token, parse_when
from ..events import Category, as_utc, utcnow
from ..extension import get_container
from ..store import (
    DEAD_LETTER_COLLECTIONS,
    KAFKA_LISTENER_DEAD_LETTERS,
)
from .jobs import ListenerRestore, Mode, Outcome, PublisherRestore, RecordResult, RestoreJob, RestoreOptions, Summary

DRY_RUN_VERBS = {Outcome.RESTORED: "restore", Outcome.SKIPPED: "skip", Outcome.FAILED: "fail"}
EXIT_INTERRUPTED = 130


# --- option types -----------------------------------------------------------------------------------------------

class SinceType(click.ParamType):
    """An ISO date (midnight UTC) or date-time (UTC unless it carries an offset)."""

    name = "DATE"

    def convert(self, value: Any, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class CategoryChoice(click.Choice):
    """A category, any case (post, POST), shown and returned upper-case as stored."""

    def __init__(self):
        super().__init__([c.value for c in Category])

    def convert(self, value: Any, param, ctx) -> str:
        return super().convert(str(value).strip().upper(), param, ctx)


def _collection(ctx, param, value: str | None) -> str | None:
    if value is None:
        return None
    return {short: name for name, short in SHORT_NAMES.items()}.get(value, value)


def _key(ctx, param, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty")
    return value


CATEGORY = CategoryChoice()
COLLECTION = click.Choice(list(SHORT_NAMES.values()) + list(DEAD_LETTER_COLLECTIONS))


def restore_options(command: Callable) -> Callable:
    options = [
        click.option("--batch-size", type=click.IntRange(1, 10_000), default=50, show_default=True,
                     help="Dead letters taken per batch."),
        click.option("--limit", type=click.IntRange(min=1), default=None,
                     help="Take at most this many dead letters (per pass with --watch)."),
        click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None, metavar="N",
                     help="At most N dead letters per second."),
        click.option("--dry-run", is_flag=True, help="Print what would be done; change nothing, claim nothing."),
        click.option("--category", type=CATEGORY, help="Only dead letters of this category."),
        click.option("--since", type=SinceType(), default=None,
                     help="Only dead letters created at or after this ISO date or date-time (UTC by default)."),
        click.option("--key", callback=_key, default=None, help="Only the dead letter with this exact message key."),
        click.option("--watch", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
                     help="Run a pass every SECONDS until interrupted (Ctrl-C gives back what it holds)."),
        click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
                     help="With --watch: serve Prometheus metrics on this port (0: any free one)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _options(batch_size: int, limit: int | None, rate: float | None, category: str | None,
             since: datetime | None, key: str | None) -> RestoreOptions:
    return RestoreOptions(batch_size=batch_size, limit=limit, rate=rate,
                          selection=Selection(category=category, since=since, key=key))


# --- restore commands -------------------------------------------------------------------------------------------

@click.command("restore-publisher")
@click.option("--mode", type=click.Choice([m.value for m in Mode]), default=Mode.REPUBLISH.value, show_default=True,
              help="republish: send again through the transport configured for the event's service; "
                   "handoff: copy into kafka_listener_dead_letters for restore-listener.")
@restore_options
@with_appcontext
def restore_publisher_command(mode: str, batch_size, limit, rate, dry_run, category, since, key, watch,
                              metrics_port) -> None:
    """Restore pending publisher dead letters (kafka_publisher_dead_letters, feign_dead_letters), oldest first."""
    dailyfeed = get_container()
    job = PublisherRestore(dailyfeed.dead_letters, dailyfeed.transports,
                           _options(batch_size, limit, rate, category, since, key), mode=Mode(mode))
    _run(job, dry_run=dry_run, watch=watch, label=f"restore-publisher ({mode})", metrics_port=metrics_port)


@click.command("restore-listener")
@restore_options
@with_appcontext
def restore_listener_command(batch_size, limit, rate, dry_run, category, since, key, watch, metrics_port) -> None:
    """Restore pending listener dead letters (kafka_listener_dead_letters) into member_activities, oldest first."""
    dailyfeed = get_container()
    job = ListenerRestore(dailyfeed.dead_letters, dailyfeed.activity_service,
                          _options(batch_size, limit, rate, category, since, key))
    _run(job, dry_run=dry_run, watch=watch, label="restore-listener", metrics_port=metrics_port)


def _run(job: RestoreJob, *, dry_run: bool, watch: float | None, label: str, metrics_port: int | None = None) -> None:
    ctx = click.get_current_context()
    if dry_run and watch is not None:
        raise click.UsageError("--dry-run cannot be combined with --watch", ctx)
    if metrics_port is not None and watch is None:
        raise click.UsageError("--metrics-port needs --watch (a single pass ends before it could be scraped)", ctx)
    tty = _stdout_is_a_terminal()
    metrics_server = _serve_metrics(metrics_port)
    try:
        if dry_run:
            summary = job.preview(report=_dry_run_line)
            if summary.total == 0:
                click.echo("nothing to restore: no pending dead letter matches")
                _hint_if_embedded()
            click.echo(f"dry run, nothing changed: would restore {summary.restored}, skip {summary.skipped}, "
                       f"fail {summary.failed}")
            return
        total, interrupted = _passes(job, watch=watch, tty=tty, label=label)
    except PyMongoError as exc:
        raise click.ClickException(f"the store failed: {type(exc).__name__}: {exc}") from None
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
    if total.total == 0 and watch is None and not interrupted:
        click.echo("nothing to restore: no pending dead letter matches")
        _hint_if_embedded()
    click.echo(total.line())
    if interrupted and watch is None:
        ctx.exit(EXIT_INTERRUPTED)
    if not total.ok:
        ctx.exit(1)


def _serve_metrics(port: int | None) -> Any:
    if port is None:
        return None
    from flask import current_app

    from ..ops import serve_metrics

    server = serve_metrics(current_app._get_current_object(), port)
    click.echo(f"metrics on http://{server.server_address[0]}:{server.server_port}/metrics")
    return server


def _hint_if_embedded() -> None:
    if str(get_container().settings["mongo.uri"]).startswith("mongomock://"):
        click.echo("note: mongo.uri is the embedded store (mongomock://), which lives inside one process: this "
                   "command cannot see another process's dead letters; set DAILYFEED_MONGO_URI", err=True)


def _passes(job: RestoreJob, *, watch: float | None, tty: bool, label: str) -> tuple[Summary, bool]:
    total = Summary()
    current = Summary()
    with _sigterm_as_interrupt():
        try:
            while True:
                current = Summary()
                _one_pass(job, current, tty=tty, label=label)
                total.merge(current)
                if watch is None:
                    return total, False
                if current.total:
                    click.echo(f"{utcnow():%Y-%m-%d %H:%M:%S}Z pass: {current.line()}")
                current = Summary()
                _wait_between_passes(watch)
        except KeyboardInterrupt:
            total.merge(current)
            click.echo("interrupted: this run's claims were given back", err=True)
            return total, True


def _wait_between_passes(seconds: float) -> None:
    time.sleep(seconds)


def _one_pass(job: RestoreJob, summary: Summary, *, tty: bool, label: str) -> None:
    if not tty:
        job.run(report=_plain_line, summary=summary)
        return
    length = job.pending()
    if not length:
        job.run(report=_plain_line, summary=summary)
        return
    failures: list[RecordResult] = []
    try:
        with click.progressbar(length=length, label=label, show_pos=True) as bar:
            def report(result: RecordResult) -> None:
                bar.update(1)
                if result.outcome is Outcome.FAILED:
                    failures.append(result)

            job.run(report=report, summary=summary)
    finally:
        for result in failures:
            _plain_line(result)


def _stdout_is_a_terminal() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def _plain_line(result: RecordResult) -> None:
    detail = f": {result.detail}" if result.detail else ""
    click.echo(f"{result.outcome.value:<8} {result.key} [{result.collection}]{detail}")


def _dry_run_line(result: RecordResult) -> None:
    detail = f": {result.detail}" if result.detail else ""
    click.echo(f"would {DRY_RUN_VERBS[result.outcome]:<7} {result.key} [{result.collection}]{detail}")


@contextmanager
def _sigterm_as_interrupt():
    """A service manager stops a --watch run with SIGTERM: treat it like Ctrl-C, so claims are given back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- dailyfeed deadletters --------------------------------------------------------------------------------------

deadletters_group = AppGroup("deadletters", help="Look at and repair dead letters: list, show, stats, retry, "
                             "discard, purge.")


@deadletters_group.command("list")
@click.option("--status", type=click.Choice([s.value for s in Status] + ["all"]), default="all", show_default=True)
@click.option("--category", type=CATEGORY, help="Only this category.")
@click.option("--collection", type=COLLECTION, callback=_collection, help="Only this collection.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def list_command(status: str, category: str | None, collection: str | None, limit: int) -> None:
    """List dead letters, oldest first."""
    store = get_container().dead_letters
    selection = Selection(status=None if status == "all" else Status(status), category=category,
                          collections=(collection,) if collection else None)
    found, total = _store_call(lambda: store.list_dead_letters(selection, limit=limit))
    if not found:
        click.echo("no dead letters match")
        if not _store_call(lambda: store.list_dead_letters(Selection(), limit=1))[0]:
            _hint_if_embedded()
        return
    click.echo(f"{'ID':<24}  {'COLLECTION':<15}  {'STATUS':<9}  {'CATEGORY':<12}  {'TRIES':>5}  "
               f"{'CREATED (UTC)':<19}  KEY / ERROR")
    for name, doc in found:
        error = (doc.get("error") or {}).get("message", "")
        click.echo(f"{str(doc['_id']):<24}  {SHORT_NAMES.get(name, name):<15}  {doc.get('status', '?'):<9}  "
                   f"{doc.get('category') or '-':<12}  {doc.get('attempts', 0):>5}  {_when(doc.get('created_at')):<19}"
                   f"  {doc.get('message_key')}" + (f"  ({_clip(error, 80)})" if error else ""))
    if total > len(found):
        click.echo(f"showing {len(found)} of {total}; use --limit to see more")


@deadletters_group.command("show")
@click.argument("id_or_key")
def show_command(id_or_key: str) -> None:
    """Show every dead letter with this id or message key, as stored."""
    store = get_container().dead_letters
    matches = _store_call(lambda: store.lookup(id_or_key))
    if not matches:
        raise click.ClickException(f"no dead letter has the id or message key {id_or_key!r}")
    for name, doc in matches:
        click.echo(f"# {name}")
        click.echo(json.dumps(doc, indent=2, default=_json_value, ensure_ascii=False))


def selection_options(command: Callable) -> Callable:
    """The filters of `discard --matching` and `retry --status failed`: the restore jobs' (--category, --since,
    --key) and the console's (--until, --key-prefix, --error-type, --collection)."""
    options = [
        click.option("--category", type=CATEGORY, help="Only dead letters of this category."),
        click.option("--since", type=SinceType(), default=None, help="Only those created at or after this time."),
        click.option("--until", type=SinceType(), default=None, help="Only those created before this time."),
        click.option("--key", callback=_key, default=None, help="Only the one with this exact message key."),
        click.option("--key-prefix", callback=_key, default=None, help="Only those whose message key starts so."),
        click.option("--error-type", callback=_key, default=None,
                     help="Only those whose last error is of this type (TransportUnavailable, ...)."),
        click.option("--collection", type=COLLECTION, callback=_collection, help="Only this collection."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _selection(category, since, until, key, key_prefix, error_type, collection, status: Status | None = None):
    if since is not None and until is not None and since >= until:
        raise click.UsageError("--since must be before --until")
    return Selection(category=category, since=since, until=until, key=key, key_prefix=key_prefix,
                     error_type=error_type, collections=(collection,) if collection else None, status=status)


def _one(id_or_key: str, collection: str | None) -> tuple[str, dict]:
    """The dead letter with this id or key (in `collection`), or a clear error."""
    store = get_container().dead_letters
    matches = _store_call(lambda: store.lookup(id_or_key, [collection] if collection else DEAD_LETTER_COLLECTIONS))
    if not matches:
        where = f" in {collection}" if collection else ""
        raise click.ClickException(f"no dead letter has the id or message key {id_or_key!r}{where}")
    if len(matches) > 1:
        found = "; ".join(f"{name} {doc['_id']} ({doc.get('status')})" for name, doc in matches)
        raise click.ClickException(f"{id_or_key!r} matches {len(matches)} dead letters: {found}. "
                                   "Give the id, or --collection.")
    return matches[0]


def _described(name: str, doc: dict) -> str:
    return f"{name} {doc['_id']} ({doc.get('status')}, {doc.get('message_key')})"


@deadletters_group.command("discard")
@click.argument("id_or_key", required=False)
@click.option("--matching", is_flag=True, help="Discard every pending or failed dead letter the filters match.")
@click.option("--all", "everything", is_flag=True, help="With --matching and no filter: really all of them.")
@selection_options
@click.option("--status", type=click.Choice([Status.PENDING.value, Status.FAILED.value]), default=None,
              help="With --matching: only pending or only failed ones.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def discard_command(id_or_key: str | None, matching: bool, everything: bool, category, since, until, key,
                    key_prefix, error_type, collection, status, yes: bool) -> None:
    """Mark a pending or failed dead letter discarded (ID_OR_KEY), or every one that matches (--matching with
    filters): no restore will take them."""
    store = get_container().dead_letters
    if matching:
        if id_or_key is not None:
            raise click.UsageError("give either ID_OR_KEY or --matching with filters, not both")
        selection = _selection(category, since, until, key, key_prefix, error_type, collection,
                               Status(status) if status else None)
        if selection.is_empty and not everything:
            raise click.UsageError("--matching without a filter would discard every pending and failed dead "
                                   "letter; give filters, or add --all")
        from ..deadletters.bulk import DISCARDABLE

        count = _store_call(lambda: store.count(selection, DISCARDABLE))
        if not count:
            click.echo(f"no pending or failed dead letter matches ({selection.described()})")
            return
        if not yes:
            click.confirm(f"Discard {count} dead letter{'' if count == 1 else 's'} ({selection.described()})? "
                          "They will never be restored.", abort=True)
        done = _store_call(lambda: store.discard_matching(selection))
        click.echo(f"discarded {done.done}, skipped {done.skipped} (held by a restore right now)")
        return
    if id_or_key is None:
        raise click.UsageError("give ID_OR_KEY, or --matching with filters")
    name, doc = _one(id_or_key, collection)
    described = _described(name, doc)
    if doc.get("status") not in (Status.PENDING.value, Status.FAILED.value):
        raise click.ClickException(f"{described} is {doc.get('status')}; only pending or failed dead letters "
                                   "can be discarded")
    if not yes:
        click.confirm(f"Discard {described}? It will never be restored.", abort=True)
    token = new_claim_token()
    claimed = _store_call(lambda: store.claim(name, doc["_id"], token, statuses=(Status.PENDING, Status.FAILED)))
    if claimed is None:
        raise click.ClickException(f"{described} is being restored right now or has just changed; "
                                   "look at it again with `dailyfeed deadletters show`")
    _store_call(lambda: store.discard(name, doc["_id"], token))
    click.echo(f"discarded {described}")


@deadletters_group.command("retry")
@click.argument("id_or_key", required=False)
@click.option("--status", type=click.Choice([Status.FAILED.value]), default=None,
              help="failed: put every failed dead letter the filters match back to pending (re-queue).")
@selection_options
def retry_command(id_or_key: str | None, status: str | None, category, since, until, key, key_prefix, error_type,
                  collection) -> None:
    """Restore one dead letter now (ID_OR_KEY; a failed one is re-queued first), through the restore job of its
    collection; or, with --status failed, re-queue the failed ones that match for the restores to take."""
    store = get_container().dead_letters
    if status is not None:
        if id_or_key is not None:
            raise click.UsageError("give either ID_OR_KEY or --status failed with filters, not both")
        selection = _selection(category, since, until, key, key_prefix, error_type, collection)
        done = _store_call(lambda: store.requeue_matching(selection))
        click.echo(f"re-queued {done.done} failed dead letter{'' if done.done == 1 else 's'} to pending "
                   f"({selection.described()}), skipped {done.skipped} (held right now); "
                   "restore-publisher and restore-listener take them from here")
        return
    if id_or_key is None:
        raise click.UsageError("give ID_OR_KEY, or --status failed (with filters)")
    name, doc = _one(id_or_key, collection)
    described = _described(name, doc)
    if doc.get("status") == Status.FAILED.value:
        requeued = _store_call(lambda: store.requeue_matching(Selection(ids=(doc["_id"],), collections=(name,))))
        if not requeued.done:
            raise click.ClickException(f"{described} is held by a restore right now; try again shortly")
        click.echo(f"re-queued {described}")
    elif doc.get("status") != Status.PENDING.value:
        raise click.ClickException(f"{described} is {doc.get('status')}; only pending or failed dead letters "
                                   "can be retried")
    container = get_container()
    options = RestoreOptions(selection=Selection(ids=(doc["_id"],), collections=(name,)))
    job: RestoreJob = ListenerRestore(store, container.activity_service, options) \
        if name == KAFKA_LISTENER_DEAD_LETTERS else PublisherRestore(store, container.transports, options)
    summary = _store_call(lambda: job.run(report=_plain_line))
    if summary.total == 0:
        click.echo(f"skipped {described}: a restore holds it right now")
    click.echo(summary.line())
    if not summary.ok or summary.total == 0:
        click.get_current_context().exit(1)


@deadletters_group.command("purge")
@click.option("--completed-older-than", "days", type=click.IntRange(min=1), required=True, metavar="DAYS",
              help="Delete completed dead letters finished more than DAYS days ago, and claims that ended then.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
def purge_command(days: int, dry_run: bool) -> None:
    """Retention: delete completed dead letters and released claims older than DAYS days. Pending, failed and
    discarded dead letters are kept."""
    store = get_container().dead_letters
    cutoff = utcnow() - timedelta(days=days)
    result = _store_call(lambda: store.purge_completed(cutoff, dry_run=dry_run))
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {result.dead_letters} completed dead letter{'' if result.dead_letters == 1 else 's'} and "
               f"{result.claims} claim{'' if result.claims == 1 else 's'} older than {days} "
               f"day{'' if days == 1 else 's'} (before {_when(cutoff)}Z)")


@deadletters_group.command("stats")
def stats_command() -> None:
    """Counts by collection, status and category, and the age of the oldest pending dead letter."""
    stats = _store_call(lambda: get_container().dead_letters.stats())
    if not any(stats.total(name, s.value) for name in DEAD_LETTER_COLLECTIONS for s in Status):
        _hint_if_embedded()
    now = utcnow()
    for name in DEAD_LETTER_COLLECTIONS:
        by_status = stats.counts.get(name, {})
        oldest = stats.oldest_pending.get(name)
        age = f"; oldest pending {_age(now - oldest)} old ({_when(oldest)}Z)" if oldest else ""
        count = sum(stats.total(name, s) for s in by_status)
        click.echo(f"{name}: {count} dead letter{'' if count == 1 else 's'}{age}")
        for status in Status:
            if status.value not in by_status:
                continue
            parts = ", ".join(f"{category or 'unparsed'} {count}"
                              for category, count in by_status[status.value].items())
            click.echo(f"  {status.value:<9} {stats.total(name, status.value):>7}   {parts}")


def _when(at: datetime | None) -> str:
    return as_utc(at).strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def _age(delta: timedelta) -> str:
    return age_text(delta.total_seconds())


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return str(value)


def init_app(app: Flask) -> None:
    """Add the commands to the app's CLI (create_app calls this)."""
    app.cli.add_command(restore_publisher_command)
    app.cli.add_command(restore_listener_command)
    app.cli.add_command(deadletters_group)
