"""How fast `restore-listener` and `restore-publisher --mode handoff` drain dead letters on a store.

    .venv/bin/python bench/restore_throughput.py [--uri mongodb://127.0.0.1:27017/?directConnection=true] [-n 500]

Writes N listener dead letters and N feign publisher dead letters into a scratch database, runs each restore
once through its job (the CLI's code path without click) and prints dead letters per second; drops the database.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DAILYFEED_CONFIG", str(Path(__file__).resolve().parent.parent / "config" / "test.toml"))

from dailyfeed import create_app  # noqa: E402
from dailyfeed.events import ActivityEvent, ActivityType  # noqa: E402
from dailyfeed.restore.jobs import ListenerRestore, Mode, PublisherRestore, RestoreOptions  # noqa: E402
from dailyfeed.transport.base import TransportUnavailable  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", default="mongomock://")
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    app = create_app({"mongo.uri": args.uri, "mongo.database": f"bench_restore_{uuid.uuid4().hex[:8]}"})
    dailyfeed = app.extensions["dailyfeed"]
    store = dailyfeed.dead_letters
    at = datetime(2026, 11, 22, tzinfo=timezone.utc)
    try:
        for n in range(args.n):
            event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=n + 1, at=at + timedelta(seconds=n))
            store.record_listener_failure(origin={"topic": "t", "partition": 0, "offset": n, "key": None,
                                                  "value": None}, error=RuntimeError("bench"), event=event)
            liked = ActivityEvent.new(ActivityType.LIKE_POST, 9, post_id=n + 1, at=at + timedelta(seconds=n))
            store.record_publisher_failure("feign", liked, TransportUnavailable("bench"))
        options = RestoreOptions(batch_size=args.batch_size)
        for name, job in (("restore-listener", ListenerRestore(store, dailyfeed.activity_service, options)),
                          ("restore-publisher --mode handoff",
                           PublisherRestore(store, dailyfeed.transports, options, mode=Mode.HANDOFF))):
            started = time.perf_counter()
            summary = job.run()
            elapsed = time.perf_counter() - started
            print(f"{name:<34} {summary.line():<36} {elapsed:6.2f} s  {summary.restored / elapsed:8.1f} /s "
                  f"({args.uri.split('?')[0]}, batch {args.batch_size})")
    finally:
        if args.uri.startswith("mongodb"):
            dailyfeed.db.client.drop_database(dailyfeed.db.name)
        dailyfeed.close()


if __name__ == "__main__":
    main()
