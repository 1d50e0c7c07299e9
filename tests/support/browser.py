"""What the browser tier's tests use besides fixtures: the app served on a free port (`Live`), logging in to the
console, screenshots. The fixtures (the browser, pages, a live app) are in tests/browser/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

from dailyfeed import server
from dailyfeed.extension import get_container
from dailyfeed.tokens import issue_admin_token, issue_member_token

from . import ROOT
from .apps import close_app, make_app

SCREENSHOTS = ROOT / "build" / "screenshots"
DOCS_SCREENSHOT = ROOT / "docs" / "console.png"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


class Live:
    """The app served on a free port; `url`, `app`, `container`, tokens."""

    def __init__(self, running, app):
        self.running, self.app = running, app
        self.url = running.url
        self.container = get_container(app)
        self.secret = self.container.settings["auth.jwt-secret"]

    def admin_token(self) -> str:
        return issue_admin_token(self.secret, 3600)

    def member(self, member_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_member_token(self.secret, member_id, 3600)}"}


def serve(settings: dict, **kwargs) -> Live:
    apps = []

    def factory(activity_url):
        overrides = {"activity.base-url": activity_url, **settings}
        apps.append(make_app(overrides, **kwargs))
        return apps[0]

    running = server.start(factory, host="127.0.0.1", port=0, activity_port=0, threads=4)
    return Live(running, apps[0])


def stop(live: Live) -> None:
    live.running.close()
    close_app(live.app)


def log_in(page, live: Live, token: str | None = None) -> None:
    """Log in to the console with `token` (default: an admin's)."""
    page.goto(f"{live.url}/admin")
    page.fill("#token", token or live.admin_token())
    page.click("button:has-text('Log in')")
    page.wait_for_selector("section[aria-label=Overview]")
    page.wait_for_load_state("load")


def screenshot(page, name: str, *, docs: bool | str = False) -> Path:
    """A full-page screenshot in build/screenshots/; with DAILYFEED_REFRESH_DOCS=1 also the first screen of it in
    docs/ (as docs/console.png, or docs/<docs>.png when `docs` names it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and os.environ.get("DAILYFEED_REFRESH_DOCS") == "1":
        target = DOCS_SCREENSHOT if docs is True else DOCS_SCREENSHOT.with_name(f"{docs}.png")
        page.screenshot(path=str(target), full_page=False)
    return path
