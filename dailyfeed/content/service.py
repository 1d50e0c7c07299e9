"""Content rules: posts, comments, replies and likes, and the event each change publishes.

A write begins (its writer owes the event), stores the content change with the event's publication entry in the
same single-document write, publishes the event, and completes (SPEC section 5; the protocol and what a crash at
each step leaves: outbox.py). When
the event can be neither delivered nor kept as a dead letter, the change is undone and ActivityNotRecorded (503)
is raised: there is never a post without its event, nor an event without its post.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar

from pymongo.errors import DuplicateKeyError

from ..errors import ActivityNotRecorded, DuplicateLike, Forbidden, InvalidInput, NotFound
from ..events import ActivityEvent, ActivityType, Service, utcnow
from ..store import COMMENTS, POSTS
from ..web import json_time
from . import outbox
from .outbox import Checkpoint, PublicationRegistry, Target, entry_of, no_checkpoint
from .publishing import ActivityPublisher, PublishFailed
from .repository import ContentRepository

log = logging.getLogger(__name__)

POST_SERVICE = Service.POST
COMMENT_SERVICE = Service.COMMENT
MAX_REPLY_DEPTH = 2
ID_ATTEMPTS = 50  # fresh id blocks tried when another process drew the same one
T = TypeVar("T")


class ContentService:
    def __init__(
        self,
        repository: ContentRepository,
        publisher: ActivityPublisher,
        registry: PublicationRegistry | None = None,
        checkpoint: Checkpoint = no_checkpoint,
    ):
        """`registry`: the event publication registry (None: outbox.enabled is false, a crash between a change
        and its publish loses the event); `checkpoint`: called after each step of the protocol (tests crash there)."""
        self.repo = repository
        self.publisher = publisher
        self.registry = registry
        self.checkpoint = checkpoint

    # --- posts ------------------------------------------------------------------------------------------------

    def create_post(self, member_id: int, title: str | None, content: str) -> dict[str, Any]:
        def create(post_id: int) -> dict[str, Any]:
            event = ActivityEvent.new(ActivityType.POST_CREATE, member_id, post_id=post_id)
            return self._write(
                POST_SERVICE,
                event,
                Target(POSTS, post_id),
                apply=lambda entry: self.repo.insert_post(post_id, member_id, title, content, entry),
                undo=lambda entry: self.repo.delete_post_for_good(post_id, entry["k"]),
            )

        return self._post_json(self._under_next_id(POSTS, create))

    def get_post(self, post_id: int) -> dict[str, Any]:
        return self._post_json(self._live_post(post_id))

    def list_posts(self, author_id: int | None, page: int, size: int) -> list[dict[str, Any]]:
        return [self._post_json(p) for p in self.repo.find_posts(author_id, page * size, size + 1)]

    def update_post(
        self, member_id: int, post_id: int, title: str | None, content: str, title_given: bool
    ) -> dict[str, Any]:
        post = self._own(self._live_post(post_id), member_id, "post")
        before = {k: post[k] for k in ("title", "content", "updated_at")}
        after = {"content": content, "updated_at": utcnow()}
        if title_given:
            after["title"] = title
        event = ActivityEvent.new(ActivityType.POST_UPDATE, member_id, post_id=post_id)
        self._write(
            POST_SERVICE,
            event,
            Target(POSTS, post_id),
            apply=lambda entry: self.repo.set_post_fields(post_id, after, mark=entry),
            undo=lambda entry: self.repo.set_post_fields(post_id, before, unmark=entry),
        )
        return self._post_json({**post, **after})

    def delete_post(self, member_id: int, post_id: int) -> dict[str, Any]:
        self._own(self._live_post(post_id), member_id, "post")
        deleted = {"is_deleted": True, "deleted_at": utcnow()}
        event = ActivityEvent.new(ActivityType.POST_DELETE, member_id, post_id=post_id)
        self._write(
            POST_SERVICE,
            event,
            Target(POSTS, post_id),
            apply=lambda entry: self.repo.set_post_fields(post_id, deleted, mark=entry),
            undo=lambda entry: self.repo.set_post_fields(
                post_id, {"is_deleted": False, "deleted_at": None}, unmark=entry
            ),
        )
        return {"id": post_id, "deleted": True}

    def like_post(self, member_id: int, post_id: int) -> dict[str, Any]:
        self._live_post(post_id)
        return self._like("post", POST_SERVICE, ActivityType.LIKE_POST, member_id, post_id=post_id)

    def unlike_post(self, member_id: int, post_id: int) -> dict[str, Any]:
        self._live_post(post_id)
        return self._unlike("post", POST_SERVICE, ActivityType.LIKE_POST_CANCEL, member_id, post_id=post_id)

    # --- comments ---------------------------------------------------------------------------------------------

    def create_comment(
        self, member_id: int, post_id: int, content: str, parent_id: int | None = None
    ) -> dict[str, Any]:
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

        def create(comment_id: int) -> dict[str, Any]:
            event = ActivityEvent.new(ActivityType.COMMENT_CREATE, member_id, post_id=post_id, comment_id=comment_id)
            return self._write(
                COMMENT_SERVICE,
                event,
                Target(COMMENTS, comment_id),
                apply=lambda entry: self.repo.insert_comment(
                    comment_id, post_id, parent_id, depth, member_id, content, entry
                ),
                undo=lambda entry: self.repo.delete_comment_for_good(comment_id, entry["k"]),
            )

        return self._comment_json(self._under_next_id(COMMENTS, create))

    def list_comments(self, post_id: int, page: int, size: int) -> list[dict[str, Any]]:
        self._live_post(post_id)
        return [self._comment_json(c) for c in self.repo.find_comments(post_id, page * size, size + 1)]

    def update_comment(self, member_id: int, comment_id: int, content: str) -> dict[str, Any]:
        comment = self._own(self._live_comment(comment_id), member_id, "comment")
        before = {k: comment[k] for k in ("content", "updated_at")}
        after = {"content": content, "updated_at": utcnow()}
        event = ActivityEvent.new(
            ActivityType.COMMENT_UPDATE, member_id, post_id=comment["post_id"], comment_id=comment_id
        )
        self._write(
            COMMENT_SERVICE,
            event,
            Target(COMMENTS, comment_id),
            apply=lambda entry: self.repo.set_comment_fields(comment_id, after, mark=entry),
            undo=lambda entry: self.repo.set_comment_fields(comment_id, before, unmark=entry),
        )
        return self._comment_json({**comment, **after})

    def delete_comment(self, member_id: int, comment_id: int) -> dict[str, Any]:
        comment = self._own(self._live_comment(comment_id), member_id, "comment")
        replies = self.repo.live_thread_ids(comment_id)[1:]
        event = ActivityEvent.new(
            ActivityType.COMMENT_DELETE, member_id, post_id=comment["post_id"], comment_id=comment_id
        )

        replies_deleted = []  # whether the replies' update went through (what an undo restores)

        def delete_thread(entry: dict[str, Any]) -> None:
            # the comment first, with its entry: once it is there the relay rolls the replies forward
            self.repo.set_comment_fields(comment_id, {"is_deleted": True, "deleted_at": utcnow()}, mark=entry)
            if replies:
                self.checkpoint(outbox.ROOT_APPLIED, entry["k"])
                self.repo.set_comments_deleted(replies, True)
                replies_deleted.append(True)

        def restore_thread(entry: dict[str, Any]) -> None:
            # the replies first: while the comment is deleted with its entry, the change still reads as landed
            if replies_deleted:
                self.repo.set_comments_deleted(replies, False)
            self.repo.set_comment_fields(comment_id, {"is_deleted": False, "deleted_at": None}, unmark=entry)

        self._write(COMMENT_SERVICE, event, Target(COMMENTS, comment_id), apply=delete_thread, undo=restore_thread)
        return {"id": comment_id, "deleted": True, "deletedReplies": len(replies)}

    def like_comment(self, member_id: int, comment_id: int) -> dict[str, Any]:
        comment = self._live_comment(comment_id)
        return self._like(
            "comment",
            COMMENT_SERVICE,
            ActivityType.LIKE_COMMENT,
            member_id,
            post_id=comment["post_id"],
            comment_id=comment_id,
        )

    def unlike_comment(self, member_id: int, comment_id: int) -> dict[str, Any]:
        comment = self._live_comment(comment_id)
        return self._unlike(
            "comment",
            COMMENT_SERVICE,
            ActivityType.LIKE_COMMENT_CANCEL,
            member_id,
            post_id=comment["post_id"],
            comment_id=comment_id,
        )

    # --- shared -----------------------------------------------------------------------------------------------

    def _like(
        self,
        kind: str,
        service: Service,
        activity_type: ActivityType,
        member_id: int,
        *,
        post_id: int,
        comment_id: int | None = None,
    ) -> dict[str, Any]:
        target = post_id if kind == "post" else comment_id
        event = ActivityEvent.new(activity_type, member_id, post_id=post_id, comment_id=comment_id)
        liked = self._write(
            service,
            event,
            Target(self.repo.likes_collection(kind), event.message_key),  # a like is stored under its event's key
            apply=lambda entry: self.repo.add_like(kind, target, member_id, entry),
            undo=lambda entry: self.repo.remove_like(kind, entry["k"]),
            refused=lambda doc: doc is None,
        )
        if liked is None:
            raise DuplicateLike(f"member {member_id} already likes {kind} {target}")
        return self._like_json(kind, target, member_id, liked=True)

    def _unlike(
        self,
        kind: str,
        service: Service,
        activity_type: ActivityType,
        member_id: int,
        *,
        post_id: int,
        comment_id: int | None = None,
    ) -> dict[str, Any]:
        target = post_id if kind == "post" else comment_id
        like = self.repo.find_like(kind, target, member_id)
        if like is None:
            raise NotFound(f"member {member_id} does not like {kind} {target}")
        event = ActivityEvent.new(activity_type, member_id, post_id=post_id, comment_id=comment_id)
        likes = self.repo.likes_collection(kind)

        def remove(entry: None) -> bool:
            if self.registry is not None:
                # once the like is gone it carries its entry no more: an event it still owes is kept standalone
                self.registry.keep_owed_like(like, likes)
            return self.repo.remove_like(kind, like["_id"])

        removed = self._write(  # no document is left to carry the unlike's entry: a standalone publication
            service,
            event,
            Target(likes, like["_id"]),
            apply=remove,
            undo=lambda entry: self.repo.restore_like(kind, like),
            refused=lambda done: not done,
            standalone=True,
        )
        if not removed:  # another request removed it first
            raise NotFound(f"member {member_id} does not like {kind} {target}")
        return self._like_json(kind, target, member_id, liked=False)

    def _like_json(self, kind: str, target: int, member_id: int, *, liked: bool) -> dict[str, Any]:
        return {
            f"{kind}Id": target,
            "memberId": member_id,
            "liked": liked,
            "likeCount": self.repo.count_likes(kind, target),
        }

    def _under_next_id(self, collection: str, create: Callable[[int], T]) -> T:
        """`create(id)` under the next id of `collection`; again under a fresh one when that id was taken (another
        process drew the same block of ids: see store.IdBlocks)."""
        fresh = False
        for _ in range(ID_ATTEMPTS):
            try:
                return create(self.repo.next_id(collection, fresh=fresh))
            except DuplicateKeyError:
                fresh = True
        raise RuntimeError(f"no free id for {collection} after {ID_ATTEMPTS} attempts")

    def _write(
        self,
        service: Service,
        event: ActivityEvent,
        target: Target,
        *,
        apply: Callable[[dict[str, Any] | None], T],
        undo: Callable[[dict[str, Any] | None], Any],
        refused: Callable[[T], bool] = lambda result: False,
        standalone: bool = False,
    ) -> T:
        """The protocol of outbox.py: begin, apply the change with its entry (`apply(entry)`), publish, complete.
        `standalone`: the change leaves no document to carry an entry (an unlike): its publication is recorded
        first. `refused(result)`: the change was refused without storing anything (a duplicate like): nothing is
        owed and the result is returned. Raises ActivityNotRecorded when the change was undone because its event
        could be neither delivered nor kept."""
        registry, key = self.registry, event.message_key
        if registry is None:
            return self._apply_and_publish(service, event, apply, undo, refused)
        event, entry = registry.begin(service, event, target, standalone=standalone)
        self.checkpoint(outbox.BEGUN, key)
        try:
            result = apply(entry)
        except Exception:
            self._undo(event, entry, undo, standalone)
            raise
        if refused(result):
            registry.complete_write(key, standalone=standalone, published=False)
            return result
        self.checkpoint(outbox.APPLIED, key)
        try:
            self.publisher.publish_activity(service, event)
        except PublishFailed as exc:
            if self._undo(event, entry, undo, standalone):
                raise self._not_recorded(event) from exc
            return result  # a relay holds the publication and will publish it: the change stays
        self.checkpoint(outbox.PUBLISHED, key)
        registry.complete_write(key, standalone=standalone)
        self.checkpoint(outbox.COMPLETED, key)
        return result

    def _undo(
        self,
        event: ActivityEvent,
        entry: dict[str, Any] | None,
        undo: Callable[[dict[str, Any] | None], Any],
        standalone: bool,
    ) -> bool:
        """Undo a change (with its entry) and complete; False (nothing done) when a relay holds the publication:
        it publishes it, and the write stays in flight until then. A store that fails here leaves the write in
        flight (or its publication recorded): the relay settles it by what landed."""
        key = event.message_key
        try:
            if self.registry.hold(key, standalone=standalone) is None:
                log.warning(
                    "publication %s is held by a relay: its change stays and the relay publishes it",
                    key,
                    extra={"message_key": key},
                )
                return False
            undo(entry)
            self.checkpoint(outbox.UNDONE, key)
            self.registry.complete_write(key, standalone=standalone, published=False)
        except Exception:  # the store failed under us; say so loudly, the client still gets an error
            log.exception("could not undo the change of %s", key, extra={"message_key": key})
        return True

    def _apply_and_publish(
        self,
        service: Service,
        event: ActivityEvent,
        apply: Callable[[dict[str, Any] | None], T],
        undo: Callable[[dict[str, Any] | None], Any],
        refused: Callable[[T], bool],
    ) -> T:
        """Without the registry (outbox.enabled false): store the change, then publish; undo when neither."""
        entry = entry_of(event)  # the key alone: what an undo finds the change by
        result = apply(entry)
        if refused(result):
            return result
        try:
            self.publisher.publish_activity(service, event)
        except PublishFailed as exc:
            try:
                undo(entry)
            except Exception:  # the store failed under us; say so loudly, the client still gets 503
                log.exception("could not undo the change of %s", event.message_key)
            raise self._not_recorded(event) from exc
        return result

    @staticmethod
    def _not_recorded(event: ActivityEvent) -> ActivityNotRecorded:
        return ActivityNotRecorded(
            f"the {event.activity_type.value} activity could not be delivered nor kept for retry; "
            "the change was not saved, try again"
        )

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
        return {
            "id": post["_id"],
            "authorId": post["author_id"],
            "title": post.get("title"),
            "content": post["content"],
            "createdAt": json_time(post["created_at"]),
            "updatedAt": json_time(post["updated_at"]),
            "likeCount": self.repo.count_likes("post", post["_id"]),
        }

    def _comment_json(self, comment: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": comment["_id"],
            "postId": comment["post_id"],
            "parentId": comment.get("parent_id"),
            "depth": comment["depth"],
            "authorId": comment["author_id"],
            "content": comment["content"],
            "createdAt": json_time(comment["created_at"]),
            "updatedAt": json_time(comment["updated_at"]),
            "likeCount": self.repo.count_likes("comment", comment["_id"]),
        }
