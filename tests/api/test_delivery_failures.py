"""SPEC section 5 under failure, on both store backends: a failed publish becomes a dead letter and the write
succeeds; when the dead letter cannot be stored either, the change is undone and the client gets 503."""

import json
import re

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from dailyfeed.extension import get_container
from dailyfeed.store import COMMENT_LIKES, COMMENTS, FEIGN_DEAD_LETTERS, MEMBER_ACTIVITIES, POST_LIKES, POSTS
from dailyfeed.transport.base import CircuitOpen
from tests.support.wsgi import WsgiAdapter

CLOSED_PORT_URL = "http://127.0.0.1:9"  # nothing listens on the discard port here: connection refused


@pytest.fixture
def app(store_uri, apps):
    """Feign to an activity service that cannot be reached."""
    return apps.make({"mongo.uri": store_uri, "activity.base-url": CLOSED_PORT_URL})


class BrokenCollection:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ServerSelectionTimeoutError("dead-letter store unreachable (injected)")

        return fail


class BrokenDatabase:
    def __getitem__(self, name):
        return BrokenCollection()


def snapshot(db):
    """Every stored document, except the ids of re-inserted likes (an undone unlike stores the like again)."""
    return {
        name: sorted(
            repr(sorted((k, v) for k, v in doc.items() if not (k == "_id" and "likes" in name)))
            for doc in db[name].find()
        )
        for name in (POSTS, COMMENTS, POST_LIKES, COMMENT_LIKES, MEMBER_ACTIVITIES, FEIGN_DEAD_LETTERS)
    }


def test_unreachable_activity_service_gives_success_and_a_canonical_dead_letter(api, db):
    response = api.post(7, "/api/posts", json={"content": "kept"})
    assert response.status_code == 201
    post_id = response.json["data"]["id"]
    assert db[POSTS].count_documents({"_id": post_id}) == 1
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 0
    [letter] = db[FEIGN_DEAD_LETTERS].find()
    assert letter["message_key"].startswith(f"member_activity:kafka_event:POST_CREATE###{post_id}###7###")
    assert letter["category"] == "POST" and letter["status"] == "pending"
    assert letter["is_completed"] is False and letter["is_editing"] is False and letter["attempts"] == 1
    assert letter["error"]["type"] == "TransportUnavailable" and "127.0.0.1:9" in letter["error"]["message"]
    payload = json.loads(letter["payload"])
    assert payload["memberId"] == 7 and payload["postId"] == post_id and payload["memberActivityType"] == "POST_CREATE"
    assert {"created_at", "updated_at", "last_attempt_at", "topic", "origin"} <= set(letter)


def test_5xx_from_the_activity_service_is_a_failure_not_a_success(store_uri, apps):
    app = apps.make({"mongo.uri": store_uri})
    transport = get_container(app).transports["post-service"]

    class Failing(WsgiAdapter):
        def send(self, request, **kwargs):
            response = super().send(request, **kwargs)
            response.status_code = 500
            return response

    adapter = Failing(app)
    transport.session.mount("http://dailyfeed.test", adapter)
    client, secret = app.test_client(), get_container(app).settings["auth.jwt-secret"]
    from dailyfeed.tokens import issue_member_token

    response = client.post(
        "/api/posts", json={"content": "x"}, headers={"Authorization": "Bearer " + issue_member_token(secret, 7, 60)}
    )
    assert response.status_code == 201
    assert adapter.calls == 3  # retried
    db = get_container(app).db
    assert db[FEIGN_DEAD_LETTERS].count_documents({"error.type": "TransportUnavailable"}) == 1


def test_an_open_circuit_still_keeps_every_event(api, app, db):
    transport = get_container(app).transports["post-service"]
    for _ in range(12):  # over the minimum calls with every call failing
        assert api.post(7, "/api/posts", json={"content": "x"}).status_code == 201
    assert transport.breaker.state == "open"
    assert api.post(7, "/api/posts", json={"content": "fast"}).status_code == 201
    assert db[FEIGN_DEAD_LETTERS].count_documents({}) == 13
    assert db[FEIGN_DEAD_LETTERS].count_documents({"error.type": CircuitOpen.__name__}) >= 1


def _setup(api):
    post = api.post(7, "/api/posts", json={"title": "t", "content": "original"}).json["data"]
    comment = api.post(8, "/api/comments", json={"postId": post["id"], "content": "c"}).json["data"]
    api.post(9, "/api/comments/replies", json={"postId": post["id"], "parentId": comment["id"], "content": "r"})
    api.post(9, f"/api/posts/{post['id']}/like")
    api.post(9, f"/api/comments/{comment['id']}/like")
    return post["id"], comment["id"]


