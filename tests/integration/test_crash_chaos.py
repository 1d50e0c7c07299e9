"""Issue 18 against the real failure: `dailyfeed serve` processes on real Kafka and FerretDB, under concurrent
writes of every kind, SIGKILLed at random moments and started again; then the restore jobs killed mid-run and run
again. Afterwards every stored change has exactly one activity and every 201 answered has its content.

The check is by the publication entries the write path stores (docs/outbox.md): each key in a post's or
comment's `pubs` is the event of a change that landed, and each like is stored under its event's key. So: every such
key has exactly one activity, and every activity of a post, comment or like event is one of those keys (no event
without its change; an unlike's key names a like that is gone). Bounded: 3 kills a run, a few seconds apart."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from dailyfeed.config import load_settings
from dailyfeed.store import (
    COMMENT_LIKES,
    COMMENTS,
    EVENT_PUBLICATIONS,
    KAFKA_LISTENER_DEAD_LETTERS,
    KAFKA_PUBLISHER_DEAD_LETTERS,
    MEMBER_ACTIVITIES,
    POST_LIKES,
    POSTS,
    connect,
)
from dailyfeed.tokens import issue_member_token

from ..support import ROOT
from ..support.apps import free_port
from ..support.deadletters import listener_dead_letter, post_event
from ..support.kafka import drop_topics, wait_until
from ..support.processes import stop_group

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.mongo]

KILLS = 3
MEMBERS = (7, 8, 9, 10)
DAILYFEED = str(Path(sys.executable).parent / "dailyfeed")


@pytest.fixture
def world(mongo_uri, kafka_bootstrap):
    """A database, topic prefix and consumer group of this test's own; dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "DAILYFEED_CONFIG": str(ROOT / "config" / "test.toml"),
        "PYTHONUNBUFFERED": "1",
        "DAILYFEED_MONGO_URI": mongo_uri,
        "DAILYFEED_MONGO_DATABASE": f"chaos_{tag}",
        "DAILYFEED_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DAILYFEED_KAFKA_TOPIC_PREFIX": f"c{tag}-member-activity-",
        "DAILYFEED_KAFKA_CONSUMER_GROUP_ID": f"c{tag}",
        # the relay takes over quickly: a write's grace, a relay's and a dead writer's lease are seconds here
        "DAILYFEED_OUTBOX_GRACE_S": "2",
        "DAILYFEED_OUTBOX_INTERVAL_S": "0.5",
        "DAILYFEED_OUTBOX_LEASE_S": "3",
        "DAILYFEED_DEADLETTERS_LEASE_S": "3",
    }
    db = connect(mongo_uri, env["DAILYFEED_MONGO_DATABASE"])
    yield env, db
    if os.environ.get("CHAOS_KEEP"):
        print("KEPT", db.name, env["DAILYFEED_KAFKA_TOPIC_PREFIX"])
        return
    db.client.drop_database(db.name)
    drop_topics(kafka_bootstrap, env["DAILYFEED_KAFKA_TOPIC_PREFIX"])


