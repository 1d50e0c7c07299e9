"""Every content action of SPEC section 3, its status and envelope, and the activity it records."""

import pytest

from dailyfeed.store import COMMENT_LIKES, COMMENTS, POST_LIKES, POSTS

from ..support.content import FIRST_COMMENT_ID, FIRST_POST_ID


def create_post(api, member=7, **body):
    response = api.post(member, "/api/posts", json={"title": "hello", "content": "first post", **body})
    assert response.status_code == 201, response.json
    return response.json["data"]


def create_comment(api, member, post_id, content="nice"):
    response = api.post(member, "/api/comments", json={"postId": post_id, "content": content})
    assert response.status_code == 201, response.json
    return response.json["data"]


def test_create_post_answers_201_envelope_and_records_post_create(api, activities):
    response = api.post(7, "/api/posts", json={"title": "hello", "content": "first post"})
    assert response.status_code == 201
    assert response.json["status"] == 201 and response.json["result"] == "SUCCESS"
    post = response.json["data"]
    assert post["authorId"] == 7 and post["content"] == "first post" and isinstance(post["id"], int)
    [activity] = activities()
    assert activity["member_activity_type"] == "POST_CREATE"
    assert (activity["member_id"], activity["post_id"], activity["comment_id"]) == (7, post["id"], None)
    assert activity["message_key"].startswith(f"member_activity:kafka_event:POST_CREATE###{post['id']}###7###")


def test_read_update_delete_post(api, activities):
    post = create_post(api)
    assert api.get(None, f"/api/posts/{post['id']}").json["data"]["content"] == "first post"

    updated = api.put(7, f"/api/posts/{post['id']}", json={"content": "edited"})
    assert updated.status_code == 200 and updated.json["data"]["content"] == "edited"
    assert updated.json["data"]["title"] == "hello"  # no title given: kept
    assert api.get(None, f"/api/posts/{post['id']}").json["data"]["content"] == "edited"  # the new content is stored

    deleted = api.delete(7, f"/api/posts/{post['id']}")
    assert deleted.status_code == 200
    assert api.get(None, f"/api/posts/{post['id']}").status_code == 404  # soft delete is saved
    assert [a["member_activity_type"] for a in activities()] == ["POST_CREATE", "POST_UPDATE", "POST_DELETE"]


def test_list_posts_pages_newest_first_and_filters_by_author(api):
    ids = [create_post(api, member=7, content=f"p{i}")["id"] for i in range(3)]
    other = create_post(api, member=8)["id"]
    page = api.get(None, "/api/posts?authorId=7&page=0&size=2").json["data"]
    assert [p["id"] for p in page["content"]] == [ids[2], ids[1]]
    assert page["hasNext"] is True and page["page"] == 0 and page["size"] == 2
    last = api.get(None, "/api/posts?authorId=7&page=1&size=2").json["data"]
    assert [p["id"] for p in last["content"]] == [ids[0]] and last["hasNext"] is False
    everyone = api.get(None, "/api/posts").json["data"]
    assert other in [p["id"] for p in everyone["content"]] and everyone["size"] == 20


def test_like_and_unlike_post_record_the_liker_not_the_author(api, activities):
    post = create_post(api, member=7)
    liked = api.post(9, f"/api/posts/{post['id']}/like")
    assert liked.status_code == 201 and liked.json["data"]["likeCount"] == 1
    assert api.post(9, f"/api/posts/{post['id']}/like").status_code == 409
    unliked = api.delete(9, f"/api/posts/{post['id']}/like")
    assert unliked.status_code == 200 and unliked.json["data"]["likeCount"] == 0
    assert api.delete(9, f"/api/posts/{post['id']}/like").status_code == 404
    assert api.post(9, f"/api/posts/{post['id']}/like").status_code == 201  # like again
    likes = activities(post_id=post["id"], member_id=9)
    assert [a["member_activity_type"] for a in likes] == ["LIKE_POST", "LIKE_POST_CANCEL", "LIKE_POST"]
    assert len({a["message_key"] for a in likes}) == 3  # like → unlike → like: three distinct keys


