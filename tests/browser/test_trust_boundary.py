"""Issue 19 in headless Chromium: the console's cookie holds a session id that logging out ends (the old cookie,
put back, lands on the login page), and /docs under its strict Content-Security-Policy still gets its style (the
one inline style is allowed by its hash; nothing else inline would run)."""

from __future__ import annotations

import pytest

from dailyfeed.store import CONSOLE_SESSIONS

from ..support.browser import log_in, screenshot

pytestmark = pytest.mark.browser


def test_logging_out_ends_the_session_the_cookie_named(page_of, live):
    page = page_of()
    log_in(page, live)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "dailyfeed_admin"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
    assert "." not in cookie["value"] and len(cookie["value"]) == 43  # a session id, not the JWT
    assert live.container.db[CONSOLE_SESSIONS].count_documents({}) == 1
    page.click("button:has-text('Log out')")
    page.wait_for_selector("#token")
    assert live.container.db[CONSOLE_SESSIONS].count_documents({}) == 0

    stolen = page_of()
    stolen.context.add_cookies([cookie])
    stolen.goto(f"{live.url}/admin")
    stolen.wait_for_selector("#token")
    assert "session has ended" in stolen.inner_text("body")
    screenshot(stolen, "console-session-ended")


def test_docs_keep_their_style_under_the_pages_content_security_policy(page_of, live):
    page = page_of()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    response = page.goto(f"{live.url}/docs")
    page.wait_for_load_state("load")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert page.evaluate("getComputedStyle(document.body).maxWidth") == "980px"  # the inline style applied
    assert violations == []
    screenshot(page, "docs-under-csp")
