"""What every command that reads or writes the store does with a store failure: a message and exit status 1, not a
traceback."""

from __future__ import annotations

from typing import Any, Callable

import click
from pymongo.errors import PyMongoError


def store_call(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except PyMongoError as exc:
        raise click.ClickException(f"the store failed: {type(exc).__name__}: {exc}") from None