def test_comments_replies_and_depth_limit(api, activities):
    post = create_post(api)
    top = create_comment(api, 8, post["id"])
    assert top["depth"] == 0
    reply = api.post(9, "/api/comments/replies", json={"postId": post["id"], "parentId": top["id"], "content": "r1"})
    assert reply.status_code == 201 and reply.json["data"]["depth"] == 1
    deeper = api.post(
        8, "/api/comments/replies", json={"postId": post["id"], "parentId": reply.json["data"]["id"], "content": "r2"}
    )
    assert deeper.status_code == 201 and deeper.json["data"]["depth"] == 2
    too_deep = api.post(
        8, "/api/comments/replies", json={"postId": post["id"], "parentId": deeper.json["data"]["id"], "content": "r3"}
    )
    assert too_deep.status_code == 400 and "at most 2 levels" in too_deep.json["message"]
    created = activities(member_activity_type="COMMENT_CREATE")
    assert [(a["member_id"], a["post_id"]) for a in created] == [(8, post["id"]), (9, post["id"]), (8, post["id"])]
    listed = api.get(None, f"/api/posts/{post['id']}/comments").json["data"]["content"]
    assert [c["depth"] for c in listed] == [0, 1, 2]


def test_reply_parent_must_belong_to_the_same_post(api):
    first, second = create_post(api), create_post(api)
    parent = create_comment(api, 8, first["id"])
    response = api.post(
        8, "/api/comments/replies", json={"postId": second["id"], "parentId": parent["id"], "content": "x"}
    )
    assert response.status_code == 400 and "another post" in response.json["message"]


def test_update_and_delete_comment_deletes_its_replies(api, activities):
    post = create_post(api)
    top = create_comment(api, 8, post["id"])
    api.post(9, "/api/comments/replies", json={"postId": post["id"], "parentId": top["id"], "content": "r"})
    updated = api.put(8, f"/api/comments/{top['id']}", json={"content": "edited"})
    assert updated.status_code == 200 and updated.json["data"]["content"] == "edited"
    deleted = api.delete(8, f"/api/comments/{top['id']}")
    assert deleted.status_code == 200 and deleted.json["data"]["deletedReplies"] == 1
    assert api.get(None, f"/api/posts/{post['id']}/comments").json["data"]["content"] == []
    assert [a["member_activity_type"] for a in activities(member_id=8)] == [
        "COMMENT_CREATE",
        "COMMENT_UPDATE",
        "COMMENT_DELETE",
    ]


def test_like_and_unlike_comment(api, activities):
    post = create_post(api)
    comment = create_comment(api, 8, post["id"])
    assert api.post(9, f"/api/comments/{comment['id']}/like").status_code == 201
    assert api.post(9, f"/api/comments/{comment['id']}/like").status_code == 409
    assert api.delete(9, f"/api/comments/{comment['id']}/like").status_code == 200
    assert api.delete(9, f"/api/comments/{comment['id']}/like").status_code == 404
    likes = activities(member_id=9)
    assert [a["member_activity_type"] for a in likes] == ["LIKE_COMMENT", "LIKE_COMMENT_CANCEL"]
    assert all(a["comment_id"] == comment["id"] and a["post_id"] == post["id"] for a in likes)


def test_another_members_post_or_comment_is_403_and_unchanged(api):
    post = create_post(api, member=7)
    comment = create_comment(api, 8, post["id"])
    assert api.put(8, f"/api/posts/{post['id']}", json={"content": "mine now"}).status_code == 403
    assert api.delete(8, f"/api/posts/{post['id']}").status_code == 403
    assert api.put(7, f"/api/comments/{comment['id']}", json={"content": "x"}).status_code == 403
    forbidden = api.delete(7, f"/api/comments/{comment['id']}")
    assert forbidden.status_code == 403 and forbidden.json["resultCode"] == "FAIL"
    assert api.get(None, f"/api/posts/{post['id']}").json["data"]["content"] == "first post"
    assert len(api.get(None, f"/api/posts/{post['id']}/comments").json["data"]["content"]) == 1


