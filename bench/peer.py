"""The peer of `dailyfeed listen` (row 2p): the listener a Python team would otherwise write with FastStream.

A FastStream batch Kafka subscriber (batches of at most `kafka.consumer.max-records`, 500), its events typed with
a pydantic model as FastStream does it, stored with one `insert_many(ordered=False)` per batch through pymongo in
a worker thread (a key already stored is refused by the unique message-key index and counts as recorded), and
committed after the store (`AckPolicy.ACK`: FastStream commits once the handler returned). It runs in a process
of its own, like `dailyfeed listen`, on the same topic data, into a database with the app's own indexes:

    python -m bench.peer --topic T --group G --database D

It logs `peer consuming` once its subscriber has started (where the bench starts its clock) and stops on SIGTERM.
FastStream is in the `bench` extra only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from datetime import datetime

from pydantic import BaseModel

from bench import common
from bench.ceiling import MAX_RECORDS, insert_ignoring_duplicates
from dailyfeed.store import ensure_indexes

log = logging.getLogger("bench.peer")


class ActivityIn(BaseModel):
    """The event JSON as a team would type it for FastStream (SPEC section 4, our producers' form)."""

    memberId: int
    postId: int | None = None
    commentId: int | None = None
    followingId: int | None = None
    memberActivityType: str
    createdAt: datetime
    updatedAt: datetime | None = None


def activity_document(event: ActivityIn, key: bytes) -> dict:
    doc = {
        "member_id": event.memberId,
        "post_id": event.postId,
        "comment_id": event.commentId,
        "member_activity_type": event.memberActivityType,
        "message_key": key.decode(),
        "created_at": event.createdAt,
        "updated_at": event.updatedAt,
    }
    if event.followingId is not None:
        doc["following_id"] = event.followingId
    return doc


async def serve(topic: str, group: str, database: str) -> None:
    from faststream import AckPolicy
    from faststream.kafka import KafkaBroker
    from faststream.kafka.annotations import KafkaMessage

    client = common.mongo()
    collection = client[database]["member_activities"]
    broker = KafkaBroker(common.BOOTSTRAP, client_id="dailyfeed-bench-peer", logger=None)

    @broker.subscriber(
        topic,
        group_id=group,
        batch=True,
        max_records=MAX_RECORDS,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def store(events: list[ActivityIn], message: KafkaMessage) -> None:
        docs = [activity_document(event, record.key) for event, record in zip(events, message.raw_message)]
        await asyncio.to_thread(insert_ignoring_duplicates, collection, docs)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    log.info("peer consuming %s as group %s", topic, group)
    try:
        await stop.wait()
    finally:
        await broker.stop()
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--database", required=True)
    args = parser.parse_args()
    # the same log line format as dailyfeed's (the bench reads the time of `… consuming` from it)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    client = common.mongo()
    try:
        ensure_indexes(client[args.database])  # the listener's collection has these: the same store work
    finally:
        client.close()
    common.run_as_the_app_consumes(serve(args.topic, args.group, args.database))


if __name__ == "__main__":
    main()
