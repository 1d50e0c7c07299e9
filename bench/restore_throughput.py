"""How fast `restore-listener` and `restore-publisher --mode handoff` drain dead letters on a store.

    .venv/bin/python -m bench.restore_throughput [--uri mongodb://127.0.0.1:27017/?directConnection=true] [-n 500]
        [--batch-size 50] [--seed copy|real] [--commands]

Writes N listener dead letters and N feign publisher dead letters into a scratch database, runs each restore
once through its job (the CLI's code path without click) and prints dead letters per second; drops the database.
Right before each job it measures the store's own baseline in the same run: N documents updated one by one by
`_id` with pymongo (`update_one`, what a dead letter's completion costs at least), in a collection holding a copy
of the same N dead letters; the job's rate is printed as a ratio of it (the target is >= 0.8x).

The dead letters are written by the real write path (DeadLetterStore.record_*). With `--seed copy` (the default)
they are written into an in-process store first and copied over with one insert per collection: the same
documents, but seeding does not take minutes on FerretDB v1, where each of those upserts scans the collection.
`--commands` (a mongodb:// store) prints the commands each restore sent, by command and collection, with their
count and total time.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from pymongo import monitoring

from bench.app import services
from bench.common import REPO
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.restore.jobs import ListenerRestore, Mode, PublisherRestore, RestoreOptions
from dailyfeed.store import FEIGN_DEAD_LETTERS, KAFKA_LISTENER_DEAD_LETTERS
from dailyfeed.transport.base import TransportUnavailable


class Commands(monitoring.CommandListener):
    """Count and time the commands sent to a real server, by (command, collection)."""

    def __init__(self):
        self.seen: dict[tuple[str, str], list[float]] = defaultdict(list)
        self._collections: dict[int, str] = {}

    def started(self, event):
        name = event.command.get("collection" if event.command_name == "getMore" else event.command_name, "")
        self._collections[event.request_id] = str(name)

    def succeeded(self, event):
        self._record(event)

    def failed(self, event):
        self._record(event)

    def _record(self, event):
        collection = self._collections.pop(event.request_id, "")
        self.seen[event.command_name, collection].append(event.duration_micros / 1000)

    def take(self) -> dict[tuple[str, str], list[float]]:
        seen, self.seen = self.seen, defaultdict(list)
        return seen


def seed(store, n: int) -> None:
    at = datetime(2026, 11, 22, tzinfo=timezone.utc)
    for k in range(n):
        event = ActivityEvent.new(ActivityType.POST_CREATE, 7, post_id=k + 1, at=at + timedelta(seconds=k))
        store.record_listener_failure(
            origin={"topic": "t", "partition": 0, "offset": k, "key": None, "value": None},
            error=RuntimeError("bench"),
            event=event,
        )
        liked = ActivityEvent.new(ActivityType.LIKE_POST, 9, post_id=k + 1, at=at + timedelta(seconds=k))
        store.record_publisher_failure("feign", liked, TransportUnavailable("bench"))


def update_by_id_rate(db, docs: list[dict]) -> float:
    """Documents updated per second, one `update_one` by `_id` each, in a fresh collection of `docs`."""
    scratch = db[f"bench_update_{uuid.uuid4().hex[:8]}"]
    scratch.insert_many([dict(doc) for doc in docs], ordered=False)
    started = time.perf_counter()
    for doc in docs:
        scratch.update_one({"_id": doc["_id"]}, {"$set": {"status": "completed", "is_completed": True}})
    rate = len(docs) / (time.perf_counter() - started)
    scratch.drop()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", default="mongomock://")
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", choices=["copy", "real"], default="copy")
    parser.add_argument("--commands", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DAILYFEED_CONFIG", str(REPO / "config" / "test.toml"))
    commands = Commands()
    if args.commands:
        monitoring.register(commands)
    dailyfeed = services({"mongo.uri": args.uri, "mongo.database": f"bench_restore_{uuid.uuid4().hex[:8]}"})
    store = dailyfeed.dead_letters
    try:
        started = time.perf_counter()
        if args.seed == "real":
            seed(store, args.n)
        else:
            scratch = services({"mongo.uri": f"mongomock://seed-{uuid.uuid4().hex}", "mongo.database": "seed"})
            seed(scratch.dead_letters, args.n)
            for name in (KAFKA_LISTENER_DEAD_LETTERS, FEIGN_DEAD_LETTERS):
                dailyfeed.db[name].insert_many(list(scratch.db[name].find().sort("_id", 1)), ordered=True)
            scratch.close()
        print(f"seeded {args.n} + {args.n} dead letters ({args.seed}) in {time.perf_counter() - started:.1f} s")
        copies = list(dailyfeed.db[KAFKA_LISTENER_DEAD_LETTERS].find())
        commands.take()
        options = RestoreOptions(batch_size=args.batch_size)
        for name, job in (
            ("restore-listener", ListenerRestore(store, dailyfeed.activity_service, options)),
            (
                "restore-publisher --mode handoff",
                PublisherRestore(store, dailyfeed.transports, options, mode=Mode.HANDOFF),
            ),
        ):
            baseline = update_by_id_rate(dailyfeed.db, copies)
            commands.take()
            started = time.perf_counter()
            summary = job.run()
            elapsed = time.perf_counter() - started
            rate = summary.restored / elapsed
            print(
                f"{name:<34} {summary.line():<36} {elapsed:6.2f} s  {rate:8.1f} /s "
                f"({args.uri.split('?')[0]}, batch {args.batch_size})"
            )
            print(
                f"{'  baseline: update_one by _id':<34} {len(copies):>8} documents {' ' * 18} {baseline:8.1f} /s"
                f"  -> restore at {rate / baseline:.2f}x of it"
            )
            for (command, collection), times in sorted(commands.take().items(), key=lambda item: -sum(item[1])):
                print(
                    f"    {command:<10} {collection:<28} {len(times):6d} x {sum(times) / len(times):8.2f} ms"
                    f" = {sum(times) / 1000:7.2f} s"
                )
    finally:
        if args.uri.startswith("mongodb"):
            dailyfeed.db.client.drop_database(dailyfeed.db.name)
        dailyfeed.close()


if __name__ == "__main__":
    main()