# --- every write read back, with distinct ids (posts from 31, comments from 58, members 7, 8, 9) -----------------


def stored(db, collection, **query):
    return list(db[collection].find(query, {"_id": 0, "created_at": 0, "pubs": 0}).sort("member_id", 1))


def test_a_created_post_is_stored_as_answered(api, db, activities):
    post = create_post(api, member=7, title="my title", content="my content")
    assert post["id"] == FIRST_POST_ID and post["likeCount"] == 0
    read = api.get(None, f"/api/posts/{post['id']}").json["data"]
    assert read == post
    assert (read["authorId"], read["title"], read["content"]) == (7, "my title", "my content")
    assert read["createdAt"] == read["updatedAt"]
    untitled = create_post(api, member=8, title=None)
    assert api.get(None, f"/api/posts/{untitled['id']}").json["data"]["title"] is None


def test_an_updated_post_stores_its_new_title_and_content(api, db, activities):
    post = create_post(api, member=7)
    updated = api.put(7, f"/api/posts/{post['id']}", json={"title": "new title", "content": "new content"}).json
    read = api.get(None, f"/api/posts/{post['id']}").json["data"]
    assert (
        (read["title"], read["content"])
        == ("new title", "new content")
        == (updated["data"]["title"], updated["data"]["content"])
    )
    assert read["updatedAt"] > read["createdAt"] == post["createdAt"]
    assert api.put(7, f"/api/posts/{post['id']}", json={"title": None, "content": "c"}).json["data"]["title"] is None
    assert api.get(None, f"/api/posts/{post['id']}").json["data"]["title"] is None  # an explicit null clears it
    [update, _] = activities(member_activity_type="POST_UPDATE")
    assert (update["member_id"], update["post_id"], update["comment_id"]) == (7, post["id"], None)


def test_a_deleted_post_is_kept_marked_deleted_and_its_event_names_it(api, db, activities):
    post = create_post(api, member=7)
    assert api.delete(7, f"/api/posts/{post['id']}").json["data"] == {"id": post["id"], "deleted": True}
    doc = db[POSTS].find_one({"_id": post["id"]})
    assert doc["is_deleted"] is True and doc["deleted_at"] is not None and doc["content"] == "first post"
    [event] = activities(member_activity_type="POST_DELETE")
    assert (event["member_id"], event["post_id"]) == (7, post["id"])
    assert api.delete(7, f"/api/posts/{post['id']}").status_code == 404


def test_a_created_comment_and_reply_are_stored_as_answered(api, db, activities):
    post = create_post(api, member=7)
    comment = create_comment(api, 8, post["id"], content="the comment")
    assert (post["id"], comment["id"]) == (FIRST_POST_ID, FIRST_COMMENT_ID)
    reply = api.post(
        9, "/api/comments/replies", json={"postId": post["id"], "parentId": comment["id"], "content": "the reply"}
    ).json["data"]
    listed = api.get(None, f"/api/posts/{post['id']}/comments").json["data"]["content"]
    assert listed == [comment, reply]
    assert [(c["postId"], c["parentId"], c["depth"], c["authorId"], c["content"], c["likeCount"]) for c in listed] == [
        (post["id"], None, 0, 8, "the comment", 0),
        (post["id"], comment["id"], 1, 9, "the reply", 0),
    ]
    created = activities(member_activity_type="COMMENT_CREATE")
    assert [(a["member_id"], a["post_id"], a["comment_id"]) for a in created] == [
        (8, post["id"], comment["id"]),
        (9, post["id"], reply["id"]),
    ]
    assert created[0]["message_key"].startswith(f"member_activity:kafka_event:COMMENT_CREATE###{comment['id']}###8###")


