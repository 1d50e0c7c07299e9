"""Bad input: a 4xx JSON error naming the problem, never a 500, and nothing stored."""

from datetime import datetime, timedelta, timezone

import jwt
import pytest

from dailyfeed.extension import get_container
from dailyfeed.store import COMMENTS, MEMBER_ACTIVITIES, POSTS


@pytest.fixture
def post_id(api):
    return api.post(7, "/api/posts", json={"content": "p"}).json["data"]["id"]


def assert_error(response, status, words):
    assert response.status_code == status, response.json
    body = response.json
    assert body["statusCode"] == status and body["resultCode"] == "FAIL" and body["path"]
    assert words.lower() in body["message"].lower(), body["message"]


@pytest.mark.parametrize(
    "kwargs, status, words",
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "must be JSON"),
        ({"data": "content=x"}, 400, "must be JSON"),
        ({"json": ["content"]}, 400, "JSON object"),
        ({"json": {}}, 400, "content is required"),
        ({"json": {"content": "   "}}, 400, "must not be blank"),
        ({"json": {"content": 5}}, 400, "content must be a string"),
        ({"json": {"content": "x" * 5001}}, 400, "at most 5000"),
        ({"json": {"content": "x", "title": "t" * 201}}, 400, "title must be at most 200"),
        ({"json": {"content": "x", "title": ["t"]}}, 400, "title must be a string"),
        ({"data": '{"content": "' + "x" * 70000 + '"}', "content_type": "application/json"}, 413, "large"),
    ],
)
def test_bad_post_bodies(api, db, kwargs, status, words):
    assert_error(api.post(7, "/api/posts", **kwargs), status, words)
    assert db[POSTS].count_documents({}) == 0 and db[MEMBER_ACTIVITIES].count_documents({}) == 0


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"content": "c"}, 400, "postId is required"),
        ({"postId": "1", "content": "c"}, 400, "postId must be an integer"),
        ({"postId": True, "content": "c"}, 400, "postId must be an integer"),
        ({"postId": -1, "content": "c"}, 400, "positive"),
        ({"postId": 2**70, "content": "c"}, 400, "positive long"),
        ({"postId": 999999, "content": "c"}, 404, "post 999999 not found"),
    ],
)
def test_bad_comment_bodies(api, db, post_id, body, status, words):
    body = {k: (post_id if v == "POST" else v) for k, v in body.items()}
    assert_error(api.post(8, "/api/comments", json=body), status, words)
    assert db[COMMENTS].count_documents({}) == 0


def test_over_long_comment(api, db, post_id):
    assert_error(api.post(8, "/api/comments", json={"postId": post_id, "content": "x" * 1001}), 400, "at most 1000")
    assert_error(
        api.post(8, "/api/comments/replies", json={"postId": post_id, "content": "x"}), 400, "parentId is required"
    )
    assert_error(
        api.post(8, "/api/comments/replies", json={"postId": post_id, "parentId": 424242, "content": "x"}),
        404,
        "parent comment 424242",
    )
    assert db[COMMENTS].count_documents({}) == 0


@pytest.mark.parametrize(
    "query, words",
    [
        ("size=0", "size must be between 1 and 100"),
        ("size=101", "size must be between 1 and 100"),
        ("size=-5", "size must be between"),
        ("page=-1", "page must be 0 or more"),
        ("page=abc", "page must be an integer"),
        ("size=99999999999999999999999", "size must be between"),
        ("authorId=bob", "authorId must be an integer"),
    ],
)
def test_bad_paging(api, query, words):
    assert_error(api.get(None, f"/api/posts?{query}"), 400, words)


def test_unknown_ids_and_routes_are_404(api, post_id):
    assert_error(api.get(None, "/api/posts/424242"), 404, "post 424242 not found")
    assert_error(api.put(7, "/api/posts/424242", json={"content": "x"}), 404, "not found")
    assert_error(api.get(None, "/api/posts/not-a-number"), 404, "not found")
    assert_error(api.get(None, f"/api/posts/{2**64}"), 404, "not found")
    assert_error(api.delete(7, "/api/comments/424242"), 404, "comment 424242 not found")
    assert_error(api.post(7, "/api/posts/424242/like"), 404, "post 424242 not found")
    assert_error(api.get(8, "/api/member-activities/followings?type=POKE"), 400, "type must be one of")
    assert_error(api.patch(7, f"/api/posts/{post_id}", json={}), 405, "method")


def _token(secret, **claims):
    base = {"sub": "7", "exp": datetime.now(timezone.utc) + timedelta(hours=1)}
    return {"Authorization": "Bearer " + jwt.encode({**base, **claims}, secret, algorithm="HS256")}


def test_tokens_are_verified_on_every_write(client, app, db):
    secret = get_container(app).settings["auth.jwt-secret"]
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    cases = [
        ({}, "missing bearer token"),
        ({"Authorization": "Basic abc"}, "missing bearer token"),
        ({"Authorization": "Bearer not.a.jwt"}, "invalid"),
        (_token("another-secret-another-secret-0123456789"), "invalid"),
        (_token(secret, exp=past), "expired"),
        (_token(secret, sub="bob"), "not a member id"),
        ({"Authorization": "Bearer " + "a" * 5000}, "too long"),
    ]
    for headers, words in cases:
        assert_error(client.post("/api/posts", json={"content": "x"}, headers=headers), 401, words)
        assert_error(client.post("/api/members/3/follow", headers=headers), 401, words)
    none_alg = jwt.encode({"sub": "7", "exp": datetime.now(timezone.utc) + timedelta(hours=1)}, None, algorithm="none")
    assert_error(
        client.post("/api/posts", json={"content": "x"}, headers={"Authorization": f"Bearer {none_alg}"}),
        401,
        "invalid",
    )
    assert db[POSTS].count_documents({}) == 0 and db["follows"].count_documents({}) == 0
