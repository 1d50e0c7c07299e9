"""Process logging: `log.format` = text (the default, for people) or json (one JSON object a line, for machines),
at `log.level`.

A JSON line has `time` (ISO-8601 UTC), `level`, `logger` and `message`, the traceback as `exc_info` when there is
one, and whatever a call passes in `extra`: the write and delivery paths pass `message_key`, `topic`,
`partition` and `offset` where they know them. `trace_id` is added from the event's trace or from the request
being served (dailyfeed.telemetry.tracing). The formatting is python-json-logger's.

A text line is one record too: control characters in it (a newline in a remote service's error message) are
escaped as JSON escapes them, and a traceback's lines are indented, so that no logged value can start a line that
looks like a record of its own.
"""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

from ..config import LOG_FORMATS as FORMATS
from . import tracing

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_dailyfeed_handler"
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_WERKZEUG_STYLE = re.compile("\x1b\\[[0-9;]*m")  # the colours `flask run` gives its request lines


def escape_controls(text: str) -> str:
    """`text` with every control character (and the Unicode line and paragraph separators) escaped: \\n, \\u001b."""
    return _CONTROL.sub(lambda m: _ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), text)


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT, a record a line: the line escaped; a traceback below it indented, its own text escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        if record.name == "werkzeug":  # its own colours, not a client's text: dropped rather than shown escaped
            text = _WERKZEUG_STYLE.sub("", text)
        return escape_controls(text)

    def formatException(self, ei) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("    " + escape_controls(line) for line in text.splitlines())


class TraceIdFilter(logging.Filter):
    """Adds `trace_id` of the request being served to a record that does not name one already."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is None:
            trace_id = tracing.trace_id_of(tracing.current())
            if trace_id is not None:
                record.trace_id = trace_id
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        json_ensure_ascii=False,
    )


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return json_formatter()
    if fmt == "text":
        return TextFormatter(TEXT_FORMAT)
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Log to stderr in `fmt` at `level`. Leaves a process alone that configured logging itself (a root logger
    with handlers that are not ours, e.g. under pytest or an embedding WSGI server); calling it again only
    changes the format and level of our handler."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, _MARK, False)]
    if root.handlers and not ours:
        return
    if ours:
        handler = ours[0]
    else:
        handler = logging.StreamHandler(sys.stderr)
        setattr(handler, _MARK, True)
        handler.addFilter(TraceIdFilter())
        root.addHandler(handler)
    handler.setFormatter(formatter(fmt))
    root.setLevel(level)