def test_an_edited_comment_is_saved(api, db, activities):
    post = create_post(api, member=7)
    comment = create_comment(api, 8, post["id"], content="before")
    edited = api.put(8, f"/api/comments/{comment['id']}", json={"content": "after"}).json["data"]
    [listed] = api.get(None, f"/api/posts/{post['id']}/comments").json["data"]["content"]
    assert listed == edited and listed["content"] == "after" and listed["updatedAt"] > listed["createdAt"]
    [event] = activities(member_activity_type="COMMENT_UPDATE")
    assert (event["member_id"], event["post_id"], event["comment_id"]) == (8, post["id"], comment["id"])


def test_deleting_a_comment_deletes_its_whole_thread_and_nothing_else(api, db, activities):
    post = create_post(api, member=7)
    top, other = create_comment(api, 8, post["id"]), create_comment(api, 9, post["id"], content="other")
    reply = api.post(
        9, "/api/comments/replies", json={"postId": post["id"], "parentId": top["id"], "content": "r1"}
    ).json["data"]
    api.post(8, "/api/comments/replies", json={"postId": post["id"], "parentId": reply["id"], "content": "r2"})
    deleted = api.delete(8, f"/api/comments/{top['id']}").json["data"]
    assert deleted == {"id": top["id"], "deleted": True, "deletedReplies": 2}
    assert [c["id"] for c in api.get(None, f"/api/posts/{post['id']}/comments").json["data"]["content"]] == [
        other["id"]
    ]
    assert db[COMMENTS].count_documents({"is_deleted": True, "deleted_at": {"$ne": None}}) == 3
    [event] = activities(member_activity_type="COMMENT_DELETE")
    assert (event["member_id"], event["post_id"], event["comment_id"]) == (8, post["id"], top["id"])


def test_post_likes_are_stored_against_the_post_and_counted(api, db, activities):
    post = create_post(api, member=7)
    liked = api.post(9, f"/api/posts/{post['id']}/like").json["data"]
    assert liked == {"postId": post["id"], "memberId": 9, "liked": True, "likeCount": 1}
    api.post(8, f"/api/posts/{post['id']}/like")
    assert stored(db, POST_LIKES) == [{"post_id": post["id"], "member_id": 8}, {"post_id": post["id"], "member_id": 9}]
    assert api.get(None, f"/api/posts/{post['id']}").json["data"]["likeCount"] == 2
    duplicate = api.post(9, f"/api/posts/{post['id']}/like")
    assert duplicate.status_code == 409 and f"member 9 already likes post {post['id']}" in duplicate.json["message"]
    unliked = api.delete(9, f"/api/posts/{post['id']}/like").json["data"]
    assert unliked == {"postId": post["id"], "memberId": 9, "liked": False, "likeCount": 1}
    assert stored(db, POST_LIKES) == [{"post_id": post["id"], "member_id": 8}]
    [like, _, cancel] = activities(post_id=post["id"], member_activity_type={"$in": ["LIKE_POST", "LIKE_POST_CANCEL"]})
    assert (like["member_id"], like["comment_id"], cancel["member_id"]) == (9, None, 9)


