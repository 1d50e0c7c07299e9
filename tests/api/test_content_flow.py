"""Every content action of SPEC section 3, its status and envelope, and the activity it records."""


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
    deeper = api.post(8, "/api/comments/replies",
                      json={"postId": post["id"], "parentId": reply.json["data"]["id"], "content": "r2"})
    assert deeper.status_code == 201 and deeper.json["data"]["depth"] == 2
    too_deep = api.post(8, "/api/comments/replies",
                        json={"postId": post["id"], "parentId": deeper.json["data"]["id"], "content": "r3"})
    assert too_deep.status_code == 400 and "at most 2 levels" in too_deep.json["message"]
    created = activities(member_activity_type="COMMENT_CREATE")
    assert [(a["member_id"], a["post_id"]) for a in created] == [(8, post["id"]), (9, post["id"]), (8, post["id"])]
    listed = api.get(None, f"/api/posts/{post['id']}/comments").json["data"]["content"]
    assert [c["depth"] for c in listed] == [0, 1, 2]


def test_reply_parent_must_belong_to_the_same_post(api):
    first, second = create_post(api), create_post(api)
    parent = create_comment(api, 8, first["id"])
    response = api.post(8, "/api/comments/replies", json={"postId": second["id"], "parentId": parent["id"],
                                                           "content": "x"})
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
        "COMMENT_CREATE", "COMMENT_UPDATE", "COMMENT_DELETE"]


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
