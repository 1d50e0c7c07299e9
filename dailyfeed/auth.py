"""Bearer tokens: HS256 JWTs signed with `auth.jwt-secret`.

Member tokens carry `sub` = member id. The feign transport calls the record endpoints with a service token
(`scope` = activity:record), so a member token can never write activities in someone else's name.
"""
from __future__ import annotations

from datetime import timedelta
from functools import wraps

import jwt
from flask import g, request

from .errors import Forbidden, Unauthenticated
from .events import utcnow
from .extension import get_container

RECORD_SCOPE = "activity:record"
MAX_TOKEN_CHARS = 4096


def issue_member_token(secret: str, member_id: int, ttl_seconds: int) -> str:
    now = utcnow()
    claims = {"sub": str(member_id), "iat": now, "exp": now + timedelta(seconds=ttl_seconds)}
    return jwt.encode(claims, secret, algorithm="HS256")


def issue_service_token(secret: str, ttl_seconds: int = 300) -> str:
    now = utcnow()
    claims = {"sub": "dailyfeed-content", "scope": RECORD_SCOPE, "iat": now,
              "exp": now + timedelta(seconds=ttl_seconds)}
    return jwt.encode(claims, secret, algorithm="HS256")


def _claims() -> dict:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token (Authorization: Bearer <JWT>)")
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated("bearer token is too long")
    secret = get_container().settings["auth.jwt-secret"]
    try:
        return jwt.decode(token.strip(), secret, algorithms=["HS256"], options={"require": ["exp", "sub"],
                                                                                 "verify_sub": False})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("bearer token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"bearer token is invalid: {exc}") from None


def member_required(view):
    """Verify the member token; the member id is then `g.member_id`."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        claims = _claims()
        if claims.get("scope") == RECORD_SCOPE:
            raise Forbidden("a service token cannot act as a member")
        sub = claims.get("sub")
        try:
            member_id = int(str(sub))
        except ValueError:
            raise Unauthenticated("bearer token subject is not a member id") from None
        if member_id < 1:
            raise Unauthenticated("bearer token subject is not a member id")
        g.member_id = member_id
        return view(*args, **kwargs)

    return wrapper


def service_required(view):
    """Only the content side (a service token) may record activities through the HTTP endpoints."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if _claims().get("scope") != RECORD_SCOPE:
            raise Forbidden(f"recording activities needs a service token with scope {RECORD_SCOPE}")
        return view(*args, **kwargs)

    return wrapper
