"""Section 1, the ceiling: raw aiokafka produce and consume, and consume + the app's insert_many through
pymongo, committing after each batch like the listener. No app process."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any, Callable

from pymongo.errors import BulkWriteError

from bench import common
from bench.common import Run
from bench.report import Table
from dailyfeed.store import ensure_indexes

MAX_RECORDS = 500  # kafka.consumer.max-records default: the ceiling polls batches as large as the listener's


def activity_doc(value: bytes, key: bytes) -> dict:
    """The member_activities document of a record, as dailyfeed.activity.repository.activity_document makes it.
    Built here from the raw record on purpose: the ceiling leaves out the app's parsing of the event."""
    body = json.loads(value)
    return {
        "member_id": body["memberId"],
        "post_id": body["postId"],
        "comment_id": body.get("commentId"),
        "member_activity_type": body["memberActivityType"],
        "message_key": key.decode(),
        "created_at": datetime.fromisoformat(body["createdAt"].replace("Z", "+00:00")),
        "updated_at": body.get("updatedAt"),
    }


def insert_ignoring_duplicates(collection, docs: list[dict]) -> None:
    """The app's write (ActivityRepository.insert_all_if_absent): one unordered insert_many; a key already stored
    is refused by the unique message_key index (code 11000) and counts as recorded."""
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
            raise


def write_batch(collection, records) -> None:
    """The app's write of a batch of raw (value, key) records."""
    insert_ignoring_duplicates(collection, [activity_doc(value, key) for value, key in records])


async def consume(topic: str, group: str, n: int, write: Callable | None, collection=None) -> dict[str, float]:
    """Consume n records in batches of MAX_RECORDS, write each batch (if asked) in a worker thread, commit
    after it, like the listener. Timed from the consumer's start to the commit of the n-th record."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=common.BOOTSTRAP,
        group_id=group,
        client_id="dailyfeed-bench",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    started = time.perf_counter()
    done = 0
    store_s = 0.0
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)
            records = [(r.value, r.key) for recs in batches.values() for r in recs]
            if not records:
                continue
            if write is not None:
                t = time.perf_counter()
                await asyncio.to_thread(write, collection, records)
                store_s += time.perf_counter() - t
            await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs})
            done += len(records)
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"events_per_s": n / elapsed, "seconds": elapsed, "store_share": store_s / elapsed}


def ceiling_rep(run: Run, rep: int, n: int) -> dict[str, Any]:
    """1a-1c, and 1d: 1c into a collection with the unique message-key index only (what the app's other indexes
    cost the store)."""
    label = f"c{rep}"
    topic = common.today_topic(run.prefix(label))
    events = common.make_events(n)
    client = common.mongo()
    db, bare = client[run.db(label)], client[run.db(label + "u")]
    ensure_indexes(db)  # the listener's collection has every index of the app: its ceiling writes into the same
    bare["member_activities"].create_index("message_key", unique=True, name="uniq_message_key")

    async def go() -> dict[str, Any]:
        await common.create_topic(topic)
        produce_s = await common.produce(topic, events)
        read = await consume(topic, run.group(label + "-read"), n, None)
        found = {}
        for name, into in [("store", db), ("bare", bare)][:: 1 if rep % 2 == 0 else -1]:  # which goes first alternates
            found[name] = await consume(topic, run.group(f"{label}-{name}"), n, write_batch, into["member_activities"])
        stored, unique_only = found["store"], found["bare"]
        return {
            "produce": n / produce_s,
            "consume": read["events_per_s"],
            "store": stored["events_per_s"],
            "store_share": stored["store_share"],
            "store_unique_index": unique_only["events_per_s"],
        }

    try:
        result = common.run_as_the_app_consumes(go())
        result["stored"] = db["member_activities"].count_documents({})
        return result
    finally:
        client.drop_database(db.name)
        client.drop_database(bare.name)
        client.close()


def rows(table: Table) -> None:
    n = f"{table.sizes['ingest']:,}"
    table.figure("1a ceiling: raw produce, acks=all idempotent (ev/s)", n, table.values("ceiling", "produce"))
    table.figure("1b ceiling: raw consume, no store (ev/s)", n, table.values("ceiling", "consume"))
    table.figure(
        "1c ceiling: raw consume + the app's insert_many (its indexes), commit after (ev/s)",
        n,
        table.values("ceiling", "store"),
    )
    table.figure(
        "1d   1c into a collection with the unique key index only (ev/s)",
        n,
        table.values("ceiling", "store_unique_index"),
        "1c",
        table.values("ceiling", "store"),
    )
