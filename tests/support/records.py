"""Reading back what is on a topic, headers included (for the trace context tests)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from .kafka import run_async


def read_records(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """The first `expected` records of `topic` (all partitions, from the start), as {key, value, headers} with the
    headers as a dict; fails when fewer are there within `timeout_s`."""
    return _read_until(bootstrap, topic, lambda found: len(found) >= expected, timeout_s)


def find_record(bootstrap: str, topic: str, key: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The first record of `topic` with this key; fails when there is none within `timeout_s`."""
    found = _read_until(bootstrap, topic, lambda found: any(r["key"] == key for r in found), timeout_s)
    return next(r for r in found if r["key"] == key)


def _read_until(
    bootstrap: str, topic: str, enough: Callable[[list[dict[str, Any]]], bool], timeout_s: float
) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer

    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=1000,
        )
        await consumer.start()
        found: list[dict[str, Any]] = []
        try:
            while not enough(found):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(
                        {
                            "key": r.key.decode() if r.key else None,
                            "value": r.value,
                            "headers": {name: value.decode() for name, value in r.headers or ()},
                        }
                        for r in records
                    )
            return found
        finally:
            await asyncio.shield(consumer.stop())

    return run_async(read, timeout_s)
