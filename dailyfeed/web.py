"""HTTP helpers shared by the blueprints: the success envelope, the page models and the id path converter.
Request validation itself lives in dailyfeed.contract (the @operation decorator)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Generic, TypeVar

from flask import Response, jsonify
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError
from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

from .types import ID_TEXT, MAX_ID, id_from_text

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_PAGE = 100_000


#: The pages' Content-Security-Policy (the console, /docs): nothing inline, nothing from another host, no framing.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def secure_page(response: Response, csp: str = PAGE_CSP) -> Response:
    """The security headers every HTML page of the app carries: a strict CSP (a second fence behind escaping), no
    content sniffing, no referrer sent to links."""
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def success(data: Any, status: int = 200):
    return jsonify({"status": status, "result": "SUCCESS", "data": data}), status


def _query_int(value: Any) -> Any:
    if isinstance(value, str):
        if not re.fullmatch(r"-?[0-9]{1,40}", value):
            raise PydanticCustomError("query_int", "must be an integer, got {value}", {"value": repr(value)[:40]})
        return int(value)
    return value


def _between(low: int, high: int, message: str):
    def check(value: int) -> int:
        if not low <= value <= high:
            raise PydanticCustomError("query_range", message)
        return value

    return AfterValidator(check)


PageNumber = Annotated[
    int,
    BeforeValidator(_query_int),
    _between(0, MAX_PAGE, f"must be 0 or more and at most {MAX_PAGE}"),
    WithJsonSchema(
        {"type": "integer", "minimum": 0, "maximum": MAX_PAGE, "default": 0, "description": "page number, from 0"}
    ),
]
PageSize = Annotated[
    int,
    BeforeValidator(_query_int),
    _between(1, MAX_PAGE_SIZE, f"must be between 1 and {MAX_PAGE_SIZE}"),
    WithJsonSchema(
        {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_PAGE_SIZE,
            "default": DEFAULT_PAGE_SIZE,
            "description": "page size",
        }
    ),
]


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: PageNumber = 0
    size: PageSize = DEFAULT_PAGE_SIZE


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of results, newest or oldest first as the endpoint says."""

    model_config = ConfigDict(extra="forbid")

    content: list[T]
    page: int = Field(ge=0)
    size: int = Field(ge=1)
    hasNext: bool


def page_body(items: list, query: PageQuery) -> dict[str, Any]:
    """`items` holds up to size + 1 entries: the extra one only tells that there is a next page."""
    size = query.size
    return {"content": items[:size], "page": query.page, "size": size, "hasNext": len(items) > size}


def json_time(value: datetime | None) -> str | None:
    """A stored time as ISO-8601 UTC (the store keeps milliseconds; mongomock hands back naive UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class IdConverter(BaseConverter):
    """Path ids (types.IdText): ASCII digits without sign or leading zeros, 1 … 2^63-1. Anything else does not
    match the route, so `/api/posts/01`, `/api/posts/١` and `/api/posts/9223372036854775808` are 404s."""

    regex = ID_TEXT.pattern
    weight = 50

    def to_python(self, value: str) -> int:
        parsed = id_from_text(value)
        if parsed is None:  # 19 digits above 2^63-1: a 404 here (werkzeug's ValidationError would give a 405)
            raise NotFound(f"not found: {value} is not an id (1 … {MAX_ID})")
        return parsed

    def to_url(self, value: Any) -> str:
        return str(int(value))
