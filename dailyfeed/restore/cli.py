"""The restore commands of SPEC section 8: `restore-publisher` and `restore-listener` (the dead-letter commands are
in deadletters_cli.py). They run inside the app (its store, transports and activity service); the work itself is in
jobs.py and the dailyfeed.deadletters package.

Exit status: 0 when nothing failed, 1 when a dead letter failed or the store could not be reached, 2 for bad
options (click's usage error), 130 when a run without --watch was interrupted.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any

import click
from flask import Flask
from flask.cli import with_appcontext
from pymongo.errors import PyMongoError

from ..deadletters import audit
from ..events import utcnow
from ..extension import get_container
from . import deadletters_cli, tasks_cli
from .jobs import ListenerRestore, Mode, Outcome, PublisherRestore, RecordResult, RestoreJob, Summary
from .options import actor_of, actor_options, hint_if_embedded, restore_options, restore_selection

DRY_RUN_VERBS = {Outcome.RESTORED: "restore", Outcome.SKIPPED: "skip", Outcome.FAILED: "fail"}
EXIT_INTERRUPTED = 130


@click.command("restore-publisher")
@click.option(
    "--mode",
    type=click.Choice([m.value for m in Mode]),
    default=Mode.REPUBLISH.value,
    show_default=True,
    help="republish: send again through the transport configured for the event's service; "
    "handoff: copy into kafka_listener_dead_letters for restore-listener.",
)
@restore_options
@actor_options
@with_appcontext
def restore_publisher_command(
    mode: str, batch_size, limit, rate, dry_run, category, since, key, watch, metrics_port, actor, reason
) -> None:
    """Restore pending publisher dead letters (kafka_publisher_dead_letters, feign_dead_letters), oldest first."""
    dailyfeed = get_container()
    job = PublisherRestore(
        dailyfeed.dead_letters,
        dailyfeed.transports,
        restore_selection(batch_size, limit, rate, category, since, key),
        mode=Mode(mode),
    )
    _run(
        job,
        dry_run=dry_run,
        watch=watch,
        label=f"restore-publisher ({mode})",
        metrics_port=metrics_port,
        who=(actor_of(actor), reason),
    )


@click.command("restore-listener")
@restore_options
@actor_options
@with_appcontext
def restore_listener_command(
    batch_size, limit, rate, dry_run, category, since, key, watch, metrics_port, actor, reason
) -> None:
    """Restore pending listener dead letters (kafka_listener_dead_letters) into member_activities, oldest first."""
    dailyfeed = get_container()
    job = ListenerRestore(
        dailyfeed.dead_letters,
        dailyfeed.activity_service,
        restore_selection(batch_size, limit, rate, category, since, key),
    )
    _run(
        job,
        dry_run=dry_run,
        watch=watch,
        label="restore-listener",
        metrics_port=metrics_port,
        who=(actor_of(actor), reason),
    )


def _run(
    job: RestoreJob,
    *,
    dry_run: bool,
    watch: float | None,
    label: str,
    metrics_port: int | None = None,
    who: tuple[str, str | None] = ("unknown", None),
) -> None:
    """One run of a restore job; a run that restored or failed anything is audited (who, the counts, how it
    ended), once at its end, also with --watch."""
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
                hint_if_embedded()
            click.echo(
                f"dry run, nothing changed: would restore {summary.restored}, skip {summary.skipped}, "
                f"fail {summary.failed}"
            )
            return
        total, interrupted = _passes(job, watch=watch, tty=tty, label=label)
    except PyMongoError as exc:
        raise click.ClickException(f"the store failed: {type(exc).__name__}: {exc}") from None
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
    if total.restored or total.failed:
        _audit_run(job, total, interrupted, who)
    if total.total == 0 and watch is None and not interrupted:
        click.echo("nothing to restore: no pending dead letter matches")
        hint_if_embedded()
    click.echo(total.line())
    if interrupted and watch is None:
        ctx.exit(EXIT_INTERRUPTED)
    if not total.ok:
        ctx.exit(1)


def _audit_run(job: RestoreJob, total: Summary, interrupted: bool, who: tuple[str, str | None]) -> None:
    actor, reason = who
    try:
        audit.record(
            get_container().db,
            actor=actor,
            action=f"restore-{job.name}",
            via="cli",
            reason=reason,
            outcome="interrupted" if interrupted else "done" if total.ok else "failed",
            selection=job.options.selection,
            result_count=total.restored,
            detail=total.line(),
        )
    except PyMongoError as exc:  # what was restored stays restored; only its record is missing
        click.echo(f"could not record this run in the audit trail: {type(exc).__name__}: {exc}", err=True)


def _serve_metrics(port: int | None) -> Any:
    if port is None:
        return None
    from flask import current_app

    from ..ops import serve_metrics

    server = serve_metrics(current_app._get_current_object(), port)
    click.echo(f"metrics on http://{server.server_address[0]}:{server.server_port}/metrics")
    return server


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
    click.echo(result.line())


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


def init_app(app: Flask) -> None:
    """Add the commands to the app's CLI (create_app calls this)."""
    app.cli.add_command(restore_publisher_command)
    app.cli.add_command(restore_listener_command)
    app.cli.add_command(deadletters_cli.deadletters_group)
    app.cli.add_command(tasks_cli.tasks_group)
