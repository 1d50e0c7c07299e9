"""`dailyfeed topics ensure | prune`: the date topics ({kafka.topic.prefix}{yyyyMMdd}) from the command line."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from ..extension import get_container


@click.group("topics", cls=AppGroup)
def topics_group() -> None:
    """Date topics ({kafka.topic.prefix}{yyyyMMdd}): create the coming ones, delete old ones."""


@topics_group.command("ensure")
def topics_ensure_command() -> None:
    """Create today's and tomorrow's date topics if missing (run it daily, e.g. from cron)."""
    from .topics import TopicAdmin, TopicAdminError

    try:
        outcome = TopicAdmin.from_settings(get_container().settings).ensure_upcoming()
    except TopicAdminError as exc:
        raise click.ClickException(str(exc)) from None
    for name, state in outcome.items():
        click.echo(f"{name}: {state}")


@topics_group.command("prune")
@click.option(
    "--keep-days",
    type=click.IntRange(min=0),
    default=None,
    help="keep the topics of the last N days (today - N is kept); default: kafka.topic.retention-ms",
)
@click.option("--dry-run", is_flag=True, help="only print what would be deleted")
def topics_prune_command(keep_days: int | None, dry_run: bool) -> None:
    """Delete the date topics older than --keep-days days and print each one."""
    from .topics import TopicAdmin, TopicAdminError, default_keep_days

    admin = TopicAdmin.from_settings(get_container().settings)
    keep_days = default_keep_days(admin.topics) if keep_days is None else keep_days
    try:
        deleted = admin.prune(keep_days, dry_run=dry_run)
    except TopicAdminError as exc:
        raise click.ClickException(str(exc)) from None
    for name in deleted:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {name}")
    if not deleted:
        click.echo(f"no date topic is older than {keep_days} days")


def init_app(app: Flask) -> None:
    app.cli.add_command(topics_group)
