"""`dailyfeed outbox relay | stats`: the event publication registry from the command line (docs/outbox.md).

Every serving process relays in the background; the command is for a store no serving process is running on (after
an outage of all of them), a cron job, or a look before acting (`--dry-run`)."""

from __future__ import annotations

import signal
import threading
import time

import click
from flask import Flask
from flask.cli import AppGroup

from ..clistore import store_call
from ..deadletters.model import age_text
from ..events import utcnow
from ..extension import get_container
from .outbox import Outcome, RelaySummary

outbox_group = AppGroup("outbox", help="The events owed by content changes (the publication registry): relay, stats.")


@outbox_group.command("relay")
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="SECONDS",
    help="Run a pass every SECONDS until interrupted (Ctrl-C or SIGTERM).",
)
@click.option("--dry-run", is_flag=True, help="Only say what a pass would do: publish (change landed) or drop.")
def relay_command(watch: float | None, dry_run: bool) -> None:
    """Publish the events owed by changes whose writer did not settle them within outbox.grace-s (it died or
    stalled); drop what a dead writer began but never stored. One line per publication, naming its message key;
    exit 1 when some could be neither delivered nor kept (they stay owed)."""
    ctx = click.get_current_context()
    if dry_run and watch is not None:
        raise click.UsageError("--dry-run cannot be combined with --watch", ctx)
    container = get_container()
    if container.publications is None:
        raise click.ClickException("the publication registry is off (outbox.enabled = false)")
    relay = container.relay()
    if dry_run:
        summary = store_call(
            lambda: relay.preview(
                report=lambda key, outcome: click.echo(
                    f"would {'publish' if outcome is Outcome.DELIVERED else 'drop':<7} {key}"
                )
            )
        )
        click.echo(
            f"dry run, nothing changed: would publish {summary.counts[Outcome.DELIVERED]}, "
            f"drop {summary.counts[Outcome.DROPPED]}"
        )
        return
    total = RelaySummary()
    stop = threading.Event()
    previous = (
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        if threading.current_thread() is threading.main_thread()
        else None
    )
    try:
        while True:
            summary = store_call(lambda: relay.run_pass(report=_line))
            for outcome, count in summary.counts.items():
                total.counts[outcome] += count
            total.skipped += summary.skipped
            if summary.settled >= relay.batch and not stop.is_set():
                continue  # a full batch: more may be due
            if watch is None or stop.wait(watch):
                break
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if total.total == 0 and watch is None and str(container.settings["mongo.uri"]).startswith("mongomock://"):
        click.echo(
            "note: mongo.uri is the embedded store (mongomock://), which lives inside one process: this "
            "command cannot see another process's publications; set DAILYFEED_MONGO_URI",
            err=True,
        )
    click.echo(total.line())
    if total.counts[Outcome.LEFT]:
        ctx.exit(1)


@outbox_group.command("stats")
def stats_command() -> None:
    """How many events are owed and the age of the oldest."""
    container = get_container()
    if container.publications is None:
        raise click.ClickException("the publication registry is off (outbox.enabled = false)")
    stats = store_call(container.publications.stats)
    oldest = f"; oldest {age_text(stats.oldest_age_s(utcnow()))} old" if stats.oldest else ""
    click.echo(
        f"event_publications: {stats.outstanding} owed{oldest} (grace {container.settings['outbox.grace-s']:g} s)"
    )


def _line(key: str, outcome: Outcome) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {outcome.value:<13} {key}")


def init_app(app: Flask) -> None:
    app.cli.add_command(outbox_group)
