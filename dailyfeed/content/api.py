"""The content module over HTTP: the contract of each endpoint (dailyfeed.contract), then the service call and the
envelope. Nothing else."""

from __future__ import annotations

from flask import Blueprint, g
from pydantic import BaseModel, ConfigDict, Field

from ..auth import member_required
from ..contract import link, operation
from ..extension import get_container
from ..types import Id, IdText, text
from ..web import Page, PageQuery, page_body, success

bp = Blueprint("content", __name__)

MAX_TITLE = 200
MAX_POST_CONTENT = 5000
MAX_COMMENT_CONTENT = 1000

Title = text(MAX_TITLE)
PostContent = text(MAX_POST_CONTENT, blank=False)
CommentContent = text(MAX_COMMENT_CONTENT, blank=False)


# --- request models ------------------------------------------------------------------------------------------------


class PostBody(BaseModel):
    """A new post, or a post's new text (a title left out keeps the stored one; null clears it)."""

    model_config = ConfigDict(extra="ignore")

    title: Title | None = None
    content: PostContent


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    postId: Id
    content: CommentContent


class ReplyBody(CommentBody):
    parentId: Id = Field(description="the comment replied to; it must belong to the same post")


class CommentUpdateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    content: CommentContent


class PostListQuery(PageQuery):
    authorId: IdText | None = Field(None, description="only this member's posts")


# --- response models (what the service answers; the fuzz tier checks every answer against them) ------------------


