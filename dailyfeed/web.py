"""HTTP helpers shared by the blueprints: the success envelope and input parsing with clear 400s."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import jsonify, request
from werkzeug.routing import IntegerConverter

from .errors import InvalidInput

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_ID = 2**63 - 1


def success(data: Any, status: int = 200):
    return jsonify({"status": status, "result": "SUCCESS", "data": data}), status


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidInput("request body must be JSON (Content-Type: application/json)")
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    return body


def text_field(body: dict, name: str, *, max_length: int, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    if required and not value.strip():
        raise InvalidInput(f"{name} must not be blank")
    if len(value) > max_length:
        raise InvalidInput(f"{name} must be at most {max_length} characters (got {len(value)})")
    return value


def id_field(body: dict, name: str, *, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer")
    if not 1 <= value <= MAX_ID:
        raise InvalidInput(f"{name} must be a positive long")
    return value


def page_params() -> tuple[int, int]:
    page = _int_arg("page", 0)
    size = _int_arg("size", DEFAULT_PAGE_SIZE)
    if page < 0:
        raise InvalidInput("page must be 0 or more")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"size must be between 1 and {MAX_PAGE_SIZE}")
    if page > 100_000:
        raise InvalidInput("page must be at most 100000")
    return page, size


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {raw!r}") from None


def page_body(items: list, page: int, size: int) -> dict[str, Any]:
    """`items` holds up to size + 1 entries: the extra one only tells that there is a next page."""
    return {"content": items[:size], "page": page, "size": size, "hasNext": len(items) > size}


def json_time(value: datetime | None) -> str | None:
    """A stored time as ISO-8601 UTC (the store keeps milliseconds; mongomock hands back naive UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class IdConverter(IntegerConverter):
    """Path ids are positive longs (the event schema carries longs); anything else is a 404."""

    def __init__(self, url_map):
        super().__init__(url_map, min=1, max=MAX_ID)
