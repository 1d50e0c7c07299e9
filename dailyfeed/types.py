"""The value types every edge of dailyfeed shares (HTTP bodies, path and query parameters, token subjects, record
bodies, Kafka event values), as plain functions and as pydantic types built on them, so that one rule holds
everywhere:

- an id is 1 … 2^63-1 (the event schema carries Java longs); in text (paths, queries, token `sub`) it is spelt
  in ASCII digits without a sign, blanks or leading zeros, so `/api/posts/01` and `/api/posts/١` are not post 1;
  in JSON it is a JSON integer (not a boolean, a float or a string);
- text is made of Unicode scalar values (a lone surrogate such as `"\\ud800"` cannot be stored nor encoded);
- a timestamp lies in the years 1970 … 9999 once converted to UTC (outside, Python's datetimes overflow);
- a JSON document nests at most MAX_JSON_DEPTH levels (deeper ones exhaust the parser's recursion).

No Flask here: dailyfeed.events and dailyfeed.contract both build on this module.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

MAX_ID = 2**63 - 1
ID_TEXT = re.compile(r"[1-9][0-9]{0,18}")  # ASCII only (re's \d would match every script's digits)
ID_TEXT_PATTERN = f"^{ID_TEXT.pattern}$"
MIN_YEAR, MAX_YEAR = 1970, 9999
MAX_JSON_DEPTH = 32


# --- ids ---------------------------------------------------------------------------------------------------------


def id_from_text(raw: str) -> int | None:
    """The id spelt by `raw`, or None when it is not one."""
    if not isinstance(raw, str) or not ID_TEXT.fullmatch(raw):
        return None
    value = int(raw)
    return value if value <= MAX_ID else None


def _id_value(value: Any) -> int:
    """A JSON integer in 1 … 2^63-1 (pydantic's own int coercion would take True, 1.0 and "1")."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("id_type", "must be an integer")
    if not 1 <= value <= MAX_ID:
        raise PydanticCustomError("id_range", "must be a positive long (1 … {max})", {"max": MAX_ID})
    return value


def _id_text_value(value: Any) -> int:
    parsed = id_from_text(value)
    if parsed is None:
        raise PydanticCustomError(
            "id_text",
            "must be an integer id: ASCII digits, 1 … {max}, no sign, blanks or leading zeros",
            {"max": MAX_ID},
        )
    return parsed


_ID_SCHEMA = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_ID,
    "format": "int64",
    "description": "an id: in JSON an integer written without fraction or exponent (12, not 12.0); in "
    "text ASCII digits without sign or leading zeros",
}

#: An id in a JSON body.
Id = Annotated[int, BeforeValidator(_id_value), WithJsonSchema(_ID_SCHEMA)]
#: An id in text: a path segment, a query parameter, a token subject.
IdText = Annotated[int, BeforeValidator(_id_text_value), WithJsonSchema(_ID_SCHEMA)]


# --- text --------------------------------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def scalar_text(value: str) -> str:
    """`value` unchanged when it is made of Unicode scalar values; a validation error otherwise."""
    match = _SURROGATE.search(value)
    if match:
        # pydantic fills {name} in a message but knows no format spec: the code point is spelt here
        raise PydanticCustomError(
            "text_surrogate",
            "must be valid Unicode text (a lone surrogate U+{code} at character {at})",
            {"code": f"{ord(match.group()):04X}", "at": match.start()},
        )
    return value


# Blank means only these (ECMA-262's \s, spelt out so that Python and JSON Schema validators agree; Python's own
# \s and str.strip() also count U+001C-U+001F).
BLANKS = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NOT_BLANK_PATTERN = f"[^{BLANKS}]"
_NOT_BLANK = re.compile(NOT_BLANK_PATTERN)


def _not_blank(value: str) -> str:
    if not _NOT_BLANK.search(value):
        raise PydanticCustomError("text_blank", "must not be blank")
    return value


