"""The inputs that answered 500 before the validation layer (issue 10, D1-D5 and the id spellings), the decisions
SPEC left open, and the original's keyless feign bodies; on both stores. A refused request leaves every
collection exactly as it was."""

import json
import re
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from dailyfeed.events import ActivityEvent, ActivityType, as_utc, key_pattern, record_request_body
from dailyfeed.extension import get_container
from dailyfeed.store import COMMENTS, MEMBER_ACTIVITIES
from dailyfeed.tokens import issue_admin_token, issue_service_token

from .test_bad_input import assert_error

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def snapshot(db):
    """Every document of every collection, to compare before and after a refused request."""
    return {
        name: sorted((json.dumps(doc, default=str, sort_keys=True) for doc in db[name].find()))
        for name in sorted(db.list_collection_names())
    }


@pytest.fixture
def thread(api):
    """A post of member 7 with a comment and a reply of member 8."""
    post = api.post(7, "/api/posts", json={"title": "t", "content": "p"}).json["data"]
    comment = api.post(8, "/api/comments", json={"postId": post["id"], "content": "c"}).json["data"]
    reply = api.post(
        8, "/api/comments/replies", json={"postId": post["id"], "parentId": comment["id"], "content": "r"}
    ).json["data"]
    return post, comment, reply


def admin_headers(app) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_admin_token(get_container(app).settings['auth.jwt-secret'], 60)}"}


def service_headers(app):
    return {"Authorization": "Bearer " + issue_service_token(get_container(app).settings["auth.jwt-secret"])}


def json_operations(app, post_id, comment_id):
    """Every operation of /openapi.json that takes a JSON body, with real ids in its path."""
    document = app.test_client().get("/openapi.json").json
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            if "requestBody" in op:
                yield method, path.replace("{post_id}", str(post_id)).replace("{comment_id}", str(comment_id))


@pytest.mark.parametrize(
    "bomb",
    ["[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000, '{"content": ' + "[" * 10_000 + "]" * 10_000 + "}"],
)
def test_d1_deeply_nested_bodies_are_400_on_every_json_endpoint(app, client, db, token, thread, bomb):
    post, comment, _ = thread
    before = snapshot(db)
    operations = list(json_operations(app, post["id"], comment["id"]))
    # posts create/update, comment, reply, comment update, four record endpoints, four admin actions, three task
    # actions (start, cancel, resume)
    assert len(operations) == 16
    for method, path in operations:
        headers = (
            service_headers(app)
            if "member-activities" in path
            else admin_headers(app)
            if path.startswith("/api/admin/")
            else token(7)
        )
        response = client.open(path, method=method.upper(), data=bomb, content_type="application/json", headers=headers)
        assert_error(response, 400, "nested deeper than 32 levels")
    assert snapshot(db) == before


def test_d2_lone_surrogates_in_text_are_400(api, db, thread):
    post, comment, _ = thread
    before = snapshot(db)
    for member, method, path, body in [
        (7, "post", "/api/posts", {"content": "\ud800"}),
        (7, "put", f"/api/posts/{post['id']}", {"content": "\ud800"}),
        (8, "post", "/api/comments", {"postId": post["id"], "content": "a\ud800b"}),
        (8, "post", "/api/comments/replies", {"postId": post["id"], "parentId": comment["id"], "content": "\ud800"}),
        (8, "put", f"/api/comments/{comment['id']}", {"content": "\udfff"}),
    ]:
        response = getattr(api, method)(member, path, json=body)
        assert_error(response, 400, "content must be valid Unicode text")
    assert snapshot(db) == before


def test_d3_a_bad_title_leaves_the_post_and_the_activities_unchanged(api, db, thread, activities):
    post, _, _ = thread
    before = snapshot(db)
    response = api.put(7, f"/api/posts/{post['id']}", json={"content": "changed", "title": "\udfff"})
    assert_error(response, 400, "title must be valid Unicode text")
    assert snapshot(db) == before
    assert api.get(None, f"/api/posts/{post['id']}").json["data"] == post
    assert "POST_UPDATE" not in [a["member_activity_type"] for a in activities()]


