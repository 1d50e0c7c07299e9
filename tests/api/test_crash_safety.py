"""Issue 18: the app process dies between the steps of a write (docs/outbox.md), on both stores, for every write
kind and both transports. A fault-injection hook (the service's checkpoint) raises SimulatedCrash after a step, as
a SIGKILL would stop the process there; then a relay pass runs, as the next process (or another one) does.

After it: exactly one activity for each stored change, with the key, createdAt and traceparent of the request;
none for a change that never landed or was undone; no publication left owed."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from dailyfeed.content import outbox
from dailyfeed.content.outbox import Outcome, SimulatedCrash
from dailyfeed.events import key_timestamp
from dailyfeed.extension import get_container
from dailyfeed.store import (
    COMMENT_LIKES,
    COMMENTS,
    EVENT_PUBLICATIONS,
    MEMBER_ACTIVITIES,
    OUTBOX_WRITERS,
    POST_LIKES,
    POSTS,
)
from dailyfeed.transport.fake import FakeTransport

from .test_delivery_failures import ACTIONS, BrokenDatabase, _setup

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
# publications are due at once (the relay is called by the test, never in the background here)
SETTINGS = {"outbox.grace-s": 0.001, "outbox.lease-s": 1}
WRITE_STEPS = (outbox.BEGUN, outbox.APPLIED, outbox.PUBLISHED, outbox.COMPLETED)
CONTENT = (POSTS, COMMENTS, POST_LIKES, COMMENT_LIKES)


@pytest.fixture(params=["feign", "kafka"])
def transport(request):
    return request.param


@pytest.fixture
def app(store_uri, apps, transport):
    """Feign: the record calls reach the app in-process. Kafka: a Kafka-like fake whose records the listener's own
    store call takes (an upsert by message key, as the listener does)."""
    if transport == "feign":
        return apps.make({"mongo.uri": store_uri, **SETTINGS})
    holder = {}
    broker = FakeTransport("kafka", deliver=lambda event: holder["service"].record_activity(event))
    made = apps.make(
        {
            "mongo.uri": store_uri,
            "publish-type.post-service": "kafka",
            "publish-type.comment-service": "kafka",
            **SETTINGS,
        },
        transports={"post-service": broker, "comment-service": broker},
    )
    holder["service"] = get_container(made).activity_service
    return made


class Crash:
    """The checkpoint of the app under test: once armed, it "kills the process" after `step` of the next write."""

    def __init__(self):
        self.step: str | None = None
        self.key: str | None = None
        self.seen: list[tuple[str, str]] = []

    def __call__(self, step: str, key: str) -> None:
        self.seen.append((step, key))
        if step == self.step and self.key is None:
            self.key = key
            raise SimulatedCrash(f"killed after {step}")


@pytest.fixture
def crash(app):
    hook = Crash()
    get_container(app).content_service.checkpoint = hook
    return hook


def relay(app, **kwargs):
    """A relay pass once what was just recorded is due (grace 1 ms; the store keeps milliseconds)."""
    time.sleep(0.01)
    return get_container(app).relay(**kwargs).run_pass()


def content_snapshot(db):
    return {name: sorted(repr(sorted(doc.items())) for doc in db[name].find()) for name in CONTENT}


def keys_of_activities(db) -> list[str]:
    return [doc["message_key"] for doc in db[MEMBER_ACTIVITIES].find()]


def act(api, action, post_id, comment_id):
    return ACTIONS[action](api, post_id, comment_id) if action else None


def traced(api):
    """The api fixture, with the request's traceparent on every call."""

    class Traced:
        def __getattr__(self, method):
            call = getattr(api, method)
            return lambda member, path, **kw: call(member, path, headers={"traceparent": TRACEPARENT}, **kw)

    return Traced()


