"""The browser tier: the console in headless Chromium (Debian's `chromium`, installed by
scripts/install-browser.sh), driven by Playwright for Python through `executable_path` (never `playwright install`).
The app runs in a real threaded server (dailyfeed.server, as `dailyfeed serve`). Locally a missing browser or
Playwright skips this tier with the reason; under CI (CI=true) it fails it.

Screenshots go to build/screenshots/ (git-ignored); with DAILYFEED_REFRESH_DOCS=1 the overview one is also copied
to docs/console.png for the README, deliberately."""

from __future__ import annotations

import os
import uuid

import pytest

from ..support import UNDER_CI
from ..support.browser import LAPTOP, serve, stop

CHROMIUM = os.environ.get("DAILYFEED_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def _unavailable(reason: str):
    reason = f"browser tier: {reason} (run scripts/install-browser.sh; pip install -e '.[test]')"
    if UNDER_CI:
        pytest.fail(f"CI needs the browser tier: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module. Not for the session: while Playwright's sync API runs, its event loop is the
    main thread's, and the tests that follow (asyncio.run in the Kafka code) need that thread free again."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        try:
            # launch() gives each run a fresh temporary profile (user data dir) of its own
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except Error as exc:
            _unavailable(f"Chromium at {CHROMIUM} did not start: {exc}")
        yield chromium
        chromium.close()


@pytest.fixture
def page_of(browser):
    """Opens pages in fresh contexts (no shared cookies); every dialog fails the test that opened it."""
    contexts = []
    dialogs: list[str] = []

    def open_page(viewport=LAPTOP):
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        return page

    open_page.dialogs = dialogs
    yield open_page
    for context in contexts:
        context.close()
    assert dialogs == [], f"a dialog opened: {dialogs}"


@pytest.fixture
def live():
    """The app on the embedded store, its feign transport calling its own activity pool."""
    running = serve({"mongo.uri": "mongomock://", "mongo.database": f"browser_{uuid.uuid4().hex[:10]}"})
    yield running
    stop(running)
