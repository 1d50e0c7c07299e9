"""The `dailyfeed` command: a click group whose subcommands delegate to the modules.

Commands that need the app (store, transports) run inside it; `token` only needs the settings.
"""
from __future__ import annotations

import logging
import signal
import threading

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from .config import ConfigError, load_settings


def _create_app():
    from . import create_app

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def main() -> None:
    """dailyfeed: posts, comments, likes and the member activity feed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command("token")
@click.option("--member", "member_id", type=click.IntRange(min=1), required=True, help="member id (JWT sub)")
@click.option("--ttl", type=click.IntRange(min=1), default=None, help="lifetime in seconds")
def token_command(member_id: int, ttl: int | None) -> None:
    """Print a development JWT for a member, signed with auth.jwt-secret."""
    from .auth import issue_member_token

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(issue_member_token(settings["auth.jwt-secret"], member_id, ttl or settings["auth.token-ttl-s"]))


@main.command("serve")
@click.option("--host", default=None, help="default: server.host")
@click.option("--port", type=int, default=None, help="default: server.port")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="default: server.threads")
def serve_command(host: str | None, port: int | None, threads: int | None) -> None:
    """Run the app under waitress (threads), with the activity module's own worker pool for feign calls."""
    from . import create_app, server

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    host = host or settings["server.host"]
    port = settings["server.port"] if port is None else port
    threads = threads or settings["server.threads"]

    built: list[Flask] = []

    def factory(activity_url: str) -> Flask:
        overrides = {} if settings["activity.base-url"] else {"activity.base-url": activity_url}
        built.append(create_app(overrides, run_background=True))
        return built[0]

    running = server.start(factory, host=host, port=port, activity_port=settings["server.activity-port"],
                           threads=threads)
    click.echo(f"dailyfeed serving on {running.url} (activity pool {running.activity_url}, {threads} threads)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    click.echo("dailyfeed stopping")
    running.close()
    for app in built:
        app.extensions["dailyfeed"].close()


# --- Kafka: the date topics and the standalone listener --------------------------------------------------------

@click.group("topics", cls=AppGroup)
def topics_group() -> None:
    """Date topics ({kafka.topic.prefix}{yyyyMMdd}): create the coming ones, delete old ones."""


@topics_group.command("ensure")
def topics_ensure_command() -> None:
    """Create today's and tomorrow's date topics if missing (run it daily, e.g. from cron)."""
    from .transport.topics import TopicAdmin, TopicAdminError

    try:
        outcome = TopicAdmin.from_settings(dailyfeed_of().settings).ensure_upcoming()
    except TopicAdminError as exc:
        raise click.ClickException(str(exc)) from None
    for name, state in outcome.items():
        click.echo(f"{name}: {state}")


@topics_group.command("prune")
@click.option("--keep-days", type=click.IntRange(min=0), default=None,
              help="keep the topics of the last N days (today - N is kept); default: kafka.topic.retention-ms")
@click.option("--dry-run", is_flag=True, help="only print what would be deleted")
def topics_prune_command(keep_days: int | None, dry_run: bool) -> None:
    """Delete the date topics older than --keep-days days and print each one."""
    from .transport.topics import TopicAdmin, TopicAdminError, default_keep_days

    admin = TopicAdmin.from_settings(dailyfeed_of().settings)
    keep_days = default_keep_days(admin.topics) if keep_days is None else keep_days
    try:
        deleted = admin.prune(keep_days, dry_run=dry_run)
    except TopicAdminError as exc:
        raise click.ClickException(str(exc)) from None
    for name in deleted:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {name}")
    if not deleted:
        click.echo(f"no date topic is older than {keep_days} days")


@click.command("listen")
@with_appcontext
def listen_command() -> None:
    """Record member activities from the date topics until Ctrl-C or SIGTERM (the listener on its own)."""
    from .activity.listener import ActivityListener

    dailyfeed = dailyfeed_of()
    try:
        listener = ActivityListener.from_settings(dailyfeed.settings, dailyfeed.activity_service,
                                                  dailyfeed.dead_letters)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    listener.start()
    click.echo(f"dailyfeed listening: {listener.describe}")
    while not stop.wait(0.5) and listener.running:
        pass
    died = not stop.is_set()
    listener.stop()
    if died:
        raise click.ClickException("the listener ended unexpectedly (see the log)")
    click.echo("dailyfeed listener stopped")


def init_app(app: Flask) -> None:
    """Register the app-bound commands (they also work as `flask --app dailyfeed <command>`)."""
    from .restore.cli import register as register_restore_commands

    register_restore_commands(app)  # restore-publisher, restore-listener, deadletters
    app.cli.add_command(topics_group)
    app.cli.add_command(listen_command)


def dailyfeed_of(app: Flask | None = None):
    return (app or current_app).extensions["dailyfeed"]
