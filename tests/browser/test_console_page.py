"""The console in headless Chromium on the embedded store: markup in dead letters stays text, a discard asks for
confirmation first, a failed dead letter is re-queued; the pages read on a laptop and on a phone."""

from __future__ import annotations

import pytest

from dailyfeed.restore.jobs import ListenerRestore
from dailyfeed.store import FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS
from dailyfeed.transport.base import TransportUnavailable

from ..support.browser import PHONE, log_in, screenshot
from ..support.deadletters import listener_dead_letter, post_event

pytestmark = pytest.mark.browser

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'


def test_markup_in_errors_and_raw_records_is_shown_as_text(page_of, live):
    store = live.container.dead_letters
    store.record_publisher_failure("feign", post_event(1), TransportUnavailable(f"{SCRIPT} and {IMG}"))
    listener_dead_letter(store, None, offset=7, value=f"{IMG}{SCRIPT}".encode(), key=SCRIPT.encode())
    page = page_of()
    log_in(page, live)
    for url in [f"{live.url}/admin"] + [
        f"{live.url}/admin/dead-letters/{doc['_id']}"
        for name in (FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS)
        for doc in live.container.db[name].find()
    ]:
        page.goto(url)
        page.wait_for_load_state("load")
        assert page.locator("img").count() == 0, "an element was injected"
        assert page.evaluate("document.scripts.length") == 1  # the console's own console.js only
        assert SCRIPT in page.inner_text("main")
    assert IMG in page.inner_text("#origin-value")
    assert page_of.dialogs == []


def test_discard_asks_for_confirmation_then_discards_the_chosen_one(page_of, live):
    store = live.container.dead_letters
    for n in range(2):
        store.record_publisher_failure("feign", post_event(n), TransportUnavailable("activity service down"))
    first = live.container.db[FEIGN_DEAD_LETTERS].find_one({"message_key": post_event(0).message_key})
    page = page_of()
    log_in(page, live)
    page.check(f"input[name=ids][value='{first['_id']}']")
    page.click("#chosen button[value=discard]")
    assert "1 dead letter would be discarded" in page.inner_text("#dry-run")
    assert live.container.db[FEIGN_DEAD_LETTERS].count_documents({"status": "discarded"}) == 0  # not yet
    page.click("#confirm")
    assert "Discarded 1." in page.inner_text("#result")
    assert page.inner_text("[data-count='feign:discarded']") == "1"
    assert page.inner_text("[data-count='feign:pending']") == "1"
    assert live.container.db[FEIGN_DEAD_LETTERS].find_one({"_id": first["_id"]})["status"] == "discarded"


def test_a_failed_dead_letter_is_requeued_from_its_page(page_of, live):
    store = live.container.dead_letters
    listener_dead_letter(store, None, offset=3, value=b"{not json", key=b"k")
    ListenerRestore(store, live.container.activity_service).run()  # cannot be parsed: marked failed
    [failed] = live.container.db[KAFKA_LISTENER_DEAD_LETTERS].find()
    assert failed["status"] == "failed"
    page = page_of()
    log_in(page, live)
    page.click(f"a[href='/admin/dead-letters/{failed['_id']}']")
    assert page.inner_text("#status") == "failed"
    screenshot(page, "detail-failed")
    page.click("#requeue")
    assert "1 failed dead letter would go back to pending" in page.inner_text("#dry-run")
    page.click("#confirm")
    assert "Re-queued 1 to pending" in page.inner_text("#result")
    assert page.inner_text("#status") == "pending"
    after = live.container.db[KAFKA_LISTENER_DEAD_LETTERS].find_one({"_id": failed["_id"]})
    assert (after["status"], after["attempts"], after["error"]) == ("pending", failed["attempts"], failed["error"])


def test_the_overview_reads_on_a_phone(page_of, live):
    store = live.container.dead_letters
    for n in range(3):
        store.record_publisher_failure("feign", post_event(n), TransportUnavailable("activity service down"))
    page = page_of(PHONE)
    log_in(page, live)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a {PHONE['width']}px phone"
    assert page.inner_text("[data-count='feign:pending']") == "3"
    screenshot(page, "overview-phone")
    page.click("table.letters a >> nth=0")
    page.wait_for_selector("#payload")
    page.wait_for_load_state("load")  # the stylesheet too: an unstyled page is wider
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "detail-phone")
