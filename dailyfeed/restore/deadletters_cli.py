"""`dailyfeed deadletters list | show | stats | discard | retry | purge`: looking at dead letters and repairing
them. The repairs go through dailyfeed.restore.actions, as the console's do."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Callable

import click
from flask.cli import AppGroup

from .. import clistore
from ..deadletters import SHORT_NAMES, Selection, Status, age_text
from ..errors import DailyfeedError
from ..events import as_utc, utcnow
from ..extension import get_container
from ..store import DEAD_LETTER_COLLECTIONS
from . import actions
from .options import (
    CATEGORY,
    COLLECTION,
    actor_of,
    actor_options,
    collection_name,
    hint_if_embedded,
    selection_of,
    selection_options,
)

deadletters_group = AppGroup(
    "deadletters", help="Look at and repair dead letters: list, show, stats, groups, retry, discard, undiscard, purge."
)


@deadletters_group.command("list")
@click.option("--status", type=click.Choice([s.value for s in Status] + ["all"]), default="all", show_default=True)
@click.option("--category", type=CATEGORY, help="Only this category.")
@click.option("--collection", type=COLLECTION, callback=collection_name, help="Only this collection.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def list_command(status: str, category: str | None, collection: str | None, limit: int) -> None:
    """List dead letters, oldest first."""
    store = get_container().dead_letters
    selection = Selection(
        status=None if status == "all" else Status(status),
        category=category,
        collections=(collection,) if collection else None,
    )
    found, total = store_call(lambda: store.list_dead_letters(selection, limit=limit))
    if not found:
        click.echo("no dead letters match")
        if not store_call(lambda: store.list_dead_letters(Selection(), limit=1))[0]:
            hint_if_embedded()
        return
    click.echo(
        f"{'ID':<24}  {'COLLECTION':<15}  {'STATUS':<9}  {'CATEGORY':<12}  {'TRIES':>5}  "
        f"{'CREATED (UTC)':<19}  KEY / ERROR"
    )
    for name, doc in found:
        error = (doc.get("error") or {}).get("message", "")
        click.echo(
            f"{str(doc['_id']):<24}  {SHORT_NAMES.get(name, name):<15}  {doc.get('status', '?'):<9}  "
            f"{doc.get('category') or '-':<12}  {doc.get('attempts', 0):>5}  {_when(doc.get('created_at')):<19}"
            f"  {doc.get('message_key')}" + (f"  ({_clip(error, 80)})" if error else "")
        )
    if total > len(found):
        click.echo(f"showing {len(found)} of {total}; use --limit to see more")


@deadletters_group.command("show")
@click.argument("id_or_key")
def show_command(id_or_key: str) -> None:
    """Show every dead letter with this id or message key, as stored."""
    store = get_container().dead_letters
    matches = store_call(lambda: store.lookup(id_or_key))
    if not matches:
        raise click.ClickException(f"no dead letter has the id or message key {id_or_key!r}")
    for name, doc in matches:
        click.echo(f"# {name}")
        click.echo(json.dumps(doc, indent=2, default=_json_value, ensure_ascii=False))


def _one(id_or_key: str, collection: str | None) -> tuple[str, dict]:
    """The dead letter with this id or key (in `collection`), or a clear error."""
    store = get_container().dead_letters
    matches = store_call(lambda: store.lookup(id_or_key, [collection] if collection else DEAD_LETTER_COLLECTIONS))
    if not matches:
        where = f" in {collection}" if collection else ""
        raise click.ClickException(f"no dead letter has the id or message key {id_or_key!r}{where}")
    if len(matches) > 1:
        found = "; ".join(f"{name} {doc['_id']} ({doc.get('status')})" for name, doc in matches)
        raise click.ClickException(
            f"{id_or_key!r} matches {len(matches)} dead letters: {found}. Give the id, or --collection."
        )
    return matches[0]


def _described(name: str, doc: dict) -> str:
    return f"{name} {doc['_id']} ({doc.get('status')}, {doc.get('message_key')})"


@deadletters_group.command("discard")
@click.argument("id_or_key", required=False)
@click.option("--matching", is_flag=True, help="Discard every pending or failed dead letter the filters match.")
@click.option("--all", "everything", is_flag=True, help="With --matching and no filter: really all of them.")
@selection_options
@click.option(
    "--status",
    type=click.Choice([Status.PENDING.value, Status.FAILED.value]),
    default=None,
    help="With --matching: only pending or only failed ones.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@actor_options
def discard_command(
    id_or_key: str | None,
    matching: bool,
    everything: bool,
    category,
    since,
    until,
    key,
    key_prefix,
    error_type,
    collection,
    group,
    status,
    yes: bool,
    actor: str | None,
    reason: str | None,
) -> None:
    """Mark a pending or failed dead letter discarded (ID_OR_KEY), or every one that matches (--matching with
    filters): no restore will take them (`undiscard` undoes it while they are kept)."""
    container = get_container()
    if matching:
        if id_or_key is not None:
            raise click.UsageError("give either ID_OR_KEY or --matching with filters, not both")
        selection = selection_of(
            category, since, until, key, key_prefix, error_type, collection, Status(status) if status else None, group
        )
        if selection.is_empty and not everything:
            raise click.UsageError(
                "--matching without a filter would discard every pending and failed dead "
                "letter; give filters, or add --all"
            )
        count = store_call(lambda: actions.discard(container, selection, dry_run=True, expected=None)).matching
        if not count:
            click.echo(f"no pending or failed dead letter matches ({selection.described()})")
            return
        if not yes:
            click.confirm(
                f"Discard {count} dead letter{'' if count == 1 else 's'} ({selection.described()})? "
                "They will never be restored.",
                abort=True,
            )
        done = store_call(
            lambda: actions.perform(
                "discard", container, selection, actor=actor_of(actor), via="cli", reason=reason, expected=count
            )
        )
        click.echo(
            f"discarded {done.counts['discarded']}, skipped {done.counts['skipped']} (held by a restore right now)"
        )
        return
    if id_or_key is None:
        raise click.UsageError("give ID_OR_KEY, or --matching with filters")
    name, doc = _one(id_or_key, collection)
    described = _described(name, doc)
    if doc.get("status") not in (Status.PENDING.value, Status.FAILED.value):
        raise click.ClickException(
            f"{described} is {doc.get('status')}; only pending or failed dead letters can be discarded"
        )
    if not yes:
        click.confirm(f"Discard {described}? It will never be restored.", abort=True)
    done = store_call(
        lambda: actions.perform(
            "discard", container, _just(name, doc), actor=actor_of(actor), via="cli", reason=reason, expected=1
        )
    ).done
    if not done:
        raise click.ClickException(
            f"{described} is being restored right now or has just changed; "
            "look at it again with `dailyfeed deadletters show`"
        )
    click.echo(f"discarded {described}")


@deadletters_group.command("undiscard")
@click.argument("id_or_key")
@click.option("--collection", type=COLLECTION, callback=collection_name, help="Only this collection.")
@actor_options
def undiscard_command(id_or_key: str, collection: str | None, actor: str | None, reason: str | None) -> None:
    """Undo a discard: the discarded dead letter ID_OR_KEY goes back to pending (while it is kept)."""
    name, doc = _one(id_or_key, collection)
    described = _described(name, doc)
    if doc.get("status") != Status.DISCARDED.value:
        raise click.ClickException(f"{described} is {doc.get('status')}; only a discarded one can be undone")
    if not store_call(
        lambda: actions.perform(
            "undiscard", get_container(), _just(name, doc), actor=actor_of(actor), via="cli", reason=reason
        )
    ).done:
        raise click.ClickException(f"{described} has just changed; look at it again with `dailyfeed deadletters show`")
    click.echo(f"back to pending: {described}")


@deadletters_group.command("retry")
@click.argument("id_or_key", required=False)
@click.option(
    "--status",
    type=click.Choice([Status.FAILED.value]),
    default=None,
    help="failed: put every failed dead letter the filters match back to pending (re-queue).",
)
@selection_options
@actor_options
def retry_command(
    id_or_key: str | None,
    status: str | None,
    category,
    since,
    until,
    key,
    key_prefix,
    error_type,
    collection,
    group,
    actor: str | None,
    reason: str | None,
) -> None:
    """Restore one dead letter now (ID_OR_KEY; a failed one is re-queued first), through the restore job of its
    collection; or, with --status failed, re-queue the failed ones that match for the restores to take."""
    container = get_container()
    who = {"actor": actor_of(actor), "via": "cli", "reason": reason}
    if status is not None:
        if id_or_key is not None:
            raise click.UsageError("give either ID_OR_KEY or --status failed with filters, not both")
        selection = selection_of(category, since, until, key, key_prefix, error_type, collection, group=group)
        done = store_call(lambda: actions.perform("requeue", container, selection, **who)).counts
        click.echo(
            f"re-queued {done['requeued']} failed dead letter{'' if done['requeued'] == 1 else 's'} to "
            f"pending ({selection.described()}), skipped {done['skipped']} (held right now); "
            "restore-publisher and restore-listener take them from here"
        )
        return
    if id_or_key is None:
        raise click.UsageError("give ID_OR_KEY, or --status failed (with filters)")
    name, doc = _one(id_or_key, collection)
    described = _described(name, doc)
    if doc.get("status") == Status.FAILED.value:
        if not store_call(lambda: actions.perform("requeue", container, _just(name, doc), **who)).done:
            raise click.ClickException(f"{described} is held by a restore right now; try again shortly")
        click.echo(f"re-queued {described}")
    elif doc.get("status") != Status.PENDING.value:
        raise click.ClickException(
            f"{described} is {doc.get('status')}; only pending or failed dead letters can be retried"
        )
    answer = store_call(
        lambda: actions.perform(
            "replay", container, _just(name, doc), **who, report=lambda result: click.echo(result.line())
        )
    )
    if answer.matching == 0:
        click.echo(f"skipped {described}: a restore holds it right now")
    counts = answer.counts
    click.echo(f"restored {counts['restored']}, skipped {counts['skipped']}, failed {counts['failed']}")
    if counts["failed"] or answer.matching == 0:
        click.get_current_context().exit(1)


def _just(name: str, doc: dict) -> Selection:
    """The selection of one dead letter."""
    return Selection(ids=(doc["_id"],), collections=(name,))


@deadletters_group.command("purge")
@click.option(
    "--completed-older-than",
    "days",
    type=click.IntRange(min=1),
    required=True,
    metavar="DAYS",
    help="Delete completed dead letters finished more than DAYS days ago, and claims that ended then.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@actor_options
def purge_command(days: int, dry_run: bool, actor: str | None, reason: str | None) -> None:
    """Retention: delete completed dead letters and released claims older than DAYS days. Pending, failed and
    discarded dead letters are kept (the serving process purges discarded ones too: deadletters.retention-days)."""
    cutoff = utcnow() - timedelta(days=days)
    result = store_call(
        lambda: actions.purge(get_container(), cutoff, actor=actor_of(actor), via="cli", dry_run=dry_run, reason=reason)
    )
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {result.dead_letters} completed dead letter{'' if result.dead_letters == 1 else 's'} and "
        f"{result.claims} claim{'' if result.claims == 1 else 's'} older than {days} "
        f"day{'' if days == 1 else 's'} (before {_when(cutoff)}Z)"
    )


@deadletters_group.command("groups")
@click.option("--collection", type=COLLECTION, callback=collection_name, help="Only this collection.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def groups_command(collection: str | None, limit: int) -> None:
    """Open (pending or failed) dead letters by failure group: the error type and message with ids, numbers, keys
    and times stripped, and the origin. Act on one with --group FINGERPRINT (discard --matching, retry --status
    failed, `dailyfeed tasks start`)."""
    store = get_container().dead_letters
    found, truncated = store_call(
        lambda: store.failure_groups(Selection(collections=(collection,) if collection else None))
    )
    if not found:
        click.echo("no open dead letters")
        return
    click.echo(f"{'GROUP':<16}  {'COUNT':>6}  {'COLLECTION':<15}  {'FIRST SEEN':<19}  {'LAST SEEN':<19}  ERROR")
    for summary in found[:limit]:
        group = summary.group
        click.echo(
            f"{group.fingerprint:<16}  {summary.count:>6}  {SHORT_NAMES[group.collection]:<15}  "
            f"{_when(summary.first_seen):<19}  {_when(summary.last_seen):<19}  "
            f"{group.error_type}: {_clip(group.message, 100)}"
        )
    if len(found) > limit:
        click.echo(f"showing {limit} of {len(found)} groups; use --limit to see more")
    if truncated:
        click.echo("counted from the newest part only (too many to scan)", err=True)


@deadletters_group.command("stats")
def stats_command() -> None:
    """Counts by collection, status and category, and the age of the oldest pending dead letter."""
    stats = store_call(lambda: get_container().dead_letters.stats())
    if not any(stats.total(name, s.value) for name in DEAD_LETTER_COLLECTIONS for s in Status):
        hint_if_embedded()
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
            parts = ", ".join(
                f"{category or 'unparsed'} {count}" for category, count in by_status[status.value].items()
            )
            click.echo(f"  {status.value:<9} {stats.total(name, status.value):>7}   {parts}")


def store_call(call: Callable[[], Any]) -> Any:
    """clistore.store_call (a store failure is a message and exit 1), and an action's refusal too."""
    try:
        return clistore.store_call(call)
    except DailyfeedError as exc:  # refused by the action's rules (a count that changed, a bad filter)
        raise click.ClickException(exc.message) from None


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
