"""The one way to reach the container from inside the app (the Flask extension pattern): `init_app` keeps it on
`app.extensions`, `get_container()` reads it back, with a helpful error when the app was not built by create_app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from .bootstrap import Container

EXTENSION_KEY = "dailyfeed"


def init_app(app: Flask, container: Container) -> None:
    app.extensions[EXTENSION_KEY] = container


def get_container(app: Flask | None = None) -> Container:
    """The container of `app`, or of the current app (inside a request or an app context)."""
    if app is None:
        try:
            app = current_app._get_current_object()
        except RuntimeError:
            raise RuntimeError(
                "no Flask app here: call get_container(app), or build the services with "
                "dailyfeed.bootstrap.bootstrap() outside the app"
            ) from None
    try:
        return app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            f"the app {app.name!r} was not built by dailyfeed.create_app: it has no dailyfeed container"
        ) from None