def _signed(app, sub):
    claims = {"sub": sub, "exp": datetime.now(timezone.utc) + timedelta(hours=1)}
    token = jwt.encode(claims, get_container(app).settings["auth.jwt-secret"], algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "sub", ["9223372036854775808", "9" * 40, "+7", " 7", "7 ", "٧", "７", "7_0", "07", "0", "-7", "7.0", "", 7]
)
def test_d4_a_signed_token_whose_subject_is_not_an_id_is_401(app, client, db, thread, sub):
    post, comment, _ = thread
    headers = _signed(app, sub)
    before = snapshot(db)
    for method, path, body in [
        ("get", "/api/member-activities/followings", None),
        ("post", "/api/posts", {"content": "x"}),
        ("put", f"/api/posts/{post['id']}", {"content": "x"}),
        ("post", f"/api/posts/{post['id']}/like", None),
        ("delete", f"/api/comments/{comment['id']}", None),
        ("post", "/api/members/3/follow", None),
    ]:
        response = getattr(client, method)(path, json=body, headers=headers)
        assert_error(response, 401, "subject is not a member id")
    assert snapshot(db) == before


def test_d4_the_largest_id_is_still_a_member(app, client):
    response = client.post("/api/posts", json={"content": "x"}, headers=_signed(app, str(2**63 - 1)))
    assert response.status_code == 201 and response.json["data"]["authorId"] == 2**63 - 1


@pytest.mark.parametrize(
    "created_at",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:30:00-01:00",
        "1969-12-31T23:59:59Z",
        [1, 1, 1],
        [10000, 1, 1],
        "٢٠٢٦-01-01T00:00:00Z",
    ],
)
def test_d5_record_times_outside_1970_9999_are_400(app, client, db, created_at):
    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=12)
    before = snapshot(db)
    for body in (
        record_request_body(event),
        {k: v for k, v in record_request_body(event).items() if k != "messageKey"},
    ):
        response = client.post(
            "/api/member-activities/posts", json={**body, "createdAt": created_at}, headers=service_headers(app)
        )
        assert_error(response, 400, "createdAt")
    assert snapshot(db) == before


def test_out_of_range_and_foreign_digit_ids(api, db, thread):
    post, _, _ = thread
    assert_error(api.get(None, "/api/posts?authorId=99999999999999999999999"), 400, "authorId must be an integer id")
    assert_error(api.get(None, "/api/posts?authorId=٧"), 400, "authorId must be an integer id")
    assert_error(api.get(None, "/api/posts?authorId=07"), 400, "authorId must be an integer id")
    digits = str(post["id"])
    for spelling in (
        f"0{digits}",
        digits.translate(ARABIC_INDIC),
        digits.translate(FULLWIDTH),
        f"+{digits}",
        str(2**63),
        "0",
    ):
        assert_error(api.get(None, f"/api/posts/{spelling}"), 404, "not found")
        assert_error(api.put(7, f"/api/posts/{spelling}", json={"content": "x"}), 404, "not found")
    assert api.get(None, f"/api/posts/{digits}").json["data"] == post
    for body in (
        {"postId": 0, "content": "c"},
        {"postId": 2**63, "content": "c"},
        {"postId": 1.0, "content": "c"},
        {"postId": str(post["id"]), "content": "c"},
        {"postId": True, "content": "c"},
    ):
        assert api.post(8, "/api/comments", json=body).status_code == 400
    assert db[COMMENTS].count_documents({}) == 2