def _strict_str(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    return value


def text(max_length: int, *, blank: bool = True) -> Any:
    """A text type of at most `max_length` characters; `blank=False` refuses empty and whitespace-only text."""
    checks: list[Any] = [BeforeValidator(_strict_str), Field(max_length=max_length), AfterValidator(scalar_text)]
    if not blank:
        checks.append(AfterValidator(_not_blank))
        checks.append(
            WithJsonSchema({"type": "string", "minLength": 1, "maxLength": max_length, "pattern": NOT_BLANK_PATTERN})
        )
    return Annotated[(str, *checks)]


def count_from_text(raw: Any, max_digits: int = 18) -> int | None:
    """A count or page number spelt in text (a form field, a query): ASCII digits only (not `²` nor `١`), at most
    `max_digits`; None otherwise."""
    if not isinstance(raw, str) or not re.fullmatch(f"[0-9]{{1,{max_digits}}}", raw):
        return None
    return int(raw)


# --- timestamps --------------------------------------------------------------------------------------------------


class BadTimestamp(ValueError):
    pass


def parse_timestamp(value: Any) -> datetime:
    """ISO-8601 strings (ours) or Jackson arrays `[y, M, d, H, m, s, nanos]` (the original's LocalDateTime, taken
    as UTC); naive ISO strings are taken as UTC too. The result is UTC-aware and within MIN_YEAR … MAX_YEAR."""
    if isinstance(value, (list, tuple)):
        if not 3 <= len(value) <= 7 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise BadTimestamp(f"date array {value!r} is not [year, month, day, hour, minute, second, nanos]")
        parts = list(value) + [0] * (7 - len(value))
        try:
            parsed = datetime(*parts[:6], parts[6] // 1000, tzinfo=timezone.utc)
        except (ValueError, OverflowError) as exc:
            raise BadTimestamp(f"date array {value!r}: {exc}") from None
    elif isinstance(value, str):
        stripped = value.strip()
        if len(stripped) > 64 or not stripped.isascii():
            raise BadTimestamp(f"date {value[:80]!r} is not ISO-8601")
        if stripped.endswith(("Z", "z")):
            stripped = stripped[:-1] + "+00:00"
        # Python 3.11 accepts at most 6 fractional digits; Java writes 9.
        stripped = re.sub(r"(\.\d{6})\d+", r"\1", stripped)
        try:
            parsed = datetime.fromisoformat(stripped)
        except ValueError:
            raise BadTimestamp(f"date {value!r} is not ISO-8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
    else:
        raise BadTimestamp(f"date {value!r} is neither an ISO-8601 string nor a date array")
    try:
        utc = parsed.astimezone(timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise BadTimestamp(f"date {value!r} is outside the years {MIN_YEAR}-{MAX_YEAR} (UTC)")
    return utc


def _timestamp_value(value: Any) -> datetime:
    try:
        return parse_timestamp(value)
    except BadTimestamp as exc:
        raise PydanticCustomError("timestamp", "{problem}", {"problem": str(exc)}) from None


#: A point in time: ISO-8601 (offset or Z; naive means UTC) or the original's Jackson date array.
Timestamp = Annotated[
    datetime,
    BeforeValidator(_timestamp_value),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "string", "format": "date-time"},
                {
                    "type": "array",
                    "items": {"type": "integer"},
                    "minItems": 3,
                    "maxItems": 7,
                    "description": "Jackson LocalDateTime array [year, month, day, hour, minute, second, nanos], UTC",
                },
            ],
        }
    ),
]


# --- validation errors -------------------------------------------------------------------------------------------


def describe(error: ValidationError, what: str = "request body") -> str:
    """One sentence naming the first problem of a pydantic ValidationError: `postId must be an integer`,
    `content is required`, `title must be at most 200 characters (got 201)`. `what` names the whole input."""
    # A nullable field fails once per branch of its union; the "should be None" branch says nothing useful.
    errors = [e for e in error.errors() if e["type"] != "none_required"] or error.errors()
    first = errors[0]
    loc = [str(part) for part in first["loc"] if not _is_tag(part)]
    field = ".".join(loc) if loc else what
    kind = first["type"]
    if kind == "missing":
        message = f"{field} is required"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        message = f"{field} must be a JSON object"
    elif kind in ("string_too_long", "too_long") and isinstance(first["input"], str):
        message = f"{field} must be at most {first['ctx']['max_length']} characters (got {len(first['input'])})"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = f"{field} must be an integer, got {first['input']!r}"[:200]
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        message = f"{field} {first['msg'].replace('Input should be', 'must be')}"
    elif kind == "extra_forbidden":
        message = f"{field} is not a known field"
    else:
        message = f"{field} {first['msg']}"
    more = len({tuple(e["loc"][:1]) for e in errors}) - 1
    return message + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else "")


def _is_tag(part: Any) -> bool:
    """Union members and validator wrappers show up in an error's location as tags; fields never contain
    brackets or parentheses."""
    return isinstance(part, str) and any(c in part for c in "[](),") or part in ("none", "int", "str")


# --- JSON --------------------------------------------------------------------------------------------------------


class BadJson(ValueError):
    pass


def json_depth_exceeds(raw: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text `raw` opens more than `limit` nested arrays/objects (brackets inside strings do
    not count). Checked before parsing: json.loads recurses once per level and a deep document overflows it."""
    if raw.count("[") + raw.count("{") <= limit:  # cannot nest deeper than it opens: no need to tokenize
        return False
    depth = 0
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def load_json(raw: bytes | str) -> Any:
    """Parse JSON text, refusing documents nested deeper than MAX_JSON_DEPTH; BadJson says why."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadJson(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if json_depth_exceeds(raw):
        raise BadJson(f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadJson(str(exc)) from None
    except RecursionError:  # not reachable after the depth check; kept so no input can crash a caller
        raise BadJson(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
