"""Storage of posts, comments and likes. Only the content module uses it.

Every change is one single-document write (or one update_many over a comment thread), and each has its exact
inverse here, so the service can undo a change whose activity could not be kept. A change carries the publication
entry of its event in the same write (`pubs` of the post, comment or like: the last MAX_ENTRIES of them; a like is
also stored under its event's key), and its undo removes it in the same write: the publication relay (outbox.py)
finds there what a writer left owed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from ..events import utcnow
from ..store import COMMENT_LIKES, COMMENTS, POST_LIKES, POSTS, next_id

#: How many publication entries a post or comment keeps (its latest changes'). An entry pushed out before the relay
#: read it (MAX_ENTRIES later changes of one document within the grace period of a dead writer) is never relayed.
MAX_ENTRIES = 32
ENTRIES = "pubs"  # the publication entries of a document (outbox.py: the entry's fields)


def post_document(author_id: int, title: str | None, content: str, now: datetime) -> dict[str, Any]:
    """A new post as stored, without its _id (insert_with_next_id adds it)."""
    return {
        "author_id": author_id,
        "title": title,
        "content": content,
        "created_at": now,
        "updated_at": now,
        "is_deleted": False,
        "deleted_at": None,
    }


def comment_document(
    post_id: int, parent_id: int | None, depth: int, author_id: int, content: str, now: datetime
) -> dict[str, Any]:
    """A new comment or reply as stored, without its _id."""
    return {
        "post_id": post_id,
        "parent_id": parent_id,
        "depth": depth,
        "author_id": author_id,
        "content": content,
        "created_at": now,
        "updated_at": now,
        "is_deleted": False,
        "deleted_at": None,
    }


class ContentRepository:
    def __init__(self, db: Database):
        self.db = db
        self.posts = db[POSTS]
        self.comments = db[COMMENTS]
        self.post_likes = db[POST_LIKES]
        self.comment_likes = db[COMMENT_LIKES]

    def next_id(self, collection: str, *, fresh: bool = False) -> int:
        """The id a new post or comment is created under (store.next_id)."""
        return next_id(self.db, collection, fresh=fresh)

    # --- posts ------------------------------------------------------------------------------------------------

    def insert_post(
        self, post_id: int, author_id: int, title: str | None, content: str, entry: dict[str, Any]
    ) -> dict[str, Any]:
        """Insert a new post under `post_id` with its event's entry; DuplicateKeyError when that id is taken."""
        doc = {"_id": post_id, **post_document(author_id, title, content, utcnow()), ENTRIES: [entry]}
        self.posts.insert_one(doc)
        return doc

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

    def set_post_fields(
        self,
        post_id: int,
        fields: dict[str, Any],
        *,
        mark: dict[str, Any] | None = None,
        unmark: dict[str, Any] | None = None,
    ) -> None:
        """Set fields of a post; with `mark` its event's entry is added in the same write, with `unmark` (the same
        entry) removed."""
        self.posts.update_one({"_id": post_id}, _with_entry({"$set": fields}, mark, unmark))

    def delete_post_for_good(self, post_id: int, key: str) -> None:
        """Undo a post's creation: only the post created with this event's entry (its id may be another's)."""
        self.posts.delete_one({"_id": post_id, f"{ENTRIES}.k": key})

    # --- comments ---------------------------------------------------------------------------------------------

    def insert_comment(
        self,
        comment_id: int,
        post_id: int,
        parent_id: int | None,
        depth: int,
        author_id: int,
        content: str,
        entry: dict[str, Any],
    ) -> dict[str, Any]:
        """Insert a new comment under `comment_id` with its event's entry; DuplicateKeyError when that id is taken."""
        doc = {
            "_id": comment_id,
            **comment_document(post_id, parent_id, depth, author_id, content, utcnow()),
            ENTRIES: [entry],
        }
        self.comments.insert_one(doc)
        return doc

    def find_comment(self, comment_id: int) -> dict[str, Any] | None:
        return self.comments.find_one({"_id": comment_id, "is_deleted": False})

    def find_comments(self, post_id: int, skip: int, limit: int) -> list[dict[str, Any]]:
        return list(
            self.comments.find({"post_id": post_id, "is_deleted": False}).sort("_id", ASCENDING).skip(skip).limit(limit)
        )

    def live_thread_ids(self, comment_id: int) -> list[int]:
        """The comment and its live replies at every depth (replies nest at most two levels)."""
        ids, frontier = [comment_id], [comment_id]
        while frontier:
            frontier = [
                doc["_id"]
                for doc in self.comments.find({"parent_id": {"$in": frontier}, "is_deleted": False}, {"_id": 1})
            ]
            ids.extend(frontier)
        return ids

    def set_comments_deleted(self, comment_ids: list[int], deleted: bool) -> None:
        now = utcnow() if deleted else None
        self.comments.update_many({"_id": {"$in": comment_ids}}, {"$set": {"is_deleted": deleted, "deleted_at": now}})

    def set_comment_fields(
        self,
        comment_id: int,
        fields: dict[str, Any],
        *,
        mark: dict[str, Any] | None = None,
        unmark: dict[str, Any] | None = None,
    ) -> None:
        """Set fields of a comment; with `mark` its event's entry is added in the same write, with `unmark` (the same
        entry) removed."""
        self.comments.update_one({"_id": comment_id}, _with_entry({"$set": fields}, mark, unmark))

    def delete_comment_for_good(self, comment_id: int, key: str) -> None:
        """Undo a comment's creation: only the comment created with this event's entry."""
        self.comments.delete_one({"_id": comment_id, f"{ENTRIES}.k": key})

    # --- likes ------------------------------------------------------------------------------------------------

    def add_like(self, kind: str, target_id: int, member_id: int, entry: dict[str, Any]) -> dict[str, Any] | None:
        """Insert a like under its event's key, with its entry; None when this member already likes it."""
        collection, field = self._likes(kind)
        doc = {"_id": entry["k"], field: target_id, "member_id": member_id, "created_at": utcnow(), ENTRIES: [entry]}
        try:
            collection.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

    def find_like(self, kind: str, target_id: int, member_id: int) -> dict[str, Any] | None:
        collection, field = self._likes(kind)
        return collection.find_one({field: target_id, "member_id": member_id})

    def remove_like(self, kind: str, like_id: Any) -> bool:
        """Delete a like by its _id; False when it was gone already."""
        collection, _ = self._likes(kind)
        return collection.delete_one({"_id": like_id}).deleted_count == 1

    def restore_like(self, kind: str, doc: dict[str, Any]) -> None:
        collection, _ = self._likes(kind)
        try:
            collection.insert_one(doc)
        except DuplicateKeyError:
            pass

    def documents(self, collection: str, ids: list[Any], fields: dict[str, int]) -> dict[Any, dict[str, Any]]:
        """Posts, comments or likes by _id (one read), with these fields: what the relay checks a change by."""
        return {doc["_id"]: doc for doc in self._content(collection).find({"_id": {"$in": ids}}, fields)}

    def entries_of_writer(self, collection: str, writer: str, since: int, until: int) -> list[dict[str, Any]]:
        """The documents of `collection` with a publication entry by `writer` from `since` to `until` (and maybe
        others: the entries are told apart by the caller; an `$elemMatch` would bind both fields to one entry, but
        a multikey index serves the plain form's equality on `by` all the same)."""
        query = {f"{ENTRIES}.by": writer, f"{ENTRIES}.at": {"$gte": since, "$lte": until}}
        return list(self._content(collection).find(query, {ENTRIES: 1}))

    def _content(self, collection: str):
        if collection not in (POSTS, COMMENTS, POST_LIKES, COMMENT_LIKES):
            raise ValueError(f"{collection!r} holds no content")
        return self.db[collection]

    def count_likes(self, kind: str, target_id: int) -> int:
        collection, field = self._likes(kind)
        return collection.count_documents({field: target_id})

    def likes_collection(self, kind: str) -> str:
        return self._likes(kind)[0].name

    def _likes(self, kind: str):
        if kind == "post":
            return self.post_likes, "post_id"
        if kind == "comment":
            return self.comment_likes, "comment_id"
        raise ValueError(f"likes are of a post or a comment, not of {kind!r}")


def _with_entry(update: dict[str, Any], mark: dict[str, Any] | None, unmark: dict[str, Any] | None) -> dict[str, Any]:
    if mark is not None:
        update["$push"] = {ENTRIES: {"$each": [mark], "$slice": -MAX_ENTRIES}}
    if unmark is not None:
        # the entry itself: FerretDB v1's $pull removes equal values only (no conditions)
        update["$pull"] = {ENTRIES: unmark}
    return update
