"""The app in a real threaded server (waitress, as `dailyfeed serve` runs it), driven over HTTP.

The feign transport calls back into the same process. A burst of concurrent writes larger than the worker pool
must neither hang the server nor lose an activity: the record calls are served by the activity pool."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from dailyfeed import create_app, server
from dailyfeed.extension import get_container
from dailyfeed.store import FEIGN_DEAD_LETTERS, MEMBER_ACTIVITIES, POSTS
from dailyfeed.tokens import issue_member_token

from ..support.apps import close_app

THREADS = 3
BURST = 40


@pytest.fixture
def live(store_uri):
    apps = []

    def factory(activity_url):
        apps.append(
            create_app(
                {
                    "mongo.uri": store_uri,
                    "mongo.database": f"live_{uuid.uuid4().hex[:10]}",
                    "activity.base-url": activity_url,
                }
            )
        )
        return apps[0]

    running = server.start(factory, host="127.0.0.1", port=0, activity_port=0, threads=THREADS)
    yield running, apps[0]
    running.close()
    close_app(apps[0])


def test_burst_of_concurrent_writes_through_feign_to_itself(live):
    running, app = live
    secret = get_container(app).settings["auth.jwt-secret"]
    headers = {"Authorization": "Bearer " + issue_member_token(secret, 7, 600)}

    def write(i):
        with requests.Session() as session:
            return session.post(
                f"{running.url}/api/posts", json={"content": f"burst {i}"}, headers=headers, timeout=30
            ).status_code

    with ThreadPoolExecutor(max_workers=THREADS * 4) as pool:
        statuses = list(pool.map(write, range(BURST)))

    assert statuses == [201] * BURST
    db = get_container(app).db
    assert db[POSTS].count_documents({}) == BURST
    assert db[MEMBER_ACTIVITIES].count_documents({"member_activity_type": "POST_CREATE"}) == BURST
    assert db[FEIGN_DEAD_LETTERS].count_documents({}) == 0  # every one delivered, none timed out

    follower = {"Authorization": "Bearer " + issue_member_token(secret, 8, 600)}
    assert requests.post(f"{running.url}/api/members/7/follow", headers=follower, timeout=10).status_code == 201
    feed = requests.get(
        f"{running.url}/api/member-activities/followings?size=100", headers=follower, timeout=10
    ).json()["data"]
    assert len(feed["content"]) == BURST and {a["memberId"] for a in feed["content"]} == {7}