def test_comments_of_a_deleted_post_are_read_only(api, db, thread, activities):
    post, comment, reply = thread
    assert api.post(9, f"/api/comments/{comment['id']}/like").status_code == 201
    assert api.delete(7, f"/api/posts/{post['id']}").status_code == 200
    before = snapshot(db)
    for item in (comment, reply):
        assert_error(api.put(8, f"/api/comments/{item['id']}", json={"content": "edit"}), 404, "was deleted")
        assert_error(api.post(9, f"/api/comments/{item['id']}/like"), 404, "was deleted")
        assert_error(api.delete(8, f"/api/comments/{item['id']}"), 404, "was deleted")
    assert_error(api.delete(9, f"/api/comments/{comment['id']}/like"), 404, "was deleted")
    assert_error(
        api.post(8, "/api/comments/replies", json={"postId": post["id"], "parentId": comment["id"], "content": "r"}),
        404,
        f"post {post['id']} not found",
    )
    assert snapshot(db) == before


@pytest.mark.parametrize("member_id", [0, -1, -(2**63)])
def test_record_endpoints_refuse_member_ids_below_one(app, client, db, member_id):
    body = {"memberId": member_id, "postId": 12, "activityType": "POST_CREATE"}
    response = client.post("/api/member-activities/posts", json=body, headers=service_headers(app))
    assert_error(response, 400, "memberId must be a positive long")
    assert db[MEMBER_ACTIVITIES].count_documents({}) == 0


@pytest.mark.parametrize(
    "path, body, code, target",
    [
        ("posts", {"memberId": 7, "postId": 12, "activityType": "POST_CREATE"}, "POST_CREATE", 12),
        (
            "comments",
            {"memberId": 7, "postId": 12, "commentId": 30, "activityType": "COMMENT_UPDATE"},
            "COMMENT_UPDATE",
            30,
        ),
        ("posts/likes", {"memberId": 7, "postId": 12, "activityType": "LIKE_POST_CANCEL"}, "LIKE_CANCEL_POST", 12),
        (
            "comments/likes",
            {"memberId": 7, "postId": 12, "commentId": 30, "activityType": "like_comment"},
            "LIKE_COMMENT",
            30,
        ),
    ],
)
def test_the_originals_feign_bodies_without_message_key_are_recorded(app, client, activities, path, body, code, target):
    received = datetime.now(timezone.utc)
    response = client.post(f"/api/member-activities/{path}", json=body, headers=service_headers(app))
    assert response.status_code == 201, response.json
    key = response.json["data"]["messageKey"]
    assert re.fullmatch(key_pattern(), key)
    assert key.startswith(f"member_activity:kafka_event:{code}###{target}###7###")
    stamp = datetime.strptime(key.rsplit("###", 1)[1][:26], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    assert received - timedelta(seconds=1) <= stamp <= datetime.now(timezone.utc)
    [stored] = activities()
    assert stored["message_key"] == key and stored["member_id"] == 7
    assert (stored["post_id"], stored["comment_id"]) == (12, body.get("commentId"))


def test_a_keyless_feign_body_with_created_at_keeps_that_time_and_is_keyed_by_its_receipt(app, client, activities):
    """The action's time is the body's createdAt; the key still comes from the time of receipt, as the
    original built it."""
    body = {"memberId": 7, "postId": 12, "activityType": "POST_UPDATE", "createdAt": "2026-01-02T03:04:05.678Z"}
    received = datetime.now(timezone.utc)
    response = client.post("/api/member-activities/posts", json=body, headers=service_headers(app))
    assert response.status_code == 201, response.json
    key = response.json["data"]["messageKey"]
    assert key.startswith("member_activity:kafka_event:POST_UPDATE###12###7###")
    stamp = datetime.strptime(key.rsplit("###", 1)[1][:26], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    assert received - timedelta(seconds=1) <= stamp <= datetime.now(timezone.utc)
    [stored] = activities()
    assert stored["message_key"] == key
    assert as_utc(stored["created_at"]) == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)  # BSON keeps ms
    assert response.json["data"]["createdAt"].startswith("2026-01-02T03:04:05.678")
