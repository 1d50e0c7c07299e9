"""Issuing bearer tokens: HS256 JWTs signed with `auth.jwt-secret` (checking them is auth.py's job).

Three kinds, told apart by the `scope` claim (SPEC section 8a):
- member (`sub` = member id, no scope): acts as that member on the content and follow endpoints;
- service (`scope` = activity:record, `aud` = dailyfeed-activity): the only one that may call the record endpoints
  (the feign transport uses one), so a member token can never write activities in someone else's name; the
  audience names the record endpoints as the one place such a token is for, and they refuse one without it;
- admin (`scope` = admin): the dead-letter console and the admin API; `sub` is the admin's name
  (`--name alice`), which the audit trail records;
- viewer (`scope` = admin:read): every page and read of the console and the admin API, no action.
"""

from __future__ import annotations

from datetime import timedelta

import jwt

from .events import utcnow

RECORD_SCOPE = "activity:record"
RECORD_AUDIENCE = "dailyfeed-activity"  # the `aud` of service tokens: the activity module's record endpoints
ADMIN_SCOPE = "admin"
VIEWER_SCOPE = "admin:read"
MAX_NAME = 64
SERVICE_SUBJECT = "dailyfeed-content"


def issue_member_token(secret: str, member_id: int, ttl_seconds: int) -> str:
    now = utcnow()
    claims = {"sub": str(member_id), "iat": now, "exp": now + timedelta(seconds=ttl_seconds)}
    return jwt.encode(claims, secret, algorithm="HS256")


def issue_service_token(secret: str, ttl_seconds: int = 300, subject: str = SERVICE_SUBJECT) -> str:
    return _scoped_token(secret, subject, RECORD_SCOPE, ttl_seconds, audience=RECORD_AUDIENCE)


def issue_admin_token(secret: str, ttl_seconds: int, subject: str = "admin") -> str:
    return _scoped_token(secret, subject, ADMIN_SCOPE, ttl_seconds)


def issue_viewer_token(secret: str, ttl_seconds: int, subject: str = "viewer") -> str:
    return _scoped_token(secret, subject, VIEWER_SCOPE, ttl_seconds)


def _scoped_token(secret: str, subject: str, scope: str, ttl_seconds: int, audience: str | None = None) -> str:
    now = utcnow()
    claims = {"sub": subject, "scope": scope, "iat": now, "exp": now + timedelta(seconds=ttl_seconds)}
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
