"""The activity module: follows, the followings feed, one member's activities, and the record endpoints."""

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from dailyfeed.events import ActivityEvent, ActivityType, record_request_body
from dailyfeed.extension import get_container
from dailyfeed.tokens import issue_admin_token, issue_service_token


def test_feed_shows_every_action_of_followed_members_once_newest_first(api, activities):
    assert api.post(8, "/api/members/7/follow").status_code == 201
    post = api.post(7, "/api/posts", json={"content": "p"}).json["data"]
    comment = api.post(7, "/api/comments", json={"postId": post["id"], "content": "c"}).json["data"]
    api.post(7, f"/api/posts/{post['id']}/like")
    api.post(7, f"/api/comments/{comment['id']}/like")
    api.put(7, f"/api/posts/{post['id']}", json={"content": "p2"})
    api.post(9, "/api/posts", json={"content": "not followed"})

    feed = api.get(8, "/api/member-activities/followings").json["data"]
    types = [a["memberActivityType"] for a in feed["content"]]
    assert types == ["POST_UPDATE", "LIKE_COMMENT", "LIKE_POST", "COMMENT_CREATE", "POST_CREATE"]
    assert all(a["memberId"] == 7 for a in feed["content"])
    assert len({a["messageKey"] for a in feed["content"]}) == 5

    likes = api.get(8, "/api/member-activities/followings?type=like_post").json["data"]["content"]
    assert [a["memberActivityType"] for a in likes] == ["LIKE_POST"]
    paged = api.get(8, "/api/member-activities/followings?page=1&size=2").json["data"]
    assert [a["memberActivityType"] for a in paged["content"]] == ["LIKE_POST", "COMMENT_CREATE"]
    assert paged["hasNext"] is True


def test_follow_rules_and_follow_activities(api, activities):
    assert api.post(8, "/api/members/8/follow").status_code == 400
    assert api.post(8, "/api/members/7/follow").status_code == 201
    assert api.post(8, "/api/members/7/follow").status_code == 409
    assert api.delete(8, "/api/members/7/follow").status_code == 200
    assert api.delete(8, "/api/members/7/follow").status_code == 404
    assert [(a["member_activity_type"], a["member_id"], a["following_id"]) for a in activities()] == [
        ("MEMBER_FOLLOW", 8, 7),
        ("MEMBER_UNFOLLOW", 8, 7),
    ]
    assert api.get(8, "/api/member-activities/followings").json["data"]["content"] == []


def test_a_member_follows_at_most_999(api, db):
    db["follows"].insert_many([{"follower_id": 8, "following_id": 1000 + i} for i in range(999)])
    response = api.post(8, "/api/members/7/follow")
    assert response.status_code == 400 and "at most 999" in response.json["message"]
    assert db["follows"].count_documents({"follower_id": 8}) == 999


def test_member_activities_lists_one_members_actions(api):
    post = api.post(7, "/api/posts", json={"content": "a"}).json["data"]
    api.post(9, "/api/posts", json={"content": "b"})
    content = api.get(None, "/api/members/7/activities").json["data"]["content"]
    assert [(a["memberId"], a["memberActivityType"]) for a in content] == [(7, "POST_CREATE")]

    api.post(7, f"/api/posts/{post['id']}/like")
    api.post(9, f"/api/posts/{post['id']}/like")
    likes = api.get(None, "/api/members/7/activities?type=LIKE_POST").json["data"]
    assert [(a["memberId"], a["memberActivityType"]) for a in likes["content"]] == [(7, "LIKE_POST")]
    first = api.get(None, "/api/members/7/activities?size=1").json["data"]
    assert [a["memberActivityType"] for a in first["content"]] == ["LIKE_POST"] and first["hasNext"] is True


def _record(client, app, path, body):
    token = issue_service_token(get_container(app).settings["auth.jwt-secret"])
    return client.post(f"/api/member-activities/{path}", json=body, headers={"Authorization": f"Bearer {token}"})