@pytest.mark.parametrize("step", WRITE_STEPS)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_crash_after_each_step_leaves_one_activity_per_stored_change(api, app, db, crash, action, step):
    post_id, comment_id = _setup(api)
    before_content, before_keys = content_snapshot(db), keys_of_activities(db)
    crash.step = step

    with pytest.raises(SimulatedCrash):
        act(traced(api), action, post_id, comment_id)
    key = crash.key
    landed = step != outbox.BEGUN
    summary = relay(app)

    keys = keys_of_activities(db)
    assert len(keys) == len(set(keys))  # never a second activity for one key
    assert sorted(keys) == sorted(before_keys + ([key] if landed else []))
    assert list(db[EVENT_PUBLICATIONS].find()) == []  # nothing left owed
    if step == outbox.COMPLETED:
        assert summary.total == 0 and summary.skipped == 0  # completed before the crash: nothing to relay
    elif landed:
        assert summary.counts[Outcome.DELIVERED] == 1 and summary.total == 1
    elif action.startswith("unlike"):  # a standalone publication whose like is still there: dropped
        assert summary.counts[Outcome.DROPPED] == 1 and summary.total == 1
    else:  # nothing landed: the writer (alive here) still lists it in flight, so the relay leaves it to it
        assert summary.total == 0 and summary.skipped == 1
    assert relay(app).total == 0  # marked relayed: never again
    if not landed:
        assert content_snapshot(db) == before_content  # the change never happened, nor did its event
        return
    [activity] = db[MEMBER_ACTIVITIES].find({"message_key": key})
    at = key_timestamp(key)  # the action's time: a republish keeps createdAt (the store keeps milliseconds)
    at = at.replace(tzinfo=None, microsecond=at.microsecond // 1000 * 1000)
    assert activity["created_at"].replace(tzinfo=None) == at
    assert content_snapshot(db) != before_content
    published = [
        e
        for t in get_container(app).transports.values()
        if isinstance(t, FakeTransport)
        for e in t.published
        if e.message_key == key
    ]
    assert all(event.traceparent == TRACEPARENT for event in published)  # a republish keeps the trace


@pytest.mark.parametrize("step", [outbox.ROOT_APPLIED])
def test_a_crash_between_a_comment_and_its_replies_is_rolled_forward(api, app, db, crash, step):
    post_id, comment_id = _setup(api)  # the comment has one reply
    crash.step = step

    with pytest.raises(SimulatedCrash):
        api.delete(8, f"/api/comments/{comment_id}")
    assert db[COMMENTS].count_documents({"post_id": post_id, "is_deleted": False}) == 1  # the reply, still live
    relay(app)

    assert db[COMMENTS].count_documents({"post_id": post_id, "is_deleted": True}) == 2  # the comment, its reply
    assert db[MEMBER_ACTIVITIES].count_documents({"message_key": crash.key}) == 1
    assert api.get(None, f"/api/posts/{post_id}/comments").json["data"]["content"] == []


def test_a_crash_while_undoing_leaves_no_event_and_no_change(api, app, db, crash, transport):
    post_id, comment_id = _setup(api)
    before = content_snapshot(db)
    container = get_container(app)
    for t in container.transports.values():  # neither delivered ...
        if isinstance(t, FakeTransport):
            t.fail_with()
    if transport == "feign":
        container.transports["post-service"].session.mount("http://dailyfeed.test", _Refused())
    container.dead_letters.db = BrokenDatabase()  # ... nor kept
    crash.step = outbox.UNDONE

    with pytest.raises(SimulatedCrash):
        api.put(7, f"/api/posts/{post_id}", json={"content": "never"})
    assert relay(app).skipped == 1  # the dead writer's claim holds it until its lease runs out
    time.sleep(container.settings["outbox.lease-s"])
    summary = relay(app)

    assert summary.counts[Outcome.DROPPED] == 1
    assert content_snapshot(db) == before
    assert db[MEMBER_ACTIVITIES].count_documents({"message_key": crash.key}) == 0
    assert db[EVENT_PUBLICATIONS].count_documents({}) == 0


def test_an_undo_never_takes_back_a_change_a_relay_holds(api, app, db, crash, transport):
    """The write outlived the grace period: a relay took its publication while it was publishing. When its
    publish then fails for good, the write leaves the change (the relay publishes it) and succeeds."""
    post_id, _ = _setup(api)
    container = get_container(app)
    relayed = []

    def relay_meanwhile(step, key):
        if step == outbox.APPLIED:
            relayed.append(relay(app))  # another process's relay, during the publish
            for t in container.transports.values():
                if isinstance(t, FakeTransport):
                    t.fail_with()
            container.dead_letters.db = BrokenDatabase()
            if transport == "feign":
                container.transports["post-service"].session.mount("http://dailyfeed.test", _Refused())

    container.content_service.checkpoint = relay_meanwhile

    response = api.put(7, f"/api/posts/{post_id}", json={"content": "kept"})

    assert response.status_code == 200
    assert relayed[0].counts[Outcome.DELIVERED] == 1
    assert db[POSTS].find_one({"_id": post_id})["content"] == "kept"
    assert db[MEMBER_ACTIVITIES].count_documents({"member_activity_type": "POST_UPDATE"}) == 1


def test_a_relay_killed_after_publishing_leaves_it_to_the_next_one_which_stores_it_once(api, app, db, crash):
    post_id, _ = _setup(api)
    crash.step = outbox.APPLIED
    with pytest.raises(SimulatedCrash):
        api.delete(7, f"/api/posts/{post_id}")
    container = get_container(app)

    def killed(step, key):
        if step == outbox.RELAY_PUBLISHED:
            raise SimulatedCrash("relay killed")

    with pytest.raises(SimulatedCrash):
        relay(app, checkpoint=killed)
    assert relay(app).skipped == 1  # its lease still runs: nobody else takes it
    time.sleep(container.settings["outbox.lease-s"] + 0.1)
    assert relay(app).counts[Outcome.DELIVERED] == 1

    assert db[MEMBER_ACTIVITIES].count_documents({"message_key": crash.key}) == 1
    assert db[EVENT_PUBLICATIONS].count_documents({}) == 0


def test_an_unlike_proves_the_like_landed_even_when_its_event_is_still_owed(api, app, db, crash):
    """like (killed before publishing) → unlike: the like is gone, yet its event is owed and published."""
    post_id, _ = _setup(api)
    crash.step = outbox.APPLIED
    with pytest.raises(SimulatedCrash):
        api.post(8, f"/api/posts/{post_id}/like")
    like_key = crash.key
    assert api.delete(8, f"/api/posts/{post_id}/like").status_code == 200
    relay(app)

    likes = {
        doc["member_activity_type"]: doc["message_key"]
        for doc in db[MEMBER_ACTIVITIES].find(
            {"member_id": 8, "member_activity_type": {"$in": ["LIKE_POST", "LIKE_POST_CANCEL"]}}
        )
    }
    assert set(likes) == {"LIKE_POST", "LIKE_POST_CANCEL"} and likes["LIKE_POST"] == like_key
    assert db[MEMBER_ACTIVITIES].count_documents({"message_key": like_key}) == 1
    assert db[EVENT_PUBLICATIONS].count_documents({}) == 0


def test_two_relays_at_once_publish_each_owed_event_once(store_uri, apps):
    broker = FakeTransport("kafka")
    app = apps.make(
        {"mongo.uri": store_uri, "publish-type.post-service": "kafka", **SETTINGS},
        transports={"post-service": broker, "comment-service": FakeTransport("feign")},
    )
    container = get_container(app)
    keys = []

    def killed(step, key):
        if step == outbox.APPLIED:
            keys.append(key)
            raise SimulatedCrash

    container.content_service.checkpoint = killed
    for n in range(30):
        with pytest.raises(SimulatedCrash):
            container.content_service.create_post(7, None, f"post {n}")
    summaries = []
    relays = [threading.Thread(target=lambda: summaries.append(relay(app))) for _ in range(3)]
    for thread in relays:
        thread.start()
    for thread in relays:
        thread.join()

    published = [event.message_key for event in broker.published]
    assert sorted(published) == sorted(keys)  # each once: the claims decide
    assert sum(s.counts[Outcome.DELIVERED] for s in summaries) == 30
    assert container.db[EVENT_PUBLICATIONS].count_documents({}) == 0


def test_a_relay_that_can_neither_deliver_nor_keep_leaves_the_event_owed_and_the_change_as_it_is(
    api, app, db, crash, transport
):
    post_id, _ = _setup(api)
    crash.step = outbox.APPLIED
    with pytest.raises(SimulatedCrash):
        api.put(7, f"/api/posts/{post_id}", json={"content": "stays"})
    container = get_container(app)
    store = container.dead_letters.db
    for t in container.transports.values():
        if isinstance(t, FakeTransport):
            t.fail_with()
    if transport == "feign":
        container.transports["post-service"].session.mount("http://dailyfeed.test", _Refused())
    container.dead_letters.db = BrokenDatabase()

    assert relay(app).counts[Outcome.LEFT] == 1
    assert db[POSTS].find_one({"_id": post_id})["content"] == "stays"  # never undone by a relay
    assert container.publications.stats().outstanding == 1  # still owed

    container.dead_letters.db = store  # the dead letters are back (the transport is still down)
    assert relay(app).counts[Outcome.DEAD_LETTERED] == 1
    assert container.publications.stats().outstanding == 0
    assert relay(app).total == 0


class _Refused:
    """A requests adapter whose every call fails to connect (the activity service is down)."""

    def send(self, request, **kwargs):
        import requests

        raise requests.ConnectionError("refused (injected)")

    def close(self):
        pass


def test_a_dead_writers_entries_are_found_by_their_time_and_its_statement_goes(api, app, db, crash):
    """A serving process states its writer every 50 ms; killed between two statements, what it wrote since the
    last one is in no statement: the relay finds it by writer and time once the writer is dead."""
    post_id, comment_id = _setup(api)
    container = get_container(app)
    writer = container.publications.writer
    writer.batched = True  # as under a completer (whose next flush never comes: the process dies)
    writer.state()
    keys = []
    for action in ("update post", "like comment"):
        crash.step, crash.key = outbox.APPLIED, None
        with pytest.raises(SimulatedCrash):
            act(api, action, post_id, comment_id)
        keys.append(crash.key)
    statement = db[OUTBOX_WRITERS].find_one({"_id": writer.id})
    assert statement["owed"] == []  # not stated: found by time only
    db[OUTBOX_WRITERS].update_one({"_id": writer.id}, {"$set": {"beat": statement["beat"] - timedelta(days=1)}})

    summary = relay(app)

    assert summary.counts[Outcome.DELIVERED] == 2 and summary.total == 2
    assert sorted(keys_of_activities(db)).count(keys[0]) == 1 and keys_of_activities(db).count(keys[1]) == 1
    assert relay(app).total == 0  # marked relayed: never again; and the dead writer's statement is gone
    assert db[OUTBOX_WRITERS].count_documents({"_id": writer.id}) == 0


def test_a_live_writer_with_nothing_overdue_costs_the_relay_no_content_read(store_uri, apps, monkeypatch):
    app = apps.make({"mongo.uri": store_uri, "outbox.grace-s": 3600.0})
    container = get_container(app)
    container.content_service.create_post(7, None, "settled")
    repo = container.content_service.repo
    reads = []
    monkeypatch.setattr(repo, "documents", lambda *a, **k: reads.append(a))
    monkeypatch.setattr(repo, "entries_of_writer", lambda *a, **k: reads.append(a))
    assert container.relay().run_pass().total == 0
    assert reads == []  # no content read at all: the statement says everything is settled


def test_a_stalled_writer_past_the_grace_is_relayed_and_its_own_publish_is_stored_once(api, app, db):
    """The write outlives the grace between its change and its publish (a stalled, live process): a relay publishes
    it meanwhile; the writer's own publish then goes too, with the same key: one activity."""
    post_id, _ = _setup(api)
    container = get_container(app)
    relayed = []

    def relay_meanwhile(step, key):
        if step == outbox.APPLIED:
            relayed.append((key, relay(app)))

    container.content_service.checkpoint = relay_meanwhile
    assert api.put(7, f"/api/posts/{post_id}", json={"content": "slow"}).status_code == 200
    [(key, summary)] = relayed
    assert summary.counts[Outcome.DELIVERED] == 1
    assert db[MEMBER_ACTIVITIES].count_documents({"message_key": key}) == 1
    assert container.publications.stats().outstanding == 0 and relay(app).total == 0
