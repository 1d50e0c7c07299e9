"""The content module over HTTP: parse and check input, call the service, wrap the answer. Nothing else."""
from __future__ import annotations

from flask import Blueprint, g, request

from ..auth import member_required
from ..errors import InvalidInput
from ..extension import get_container
from ..web import id_field, json_body, page_body, page_params, success, text_field

bp = Blueprint("content", __name__)

MAX_TITLE = 200
MAX_POST_CONTENT = 5000
MAX_COMMENT_CONTENT = 1000



@bp.post("/api/posts")
@member_required
def create_post():
    body = json_body()
    title = text_field(body, "title", max_length=MAX_TITLE, required=False)
    content = text_field(body, "content", max_length=MAX_POST_CONTENT)
    return success(get_container().content_service.create_post(g.member_id, title, content), 201)


@bp.get("/api/posts/<id:post_id>")
def get_post(post_id: int):
    return success(get_container().content_service.get_post(post_id))


@bp.get("/api/posts")
def list_posts():
    page, size = page_params()
    raw_author = request.args.get("authorId")
    author_id = None
    if raw_author not in (None, ""):
        try:
            author_id = int(raw_author)
        except ValueError:
            raise InvalidInput(f"authorId must be an integer, got {raw_author!r}") from None
    return success(page_body(get_container().content_service.list_posts(author_id, page, size), page, size))


@bp.put("/api/posts/<id:post_id>")
@member_required
def update_post(post_id: int):
    body = json_body()
    title = text_field(body, "title", max_length=MAX_TITLE, required=False)
    content = text_field(body, "content", max_length=MAX_POST_CONTENT)
    post = get_container().content_service.update_post(g.member_id, post_id, title, content,
                                                       title_given="title" in body)
    return success(post)


@bp.delete("/api/posts/<id:post_id>")
@member_required
def delete_post(post_id: int):
    return success(get_container().content_service.delete_post(g.member_id, post_id))


@bp.post("/api/posts/<id:post_id>/like")
@member_required
def like_post(post_id: int):
    return success(get_container().content_service.like_post(g.member_id, post_id), 201)


@bp.delete("/api/posts/<id:post_id>/like")
@member_required
def unlike_post(post_id: int):
    return success(get_container().content_service.unlike_post(g.member_id, post_id))


@bp.post("/api/comments")
@member_required
def create_comment():
    body = json_body()
    post_id = id_field(body, "postId")
    content = text_field(body, "content", max_length=MAX_COMMENT_CONTENT)
    return success(get_container().content_service.create_comment(g.member_id, post_id, content), 201)


@bp.post("/api/comments/replies")
@member_required
def create_reply():
    body = json_body()
    post_id = id_field(body, "postId")
    parent_id = id_field(body, "parentId")
    content = text_field(body, "content", max_length=MAX_COMMENT_CONTENT)
    reply = get_container().content_service.create_comment(g.member_id, post_id, content, parent_id=parent_id)
    return success(reply, 201)


@bp.get("/api/posts/<id:post_id>/comments")
def list_comments(post_id: int):
    page, size = page_params()
    return success(page_body(get_container().content_service.list_comments(post_id, page, size), page, size))


@bp.put("/api/comments/<id:comment_id>")
@member_required
def update_comment(comment_id: int):
    content = text_field(json_body(), "content", max_length=MAX_COMMENT_CONTENT)
    return success(get_container().content_service.update_comment(g.member_id, comment_id, content))


@bp.delete("/api/comments/<id:comment_id>")
@member_required
def delete_comment(comment_id: int):
    return success(get_container().content_service.delete_comment(g.member_id, comment_id))


@bp.post("/api/comments/<id:comment_id>/like")
@member_required
def like_comment(comment_id: int):
    return success(get_container().content_service.like_comment(g.member_id, comment_id), 201)


@bp.delete("/api/comments/<id:comment_id>/like")
@member_required
def unlike_comment(comment_id: int):
    return success(get_container().content_service.unlike_comment(g.member_id, comment_id))
