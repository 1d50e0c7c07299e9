"""`dailyfeed listen`: the Kafka listener on its own process."""

from __future__ import annotations

import signal
import threading

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from ..extension import get_container


@click.command("listen")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    metavar="PORT",
    help="Serve Prometheus metrics (with the group's consumer lag) on this port (0: any free one).",
)
@with_appcontext
def listen_command(metrics_port: int | None) -> None:
    """Record member activities from the date topics until Ctrl-C or SIGTERM (the listener on its own)."""
    from .. import ops
    from .listener import ActivityListener

    dailyfeed = get_container()
    listener = ActivityListener.from_settings(dailyfeed.settings, dailyfeed.activity_service, dailyfeed.dead_letters)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    metrics_server = None
    if metrics_port is not None:
        app = current_app._get_current_object()
        ops.lag_monitor(app).refresh()  # before the listener starts: the first scrape shows what waits for it
        metrics_server = ops.serve_metrics(app, metrics_port)
        click.echo(f"metrics on http://{metrics_server.server_address[0]}:{metrics_server.server_port}/metrics")
    listener.start()
    click.echo(f"dailyfeed listening: {listener.describe}")
    while not stop.wait(0.5) and listener.running:
        pass
    died = not stop.is_set()
    listener.stop()
    if metrics_server is not None:
        metrics_server.shutdown()
    if died:
        raise click.ClickException("the listener ended unexpectedly (see the log)")
    click.echo("dailyfeed listener stopped")


def init_app(app: Flask) -> None:
    app.cli.add_command(listen_command)
