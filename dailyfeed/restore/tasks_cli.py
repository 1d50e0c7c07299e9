"""`dailyfeed tasks start | list | show | cancel | resume`: the dead-letter tasks (tasks.py) from the command line.

`start` and `resume` wait for the task with a progress bar, running it here when no serving process has taken it
yet (so a task also runs where nothing serves, on the embedded store), or return at once with `--detach` and leave
it to the serving processes. Exit status: 0 when the task completed (or was detached), 1 when it failed or was
cancelled, 130 when the wait was interrupted (the task goes on, or resumes elsewhere when its lease runs out).
"""

from __future__ import annotations

import time
from typing import Any

import click
from flask.cli import AppGroup

from ..events import utcnow
from ..extension import get_container
from . import actions, tasks
from .deadletters_cli import store_call
from .options import actor_of, actor_options, selection_of, selection_options

EXIT_INTERRUPTED = 130

tasks_group = AppGroup(
    "tasks",
    help="Dead-letter tasks: replay, discard, re-queue or undo a discard of a selection "
    "in the background, at a rate, with progress and cancel.",
)


@tasks_group.command("start")
@click.argument("action", type=click.Choice(list(actions.ACTIONS)))
@selection_options
@click.option("--all", "everything", is_flag=True, help="No filter: really every dead letter.")
@click.option(
    "--mode",
    type=click.Choice(list(actions.ReplayMode.ALL)),
    default=actions.ReplayMode.REPUBLISH,
    show_default=True,
    help="replay: republish through the transports, or record here.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True, max=tasks.MAX_RATE),
    default=None,
    metavar="N",
    help="At most N dead letters a second (default: tasks.rate).",
)
@click.option("--detach", is_flag=True, help="Return at once; the serving processes run the task.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@actor_options
def start_command(
    action: str,
    category,
    since,
    until,
    key,
    key_prefix,
    error_type,
    collection,
    group,
    everything: bool,
    mode: str,
    rate: float | None,
    detach: bool,
    yes: bool,
    actor: str | None,
    reason: str | None,
) -> None:
    """Start a task of ACTION on the dead letters the filters match (after saying how many)."""
    container = get_container()
    selection = selection_of(category, since, until, key, key_prefix, error_type, collection, group=group)
    if selection.is_empty and not everything:
        raise click.UsageError("no filter would act on every dead letter; give filters, or add --all")
    count = store_call(lambda: actions.count(action, container, selection, mode=mode))
    if not count:
        click.echo(f"nothing to {action}: no dead letter matches ({selection.described()})")
        return
    if not yes:
        click.confirm(
            f"{action.capitalize()} {count} dead letter{'' if count == 1 else 's'} "
            f"({selection.described()}) as a task?",
            abort=True,
        )
    doc = store_call(
        lambda: tasks.start(
            container,
            action,
            selection,
            actor=actor_of(actor),
            via="cli",
            mode=mode if action == "replay" else None,
            rate=rate,
            reason=reason,
            expected=count,
        )
    )
    click.echo(f"task {doc['_id']} started: {action} {count} ({selection.described()})")
    _wait_unless_detached(doc["_id"], detach)


@tasks_group.command("list")
@click.option("--state", type=click.Choice([s.value for s in tasks.TaskState]), default=None)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
def list_command(state: str | None, limit: int) -> None:
    """Tasks, newest first."""
    found = store_call(
        lambda: tasks.task_store(get_container()).list(tasks.TaskState(state) if state else None, limit=limit)
    )
    if not found:
        click.echo("no tasks")
        return
    click.echo(f"{'ID':<24}  {'STATE':<9}  {'ACTION':<9}  {'MOVED':>11}  {'FAILED':>6}  {'BY':<12}  SELECTION")
    for doc in found:
        task = tasks.progress_of(doc)
        click.echo(
            f"{task['id']:<24}  {task['state']:<9}  {task['action']:<9}  "
            f"{task['moved']:>5} / {task['total']:<5}  {task['failed']:>6}  {task['actor'][:12]:<12}  "
            f"{task['selection']}"
        )


@tasks_group.command("show")
@click.argument("task_id")
def show_command(task_id: str) -> None:
    """A task's progress and state."""
    click.echo(_described(store_call(lambda: tasks.task_store(get_container()).get(task_id))))


@tasks_group.command("cancel")
@click.argument("task_id")
@actor_options
def cancel_command(task_id: str, actor: str | None, reason: str | None) -> None:
    """Cancel a running task: it stops after the chunk in hand; what moved stays moved."""
    doc = store_call(
        lambda: tasks.task_store(get_container()).cancel(task_id, actor=actor_of(actor), via="cli", reason=reason)
    )
    click.echo(_described(doc))


@tasks_group.command("resume")
@click.argument("task_id")
@click.option("--detach", is_flag=True, help="Return at once; the serving processes run the task.")
@actor_options
def resume_command(task_id: str, detach: bool, actor: str | None, reason: str | None) -> None:
    """Run a failed or cancelled task again, on what is left of its selection."""
    doc = store_call(
        lambda: tasks.task_store(get_container()).resume(task_id, actor=actor_of(actor), via="cli", reason=reason)
    )
    click.echo(f"task {doc['_id']} resumed")
    _wait_unless_detached(doc["_id"], detach)


def _wait_unless_detached(task_id: Any, detach: bool) -> None:
    if detach:
        click.echo(f"detached: follow it with `dailyfeed tasks show {task_id}`")
        return
    try:
        doc = store_call(lambda: _wait(task_id))
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: task {task_id} goes on in a serving process, or resumes when its lease runs out", err=True
        )
        click.get_current_context().exit(EXIT_INTERRUPTED)
    click.echo(_described(doc))
    if doc["state"] != tasks.TaskState.COMPLETED.value:
        click.get_current_context().exit(1)


def _wait(task_id: Any) -> dict[str, Any]:
    """Follow the task to its end with a progress bar; run it here whenever nobody else holds it."""
    container = get_container()
    store = tasks.task_store(container)
    runner = tasks.TaskRunner(container, store, owner=f"cli:{tasks.runner_name()}")
    doc = store.get(task_id)
    with click.progressbar(length=max(doc["total"], 1), label=f"{doc['action']} task", show_pos=True) as bar:
        shown = 0

        def show(current: dict[str, Any]) -> None:
            nonlocal shown
            bar.update(max(0, current["moved"] - shown))
            shown = max(shown, current["moved"])

        while doc["state"] == tasks.TaskState.RUNNING.value:
            lease = store.acquire(doc, owner=runner.owner)
            if lease is not None:
                runner.run(lease, on_progress=show)
            else:
                show(doc)
                time.sleep(0.5)
            doc = store.get(task_id)
        show(doc)
    return doc


def _described(doc: dict[str, Any]) -> str:
    task = tasks.progress_of(doc, utcnow())
    lines = [
        f"task {task['id']}: {task['action']} ({task['selection']}) by {task['actor']}, {task['state']}",
        f"  moved {task['moved']} of {task['total']}, failed {task['failed']}, skipped {task['skipped']}; "
        f"rate {task['ratePerSecond']}/s (limit {task['rateLimit']:g}/s)"
        + (f"; about {task['secondsLeft']} s left" if task["secondsLeft"] is not None else ""),
    ]
    if task["error"]:
        lines.append(f"  failed: {task['error']}")
    if task["reason"]:
        lines.append(f"  reason: {task['reason']}")
    return "\n".join(lines)
