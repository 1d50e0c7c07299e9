"""The console's logins: a session per login, kept in the store, named by a random id that is all the cookie holds.

The admin's (or viewer's) token is checked once, at login, and never stored nor put in a cookie: a cookie that
leaks (a shared machine, a proxy log) gives a session that logout ends for good, not a bearer token that works
everywhere until it expires. The session keeps the token's subject (the name the audit trail records) and scope
(whether it may act): the pages read both from here, never from the request. A session ends when its holder logs
out or when the token it was opened with would have expired.
Each session is one document whose `_id` is the SHA-256 of the session id (a copy of the store holds no usable
session); opening, reading and ending it are single-document writes and `_id` reads.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import Any, Mapping

from pymongo.database import Database

from ..events import as_utc, utcnow
from ..store import CONSOLE_SESSIONS

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


class ConsoleSessions:
    def __init__(self, db: Database):
        self.collection = db[CONSOLE_SESSIONS]

    def open(self, subject: str, scope: str, expires_at: datetime) -> str:
        """A new session for the token of `subject` with `scope`, until `expires_at`: its id, for the cookie.
        Ended sessions are purged here."""
        now = utcnow()
        self.collection.delete_many({"expires_at": {"$lt": now}})
        session_id = secrets.token_urlsafe(32)
        self.collection.insert_one(
            {"_id": _hash(session_id), "subject": subject, "scope": scope, "created_at": now, "expires_at": expires_at}
        )
        return session_id

    def find(self, session_id: str | None) -> Mapping[str, Any] | None:
        """The live session with this id, or None (unknown, malformed, ended)."""
        if not session_id or not SESSION_ID.fullmatch(session_id):
            return None
        session = self.collection.find_one({"_id": _hash(session_id)})
        if session is None or as_utc(session["expires_at"]) <= utcnow():
            return None
        return session

    def end(self, session_id: str | None) -> None:
        if session_id and SESSION_ID.fullmatch(session_id):
            self.collection.delete_one({"_id": _hash(session_id)})


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
