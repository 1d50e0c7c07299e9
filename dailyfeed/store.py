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
DEAD_LETTER_TASKS = "dead_letter_tasks"  # replay, discard, re-queue of a selection, run in the background
TASK_LOCKS = "dead_letter_task_locks"  # unique _id per (collection, selection) of a running task
TASK_LEASES = "dead_letter_task_leases"  # unique _id per (task, lease generation): who runs a task
AUDIT = "dead_letter_audit"  # every action on dead letters: who, when, what; append-only
CONSOLE_SESSIONS = "console_sessions"  # the console's logins: _id is the hash of the cookie's session id
EVENT_PUBLICATIONS = "event_publications"  # owed events of changes that leave no document: unlikes (content/outbox.py)
OUTBOX_WRITERS = "outbox_writers"  # one per serving process: what of its writes is settled (content/outbox.py)

_mock_clients: dict[str, object] = {}
_mock_lock = threading.Lock()


def connect(uri: str, database: str, *, timeout_ms: int = 5000) -> Database:
    if uri.startswith("mongomock://"):
        import mongomock  # the embedded default only

        # One in-process server per URI, shared by the app and CLI commands run inside it.
        with _mock_lock:
            client = _mock_clients.setdefault(uri, mongomock.MongoClient())
        return client[database]
    client = pymongo.MongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 2, 10000),
        tz_aware=True,
    )
    return client[database]


def forget_mock(uri: str) -> None:
    """Drop an in-process mongomock server (tests use a fresh one each)."""
    with _mock_lock:
        _mock_clients.pop(uri, None)


# Indexes an earlier version declared under these names, replaced below by indexes with more keys (a name cannot
# be redeclared with other keys) or retired: dropped where they are still there.
REPLACED_INDEXES: dict[str, tuple[str, ...]] = {
    COMMENTS: ("post_comments", "replies"),
    POSTS: ("author_posts",),
    # "created" (created_at alone) served no query (every read of activities filters by member first) and cost
    # every activity insert an index write
    MEMBER_ACTIVITIES: ("member_created", "created"),
    **{name: ("status_created",) for name in DEAD_LETTER_COLLECTIONS},
    DEAD_LETTER_CLAIMS: ("claims_of_run",),  # (token) alone: made by development builds of the claims change
}


