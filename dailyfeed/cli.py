"""The `dailyfeed` command: a click group whose subcommands delegate to the modules.

Commands that need the app (store, transports) run inside it and are registered by their module's `init_app`
(activity/cli.py: listen; transport/cli.py: topics; restore/cli.py: restore-*, deadletters); `token` only needs
the settings.
"""

from __future__ import annotations

import signal
import threading

import click
from flask import Flask
from flask.cli import FlaskGroup

from .app import create_app
from .config import ConfigError, load_settings
from .extension import get_container


def _create_app():
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def main() -> None:
    """dailyfeed: posts, comments, likes and the member activity feed."""
    # Logging is set up by create_app from log.format and log.level (dailyfeed.telemetry.logs).


@main.command("token")
@click.option(
    "--member",
    "member_id",
    type=click.IntRange(min=1, max=2**63 - 1),
    default=None,
    help="a member token: acts as this member (JWT sub)",
)
@click.option(
    "--service",
    "service",
    is_flag=True,
    help="a service token (scope activity:record): the only one that may call the record endpoints",
)
@click.option("--admin", "admin", is_flag=True, help="an admin token (scope admin): the console and /api/admin")
@click.option(
    "--viewer",
    "viewer",
    is_flag=True,
    help="a viewer token (scope admin:read): every page and read of the console, no action",
)
@click.option(
    "--name",
    default=None,
    metavar="NAME",
    help="with --admin or --viewer: who holds it (the token's subject, recorded in the audit trail)",
)
@click.option("--ttl", type=click.IntRange(min=1), default=None, help="lifetime in seconds (default: auth.token-ttl-s)")
def token_command(
    member_id: int | None, service: bool, admin: bool, viewer: bool, name: str | None, ttl: int | None
) -> None:
    """Print a JWT signed with auth.jwt-secret: --member N, --service, --admin or --viewer (exactly one)."""
    from .tokens import MAX_NAME, issue_admin_token, issue_member_token, issue_service_token, issue_viewer_token

    if sum((member_id is not None, service, admin, viewer)) != 1:
        raise click.UsageError("give exactly one of --member N, --service, --admin, --viewer")
    if name is not None:
        name = name.strip()
        if not (admin or viewer):
            raise click.UsageError("--name goes with --admin or --viewer")
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise click.UsageError(f"--name must be 1 to {MAX_NAME} printable characters")
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    secret, ttl = settings["auth.jwt-secret"], ttl or settings["auth.token-ttl-s"]
    if service:
        click.echo(issue_service_token(secret, ttl))
    elif admin:
        click.echo(issue_admin_token(secret, ttl, name or "admin"))
    elif viewer:
        click.echo(issue_viewer_token(secret, ttl, name or "viewer"))
    else:
        click.echo(issue_member_token(secret, member_id, ttl))


@main.command("serve")
@click.option("--host", default=None, help="default: server.host")
@click.option("--port", type=int, default=None, help="default: server.port")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="default: server.threads")
def serve_command(host: str | None, port: int | None, threads: int | None) -> None:
    """Run the app under waitress (threads), with the activity module's own worker pool for feign calls."""
    from . import server

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

    running = server.start(
        factory, host=host, port=port, activity_port=settings["server.activity-port"], threads=threads
    )
    click.echo(f"dailyfeed serving on {running.url} (activity pool {running.activity_url}, {threads} threads)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    _shut_down(
        running,
        [get_container(app) for app in built],
        drain_s=settings["server.shutdown.drain-s"],
        timeout_s=settings["server.shutdown.timeout-s"],
    )


def _shut_down(running, containers: list, *, drain_s: float, timeout_s: float) -> None:
    """The graceful stop of SIGTERM: /readyz answers 503 first (for drain_s, so that a load balancer stops sending),
    the requests taken are answered, the listener commits what it stored, all within timeout_s; past it the process
    exits at once with status 1."""
    import os
    import sys
    import time

    deadline = time.monotonic() + timeout_s

    def too_late() -> None:
        sys.stderr.write(f"dailyfeed: not stopped within server.shutdown.timeout-s = {timeout_s:g} s; exiting now\n")
        sys.stderr.flush()
        os._exit(1)

    watchdog = threading.Timer(timeout_s, too_late)
    watchdog.daemon = True
    watchdog.start()
    for container in containers:
        container.shutting_down.set()
    click.echo(f"dailyfeed stopping: /readyz answers 503, new connections taken for {drain_s:g} s more")
    time.sleep(drain_s)
    if not running.drain(deadline):
        click.echo("dailyfeed: requests still in flight at the deadline", err=True)
    running.close()
    for container in containers:
        container.close()
    watchdog.cancel()
    click.echo("dailyfeed stopped")
