"""Storage of posts, comments and likes. Only the content module uses it.

Every change is one single-document write (or one update_many over a comment thread), and each has its exact
inverse here, so the service can undo a change whose activity could not be kept.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from ..events import utcnow
from ..store import COMMENT_LIKES, COMMENTS, POST_LIKES, POSTS, insert_with_next_id


def post_document(author_id: int, title: str | None, content: str, now: datetime) -> dict[str, Any]:
    """A new post as stored, without its _id (insert_with_next_id adds it)."""
    return {"author_id": author_id, "title": title, "content": content, "created_at": now, "updated_at": now,
            "is_deleted": False, "deleted_at": None}


def comment_document(post_id: int, parent_id: int | None, depth: int, author_id: int, content: str,
                     now: datetime) -> dict[str, Any]:
    """A new comment or reply as stored, without its _id."""
    return {"post_id": post_id, "parent_id": parent_id, "depth": depth, "author_id": author_id,
            "content": content, "created_at": now, "updated_at": now, "is_deleted": False, "deleted_at": None}


class ContentRepository:
    def __init__(self, db: Database):
        self.db = db
        self.posts = db[POSTS]
        self.comments = db[COMMENTS]
        self.post_likes = db[POST_LIKES]
        self.comment_likes = db[COMMENT_LIKES]

    # --- posts ------------------------------------------------------------------------------------------------

    def insert_post(self, author_id: int, title: str | None, content: str) -> dict[str, Any]:
        return insert_with_next_id(self.db, POSTS, post_document(author_id, title, content, utcnow()))

    def find_post(self, post_id: int, *, include_deleted: bool = False) -> dict[str, Any] | None:
        query: dict[str, Any] = {"_id": post_id}
        if not include_deleted:
            query["is_deleted"] = False
        return self.posts.find_one(query)

    def find_posts(self, author_id: int | None, skip: int, limit: int) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"is_deleted": False}
        if author_id is not None:
            query["author_id"] = author_id
        return list(self.posts.find(query).sort("_id", DESCENDING).skip(skip).limit(limit))

    def set_post_fields(self, post_id: int, fields: dict[str, Any]) -> None:
        self.posts.update_one({"_id": post_id}, {"$set": fields})

    def delete_post_for_good(self, post_id: int) -> None:
        self.posts.delete_one({"_id": post_id})

    # --- comments ---------------------------------------------------------------------------------------------

    def insert_comment(self, post_id: int, parent_id: int | None, depth: int, author_id: int,
                       content: str) -> dict[str, Any]:
        return insert_with_next_id(self.db, COMMENTS,
                                   comment_document(post_id, parent_id, depth, author_id, content, utcnow()))

    def find_comment(self, comment_id: int) -> dict[str, Any] | None:
        return self.comments.find_one({"_id": comment_id, "is_deleted": False})

    def find_comments(self, post_id: int, skip: int, limit: int) -> list[dict[str, Any]]:
        return list(self.comments.find({"post_id": post_id, "is_deleted": False})
                    .sort("_id", ASCENDING).skip(skip).limit(limit))

    def live_thread_ids(self, comment_id: int) -> list[int]:
        """The comment and its live replies at every depth (replies nest at most two levels)."""
        ids, frontier = [comment_id], [comment_id]
        while frontier:
            frontier = [doc["_id"] for doc in self.comments.find(
                {"parent_id": {"$in": frontier}, "is_deleted": False}, {"_id": 1})]
            ids.extend(frontier)
        return ids

    def set_comments_deleted(self, comment_ids: list[int], deleted: bool) -> None:
        now = utcnow() if deleted else None
        self.comments.update_many({"_id": {"$in": comment_ids}},
                                  {"$set": {"is_deleted": deleted, "deleted_at": now}})

    def set_comment_fields(self, comment_id: int, fields: dict[str, Any]) -> None:
        self.comments.update_one({"_id": comment_id}, {"$set": fields})

    def delete_comment_for_good(self, comment_id: int) -> None:
        self.comments.delete_one({"_id": comment_id})

    # --- likes ------------------------------------------------------------------------------------------------

    def add_like(self, kind: str, target_id: int, member_id: int) -> dict[str, Any] | None:
        """Insert a like; None when this member already likes it."""
        collection, field = self._likes(kind)
        doc = {field: target_id, "member_id": member_id, "created_at": utcnow()}
        try:
            collection.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

    def remove_like(self, kind: str, target_id: int, member_id: int) -> dict[str, Any] | None:
        """Delete a like and return it; None when there was none."""
        collection, field = self._likes(kind)
        return collection.find_one_and_delete({field: target_id, "member_id": member_id})

    def restore_like(self, kind: str, doc: dict[str, Any]) -> None:
        collection, _ = self._likes(kind)
        try:
            collection.insert_one(doc)
        except DuplicateKeyError:
            pass

    def delete_like(self, kind: str, target_id: int, member_id: int) -> None:
        collection, field = self._likes(kind)
        collection.delete_one({field: target_id, "member_id": member_id})

    def count_likes(self, kind: str, target_id: int) -> int:
        collection, field = self._likes(kind)
        return collection.count_documents({field: target_id})

    def _likes(self, kind: str):
        if kind == "post":
            return self.post_likes, "post_id"
        if kind == "comment":
            return self.comment_likes, "comment_id"
        raise ValueError(f"likes are of a post or a comment, not of {kind!r}")
