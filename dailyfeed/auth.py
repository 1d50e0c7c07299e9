"""Checking bearer tokens on every request that needs one (tokens.py issues them).

A scoped token (service, admin) never acts as a member, and a member token never acts as either of the others.
"""

from __future__ import annotations

from functools import wraps

import jwt
from flask import g, request

from .errors import Forbidden, Unauthenticated
from .extension import get_container
from .tokens import ADMIN_SCOPE, RECORD_AUDIENCE, RECORD_SCOPE, VIEWER_SCOPE
from .types import id_from_text

MAX_TOKEN_CHARS = 4096


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
        # The audience is checked by the views that need one (scope_required), so that a scoped token on a
        # member endpoint is told it has the wrong scope rather than a confusing audience error.
        return jwt.decode(
            token.strip(),
            secret,
            algorithms=["HS256"],
            options={"require": ["exp", "sub"], "verify_sub": False, "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("bearer token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"bearer token is invalid: {exc}") from None


def verify_admin_token(token: str) -> dict:
    """The claims of an admin or viewer token (the console's login); Unauthenticated or Forbidden otherwise.
    Whether it may act is `may_act(claims)`."""
    claims = verify_token(token)
    if claims.get("scope") not in CONSOLE_SCOPES:
        raise Forbidden(f"the admin API needs a token with scope {ADMIN_SCOPE} (or {VIEWER_SCOPE} to read)")
    return claims


def may_act(claims: dict) -> bool:
    """An admin acts on dead letters; a viewer only reads."""
    return claims.get("scope") == ADMIN_SCOPE


def actor() -> str:
    """Who the request acts as, for the audit trail: the token's subject (an admin's name)."""
    return str(g.get("actor") or "unknown")


def member_required(view):
    """Verify the member token; the member id is then `g.member_id`."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        claims = _claims()
        if claims.get("scope") is not None:
            raise Forbidden(f"a token with scope {claims.get('scope')!r} cannot act as a member")
        member_id = id_from_text(claims.get("sub"))
        if member_id is None:
            raise Unauthenticated("bearer token subject is not a member id (ASCII digits, 1 … 2^63-1)")
        g.member_id = member_id
        return view(*args, **kwargs)

    return wrapper


member_required.scope = "member"  # read by dailyfeed.contract to document the security requirement


def scope_required(scope: str, what: str, *also: str, audience: str | None = None):
    """A view that only a token with `scope` (or one of `also`), and `audience` among its `aud` when given, may
    call; `what` names the action in the 403 message. The token's subject is then `g.actor`."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            claims = _claims()
            if claims.get("scope") not in (scope, *also):
                raise Forbidden(f"{what} needs a token with scope {scope}")
            if audience is not None and audience not in _audiences(claims):
                raise Forbidden(f"{what} needs a token for audience {audience} (dailyfeed token --service issues one)")
            g.actor = claims.get("sub")
            return view(*args, **kwargs)

        return wrapper

    decorate.scope = scope
    return decorate


def _audiences(claims: dict) -> list:
    aud = claims.get("aud")
    return aud if isinstance(aud, list) else [aud]


#: Only the content side (a service token, issued for the record endpoints) may record activities over HTTP.
service_required = scope_required(RECORD_SCOPE, "recording activities", audience=RECORD_AUDIENCE)
CONSOLE_SCOPES = (ADMIN_SCOPE, VIEWER_SCOPE)
#: The actions of the admin API (an admin, never a viewer).
admin_required = scope_required(ADMIN_SCOPE, "acting on dead letters")
#: The reads of the admin API: an admin or a viewer.
reader_required = scope_required(ADMIN_SCOPE, "the admin API", VIEWER_SCOPE)
