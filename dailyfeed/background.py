"""What a serving process runs beside answering requests: the dead-letter tasks and retention purge, the
publication relay (its first pass at start-up), the date topics at start-up, the Kafka listener and the automatic
redrive of publisher dead letters (dailyfeed.restore.redrive).

Only the process that serves starts it — `dailyfeed serve`, `flask run` (in the reloader's child, not in the
watcher process that only restarts it), or a WSGI entry point that asks for it with
`create_app(run_background=True)` — never a plain CLI command such as `dailyfeed token` or the restore jobs.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

log = logging.getLogger(__name__)


def serving_under_flask_run() -> bool:
    """True when the app is being built by `flask run` (or `dailyfeed run`) in the process that will serve it.

    With the reloader on, `flask run` loads the app in two processes: the watcher, which only restarts the
    other, and the child (WERKZEUG_RUN_MAIN=true), which serves. Without it, the one process serves."""
    import click
    from flask.cli import get_debug_flag, run_command
    from werkzeug.serving import is_running_from_reloader

    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.command is not run_command:
        return False
    reload = ctx.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return is_running_from_reloader() or not reload


def flask_run_base_url() -> str | None:
    """Under `flask run` (or `dailyfeed run`): the URL of the address it binds, from its own options (--host,
    --port, --cert, or FLASK_RUN_*), known before it serves; None under any other command."""
    import click
    from flask.cli import run_command

    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.command is not run_command:
        return None
    from .config import ConfigError
    from .hosts import bound_url

    port = ctx.params.get("port")
    if not port:
        raise ConfigError(
            "flask run --port 0 binds a port the app cannot know in advance: set activity.base-url "
            "(DAILYFEED_ACTIVITY_BASE_URL), or give a port"
        )
    scheme = "https" if ctx.params.get("cert") else "http"
    return bound_url(ctx.params.get("host") or "127.0.0.1", int(port), scheme)


def start_background(dailyfeed: Any) -> None:
    """Start the serving process's background work and register it in `dailyfeed.background`."""
    start_task_worker(dailyfeed)
    settings = dailyfeed.settings
    start_publication_work(dailyfeed)
    if settings["redrive.enabled"]:
        from .restore.redrive import Redriver, audit_passes

        redriver = Redriver.from_container(dailyfeed)
        redriver.on_pass.append(audit_passes(dailyfeed.db))
        redriver.start()
        dailyfeed.background.append(redriver)
    if not settings.kafka_in_use:
        return
    from .transport.topics import ensure_topics_at_startup

    ensure_topics_at_startup(settings)
    from .activity.listener import ActivityListener

    listener = ActivityListener.from_settings(settings, dailyfeed.activity_service, dailyfeed.dead_letters)
    listener.start()
    dailyfeed.background.append(listener)
    # `flask run` ends with Ctrl-C and no app teardown: stop between batches so what is stored is committed.
    atexit.register(listener.stop)


def start_task_worker(dailyfeed: Any) -> None:
    """Run the dead-letter tasks (replay, discard, re-queue of a selection) that the console, the API and the CLI
    start, and the retention purge of dead letters."""
    from .restore.actions import purge_by_retention
    from .restore.tasks import TaskWorker

    settings = dailyfeed.settings
    worker = TaskWorker(
        dailyfeed,
        poll_s=settings["tasks.poll-s"],
        upkeep=lambda: purge_by_retention(dailyfeed),
        upkeep_every_s=settings["deadletters.retention-interval-s"],
    )
    worker.start()
    dailyfeed.background.append(worker)
    atexit.register(worker.stop)


def start_publication_work(dailyfeed: Any) -> None:
    """The publication registry's part (docs/outbox.md): completions batched off the request path, and the relay
    (its first pass now, for what a dead process left owed). Nothing when outbox.enabled is false."""
    if dailyfeed.publications is None:
        return
    from .content.outbox import Completer, RelayWorker

    relay = RelayWorker(dailyfeed.relay(), dailyfeed.settings["outbox.interval-s"])
    for work in (Completer(dailyfeed.publications), relay):  # stopped in reverse: the relay, then the last batch
        work.start()
        dailyfeed.background.append(work)
        atexit.register(work.stop)
