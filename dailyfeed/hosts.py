"""The app's own address, and the Host headers it answers.

The feign transport sends record calls, with a service token, to the app's own address when activity.base-url is
empty. That address comes from configuration or from where the process is bound (`dailyfeed serve`, `flask run`),
never from a request: a client's `Host` header must not decide where the app connects nor who gets its token.
Requests whose Host is not one of server.trusted-hosts are refused with 400 before any view runs.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .config import Settings

#: A Host header: a name or IPv4 address, or an IPv6 address in brackets, and an optional port.
_HOST_HEADER = re.compile(
    r"(?P<name>[a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?", re.IGNORECASE | re.ASCII
)
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}  # a wildcard bind is reached on loopback


def bound_url(host: str, port: int, scheme: str = "http") -> str:
    """The URL at which a server bound to `host`:`port` reaches itself."""
    host = _ANY_ADDRESS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def own_base_url(settings: Settings) -> str:
    """Where the record endpoints are: activity.base-url, else the configured server.host and server.port (the
    serving commands set activity.base-url to the address they bound before the app is built)."""
    return settings["activity.base-url"] or bound_url(settings["server.host"], settings["server.port"])


def trusted_hosts(settings: Settings) -> tuple[str, ...]:
    """server.trusted-hosts, and the host of activity.base-url (the app calls itself there)."""
    own = urlsplit(settings["activity.base-url"]).hostname if settings["activity.base-url"] else None
    if own and ":" in own:
        own = f"[{own}]"
    return tuple(dict.fromkeys([*settings["server.trusted-hosts"], *([own.lower()] if own else [])]))


def host_trusted(header: str | None, trusted: tuple[str, ...]) -> bool:
    """Whether a request's Host header names a trusted host (on any port). No header (HTTP/1.0) is let through:
    nothing is built from it."""
    if header is None:
        return True
    if "*" in trusted:
        return True
    match = _HOST_HEADER.fullmatch(header)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        return False
    name = match["name"].lower().rstrip(".")
    return any(name == host or (host.startswith(".") and (name.endswith(host) or name == host[1:])) for host in trusted)


def init_app(app: Any, settings: Settings) -> None:
    """Refuse requests for an untrusted Host (400, the error envelope) before any view runs (after the ops hooks,
    so that refused requests are counted and traced like any other)."""
    from flask import request

    from .errors import InvalidInput

    trusted = trusted_hosts(settings)

    def check_host() -> None:
        header = request.headers.get("Host")
        if not host_trusted(header, trusted):
            raise InvalidInput(f"Host {header[:100]!r} is not a host this server answers for (server.trusted-hosts)")

    app.before_request(check_host)