def test_record_endpoint_is_idempotent_by_message_key(client, app, activities):
    event = ActivityEvent.new(ActivityType.LIKE_POST, 7, post_id=12, at=datetime(2026, 1, 2, tzinfo=timezone.utc))
    first = _record(client, app, "posts/likes", record_request_body(event))
    again = _record(client, app, "posts/likes", record_request_body(event))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json["data"]["messageKey"] == event.message_key
    [stored] = activities()
    assert (stored["member_id"], stored["post_id"], stored["member_activity_type"]) == (7, 12, "LIKE_POST")


def test_record_endpoint_needs_a_service_token_and_a_matching_type(client, app, api, activities):
    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=12)
    assert api.post(7, "/api/member-activities/posts", json=record_request_body(event)).status_code == 403
    assert client.post("/api/member-activities/posts", json=record_request_body(event)).status_code == 401
    wrong = _record(client, app, "comments", record_request_body(event))
    assert wrong.status_code == 400 and "does not belong" in wrong.json["message"]
    blank = _record(client, app, "posts", {**record_request_body(event), "messageKey": " "})
    assert blank.status_code == 400 and "messageKey must not be blank" in blank.json["message"]
    assert activities() == []


def test_scoped_tokens_open_only_their_own_door(client, app, activities):
    """A service or admin token never acts as a member; an admin token cannot record activities."""
    secret = get_container(app).settings["auth.jwt-secret"]
    for token in (issue_service_token(secret), issue_admin_token(secret, 60)):
        response = client.post("/api/posts", json={"content": "not mine"}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403 and "cannot act as a member" in response.json["message"]
    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=12)
    admin = client.post(
        "/api/member-activities/posts",
        json=record_request_body(event),
        headers={"Authorization": f"Bearer {issue_admin_token(secret, 60)}"},
    )
    assert admin.status_code == 403 and "activity:record" in admin.json["message"]
    assert activities() == [] and get_container(app).db["posts"].count_documents({}) == 0


@pytest.mark.parametrize("member_id", ["--7", "²", "7-"])
def test_a_record_call_with_an_id_that_only_looks_numeric_is_400_and_stores_nothing(client, app, activities, member_id):
    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=31)
    response = _record(client, app, "posts", {**record_request_body(event), "memberId": member_id})
    assert response.status_code == 400, response.json
    assert "memberId must be an integer" in response.json["message"]
    assert activities() == []


@pytest.mark.parametrize("change", ["follow", "unfollow"])
def test_a_follow_change_whose_activity_cannot_be_recorded_is_undone_with_503(
    api, app, activities, monkeypatch, change
):
    from pymongo.errors import AutoReconnect

    from dailyfeed.store import FOLLOWS

    db = get_container(app).db
    if change == "unfollow":
        assert api.post(8, "/api/members/7/follow").status_code == 201
    before = (list(db[FOLLOWS].find({}, {"_id": 0, "created_at": 0})), activities())
    service = get_container(app).activity_service

    def unrecordable(event):
        raise AutoReconnect("activities unreachable (injected)")

    monkeypatch.setattr(service, "record_activity", unrecordable)
    call = api.post if change == "follow" else api.delete
    response = call(8, "/api/members/7/follow")

    assert response.status_code == 503, response.json
    assert "the change was undone" in response.json["message"]
    assert (list(db[FOLLOWS].find({}, {"_id": 0, "created_at": 0})), activities()) == before


def test_follow_refusals_name_the_members_and_the_999th_following_is_allowed(api, db, activities):
    def refused(response, status):
        assert response.status_code == status, response.json
        return response.json["message"]

    assert refused(api.post(8, "/api/members/8/follow"), 400) == "a member cannot follow themselves"
    db["follows"].insert_many([{"follower_id": 8, "following_id": 1000 + i} for i in range(998)])
    assert api.post(8, "/api/members/7/follow").status_code == 201  # the 999th
    assert refused(api.post(8, "/api/members/7/follow"), 409) == "member 8 already follows member 7"
    assert refused(api.post(8, "/api/members/6/follow"), 400) == "a member can follow at most 999 members"
    assert refused(api.delete(8, "/api/members/6/follow"), 404) == "member 8 does not follow member 6"
    assert [(a["member_activity_type"], a["following_id"]) for a in activities()] == [("MEMBER_FOLLOW", 7)]


