"""Bearer tokens: HS256 JWTs signed with `auth.jwt-secret`.

Three kinds, told apart by the `scope` claim (SPEC section 8a):
- member (`sub` = member id, no scope): acts as that member on the content and follow endpoints;
- service (`scope` = activity:record): the only one that may call the record endpoints (the feign transport uses
  one), so a member token can never write activities in someone else's name;
- admin (`scope` = admin): the dead-letter console and the admin API.
A scoped token never acts as a member, and a member token never acts as either of the others.
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
ADMIN_SCOPE = "admin"
SERVICE_SUBJECT = "dailyfeed-content"
MAX_TOKEN_CHARS = 4096


def issue_member_token(secret: str, member_id: int, ttl_seconds: int) -> str:
    now = utcnow()
    claims = {"sub": str(member_id), "iat": now, "exp": now + timedelta(seconds=ttl_seconds)}
    return jwt.encode(claims, secret, algorithm="HS256")


def issue_service_token(secret: str, ttl_seconds: int = 300, subject: str = SERVICE_SUBJECT) -> str:
    return _scoped_token(secret, subject, RECORD_SCOPE, ttl_seconds)


def issue_admin_token(secret: str, ttl_seconds: int, subject: str = "admin") -> str:
    return _scoped_token(secret, subject, ADMIN_SCOPE, ttl_seconds)


def _scoped_token(secret: str, subject: str, scope: str, ttl_seconds: int) -> str:
    now = utcnow()
    claims = {"sub": subject, "scope": scope, "iat": now, "exp": now + timedelta(seconds=ttl_seconds)}
    return jwt.encode(claims, secret, algorithm="HS256")


def _claims() -> dict:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token (Authorization: Bearer <JWT>)")
    return verify_token(token)


def verify_token(token: str) -> dict:
    """The claims of a token signed with auth.jwt-secret; Unauthenticated with the reason otherwise."""
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


def verify_admin_token(token: str) -> dict:
    """The claims of an admin token (the console's login); Unauthenticated or Forbidden otherwise."""
    claims = verify_token(token)
    if claims.get("scope") != ADMIN_SCOPE:
        raise Forbidden(f"the admin API needs a token with scope {ADMIN_SCOPE}")
    return claims


def member_required(view):
    """Verify the member token; the member id is then `g.member_id`."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        claims = _claims()
        if claims.get("scope") is not None:
            raise Forbidden(f"a token with scope {claims.get('scope')!r} cannot act as a member")
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


def scope_required(scope: str, what: str):
    """A view that only a token with `scope` may call; `what` names the action in the 403 message."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if _claims().get("scope") != scope:
                raise Forbidden(f"{what} needs a token with scope {scope}")
            return view(*args, **kwargs)

        return wrapper

    return decorate


#: Only the content side (a service token) may record activities through the HTTP endpoints.
service_required = scope_required(RECORD_SCOPE, "recording activities")
#: The dead-letter console and the admin API.
admin_required = scope_required(ADMIN_SCOPE, "the admin API")
