"""Section 5, restore: M listener dead letters through ListenerRestore and M publisher dead letters through
PublisherRestore (republish by Kafka), the jobs' own API with the CLI's default options, beside one document
updated by _id and a raw producer's serial sends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import common
from bench.app import services
from bench.ceiling import write_batch
from bench.common import Run
from bench.report import Table


def restore_rep(run: Run, rep: int, m: int) -> dict[str, Any]:
    """M listener dead letters → ListenerRestore; M publisher dead letters → PublisherRestore (republish by
    Kafka): the jobs' API, as `dailyfeed restore-listener` / `restore-publisher` run it (default options)."""
    from dailyfeed.restore.jobs import ListenerRestore, PublisherRestore, RestoreOptions
    from dailyfeed.transport.base import TransportUnavailable

    label = f"r{rep}"
    prefix = run.prefix(label)
    dailyfeed = services(
        {
            "mongo.uri": common.MONGO_URI,
            "mongo.database": run.db(label),
            "kafka.bootstrap-servers": common.BOOTSTRAP,
            "kafka.topic.prefix": prefix,
            "publish-type.post-service": "kafka",
            "publish-type.comment-service": "kafka",
        }
    )
    store = dailyfeed.dead_letters
    out: dict[str, Any] = {}
    try:
        events = common.make_events(m)
        t = time.perf_counter()
        for i, event in enumerate(events):
            store.record_listener_failure(
                origin={
                    "topic": common.today_topic(prefix),
                    "partition": 0,
                    "offset": i,
                    "key": event.message_key,
                    "value": event.to_bytes(),
                },
                error=RuntimeError("bench: store down"),
                event=event,
            )
        out["record_dl_per_s"] = m / (time.perf_counter() - t)
        t = time.perf_counter()
        summary = ListenerRestore(store, dailyfeed.activity_service, RestoreOptions()).run()
        out["listener_dl_per_s"] = m / (time.perf_counter() - t)
        out["listener_summary"] = summary.line()

        # baseline: the same M activities written as the app writes them (insert_many, batches of the restore's
        # default 50) with pymongo, into a fresh collection
        raw = dailyfeed.db["bench_raw_activities"]
        raw.create_index("message_key", unique=True, name="uniq_message_key")
        records = [(e.to_bytes(), e.message_key.encode()) for e in events]
        t = time.perf_counter()
        for start in range(0, m, 50):
            write_batch(raw, records[start : start + 50])
        out["raw_store_per_s"] = m / (time.perf_counter() - t)
        ids = [doc["_id"] for doc in raw.find({}, {"_id": 1})]
        t = time.perf_counter()
        for doc_id in ids:  # one document updated by _id: what claiming or marking a dead letter costs at least
            raw.update_one({"_id": doc_id}, {"$set": {"bench_mark": True}})
        out["raw_update_per_s"] = len(ids) / (time.perf_counter() - t)

        pub_events = common.make_events(m, start=10**6)
        for event in pub_events:
            store.record_publisher_failure(
                "kafka", event, TransportUnavailable("bench: broker down"), topic=common.today_topic(prefix)
            )
        dailyfeed.transports["post-service"].publish(common.make_events(1, start=10**7)[0])  # producer is up
        t = time.perf_counter()
        summary = PublisherRestore(store, dailyfeed.transports, RestoreOptions()).run()
        out["publisher_dl_per_s"] = m / (time.perf_counter() - t)
        out["publisher_summary"] = summary.line()

        # baseline: the same M events sent with a raw producer, each send awaited before the next
        raw_topic = common.today_topic(run.prefix(label + "raw"))

        async def raw_sends() -> float:
            await common.create_topic(raw_topic)
            await common.produce(raw_topic, pub_events[:1])  # the new topic has a leader before the clock starts
            return await common.produce(raw_topic, pub_events, awaited_one_by_one=True)

        seconds = asyncio.run(raw_sends())
        out["raw_serial_send_per_s"] = m / seconds
        return out
    finally:
        dailyfeed.close()


def rows(table: Table) -> None:
    m = f"{table.sizes['restore']:,}"
    update = table.values("restore", "raw_update_per_s")
    # The first round's "≥ 1,000/s" is retired: one document write is the least a restored dead letter costs (its
    # completion), and this store does a few hundred of those a second (5d). The restore is judged against its own
    # baseline in docs/benchmarks.md ("Restore: one write per dead letter"); here it is reported against 5d.
    retired = "retired (was ≥ 1,000/s)"
    table.figure(
        "5a restore-listener (dead letters/s)", m, table.values("restore", "listener_dl_per_s"), "5d", update, retired
    )
    publisher = table.values("restore", "publisher_dl_per_s")
    table.figure("5b restore-publisher, republish by kafka (dead letters/s)", m, publisher, "5d", update, retired)
    table.figure(
        "5b   against a raw serial send (each awaited)",
        m,
        publisher,
        "raw serial send",
        table.values("restore", "raw_serial_send_per_s"),
    )
    table.figure(
        "5c   recording a dead letter (DeadLetterStore, /s)",
        m,
        table.values("restore", "record_dl_per_s"),
        "5d",
        update,
    )
    table.figure(
        "5d   store: one document updated by _id, pymongo (/s)",
        m,
        update,
        "insert_many",
        table.values("restore", "raw_store_per_s"),
    )
