"""The document store: a pymongo Database from `mongo.uri`, and every collection's indexes in one place.

`mongomock://` gives an in-process store (the embedded default); `mongodb://` a real server (MongoDB or
FerretDB). Nothing here relies on transactions, TTL indexes or change streams: FerretDB v1 has none of them.
"""
from __future__ import annotations

import threading

import pymongo
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

MEMBER_ACTIVITIES = "member_activities"
FOLLOWS = "follows"
POSTS = "posts"
COMMENTS = "comments"
POST_LIKES = "post_likes"
COMMENT_LIKES = "comment_likes"
COUNTERS = "counters"
KAFKA_PUBLISHER_DEAD_LETTERS = "kafka_publisher_dead_letters"
FEIGN_DEAD_LETTERS = "feign_dead_letters"
KAFKA_LISTENER_DEAD_LETTERS = "kafka_listener_dead_letters"
DEAD_LETTER_COLLECTIONS = (KAFKA_PUBLISHER_DEAD_LETTERS, FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS)
DEAD_LETTER_CLAIMS = "dead_letter_claims"  # restore claims: unique _id per (dead letter, lease generation)

_mock_clients: dict[str, object] = {}
_mock_lock = threading.Lock()


def connect(uri: str, database: str, *, timeout_ms: int = 5000) -> Database:
    if uri.startswith("mongomock://"):
        import mongomock  # the embedded default only

        # One in-process server per URI, shared by the app and CLI commands run inside it.
        with _mock_lock:
            client = _mock_clients.setdefault(uri, mongomock.MongoClient())
        return client[database]
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                                 socketTimeoutMS=max(timeout_ms * 2, 10000), tz_aware=True)
    return client[database]


def forget_mock(uri: str) -> None:
    """Drop an in-process mongomock server (tests use a fresh one each)."""
    with _mock_lock:
        _mock_clients.pop(uri, None)


def ensure_indexes(db: Database) -> None:
    db[MEMBER_ACTIVITIES].create_index([("message_key", ASCENDING)], unique=True, name="uniq_message_key")
    db[MEMBER_ACTIVITIES].create_index([("member_id", ASCENDING), ("created_at", DESCENDING)],
                                       name="member_created")
    db[MEMBER_ACTIVITIES].create_index([("created_at", DESCENDING)], name="created")
    db[FOLLOWS].create_index([("follower_id", ASCENDING), ("following_id", ASCENDING)], unique=True,
                             name="uniq_follow")
    db[FOLLOWS].create_index([("following_id", ASCENDING)], name="following")
    db[POSTS].create_index([("author_id", ASCENDING), ("_id", DESCENDING)], name="author_posts")
    db[COMMENTS].create_index([("post_id", ASCENDING), ("_id", ASCENDING)], name="post_comments")
    db[COMMENTS].create_index([("parent_id", ASCENDING)], name="replies")
    db[POST_LIKES].create_index([("post_id", ASCENDING), ("member_id", ASCENDING)], unique=True,
                                name="uniq_post_like")
    db[COMMENT_LIKES].create_index([("comment_id", ASCENDING), ("member_id", ASCENDING)], unique=True,
                                   name="uniq_comment_like")
    for name in DEAD_LETTER_COLLECTIONS:
        db[name].create_index([("message_key", ASCENDING)], unique=True, name="uniq_message_key")
        db[name].create_index([("status", ASCENDING), ("created_at", ASCENDING)], name="status_created")


def insert_with_next_id(db: Database, collection: str, doc: dict, attempts: int = 50) -> dict:
    """Insert `doc` under the next integer id of its collection (ids are longs on the wire).

    The counter is one $inc on one document, but FerretDB v1 does not make that atomic under concurrency (two
    writers can be handed the same value). The unique _id is what guarantees uniqueness: a taken id is simply
    skipped by drawing the next one.
    """
    for _ in range(attempts):
        counter = db[COUNTERS].find_one_and_update({"_id": collection}, {"$inc": {"value": 1}}, upsert=True,
                                                   return_document=pymongo.ReturnDocument.AFTER)
        candidate = {**doc, "_id": int(counter["value"])}
        try:
            db[collection].insert_one(candidate)
        except DuplicateKeyError:
            continue
        return candidate
    raise RuntimeError(f"no free id for {collection} after {attempts} attempts")


def set_on_insert(fields: dict, **update: dict) -> dict:
    """An upsert's update document that writes `fields` only when it inserts.

    FerretDB v1 drops null values given in $setOnInsert, so those go in $set instead: for an upsert keyed on a
    message key the nulls are the same on every delivery, so setting them again changes nothing, and every
    stored document keeps the full shape (comment_id: null and so on) on both backends.
    """
    present = {k: v for k, v in fields.items() if v is not None}
    nulls = {k: None for k, v in fields.items() if v is None}
    spec = {"$setOnInsert": present, **{k: dict(v) for k, v in update.items()}}
    if nulls:
        spec["$set"] = {**nulls, **spec.get("$set", {})}
    return spec
