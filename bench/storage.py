"""What a stored document and its indexes weigh, per collection, measured on the store here from documents the app
itself writes; the capacity model (bench/capacity.py) reads the results file this writes.

    .venv/bin/python -m bench.storage [--docs N] [--dead-letters M]      # services up (bench/run.sh, make services)

The app (create_app, on a fresh database of the real store) is driven over its HTTP API with a member token per
member: posts, comments, replies, likes of both, follows. The posts' activities are delivered the way the listener
stores them (the activity service's own record call), the comments' through the feign path's record endpoint, so
member_activities holds what both transports write. Then the transports fail for M writes of each kind (publisher
dead letters of both collections), M consumed records are kept as listener dead letters the way the listener keeps
them (its `record_origin`), and both restore jobs run over them (the claims; the dead letters as completed).

Per collection: documents, their mean BSON size (`bson.encode` of each stored document read back: what MongoDB
stores before block compression), the user text they hold (so the model can put its own text length on the fixed
part), and the store's own `collStats` per document: data and each index (FerretDB here: SQLite pages, so a
collection needs ~1,000 documents before the page granularity stops showing).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bson

from bench import common
from bench.common import Run

MEASURED = common.REPO / "bench" / "measured"
STORAGE_RESULTS = MEASURED / "storage.json"
# The text of what the measurement writes: any length does (the model puts its own on the fixed part); these are
# only what the measured documents happen to carry.
TITLE, POST_TEXT, COMMENT_TEXT = "t" * 40, "p" * 280, "c" * 120
TEXT_FIELDS = {"posts": ("title", "content"), "comments": ("content",)}


def drive_app(database: str, n: int, m: int) -> Any:
    """The app on `database`, after n posts, comments, replies, post likes, comment likes and follows, and m
    dead letters of each kind, every one restored. Returns the container (the caller closes it)."""
    from dailyfeed import create_app
    from dailyfeed.activity.listener import record_origin
    from dailyfeed.config import load_settings
    from dailyfeed.events import ActivityEvent, ActivityType, PublishType, Service
    from dailyfeed.extension import get_container
    from dailyfeed.restore.jobs import ListenerRestore, PublisherRestore, RestoreOptions
    from dailyfeed.tokens import issue_member_token
    from dailyfeed.transport.fake import FakeTransport

    delivered: list[Any] = []  # the container, once built: the transports deliver into its activity service
    kafka = FakeTransport(PublishType.KAFKA, deliver=lambda e: delivered[0].activity_service.record_activities([e]))
    feign = FakeTransport(PublishType.FEIGN, deliver=lambda e: delivered[0].activity_service.record_activity(e))
    app = create_app(
        {"mongo.uri": common.MONGO_URI, "mongo.database": database},
        transports={Service.POST: kafka, Service.COMMENT: feign},
        run_background=False,
    )
    container = get_container(app)
    delivered.append(container)
    client = app.test_client()
    secret = load_settings()["auth.jwt-secret"]
    members = max(2, n // 10)  # ten of each thing per member
    headers = {m: {"Authorization": f"Bearer {issue_member_token(secret, m, 3600)}"} for m in range(1, members + 1)}

    def call(path: str, member: int, body: dict | None = None) -> dict:
        response = client.post(path, json=body, headers=headers[member])
        if response.status_code != 201:
            raise RuntimeError(f"POST {path} answered {response.status_code}: {response.get_data(as_text=True)}")
        return response.get_json()["data"]

    def member(i: int) -> int:
        return i % members + 1

    posts = [call("/api/posts", member(i), {"title": TITLE, "content": POST_TEXT})["id"] for i in range(n)]
    comments = [
        call("/api/comments", member(i + 1), {"postId": posts[i], "content": COMMENT_TEXT})["id"] for i in range(n)
    ]
    for i in range(n):
        call(
            "/api/comments/replies",
            member(i + 2),
            {"postId": posts[i], "parentId": comments[i], "content": COMMENT_TEXT},
        )
        call(f"/api/posts/{posts[i]}/like", member(i + 3))
        call(f"/api/comments/{comments[i]}/like", member(i + 4))
    for i in range(n):  # every member follows the next ten
        follower, following = member(i), member(i // members + i + 1)
        if follower != following:
            client.post(f"/api/members/{following}/follow", headers=headers[follower])

    kafka.fail_with()
    feign.fail_with()
    for i in range(m):  # publisher dead letters: a post write by kafka, a comment write by feign
        call("/api/posts", member(i), {"title": TITLE, "content": POST_TEXT})
        call("/api/comments", member(i), {"postId": posts[i % n], "content": COMMENT_TEXT})
    kafka.recover()
    feign.recover()
    topic = f"member-activity-{datetime.now(timezone.utc):%Y%m%d}"
    for i in range(m):  # listener dead letters, kept as the listener keeps a record whose store failed
        event = ActivityEvent.new(ActivityType.LIKE_POST, member(i), post_id=posts[i % n])
        record = argparse.Namespace(
            topic=topic, partition=i % 6, offset=i, key=event.message_key.encode(), value=event.to_bytes()
        )
        container.dead_letters.record_listener_failure(
            origin=record_origin(record), error=RuntimeError("store down"), event=event
        )
    PublisherRestore(container.dead_letters, container.transports, RestoreOptions()).run()
    ListenerRestore(container.dead_letters, container.activity_service, RestoreOptions()).run()
    return container


def measure(db: Any) -> dict[str, Any]:
    """Per collection of `db`: documents, mean BSON bytes, mean user-text bytes, and collStats per document."""
    out: dict[str, Any] = {}
    for name in sorted(db.list_collection_names()):
        docs = list(db[name].find())
        if not docs:
            continue
        text = TEXT_FIELDS.get(name, ())
        stats = db.command("collStats", name)
        count = len(docs)
        out[name] = {
            "documents": count,
            "bson_bytes": sum(len(bson.encode(d)) for d in docs) / count,
            "text_bytes": sum(len((d.get(f) or "").encode()) for d in docs for f in text) / count,
            "store_data_bytes": stats["size"] / count,
            "store_index_bytes": {index: size / count for index, size in sorted(stats["indexSizes"].items())},
        }
    return out


def save_results(path: Path, data: dict[str, Any]) -> None:
    """A results file of bench/measured/, which bench/capacity.py reads (commit it after a run worth keeping)."""
    common.save_json(path, data)
    print(f"written to {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="document and index sizes of every collection, on the store here")
    parser.add_argument("--docs", type=int, default=1000, help="posts (and comments, replies, likes...) to write")
    parser.add_argument("--dead-letters", type=int, default=300, help="dead letters of each kind")
    parser.add_argument("--out", type=Path, default=STORAGE_RESULTS)
    args = parser.parse_args(argv)
    logging.getLogger("dailyfeed").setLevel(logging.ERROR)  # the dead letters' warnings are made on purpose here
    run = Run.new()
    started = datetime.now(timezone.utc)
    container = None
    try:
        container = drive_app(run.db("storage"), args.docs, args.dead_letters)
        sizes = measure(container.db)
        server = container.db.client.server_info()
    finally:
        if container is not None:
            container.close()
        common.drop_databases(run)
    data = {
        "run": run.id,
        "started": started.isoformat(timespec="seconds"),
        "store": {
            "uri_scheme": common.MONGO_URI.split(":", 1)[0],
            "version": server.get("version"),
            "ferretdb": server.get("ferretdbVersion"),
        },
        "load_before": os.getloadavg(),
        "docs": args.docs,
        "dead_letters": args.dead_letters,
        "text": {"title": len(TITLE), "post": len(POST_TEXT), "comment": len(COMMENT_TEXT)},
        "collections": sizes,
    }
    print(f"{'collection':32} {'docs':>6} {'BSON B/doc':>10} {'text B':>7} {'store B/doc':>11}  indexes (store B/doc)")
    for name, c in sizes.items():
        indexes = ", ".join(f"{k} {v:.0f}" for k, v in c["store_index_bytes"].items())
        print(
            f"{name:32} {c['documents']:>6} {c['bson_bytes']:>10.0f} {c['text_bytes']:>7.0f} "
            f"{c['store_data_bytes']:>11.0f}  {indexes}"
        )
    save_results(args.out, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