class Post(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int
    authorId: int
    title: str | None
    content: str
    createdAt: str = Field(json_schema_extra={"format": "date-time"})
    updatedAt: str = Field(json_schema_extra={"format": "date-time"})
    likeCount: int = Field(ge=0)


class Comment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int
    postId: int
    parentId: int | None
    depth: int = Field(ge=0, le=2)
    authorId: int
    content: str
    createdAt: str = Field(json_schema_extra={"format": "date-time"})
    updatedAt: str = Field(json_schema_extra={"format": "date-time"})
    likeCount: int = Field(ge=0)


class PostLike(BaseModel):
    model_config = ConfigDict(extra="forbid")

    postId: int
    memberId: int
    liked: bool
    likeCount: int = Field(ge=0)


class CommentLike(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commentId: int
    memberId: int
    liked: bool
    likeCount: int = Field(ge=0)


class PostDeleted(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int
    deleted: bool


class CommentDeleted(PostDeleted):
    deletedReplies: int = Field(ge=0, description="live replies deleted with it")


# The stateful fuzz sequences follow these: post -> read/like/update/delete/comment -> reply/like/update/delete.
POST_LINKS = {
    "GetPost": link("content.get_post", post_id="$response.body#/data/id"),
    "UpdatePost": link("content.update_post", post_id="$response.body#/data/id"),
    "LikePost": link("content.like_post", post_id="$response.body#/data/id"),
    "CommentOnPost": link("content.create_comment", body={"postId": "$response.body#/data/id"}),
    "ListComments": link("content.list_comments", post_id="$response.body#/data/id"),
    "DeletePost": link("content.delete_post", post_id="$response.body#/data/id"),
}
COMMENT_LINKS = {
    "Reply": link(
        "content.create_reply", body={"postId": "$response.body#/data/postId", "parentId": "$response.body#/data/id"}
    ),
    "UpdateComment": link("content.update_comment", comment_id="$response.body#/data/id"),
    "LikeComment": link("content.like_comment", comment_id="$response.body#/data/id"),
    "DeleteComment": link("content.delete_comment", comment_id="$response.body#/data/id"),
    "DeletePostOfComment": link("content.delete_post", post_id="$response.body#/data/postId"),
}


# --- posts ---------------------------------------------------------------------------------------------------------


@bp.post("/api/posts")
@operation(body=PostBody, response=Post, status=201, auth=member_required, links=POST_LINKS)
def create_post(body: PostBody):
    """Create a post (records POST_CREATE)."""
    return success(get_container().content_service.create_post(g.member_id, body.title, body.content), 201)


@bp.get("/api/posts/<id:post_id>")
@operation(response=Post)
def get_post(post_id: int):
    """Read a post."""
    return success(get_container().content_service.get_post(post_id))


@bp.get("/api/posts")
@operation(query=PostListQuery, response=Page[Post])
def list_posts(query: PostListQuery):
    """List posts, newest first, of everyone or of one author."""
    items = get_container().content_service.list_posts(query.authorId, query.page, query.size)
    return success(page_body(items, query))


@bp.put("/api/posts/<id:post_id>")
@operation(body=PostBody, response=Post, auth=member_required, links={"GetPost": POST_LINKS["GetPost"]})
def update_post(post_id: int, body: PostBody):
    """Change your post's text (records POST_UPDATE)."""
    post = get_container().content_service.update_post(
        g.member_id, post_id, body.title, body.content, title_given="title" in body.model_fields_set
    )
    return success(post)


@bp.delete("/api/posts/<id:post_id>")
@operation(response=PostDeleted, auth=member_required)
def delete_post(post_id: int):
    """Delete your post (soft delete; records POST_DELETE). Its comments become read-only (404)."""
    return success(get_container().content_service.delete_post(g.member_id, post_id))


@bp.post("/api/posts/<id:post_id>/like")
@operation(response=PostLike, status=201, auth=member_required, errors=(409,))
def like_post(post_id: int):
    """Like a post (records LIKE_POST); a second like is 409."""
    return success(get_container().content_service.like_post(g.member_id, post_id), 201)


@bp.delete("/api/posts/<id:post_id>/like")
@operation(response=PostLike, auth=member_required)
def unlike_post(post_id: int):
    """Cancel your like of a post (records LIKE_POST_CANCEL); no like is 404."""
    return success(get_container().content_service.unlike_post(g.member_id, post_id))


# --- comments ------------------------------------------------------------------------------------------------------


@bp.post("/api/comments")
@operation(body=CommentBody, response=Comment, status=201, auth=member_required, errors=(404,), links=COMMENT_LINKS)
def create_comment(body: CommentBody):
    """Comment on a post (records COMMENT_CREATE)."""
    comment = get_container().content_service.create_comment(g.member_id, body.postId, body.content)
    return success(comment, 201)


@bp.post("/api/comments/replies")
@operation(body=ReplyBody, response=Comment, status=201, auth=member_required, errors=(404,), links=COMMENT_LINKS)
def create_reply(body: ReplyBody):
    """Reply to a comment of the same post, at most 2 levels deep (records COMMENT_CREATE)."""
    reply = get_container().content_service.create_comment(
        g.member_id, body.postId, body.content, parent_id=body.parentId
    )
    return success(reply, 201)


@bp.get("/api/posts/<id:post_id>/comments")
@operation(query=PageQuery, response=Page[Comment])
def list_comments(post_id: int, query: PageQuery):
    """List a post's comments and replies, oldest first."""
    items = get_container().content_service.list_comments(post_id, query.page, query.size)
    return success(page_body(items, query))


@bp.put("/api/comments/<id:comment_id>")
@operation(body=CommentUpdateBody, response=Comment, auth=member_required)
def update_comment(comment_id: int, body: CommentUpdateBody):
    """Change your comment's text (records COMMENT_UPDATE)."""
    return success(get_container().content_service.update_comment(g.member_id, comment_id, body.content))


@bp.delete("/api/comments/<id:comment_id>")
@operation(response=CommentDeleted, auth=member_required)
def delete_comment(comment_id: int):
    """Delete your comment and its replies (records COMMENT_DELETE)."""
    return success(get_container().content_service.delete_comment(g.member_id, comment_id))


@bp.post("/api/comments/<id:comment_id>/like")
@operation(response=CommentLike, status=201, auth=member_required, errors=(409,))
def like_comment(comment_id: int):
    """Like a comment (records LIKE_COMMENT); a second like is 409."""
    return success(get_container().content_service.like_comment(g.member_id, comment_id), 201)


@bp.delete("/api/comments/<id:comment_id>/like")
@operation(response=CommentLike, auth=member_required)
def unlike_comment(comment_id: int):
    """Cancel your like of a comment (records LIKE_COMMENT_CANCEL); no like is 404."""
    return success(get_container().content_service.unlike_comment(g.member_id, comment_id))
