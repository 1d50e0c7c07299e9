"""`dailyfeed listen`: the Kafka listener on its own process."""
from __future__ import annotations

import signal
import threading

import click
from flask import Flask
from flask.cli import with_appcontext

from ..extension import get_container


@click.command("listen")
@with_appcontext
def listen_command() -> None:
    """Record member activities from the date topics until Ctrl-C or SIGTERM (the listener on its own)."""
    from .listener import ActivityListener

    dailyfeed = get_container()
    listener = ActivityListener.from_settings(dailyfeed.settings, dailyfeed.activity_service, dailyfeed.dead_letters)
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
    app.cli.add_command(listen_command)
