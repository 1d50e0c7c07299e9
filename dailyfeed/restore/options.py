"""The options the restore and dead-letter commands share: option types (a date, a category in any case, a
collection by its short name) and the filters that make a Selection."""

from __future__ import annotations

import getpass
import os
from datetime import datetime
from typing import Any, Callable

import click

from ..deadletters import SHORT_NAMES, Selection, Status, parse_when
from ..events import Category
from ..store import DEAD_LETTER_COLLECTIONS
from .jobs import RestoreOptions


class SinceType(click.ParamType):
    """An ISO date (midnight UTC) or date-time (UTC unless it carries an offset)."""

    name = "DATE"

    def convert(self, value: Any, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class CategoryChoice(click.Choice):
    """A category, any case (post, POST), shown and returned upper-case as stored."""

    def __init__(self):
        super().__init__([c.value for c in Category])

    def convert(self, value: Any, param, ctx) -> str:
        return super().convert(str(value).strip().upper(), param, ctx)


def collection_name(ctx, param, value: str | None) -> str | None:
    if value is None:
        return None
    return {short: name for name, short in SHORT_NAMES.items()}.get(value, value)


def non_empty(ctx, param, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty")
    return value


CATEGORY = CategoryChoice()
COLLECTION = click.Choice(list(SHORT_NAMES.values()) + list(DEAD_LETTER_COLLECTIONS))


def restore_options(command: Callable) -> Callable:
    options = [
        click.option(
            "--batch-size",
            type=click.IntRange(1, 10_000),
            default=50,
            show_default=True,
            help="Dead letters taken per batch.",
        ),
        click.option(
            "--limit",
            type=click.IntRange(min=1),
            default=None,
            help="Take at most this many dead letters (per pass with --watch).",
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            metavar="N",
            help="At most N dead letters per second.",
        ),
        click.option("--dry-run", is_flag=True, help="Print what would be done; change nothing, claim nothing."),
        click.option("--category", type=CATEGORY, help="Only dead letters of this category."),
        click.option(
            "--since",
            type=SinceType(),
            default=None,
            help="Only dead letters created at or after this ISO date or date-time (UTC by default).",
        ),
        click.option(
            "--key", callback=non_empty, default=None, help="Only the dead letter with this exact message key."
        ),
        click.option(
            "--watch",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            metavar="SECONDS",
            help="Run a pass every SECONDS until interrupted (Ctrl-C gives back what it holds).",
        ),
        click.option(
            "--metrics-port",
            type=click.IntRange(0, 65535),
            default=None,
            metavar="PORT",
            help="With --watch: serve Prometheus metrics on this port (0: any free one).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def restore_selection(
    batch_size: int,
    limit: int | None,
    rate: float | None,
    category: str | None,
    since: datetime | None,
    key: str | None,
) -> RestoreOptions:
    return RestoreOptions(
        batch_size=batch_size, limit=limit, rate=rate, selection=Selection(category=category, since=since, key=key)
    )


def selection_options(command: Callable) -> Callable:
    """The filters of `discard --matching` and `retry --status failed`: the restore jobs' (--category, --since,
    --key) and the console's (--until, --key-prefix, --error-type, --collection)."""
    options = [
        click.option("--category", type=CATEGORY, help="Only dead letters of this category."),
        click.option("--since", type=SinceType(), default=None, help="Only those created at or after this time."),
        click.option("--until", type=SinceType(), default=None, help="Only those created before this time."),
        click.option("--key", callback=non_empty, default=None, help="Only the one with this exact message key."),
        click.option("--key-prefix", callback=non_empty, default=None, help="Only those whose message key starts so."),
        click.option(
            "--error-type",
            callback=non_empty,
            default=None,
            help="Only those whose last error is of this type (TransportUnavailable, ...).",
        ),
        click.option("--collection", type=COLLECTION, callback=collection_name, help="Only this collection."),
        click.option(
            "--group",
            callback=non_empty,
            default=None,
            metavar="FINGERPRINT",
            help="Only the open ones of this failure group (`dailyfeed deadletters groups`).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def selection_of(
    category,
    since,
    until,
    key,
    key_prefix,
    error_type,
    collection,
    status: Status | None = None,
    group: str | None = None,
) -> Selection:
    if since is not None and until is not None and since >= until:
        raise click.UsageError("--since must be before --until")
    found = None
    if group is not None:
        from ..extension import get_container

        found = get_container().dead_letters.find_group(group.strip())
        if found is None:
            raise click.ClickException(
                f"no open dead letter is in the failure group {group} now (see `dailyfeed deadletters groups`)"
            )
        if collection is not None and collection != found.collection:
            raise click.UsageError(f"the failure group {group} is of {found.collection}, not of --collection")
    return Selection(
        category=category,
        since=since,
        until=until,
        key=key,
        key_prefix=key_prefix,
        error_type=error_type,
        status=status,
        collections=(found.collection,) if found else (collection,) if collection else None,
        group=tuple(found.to_list()) if found else None,
    )


def actor_options(command: Callable) -> Callable:
    """Who acts (the audit trail records it) and why: --as (default: the operating-system user), --reason."""
    options = [
        click.option(
            "--as",
            "actor",
            default=None,
            metavar="NAME",
            help="Who is acting, for the audit trail (default: the operating-system user).",
        ),
        click.option("--reason", default=None, metavar="TEXT", help="Why, for the audit trail."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def actor_of(name: str | None) -> str:
    if name is not None and name.strip():
        return name.strip()[:100]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        return f"uid-{os.getuid()}"


def hint_if_embedded() -> None:
    """Said when a command finds nothing: on the embedded store it cannot see another process's dead letters."""
    from ..extension import get_container

    if str(get_container().settings["mongo.uri"]).startswith("mongomock://"):
        click.echo(
            "note: mongo.uri is the embedded store (mongomock://), which lives inside one process: this "
            "command cannot see another process's dead letters; set DAILYFEED_MONGO_URI",
            err=True,
        )