ACTIONS = {
    "create post": lambda api, p, c: api.post(7, "/api/posts", json={"content": "new"}),
    "update post": lambda api, p, c: api.put(7, f"/api/posts/{p}", json={"title": "T2", "content": "changed"}),
    "delete post": lambda api, p, c: api.delete(7, f"/api/posts/{p}"),
    "like post": lambda api, p, c: api.post(8, f"/api/posts/{p}/like"),
    "unlike post": lambda api, p, c: api.delete(9, f"/api/posts/{p}/like"),
    "comment": lambda api, p, c: api.post(7, "/api/comments", json={"postId": p, "content": "n"}),
    "reply": lambda api, p, c: api.post(7, "/api/comments/replies", json={"postId": p, "parentId": c, "content": "n"}),
    "update comment": lambda api, p, c: api.put(8, f"/api/comments/{c}", json={"content": "changed"}),
    "delete comment": lambda api, p, c: api.delete(8, f"/api/comments/{c}"),
    "like comment": lambda api, p, c: api.post(7, f"/api/comments/{c}/like"),
    "unlike comment": lambda api, p, c: api.delete(9, f"/api/comments/{c}/like"),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_dead_letter_store_failing_too_undoes_the_change_and_answers_503(api, app, db, action):
    post_id, comment_id = _setup(api)  # stored with dead letters: the activity service is unreachable
    before = snapshot(db)
    dailyfeed = get_container(app)
    dailyfeed.dead_letters.db = BrokenDatabase()

    response = ACTIONS[action](api, post_id, comment_id)

    assert response.status_code == 503, response.json
    assert response.json["resultCode"] == "FAIL" and "not saved" in response.json["message"]
    assert snapshot(db) == before  # nothing half-done: no change without its event


def test_the_same_event_failing_again_is_one_dead_letter_with_its_attempts_counted(app, db):
    from dailyfeed.events import ActivityEvent, ActivityType
    from dailyfeed.transport.base import TransportUnavailable

    dead_letters = get_container(app).dead_letters
    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=3)
    dead_letters.record_publisher_failure("feign", event, TransportUnavailable("first"))
    db[FEIGN_DEAD_LETTERS].update_one({"message_key": event.message_key}, {"$set": {"status": "failed"}})
    dead_letters.record_publisher_failure("feign", event, TransportUnavailable("second"))
    [letter] = db[FEIGN_DEAD_LETTERS].find({"message_key": event.message_key})
    assert letter["attempts"] == 2 and letter["error"]["message"] == "second" and letter["status"] == "pending"
    assert json.loads(letter["payload"])["postId"] == 3 and letter["origin"] is None and letter["topic"] is None


# --- the content store failing under a write -------------------------------------------------------------------

STORE_WRITES = {  # action -> the repository write that fails under it
    "create post": "insert_post",
    "update post": "set_post_fields",
    "delete post": "set_post_fields",
    "like post": "add_like",
    "unlike post": "remove_like",
    "comment": "insert_comment",
    "reply": "insert_comment",
    "update comment": "set_comment_fields",
    "delete comment": "set_comments_deleted",
    "like comment": "add_like",
    "unlike comment": "remove_like",
}


@pytest.mark.parametrize("action", list(STORE_WRITES))
def test_a_content_store_failure_during_a_write_answers_503_with_nothing_stored(api, app, db, monkeypatch, action):
    post_id, comment_id = _setup(api)
    before = snapshot(db)
    repo = get_container(app).content_service.repo

    def unavailable(*args, **kwargs):
        raise ServerSelectionTimeoutError("content store unreachable (injected)")

    monkeypatch.setattr(repo, STORE_WRITES[action], unavailable)
    response = ACTIONS[action](api, post_id, comment_id)

    assert response.status_code == 503, response.json
    assert response.json["resultCode"] == "FAIL" and "document store is unavailable" in response.json["message"]
    assert snapshot(db) == before  # no change, no event, no dead letter


def test_a_change_that_cannot_be_undone_still_answers_503_and_says_so_in_the_log(api, app, db, monkeypatch, caplog):
    post_id, _ = _setup(api)
    dailyfeed = get_container(app)
    dailyfeed.dead_letters.db = BrokenDatabase()

    def unavailable(*args, **kwargs):
        raise ServerSelectionTimeoutError("content store gone during the undo (injected)")

    monkeypatch.setattr(dailyfeed.content_service.repo, "delete_post_for_good", unavailable)
    response = api.post(7, "/api/posts", json={"content": "orphan"})

    assert response.status_code == 503
    assert response.json["message"] == (
        "the POST_CREATE activity could not be delivered nor kept for retry; the change was not saved, try again"
    )
    assert any(
        re.fullmatch(r"could not undo the change of member_activity:kafka_event:POST_CREATE###\d+###7###.+", message)
        for message in caplog.messages
    )
    [orphan] = db[POSTS].find({"content": "orphan"})  # what the log warns about: the undo could not run
    assert db[MEMBER_ACTIVITIES].count_documents({"post_id": orphan["_id"]}) == 0