def ensure_indexes(db: Database) -> None:
    """Every index of every collection. Each query shape the app sends is served by one of these under the
    equality-sort-range rule (tests/test_index_coverage.py checks it on every test run)."""
    db[MEMBER_ACTIVITIES].create_index([("message_key", ASCENDING)], unique=True, name="uniq_message_key")
    # a member's (or the followings') activities newest first, all or of one type; _id breaks ties in the order
    db[MEMBER_ACTIVITIES].create_index(
        [("member_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="member_newest"
    )
    db[MEMBER_ACTIVITIES].create_index(
        [
            ("member_id", ASCENDING),
            ("member_activity_type", ASCENDING),
            ("created_at", DESCENDING),
            ("_id", DESCENDING),
        ],
        name="member_type_newest",
    )
    db[FOLLOWS].create_index([("follower_id", ASCENDING), ("following_id", ASCENDING)], unique=True, name="uniq_follow")
    db[FOLLOWS].create_index([("following_id", ASCENDING)], name="following")
    # live posts newest first: an author's, everyone's
    db[POSTS].create_index(
        [("author_id", ASCENDING), ("is_deleted", ASCENDING), ("_id", DESCENDING)], name="author_live_posts"
    )
    db[POSTS].create_index([("is_deleted", ASCENDING), ("_id", DESCENDING)], name="live_posts")
    # a post's live comments in order; a thread's live replies
    db[COMMENTS].create_index(
        [("post_id", ASCENDING), ("is_deleted", ASCENDING), ("_id", ASCENDING)], name="live_post_comments"
    )
    db[COMMENTS].create_index([("parent_id", ASCENDING), ("is_deleted", ASCENDING)], name="live_replies")
    db[POST_LIKES].create_index([("post_id", ASCENDING), ("member_id", ASCENDING)], unique=True, name="uniq_post_like")
    db[COMMENT_LIKES].create_index(
        [("comment_id", ASCENDING), ("member_id", ASCENDING)], unique=True, name="uniq_comment_like"
    )
    for name in DEAD_LETTER_COLLECTIONS:
        db[name].create_index([("message_key", ASCENDING)], unique=True, name="uniq_message_key")
        # a restore's candidates and the lists by status, oldest first; the same narrowed to a category (and the
        # counts by status and category)
        db[name].create_index(
            [("status", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="status_oldest"
        )
        db[name].create_index(
            [("status", ASCENDING), ("category", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
            name="status_category_oldest",
        )
        # the console's list across statuses (newest first, a walk backwards), the overview's last 48 hours and a
        # since/until window; the same by category and by error type (its filters); purge's completed ones
        db[name].create_index([("created_at", ASCENDING), ("_id", ASCENDING)], name="oldest")
        db[name].create_index(
            [("category", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="category_oldest"
        )
        db[name].create_index(
            [("error.type", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="error_type_oldest"
        )
        db[name].create_index(
            [("status", ASCENDING), ("completed_at", ASCENDING), ("updated_at", ASCENDING)], name="status_completed"
        )
        db[name].create_index([("status", ASCENDING), ("discarded_at", ASCENDING)], name="status_discarded")
    # a dead letter's claims (newest generation last); a collection's and a run's leased ones
    db[DEAD_LETTER_CLAIMS].create_index(
        [("collection", ASCENDING), ("dead_letter", ASCENDING), ("generation", ASCENDING)], name="claims_of_dead_letter"
    )
    db[DEAD_LETTER_CLAIMS].create_index([("collection", ASCENDING), ("lease_until", ASCENDING)], name="leased_claims")
    db[DEAD_LETTER_CLAIMS].create_index([("token", ASCENDING), ("lease_until", ASCENDING)], name="leased_claims_of_run")
    db[DEAD_LETTER_CLAIMS].create_index([("lease_until", ASCENDING)], name="lease_end")  # purge of old claims
    # the task list newest first, all or of one state (the runners read the running ones)
    db[DEAD_LETTER_TASKS].create_index(
        [("state", ASCENDING), ("started_at", DESCENDING), ("_id", DESCENDING)], name="state_newest"
    )
    db[DEAD_LETTER_TASKS].create_index([("started_at", DESCENDING), ("_id", DESCENDING)], name="newest")
    # the audit trail newest first, all or by one of its filters (one at a time), in a time window
    db[AUDIT].create_index([("at", DESCENDING), ("_id", DESCENDING)], name="newest")
    for field in ("actor", "action", "outcome", "task"):
        db[AUDIT].create_index([(field, ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], name=f"{field}_newest")
    db[CONSOLE_SESSIONS].create_index([("expires_at", ASCENDING)], name="session_end")  # purge of ended sessions
    # the relay's due publications, oldest due first (the _id is the message key: completion deletes by it)
    db[EVENT_PUBLICATIONS].create_index([("due_at", ASCENDING), ("_id", ASCENDING)], name="due")
    # a dead or lagging writer's publication entries (content/outbox.py): multikey, over the changed documents
    for name in (POSTS, COMMENTS, POST_LIKES, COMMENT_LIKES):
        db[name].create_index([("pubs.by", ASCENDING), ("pubs.at", ASCENDING)], name="publications_of_writer")
    for name, replaced in REPLACED_INDEXES.items():
        present = db[name].index_information()
        for index in replaced:
            if index in present:
                db[name].drop_index(index)


class IdBlocks:
    """Integer ids (longs on the wire) handed out from blocks: one counter $inc per `size` ids, per process.

    FerretDB v1 does not make a $inc atomic under concurrency, so two writers can be handed the same counter
    value; drawing one id per write made concurrent writers collide (79 % refusals at 8 threads, bench/). Here a
    block is drawn under a process-local lock, so threads never collide, and only another process that drew the
    same block can: the unique _id refuses that insert and the writer takes a fresh block. Ids from different
    processes interleave, and a restart skips the rest of its blocks.
    """

    def __init__(self, size: int = 100):
        self.size = size
        self._lock = threading.Lock()
        self._blocks: dict[tuple[str, str], tuple[int, int]] = {}  # (database, collection) -> (next, end)

    def draw(self, db: Database, collection: str, *, fresh: bool = False) -> int:
        key = (db.name, collection)
        with self._lock:
            next_id, end = (0, 0) if fresh else self._blocks.get(key, (0, 0))
            if next_id >= end:
                counter = db[COUNTERS].find_one_and_update(
                    {"_id": collection},
                    {"$inc": {"value": self.size}},
                    upsert=True,
                    return_document=pymongo.ReturnDocument.AFTER,
                )
                end = int(counter["value"]) + 1
                next_id = end - self.size
            self._blocks[key] = (next_id + 1, end)
            return next_id


_ids = IdBlocks()


def next_id(db: Database, collection: str, *, fresh: bool = False) -> int:
    """The next integer id of `collection`, for a document inserted under it; `fresh` after an insert under the last
    one was refused (another process drew the same block). Only the unique _id guarantees uniqueness."""
    return _ids.draw(db, collection, fresh=fresh)


def insert_with_next_id(db: Database, collection: str, doc: dict, attempts: int = 50) -> dict:
    """Insert `doc` under the next integer id of its collection. The unique _id is what guarantees uniqueness."""
    fresh = False
    for _ in range(attempts):
        candidate = {**doc, "_id": next_id(db, collection, fresh=fresh)}
        try:
            db[collection].insert_one(candidate)
        except DuplicateKeyError:
            fresh = True  # another process drew this block too: take a new one
            continue
        return candidate
    raise RuntimeError(f"no free id for {collection} after {attempts} attempts")
