"""Consumer lag of the listener's group, read from outside the listener: for each partition of every date topic,
the end offset (high watermark) minus the group's committed offset (SPEC section 8a).

A partition the group never committed counts from the start of what the broker still keeps (the listener reads
from `earliest`), so a listener that has not started yet shows everything that waits for it.

Beside the offsets, the time lag: the timestamp of the oldest record not yet consumed (the one at the group's
position), read from that record itself for each partition that lags, so that "100 behind" can say "for 20 minutes".
A record's timestamp is the producer's (CreateTime, the topics' default): the time of the action it carries.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

from ..config import Settings
from .loop import run_to_end
from .topics import DateTopics, TopicAdminError, describe_error


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    end_offset: int  # the high watermark: the offset the next record will get
    committed: int | None  # None: the group never committed on this partition
    start_offset: int = 0  # the oldest offset the broker still keeps
    oldest_timestamp_ms: int | None = None  # the timestamp of the oldest record not consumed (None: none waits)

    @property
    def lag(self) -> int:
        position = self.start_offset if self.committed is None else self.committed
        return max(0, self.end_offset - position)

    @property
    def oldest_waiting(self) -> int:
        """The offset of the oldest record waiting that the broker still keeps."""
        return self.start_offset if self.committed is None else max(self.committed, self.start_offset)

    def lag_seconds(self, now: float | None = None) -> float:
        """How old the oldest record not yet consumed is at `now` (Unix time); 0 when none waits."""
        if not self.lag or self.oldest_timestamp_ms is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.oldest_timestamp_ms / 1000)


def read_consumer_lag(settings: Settings, *, group_id: str | None = None, timeout_s: float = 5.0) -> list[PartitionLag]:
    """The lag of `group_id` (default: kafka.consumer.group-id) on every date topic, sorted by topic and partition.
    Raises TopicAdminError when Kafka does not answer within `timeout_s`."""
    topics = DateTopics.from_settings(settings)
    bootstrap = settings["kafka.bootstrap-servers"]
    group = group_id or settings["kafka.consumer.group-id"]

    async def main() -> list[PartitionLag]:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="dailyfeed-lag", request_timeout_ms=int(timeout_s * 1000)
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            client_id="dailyfeed-lag",
            enable_auto_commit=False,
            request_timeout_ms=int(timeout_s * 1000),
            max_partition_fetch_bytes=64 * 1024,
        )  # only the first record of each is wanted
        try:
            await admin.start()
            await consumer.start()
            names = [t for t in await admin.list_topics() if topics.day_of(t) is not None]
            partitions = [
                TopicPartition(name, p)
                for name in names
                for p in sorted(consumer.partitions_for_topic(name) or await _partitions(consumer, name))
            ]
            if not partitions:
                return []
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
            committed = await _group_offsets(admin, group, partitions)
            result = {}
            for tp in partitions:
                meta: Any = committed.get(tp)
                offset = meta.offset if meta is not None and meta.offset >= 0 else None
                result[tp] = PartitionLag(tp.topic, tp.partition, ends[tp], offset, starts[tp])
            waiting = {tp: item.oldest_waiting for tp, item in result.items() if item.end_offset > item.oldest_waiting}
            oldest = await _oldest_timestamps(consumer, waiting, timeout_s / 2)
            return sorted(
                (replace(item, oldest_timestamp_ms=oldest.get(tp)) for tp, item in result.items()),
                key=lambda item: (item.topic, item.partition),
            )
        finally:
            await consumer.stop()
            await admin.close()

    try:
        return run_to_end(main, timeout_s * 2)
    except (asyncio.TimeoutError, TimeoutError):
        raise TopicAdminError(f"Kafka at {bootstrap} did not answer within {timeout_s * 2:.0f} s") from None
    except TopicAdminError:
        raise
    except Exception as exc:
        raise TopicAdminError(f"Kafka at {bootstrap}: {describe_error(exc)}") from exc


async def _oldest_timestamps(consumer: Any, positions: dict[Any, int], within_s: float) -> dict[Any, int]:
    """The timestamp (ms) of the record at each position: one fetch from there per partition that lags. A partition
    whose record does not come within `within_s` is left out (its time lag is then unknown, shown as 0)."""
    found: dict[Any, int] = {}
    if not positions:
        return found
    consumer.assign(list(positions))
    for tp, position in positions.items():
        consumer.seek(tp, position)
    deadline = time.monotonic() + within_s
    while len(found) < len(positions) and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=200)
        for tp, records in batches.items():
            if tp not in found and records:
                found[tp] = records[0].timestamp
                consumer.pause(tp)  # its first record is all that is wanted
    return found


async def _group_offsets(admin: Any, group: str, partitions: list[Any]) -> dict[Any, Any]:
    """The group's committed offsets. A retriable error (a broker that is still electing the coordinator of a
    group, as a new broker does for the first group it is asked about) is tried again until the caller's timeout."""
    while True:
        try:
            return await admin.list_consumer_group_offsets(group, partitions=partitions)
        except Exception as exc:
            if not getattr(exc, "retriable", False):
                raise
            await asyncio.sleep(0.2)


async def _partitions(consumer: Any, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # a topic created after the consumer started
    return consumer.partitions_for_topic(topic) or set()
