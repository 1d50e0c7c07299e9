"""Failure groups: dead letters that failed the same way, told apart by a fingerprint of their failure.

The fingerprint is the origin (the collection, hence the transport, and the topic) plus the error type and the
error message, with what differs from one dead letter to the next stripped out of the topic and the message:
message keys, times, dates, ids, addresses and numbers become placeholders (`normalise`). "broker down publishing
member_activity:kafka_event:POST_CREATE###5###7###2026-12-05 09:03:53.769817000 to member-activity-20261205" and
the same failure of another post are one group.

A group is also a filter: `pattern` turns a normalised text back into an anchored regular expression that matches
exactly the texts that normalise to it, so a Selection can take a group's dead letters in the store (the
`error.message` and `topic` fields) without a field of its own on every dead letter. The expressions use only what
both Python's `re` and Go's RE2 (FerretDB) understand.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

from ..events import as_utc

#: what is stripped, in this order (a key holds a time and numbers: it goes first), and what stands for it
PLACEHOLDERS: tuple[tuple[str, str], ...] = (
    (
        "<key>",
        r"member_activity:kafka_event:[A-Z_]+###[^#\s]*###[^#\s]*###\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
        r"(?:\.\d+)?",
    ),
    ("<uuid>", r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    ("<time>", r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"),
    ("<date>", r"\d{4}-\d{2}-\d{2}"),
    ("<id>", r"\b[0-9a-fA-F]{24}\b"),
    ("<addr>", r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d+)?"),
    ("<n>", r"\d+(?:\.\d+)?"),
)
_COMPILED = tuple((name, re.compile(expression)) for name, expression in PLACEHOLDERS)
_TOKENS = re.compile("|".join(re.escape(name) for name, _ in PLACEHOLDERS) + r"| ")
_SPACE = re.compile(r"\s+")
MAX_TEXT = 2000  # an error message is kept to this many characters (model.error_info)
#: at most this many open dead letters per collection are read to find the groups
GROUP_SCAN_LIMIT = 20_000


def normalise(text: str | None) -> str:
    """The text with keys, times, dates, ids, addresses and numbers replaced by placeholders, spaces collapsed."""
    text = str(text or "")[:MAX_TEXT]
    for name, expression in _COMPILED:
        text = expression.sub(name, text)
    return _SPACE.sub(" ", text).strip()


def pattern(normalised: str) -> str:
    """An anchored regular expression matching the texts that normalise to `normalised`."""
    parts = ["^\\s*"]
    at = 0
    for token in _TOKENS.finditer(normalised):
        parts.append(re.escape(normalised[at : token.start()]))
        parts.append("\\s+" if token.group() == " " else f"(?:{dict(PLACEHOLDERS)[token.group()]})")
        at = token.end()
    parts.append(re.escape(normalised[at:]))
    parts.append("\\s*$")
    return "".join(parts)


@dataclass(frozen=True)
class Group:
    """What dead letters of a group share: their collection, topic (normalised; "" for none), error type and
    error message (normalised)."""

    collection: str
    topic: str
    error_type: str
    message: str

    @property
    def fingerprint(self) -> str:
        text = json.dumps([self.collection, self.topic, self.error_type, self.message])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def query(self) -> dict[str, Any]:
        """The filter of this group's dead letters (in its collection)."""
        return {
            "error.type": self.error_type,
            "error.message": {"$regex": pattern(self.message)},
            "topic": {"$regex": pattern(self.topic)} if self.topic else None,
        }

    def to_list(self) -> list[str]:
        return [self.collection, self.topic, self.error_type, self.message]


def group_of(collection: str, doc: Mapping[str, Any]) -> Group:
    error = doc.get("error") or {}
    topic = doc.get("topic")
    return Group(
        collection,
        normalise(topic) if topic else "",
        str(error.get("type") or "unknown"),
        normalise(error.get("message")),
    )


@dataclass
class GroupSummary:
    group: Group
    count: int
    first_seen: datetime
    last_seen: datetime
    example: Mapping[str, Any]  # the newest dead letter of the group, as read
    statuses: dict[str, int]


def summarise(found: Iterable[tuple[str, Mapping[str, Any]]]) -> list[GroupSummary]:
    """Groups of (collection, dead letter) pairs, most dead letters first; first seen is the oldest creation,
    last seen the newest attempt."""
    groups: dict[Group, GroupSummary] = {}
    for collection, doc in found:
        group = group_of(collection, doc)
        created = as_utc(doc["created_at"])
        seen = as_utc(doc.get("last_attempt_at") or doc["created_at"])
        summary = groups.get(group)
        if summary is None:
            groups[group] = GroupSummary(group, 1, created, seen, doc, {doc.get("status"): 1})
            continue
        summary.count += 1
        summary.first_seen = min(summary.first_seen, created)
        if seen >= summary.last_seen:
            summary.last_seen, summary.example = seen, doc
        summary.statuses[doc.get("status")] = summary.statuses.get(doc.get("status"), 0) + 1
    return sorted(groups.values(), key=lambda s: (-s.count, s.group.fingerprint))
