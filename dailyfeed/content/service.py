"""Content rules: posts, comments, replies and likes, and the event each change publishes.

A write stores the content change, then publishes its event (SPEC section 5). When the event can be neither
delivered nor kept as a dead letter, the change is undone and ActivityNotRecorded (503) is raised: there is never
a post without its event, nor an event without its post.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from ..errors import ActivityNotRecorded, DuplicateLike, Forbidden, InvalidInput, NotFound
from ..events import ActivityEvent, ActivityType, Service, utcnow
from ..web import json_time
from .publishing import ActivityPublisher, PublishFailed
from .repository import ContentRepository

log = logging.getLogger(__name__)

POST_SERVICE = Service.POST
COMMENT_SERVICE = Service.COMMENT
MAX_REPLY_DEPTH = 2


class ContentService:
    def __init__(self, repository: ContentRepository, publisher: ActivityPublisher):
        self.repo = repository
        self.publisher = publisher

    # --- posts ------------------------------------------------------------------------------------------------

    def create_post(self, member_id: int, title: str | None, content: str) -> dict[str, Any]:
        post = self.repo.insert_post(member_id, title, content)
        self._publish(POST_SERVICE, ActivityEvent.new(ActivityType.POST_CREATE, member_id, post_id=post["_id"]),
                      undo=lambda: self.repo.delete_post_for_good(post["_id"]))
        return self._post_json(post)

    def get_post(self, post_id: int) -> dict[str, Any]:
        return self._post_json(self._live_post(post_id))

    def list_posts(self, author_id: int | None, page: int, size: int) -> list[dict[str, Any]]:
        return [self._post_json(p) for p in self.repo.find_posts(author_id, page * size, size + 1)]

    def update_post(self, member_id: int, post_id: int, title: str | None, content: str,
                    title_given: bool) -> dict[str, Any]:
        post = self._own(self._live_post(post_id), member_id, "post")
        before = {k: post[k] for k in ("title", "content", "updated_at")}
        after = {"content": content, "updated_at": utcnow()}
        if title_given:
            after["title"] = title
        self.repo.set_post_fields(post_id, after)
        self._publish(POST_SERVICE, ActivityEvent.new(ActivityType.POST_UPDATE, member_id, post_id=post_id),
                      undo=lambda: self.repo.set_post_fields(post_id, before))
        return self._post_json({**post, **after})

    def delete_post(self, member_id: int, post_id: int) -> dict[str, Any]:
        self._own(self._live_post(post_id), member_id, "post")
        deleted = {"is_deleted": True, "deleted_at": utcnow()}
        self.repo.set_post_fields(post_id, deleted)
        self._publish(POST_SERVICE, ActivityEvent.new(ActivityType.POST_DELETE, member_id, post_id=post_id),
                      undo=lambda: self.repo.set_post_fields(post_id, {"is_deleted": False, "deleted_at": None}))
        return {"id": post_id, "deleted": True}

    def like_post(self, member_id: int, post_id: int) -> dict[str, Any]:
        self._live_post(post_id)
        return self._like("post", POST_SERVICE, ActivityType.LIKE_POST, member_id, post_id=post_id)

    def unlike_post(self, member_id: int, post_id: int) -> dict[str, Any]:
        self._live_post(post_id)
        return self._unlike("post", POST_SERVICE, ActivityType.LIKE_POST_CANCEL, member_id, post_id=post_id)

    # --- comments ---------------------------------------------------------------------------------------------

    def create_comment(self, member_id: int, post_id: int, content: str,
                       parent_id: int | None = None) -> dict[str, Any]:
        self._live_post(post_id)
        depth = 0
        if parent_id is not None:
            parent = self.repo.find_comment(parent_id)
            if parent is None:
                raise NotFound(f"parent comment {parent_id} not found")
            if parent["post_id"] != post_id:
                raise InvalidInput(f"parent comment {parent_id} belongs to another post")
            depth = parent["depth"] + 1
            if depth > MAX_REPLY_DEPTH:
                raise InvalidInput(f"replies nest at most {MAX_REPLY_DEPTH} levels below a comment")
        comment = self.repo.insert_comment(post_id, parent_id, depth, member_id, content)
        event = ActivityEvent.new(ActivityType.COMMENT_CREATE, member_id, post_id=post_id,
                                  comment_id=comment["_id"])
        self._publish(COMMENT_SERVICE, event, undo=lambda: self.repo.delete_comment_for_good(comment["_id"]))
        return self._comment_json(comment)

    def list_comments(self, post_id: int, page: int, size: int) -> list[dict[str, Any]]:
        self._live_post(post_id)
        return [self._comment_json(c) for c in self.repo.find_comments(post_id, page * size, size + 1)]

    def update_comment(self, member_id: int, comment_id: int, content: str) -> dict[str, Any]:
        comment = self._own(self._live_comment(comment_id), member_id, "comment")
        before = {k: comment[k] for k in ("content", "updated_at")}
        after = {"content": content, "updated_at": utcnow()}
        self.repo.set_comment_fields(comment_id, after)
        event = ActivityEvent.new(ActivityType.COMMENT_UPDATE, member_id, post_id=comment["post_id"],
                                  comment_id=comment_id)
        self._publish(COMMENT_SERVICE, event, undo=lambda: self.repo.set_comment_fields(comment_id, before))
        return self._comment_json({**comment, **after})

    def delete_comment(self, member_id: int, comment_id: int) -> dict[str, Any]:
        comment = self._own(self._live_comment(comment_id), member_id, "comment")
        thread = self.repo.live_thread_ids(comment_id)
        self.repo.set_comments_deleted(thread, True)
        event = ActivityEvent.new(ActivityType.COMMENT_DELETE, member_id, post_id=comment["post_id"],
                                  comment_id=comment_id)
        self._publish(COMMENT_SERVICE, event, undo=lambda: self.repo.set_comments_deleted(thread, False))
        return {"id": comment_id, "deleted": True, "deletedReplies": len(thread) - 1}

    def like_comment(self, member_id: int, comment_id: int) -> dict[str, Any]:
        comment = self._live_comment(comment_id)
        return self._like("comment", COMMENT_SERVICE, ActivityType.LIKE_COMMENT, member_id,
                          post_id=comment["post_id"], comment_id=comment_id)

    def unlike_comment(self, member_id: int, comment_id: int) -> dict[str, Any]:
        comment = self._live_comment(comment_id)
        return self._unlike("comment", COMMENT_SERVICE, ActivityType.LIKE_COMMENT_CANCEL, member_id,
                            post_id=comment["post_id"], comment_id=comment_id)

    # --- shared -----------------------------------------------------------------------------------------------

    def _like(self, kind: str, service: str, activity_type: ActivityType, member_id: int, *, post_id: int,
              comment_id: int | None = None) -> dict[str, Any]:
        target = post_id if kind == "post" else comment_id
        if self.repo.add_like(kind, target, member_id) is None:
            raise DuplicateLike(f"member {member_id} already likes {kind} {target}")
        event = ActivityEvent.new(activity_type, member_id, post_id=post_id, comment_id=comment_id)
        self._publish(service, event, undo=lambda: self.repo.delete_like(kind, target, member_id))
        return {f"{kind}Id": target, "memberId": member_id, "liked": True,
                "likeCount": self.repo.count_likes(kind, target)}

    def _unlike(self, kind: str, service: str, activity_type: ActivityType, member_id: int, *, post_id: int,
                comment_id: int | None = None) -> dict[str, Any]:
        target = post_id if kind == "post" else comment_id
        removed = self.repo.remove_like(kind, target, member_id)
        if removed is None:
            raise NotFound(f"member {member_id} does not like {kind} {target}")
        event = ActivityEvent.new(activity_type, member_id, post_id=post_id, comment_id=comment_id)
        self._publish(service, event, undo=lambda: self.repo.restore_like(kind, removed))
        return {f"{kind}Id": target, "memberId": member_id, "liked": False,
                "likeCount": self.repo.count_likes(kind, target)}

    def _publish(self, service: str, event: ActivityEvent, undo: Callable[[], None]) -> None:
        try:
            self.publisher.publish_activity(service, event)
        except PublishFailed as exc:
            try:
                undo()
            except Exception:  # the store failed under us; say so loudly, the client still gets 503
                log.exception("could not undo the change of %s", event.message_key)
            raise ActivityNotRecorded(
                f"the {event.activity_type.value} activity could not be delivered nor kept for retry; "
                "the change was not saved, try again") from exc

    def _live_post(self, post_id: int) -> dict[str, Any]:
        post = self.repo.find_post(post_id)
        if post is None:
            raise NotFound(f"post {post_id} not found")
        return post

    def _live_comment(self, comment_id: int) -> dict[str, Any]:
        """A comment that may still change: live, on a live post. The comments of a deleted post are read-only:
        updating, liking or deleting them answers 404 like the post does (SPEC is silent; README says so)."""
        comment = self.repo.find_comment(comment_id)
        if comment is None:
            raise NotFound(f"comment {comment_id} not found")
        if self.repo.find_post(comment["post_id"]) is None:
            raise NotFound(f"comment {comment_id} not found: post {comment['post_id']} was deleted")
        return comment

    @staticmethod
    def _own(doc: dict[str, Any], member_id: int, what: str) -> dict[str, Any]:
        if doc["author_id"] != member_id:
            raise Forbidden(f"{what} {doc['_id']} belongs to another member")
        return doc

    def _post_json(self, post: dict[str, Any]) -> dict[str, Any]:
        return {"id": post["_id"], "authorId": post["author_id"], "title": post.get("title"),
                "content": post["content"], "createdAt": json_time(post["created_at"]),
                "updatedAt": json_time(post["updated_at"]), "likeCount": self.repo.count_likes("post", post["_id"])}

    def _comment_json(self, comment: dict[str, Any]) -> dict[str, Any]:
        return {"id": comment["_id"], "postId": comment["post_id"], "parentId": comment.get("parent_id"),
                "depth": comment["depth"], "authorId": comment["author_id"], "content": comment["content"],
                "createdAt": json_time(comment["created_at"]), "updatedAt": json_time(comment["updated_at"]),
                "likeCount": self.repo.count_likes("comment", comment["_id"])}
