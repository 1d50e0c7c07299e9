"""Consumer lag of the listener's group, read from outside the listener: for each partition of every date topic,
the end offset (high watermark) minus the group's committed offset (SPEC section 8a).

A partition the group never committed counts from the start of what the broker still keeps (the listener reads
from `earliest`), so a listener that has not started yet shows everything that waits for it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
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

    @property
    def lag(self) -> int:
        position = self.start_offset if self.committed is None else self.committed
        return max(0, self.end_offset - position)


def read_consumer_lag(settings: Settings, *, group_id: str | None = None, timeout_s: float = 5.0) -> list[PartitionLag]:
    """The lag of `group_id` (default: kafka.consumer.group-id) on every date topic, sorted by topic and partition.
    Raises TopicAdminError when Kafka does not answer within `timeout_s`."""
    topics = DateTopics.from_settings(settings)
    bootstrap = settings["kafka.bootstrap-servers"]
    group = group_id or settings["kafka.consumer.group-id"]

    async def main() -> list[PartitionLag]:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="dailyfeed-lag",
                                    request_timeout_ms=int(timeout_s * 1000))
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, client_id="dailyfeed-lag",
                                    enable_auto_commit=False, request_timeout_ms=int(timeout_s * 1000))
        try:
            await admin.start()
            await consumer.start()
            names = [t for t in await admin.list_topics() if topics.day_of(t) is not None]
            partitions = [TopicPartition(name, p) for name in names
                          for p in sorted(consumer.partitions_for_topic(name) or await _partitions(consumer, name))]
            if not partitions:
                return []
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
            committed = await _group_offsets(admin, group, partitions)
            result = []
            for tp in partitions:
                meta: Any = committed.get(tp)
                offset = meta.offset if meta is not None and meta.offset >= 0 else None
                result.append(PartitionLag(tp.topic, tp.partition, ends[tp], offset, starts[tp]))
            return sorted(result, key=lambda item: (item.topic, item.partition))
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