def test_comment_likes_are_stored_against_the_comment_not_the_post(api, db, activities):
    post = create_post(api, member=7)
    comment = create_comment(api, 8, post["id"])
    liked = api.post(9, f"/api/comments/{comment['id']}/like").json["data"]
    assert liked == {"commentId": comment["id"], "memberId": 9, "liked": True, "likeCount": 1}
    assert stored(db, COMMENT_LIKES) == [{"comment_id": comment["id"], "member_id": 9}]
    assert stored(db, POST_LIKES) == []
    [listed] = api.get(None, f"/api/posts/{post['id']}/comments").json["data"]["content"]
    assert listed["likeCount"] == 1 and api.get(None, f"/api/posts/{post['id']}").json["data"]["likeCount"] == 0
    duplicate = api.post(9, f"/api/comments/{comment['id']}/like")
    assert f"member 9 already likes comment {comment['id']}" in duplicate.json["message"]
    unliked = api.delete(9, f"/api/comments/{comment['id']}/like").json["data"]
    assert unliked == {"commentId": comment["id"], "memberId": 9, "liked": False, "likeCount": 0}
    assert stored(db, COMMENT_LIKES) == []
    missing = api.delete(9, f"/api/comments/{comment['id']}/like")
    assert missing.status_code == 404 and f"member 9 does not like comment {comment['id']}" in missing.json["message"]
    events = activities(member_id=9)
    assert [(a["member_activity_type"], a["post_id"], a["comment_id"]) for a in events] == [
        ("LIKE_COMMENT", post["id"], comment["id"]),
        ("LIKE_COMMENT_CANCEL", post["id"], comment["id"]),
    ]
    assert events[0]["message_key"].startswith(f"member_activity:kafka_event:LIKE_COMMENT###{comment['id']}###9###")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda api: api.get(None, "/api/posts/999"), "post 999 not found"),
        (lambda api: api.put(7, "/api/posts/999", json={"content": "x"}), "post 999 not found"),
        (lambda api: api.post(7, "/api/posts/999/like"), "post 999 not found"),
        (lambda api: api.delete(7, "/api/posts/999/like"), "post 999 not found"),
        (lambda api: api.post(7, "/api/comments", json={"postId": 999, "content": "x"}), "post 999 not found"),
        (lambda api: api.get(None, "/api/posts/999/comments"), "post 999 not found"),
        (lambda api: api.put(7, "/api/comments/999", json={"content": "x"}), "comment 999 not found"),
        (lambda api: api.delete(7, "/api/comments/999"), "comment 999 not found"),
        (lambda api: api.post(7, "/api/comments/999/like"), "comment 999 not found"),
        (lambda api: api.delete(7, "/api/comments/999/like"), "comment 999 not found"),
        (
            lambda api: api.post(
                7, "/api/comments/replies", json={"postId": FIRST_POST_ID, "parentId": 999, "content": "x"}
            ),
            "parent comment 999 not found",
        ),
    ],
)
def test_what_does_not_exist_is_404_naming_it(api, activities, call, message):
    create_post(api, member=7)
    response = call(api)
    assert response.status_code == 404 and message in response.json["message"]
    assert [a["member_activity_type"] for a in activities()] == ["POST_CREATE"]


def test_another_members_content_is_403_naming_it(api):
    post = create_post(api, member=7)
    comment = create_comment(api, 8, post["id"])
    refusals = [
        api.put(8, f"/api/posts/{post['id']}", json={"content": "x"}),
        api.delete(8, f"/api/posts/{post['id']}"),
        api.put(7, f"/api/comments/{comment['id']}", json={"content": "x"}),
        api.delete(7, f"/api/comments/{comment['id']}"),
    ]
    assert [(r.status_code, r.json["message"]) for r in refusals] == [
        (403, f"post {post['id']} belongs to another member")
    ] * 2 + [(403, f"comment {comment['id']} belongs to another member")] * 2


def test_comments_are_paged_oldest_first(api):
    post = create_post(api, member=7)
    ids = [create_comment(api, 8, post["id"], content=f"c{n}")["id"] for n in range(3)]
    first = api.get(None, f"/api/posts/{post['id']}/comments?page=0&size=2").json["data"]
    assert [c["id"] for c in first["content"]] == ids[:2] and first["hasNext"] is True
    last = api.get(None, f"/api/posts/{post['id']}/comments?page=1&size=2").json["data"]
    assert [c["id"] for c in last["content"]] == ids[2:] and last["hasNext"] is False
