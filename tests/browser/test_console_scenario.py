"""The console's story end to end, in headless Chromium, on the real FerretDB and a private Kafka broker of the
test's own (never the shared one): with the broker stopped a member writes five posts; /admin shows five pending
publisher dead letters and the Kafka circuit open; the broker comes back, "Replay all" on the page starts a task
that restores them, and the five activities reach the feed of the member's follower through the listener."""

from __future__ import annotations

import re
import time

import pytest
import requests

from dailyfeed import server
from dailyfeed.events import Service
from dailyfeed.store import KAFKA_PUBLISHER_DEAD_LETTERS
from dailyfeed.transport.circuit import CircuitBreaker

from ..support.apps import make_app
from ..support.browser import Live, log_in, screenshot
from ..support.kafka import KafkaApps, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.kafka, pytest.mark.mongo]

OPEN_WAIT_S = 60.0


class Clock:
    """The breaker's clock, moved by the test: the circuit stays open until the test says time has passed."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kafka_live(private_broker, mongo_uri):
    apps = KafkaApps(make_app, private_broker.bootstrap, mongo_uri)
    settings = apps.settings_for()

    def factory(activity_url):
        app = make_app({**settings, "activity.base-url": activity_url}, run_background=True)
        apps.apps.append(app)
        return app

    running = server.start(factory, host="127.0.0.1", port=0, activity_port=0, threads=4)
    yield Live(running, apps.apps[0])
    running.close()
    apps.close()


def test_five_posts_while_kafka_is_down_are_replayed_from_the_page_into_the_feed(kafka_live, private_broker, page_of):
    # kafka_live first: the app creates its topics with asyncio.run in this thread, before Playwright's loop runs
    live = kafka_live
    transport = live.container.transports[Service.POST]
    clock = Clock()
    transport.breaker = CircuitBreaker(
        window_size=5, minimum_calls=5, failure_rate=0.5, open_wait_s=OPEN_WAIT_S, clock=clock
    )
    author, follower = live.member(7), live.member(8)
    followed = requests.post(f"{live.url}/api/members/7/follow", headers=follower, timeout=10)
    assert followed.status_code == 201

    private_broker.kill()
    for n in range(5):
        posted = requests.post(
            f"{live.url}/api/posts", json={"content": f"while Kafka is down {n}"}, headers=author, timeout=30
        )
        assert posted.status_code == 201, posted.text
    assert live.container.db[KAFKA_PUBLISHER_DEAD_LETTERS].count_documents({"status": "pending"}) == 5

    page = page_of()
    log_in(page, live)
    assert page.inner_text("[data-count='kafka-publisher:pending']") == "5"
    assert page.inner_text("[data-circuit='post-service'] .chip") == "circuit open"
    screenshot(page, "overview", docs=True)
    page.click("table.letters a >> nth=0")
    assert page.inner_text("#status") == "pending"
    screenshot(page, "detail")

    private_broker.start()
    # "Replay all" starts a task, which the serving process runs. A restarted broker may need a few seconds to elect
    # the partitions' leaders: a task that lands before that moves nothing and fails with the reason, its dead
    # letters still pending, and the operator replays again. Count what each task moved.
    restored, attempts = 0, 0
    deadline = time.monotonic() + 90
    while restored < 5:
        assert time.monotonic() < deadline, f"tasks restored {restored} of 5 in {attempts} attempts"
        clock.now += OPEN_WAIT_S  # the breaker lets a trial call through: the task's first publish
        page.goto(f"{live.url}/admin")
        page.click("#replay-all")
        assert f"{5 - restored} pending dead letter" in page.inner_text("#dry-run")
        page.click("#confirm")
        task_id = page.get_attribute("#tasks tr.just-started", "data-task")
        page.wait_for_selector(f"#tasks tr[data-task='{task_id}']:not([data-state=running])", timeout=60_000)
        page.wait_for_load_state("load")  # console.js loads the page again once the task has ended
        done = re.search(r"(\d+) of (\d+) moved", page.inner_text(f"#tasks tr[data-task='{task_id}']"))
        assert done, page.inner_text("#tasks")
        restored += int(done.group(1))
        attempts += 1
        pending = live.container.db[KAFKA_PUBLISHER_DEAD_LETTERS].count_documents({"status": "pending"})
        assert pending == 5 - restored  # what was not restored is still there, pending
    page.goto(f"{live.url}/admin")
    assert page.inner_text("#tasks tr >> nth=1 >> [data-field=state]") == "completed"
    assert page.inner_text("[data-count='kafka-publisher:pending']") == "0"
    assert page.inner_text("[data-count='kafka-publisher:completed']") == "5"
    assert page.inner_text("[data-circuit='post-service'] .chip") == "circuit closed"
    screenshot(page, "overview-after-replay")

    def feed():
        answer = requests.get(f"{live.url}/api/member-activities/followings?size=20", headers=follower, timeout=10)
        return [a for a in answer.json()["data"]["content"] if a["memberActivityType"] == "POST_CREATE"]

    activities = wait_until(
        lambda: len(feed()) == 5 and feed(),
        120,
        0.5,
        "the five replayed posts reach the follower's feed through the listener",
    )
    assert {a["memberId"] for a in activities} == {7} and len({a["postId"] for a in activities}) == 5