def test_an_activity_reads_back_with_its_fields_and_a_follow_with_whom(api, app):
    api.post(8, "/api/members/7/follow")
    api.post(9, "/api/members/8/follow")
    at = datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=timezone.utc)
    event = replace(
        ActivityEvent.new(ActivityType.COMMENT_UPDATE, 7, post_id=31, comment_id=58, at=at),
        updated_at=datetime(2026, 1, 3, tzinfo=timezone.utc),
    )
    created, recorded = get_container(app).activity_service.record_activity(event)
    assert created

    [comment] = api.get(8, "/api/member-activities/followings").json["data"]["content"]
    assert comment == recorded
    assert {k: v for k, v in comment.items() if k != "id"} == {
        "memberId": 7,
        "postId": 31,
        "commentId": 58,
        "memberActivityType": "COMMENT_UPDATE",
        "category": "COMMENT",
        "messageKey": event.message_key,
        "createdAt": "2026-01-02T03:04:05.678Z",
        "updatedAt": "2026-01-03T00:00:00.000Z",
    }
    assert len(comment["id"]) == 24  # the stored document's id, as text
    [follow] = api.get(None, "/api/members/8/activities").json["data"]["content"]
    assert (follow["memberActivityType"], follow["followingId"], follow["category"]) == ("MEMBER_FOLLOW", 7, "MEMBER")
    assert follow["postId"] is None and follow["commentId"] is None


def test_a_known_key_answers_200_with_the_activity_stored_first(client, app, activities):
    event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=31, at=datetime(2026, 1, 2, tzinfo=timezone.utc))
    first = _record(client, app, "posts", record_request_body(event))
    again = _record(client, app, "posts", {**record_request_body(event), "postId": 99})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["data"] == first.json["data"]  # the stored one, not the second call's body
    assert [a["post_id"] for a in activities()] == [31]


def test_a_member_who_follows_nobody_has_an_empty_feed_even_with_activities_around(api):
    api.post(7, "/api/posts", json={"content": "p"})
    feed = api.get(8, "/api/member-activities/followings").json["data"]
    assert feed["content"] == [] and feed["hasNext"] is False


def test_an_undone_follow_is_logged_with_its_key_and_the_reason(api, app, monkeypatch, caplog):
    from pymongo.errors import AutoReconnect

    service = get_container(app).activity_service

    def unrecordable(event):
        raise AutoReconnect("activities unreachable (injected)")

    monkeypatch.setattr(service, "record_activity", unrecordable)
    with caplog.at_level("ERROR", logger="dailyfeed.activity.service"):
        response = api.post(8, "/api/members/7/follow")
    assert response.status_code == 503
    assert response.json["message"] == "the activity could not be recorded; the change was undone, try again"

    [line] = [r for r in caplog.records if r.name == "dailyfeed.activity.service"]
    assert line.levelname == "ERROR"
    message = line.getMessage()
    assert message.startswith("could not record member_activity:kafka_event:MEMBER_FOLLOW###7###8###")
    assert message.endswith(" (activities unreachable (injected)); undoing the follow change")


def test_one_members_activities_page_by_page(api):
    for n in range(3):
        api.post(7, "/api/posts", json={"content": f"post {n}"})

    pages = [api.get(None, f"/api/members/7/activities?size=2&page={page}").json["data"] for page in (0, 1)]

    assert [len(p["content"]) for p in pages] == [2, 1]
    assert [p["hasNext"] for p in pages] == [True, False]
    keys = [a["messageKey"] for p in pages for a in p["content"]]
    assert len(set(keys)) == 3  # each activity once, none on both pages