class Server:
    """`dailyfeed serve` in a session of its own, killed with SIGKILL and started again on the same ports."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.port, self.activity_port = free_port(), free_port()
        self.env = {**env, "DAILYFEED_SERVER_ACTIVITY_PORT": str(self.activity_port)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.starts = 0
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.starts += 1
        with open(self.log_dir / f"serve-{self.starts}.log", "w") as log:
            self.process = subprocess.Popen(
                [DAILYFEED, "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._ready, 90, 0.2, f"dailyfeed serve answers (log {self.log_dir})")

    def _ready(self) -> bool:
        assert self.process.poll() is None, (self.log_dir / f"serve-{self.starts}.log").read_text()
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process, timeout=20)


class Writers:
    """Members writing at once: posts, comments, replies, updates, deletes, likes and unlikes of each other's
    things. Remembers what was answered 201 (created) — a connection that broke is an unknown outcome."""

    def __init__(self, url: str, secret: str):
        self.url = url
        self.tokens = {m: {"Authorization": f"Bearer {issue_member_token(secret, m, 3600)}"} for m in MEMBERS}
        self.created_posts: dict[int, str] = {}
        self.created_comments: dict[int, str] = {}
        self.statuses: dict[int, int] = {}
        self.broken = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(m,), daemon=True) for m in MEMBERS]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _write(self, member: int) -> None:
        session, rng = requests.Session(), random.Random(member)
        mine: list[int] = []
        while not self._stop.is_set():
            posts, comments = list(self.created_posts), list(self.created_comments)
            kind = rng.choices(
                ["post", "comment", "reply", "update", "delete", "like", "unlike", "clike", "cunlike", "cdelete"],
                weights=[5, 3, 1, 1, 1, 2, 1, 1, 1, 1],
            )[0]
            try:
                self._one(session, rng, member, kind, mine, posts, comments)
            except requests.RequestException:
                with self._lock:
                    self.broken += 1
                time.sleep(0.1)  # the server is down: it is being started again

    def _one(self, session, rng, member, kind, mine, posts, comments) -> None:
        headers, url = self.tokens[member], self.url
        if kind == "post" or not posts:
            content = f"post by {member} {uuid.uuid4().hex[:8]}"
            response = session.post(f"{url}/api/posts", json={"content": content}, headers=headers, timeout=10)
            if response.status_code == 201:
                self.created_posts[response.json()["data"]["id"]] = content
                mine.append(response.json()["data"]["id"])
        elif kind in ("comment", "reply"):
            body = {"postId": rng.choice(posts), "content": f"comment by {member} {uuid.uuid4().hex[:8]}"}
            if kind == "reply" and comments:
                parent = rng.choice(comments)
                body = {**body, "parentId": parent}
                path = "/api/comments/replies"
            else:
                path = "/api/comments"
            response = session.post(f"{url}{path}", json=body, headers=headers, timeout=10)
            if response.status_code == 201:
                self.created_comments[response.json()["data"]["id"]] = body["content"]
        elif kind == "update" and mine:
            response = session.put(
                f"{url}/api/posts/{rng.choice(mine)}", json={"content": "changed"}, headers=headers, timeout=10
            )
        elif kind == "delete" and len(mine) > 3:
            response = session.delete(f"{url}/api/posts/{mine.pop(0)}", headers=headers, timeout=10)
        elif kind in ("like", "unlike"):
            method = session.post if kind == "like" else session.delete
            response = method(f"{url}/api/posts/{rng.choice(posts)}/like", headers=headers, timeout=10)
        elif kind in ("clike", "cunlike", "cdelete") and comments:
            comment = rng.choice(comments)
            if kind == "cdelete":
                response = session.delete(f"{url}/api/comments/{comment}", headers=headers, timeout=10)
            else:
                method = session.post if kind == "clike" else session.delete
                response = method(f"{url}/api/comments/{comment}/like", headers=headers, timeout=10)
        else:
            return
        with self._lock:
            self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1


def owed_keys(db) -> dict[str, str]:
    """Every event key a stored change carries: post and comment entries, likes under their keys."""
    keys = {}
    for name in (POSTS, COMMENTS):
        for doc in db[name].find({}, {"pubs.k": 1}):
            keys.update((entry["k"], name) for entry in doc.get("pubs", []))
    for name in (POST_LIKES, COMMENT_LIKES):
        keys.update((doc["_id"], name) for doc in db[name].find({}, {"_id": 1}) if isinstance(doc["_id"], str))
    return keys


def check_exactly_once(db) -> str | None:
    """None when every stored change has exactly one activity and every activity its change; else what is off."""
    if db[EVENT_PUBLICATIONS].count_documents({}):
        return f"{db[EVENT_PUBLICATIONS].count_documents({})} publications still owed"
    activities: dict[str, int] = {}
    cancels = 0
    for doc in db[MEMBER_ACTIVITIES].find({}, {"message_key": 1, "member_activity_type": 1}):
        if doc["member_activity_type"].endswith("_CANCEL"):
            cancels += 1  # the key of an unlike: its like is gone (its own key was checked while it was there)
            continue
        activities[doc["message_key"]] = activities.get(doc["message_key"], 0) + 1
    owed = owed_keys(db)
    missing = [key for key in owed if key not in activities]
    liked_then_unliked = [key for key in activities if key not in owed and "LIKE_" in key]
    orphans = [key for key in activities if key not in owed and "LIKE_" not in key]
    if missing:
        pending = {
            name: db[name].count_documents({"status": "pending"})
            for name in (KAFKA_PUBLISHER_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS)
        }
        return (
            f"{len(missing)} of {len(owed)} stored changes without their activity ({len(activities)} stored, "
            f"pending dead letters {pending}), e.g. {missing[:3]}"
        )
    if orphans:
        return f"{len(orphans)} activities whose change is not stored, e.g. {orphans[:3]}"
    if len(liked_then_unliked) > cancels:
        return f"{len(liked_then_unliked)} like activities whose like is gone, but only {cancels} unlikes"
    return None


@pytest.mark.parametrize("transport", ["kafka", "feign"])
def test_serving_processes_killed_at_random_lose_no_activity_and_store_none_twice(world, tmp_path, transport):
    env, db = world
    env = {**env, "DAILYFEED_PUBLISH_TYPE_POST_SERVICE": transport, "DAILYFEED_PUBLISH_TYPE_COMMENT_SERVICE": transport}
    server = Server(env, tmp_path)
    server.start()
    writers = Writers(server.url, load_settings(environ=env)["auth.jwt-secret"])
    rng = random.Random()
    try:
        writers.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.0, 4.0))
            server.kill()
            server.start()
        time.sleep(1.0)
        writers.stop()
        # the last process relays what the killed ones left owed, and (Kafka) its listener stores what is on topic
        problem = wait_until(
            lambda: check_exactly_once(db) is None,
            120,
            0.5,
            f"every stored change has one activity (last check: {check_exactly_once(db)})",
        )
        assert problem
    finally:
        writers.stop()
        server.stop()

    assert writers.statuses.get(201, 0) > 20, writers.statuses  # the load really wrote
    assert writers.statuses.get(500, 0) == 0, writers.statuses
    for post_id, content in writers.created_posts.items():  # every 201 answered has its content
        assert db[POSTS].find_one({"_id": post_id}, {"content": 1})["content"] in (content, "changed")
    for comment_id, content in writers.created_comments.items():
        assert db[COMMENTS].find_one({"_id": comment_id}, {"content": 1})["content"] == content
    keys = [doc["message_key"] for doc in db[MEMBER_ACTIVITIES].find({}, {"message_key": 1})]
    assert len(keys) == len(set(keys))
    print(
        f"chaos {transport}: {len(keys)} activities, {writers.statuses}, {writers.broken} broken connections, "
        f"{server.starts} starts"
    )


def _run_killed_then_again(command: list[str], env: dict[str, str], tmp_path: Path, name: str) -> str:
    """Start a restore job, SIGKILL it mid-run, then run it again to the end; its second output."""
    with open(tmp_path / f"{name}-killed.log", "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    time.sleep(random.uniform(3.0, 5.0))  # start-up, then some of the work
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(float(env["DAILYFEED_DEADLETTERS_LEASE_S"]) + 0.5)  # its claims' leases run out
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    return (tmp_path / f"{name}-killed.log").read_text() + again.stdout


def test_restore_jobs_killed_mid_run_and_run_again_restore_each_dead_letter_once(world, tmp_path, kafka_bootstrap):
    from dailyfeed.deadletters import DeadLetterStore
    from dailyfeed.transport.base import TransportUnavailable

    env, db = world
    env = {**env, "DAILYFEED_PUBLISH_TYPE_POST_SERVICE": "kafka"}
    store = DeadLetterStore(db)
    published, stored = [], []
    for n in range(150):
        event = post_event(n)
        store.record_publisher_failure("kafka", event, TransportUnavailable("broker down"))
        published.append(event.message_key)
        event = post_event(1000 + n, member_id=8)
        listener_dead_letter(store, event, offset=n)
        stored.append(event.message_key)

    # restore-publisher republishes to the topic; a listener stores them (it is killed along the way too)
    listener_log = open(tmp_path / "listen.log", "w")
    listener = subprocess.Popen(
        [DAILYFEED, "listen"], env=env, stdout=listener_log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _run_killed_then_again(
            [DAILYFEED, "restore-publisher", "--batch-size", "10", "--rate", "40"], env, tmp_path, "restore-publisher"
        )
        os.killpg(listener.pid, signal.SIGKILL)
        listener.wait()
        listener = subprocess.Popen(
            [DAILYFEED, "listen"], env=env, stdout=listener_log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _run_killed_then_again(
            [DAILYFEED, "restore-listener", "--batch-size", "10", "--rate", "40"], env, tmp_path, "restore-listener"
        )
        wait_until(lambda: db[MEMBER_ACTIVITIES].count_documents({}) >= 300, 90, 0.5, "every restored event is stored")
    finally:
        stop_group(listener, timeout=20)
        listener_log.close()

    keys = [doc["message_key"] for doc in db[MEMBER_ACTIVITIES].find({}, {"message_key": 1})]
    assert sorted(keys) == sorted(published + stored)  # each exactly once
    assert db[KAFKA_PUBLISHER_DEAD_LETTERS].count_documents({"status": "completed"}) == 150
    assert db[KAFKA_LISTENER_DEAD_LETTERS].count_documents({"status": "completed"}) == 150
