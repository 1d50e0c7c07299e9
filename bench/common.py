"""Shared helpers of the benchmarks: run naming, the real services, events, processes, statistics.

Every benchmark run gets a short id; its databases are `bench_<id>_…`, its topics `bench-<id>-…` and its consumer
groups `bench-<id>-…`, so a run never touches anyone else's data and cleans up exactly what it made.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import pymongo

from dailyfeed.config import load_settings
from dailyfeed.events import ActivityEvent, ActivityType
from dailyfeed.transport.loop import loop_factory, run_loop

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DOCS = REPO / "docs" / "benchmarks.md"
PYTHON = sys.executable
# the console script of the venv running the bench; BENCH_DAILYFEED names another (another version's listener)
DAILYFEED = os.environ.get("BENCH_DAILYFEED") or str(Path(PYTHON).parent / "dailyfeed")
MONGO_URI = os.environ.get("DAILYFEED_MONGO_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
BOOTSTRAP = os.environ.get("DAILYFEED_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PARTITIONS = 6  # kafka.topic.partitions default


class Sizes:
    """How much each section does, from --scale (BENCH_SCALE) and --reps."""

    def __init__(self, scale: float, reps: int, flat_events: int | None):
        def scaled(n: int, low: int) -> int:
            return max(low, int(n * scale))

        self.scale = scale
        self.reps = reps
        self.ingest = scaled(20_000, 2_000)  # events per ceiling / listener run
        self.writes = scaled(600, 100)  # POSTs per write-path run, after the warm-up
        self.warmup = 30
        self.concurrency = 8  # client threads = server.threads
        self.restore = scaled(300, 60)  # dead letters per restore run
        self.flat = flat_events if flat_events is not None else scaled(100_000, 10_000)
        # read paths: stored activities at each size, and per endpoint and size at most this many timed
        # requests (each beside its raw query) or this many seconds, whichever comes first (at least 5)
        self.read = [scaled(1_000, 200), scaled(10_000, 1_000), scaled(50_000, 5_000)]
        self.read_samples = 30
        self.read_budget_s = 6.0


# --- naming ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Names for one benchmark run; everything it creates starts with `bench_<id>` / `bench-<id>`."""

    id: str
    databases: set[str] = field(default_factory=set)  # every database name handed out, for the clean-up

    @classmethod
    def new(cls) -> "Run":
        return cls(uuid.uuid4().hex[:8])

    def db(self, label: str) -> str:
        name = f"bench_{self.id}_{label}"
        self.databases.add(name)
        return name

    def prefix(self, label: str) -> str:
        """A topic prefix of the app's shape: its date topics are `{prefix}{yyyyMMdd}`."""
        return f"bench-{self.id}-{label}-member-activity-"

    def group(self, label: str) -> str:
        return f"bench-{self.id}-{label}"


def today_topic(prefix: str) -> str:
    return f"{prefix}{datetime.now(timezone.utc):%Y%m%d}"


# --- events ---------------------------------------------------------------------------------------------------


def make_events(n: int, *, start: int = 1, members: int = 100) -> list[ActivityEvent]:
    """n distinct POST_CREATE events as the content module makes them (one key each, today's date)."""
    base = datetime.now(timezone.utc)
    return [
        ActivityEvent.new(ActivityType.POST_CREATE, (i % members) + 1, post_id=i, at=base + timedelta(microseconds=i))
        for i in range(start, start + n)
    ]


# --- Kafka ----------------------------------------------------------------------------------------------------


async def create_topic(topic: str, partitions: int = PARTITIONS) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="dailyfeed-bench")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def produce(topic: str, events: list[ActivityEvent], *, awaited_one_by_one: bool = False) -> float:
    """Send the events with a raw aiokafka producer configured like the app's (acks=all, idempotent); returns
    the seconds it took until every send was acknowledged. Batched (all sends in flight, the most the broker
    takes) unless `awaited_one_by_one` (each send awaited before the next, as a restore republishes)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True, client_id="dailyfeed-bench"
    )
    await producer.start()
    try:
        records = [(e.to_bytes(), e.message_key.encode()) for e in events]
        started = time.perf_counter()
        if awaited_one_by_one:
            for value, key in records:
                await producer.send_and_wait(topic, value=value, key=key)
        else:
            futures = [await producer.send(topic, value=value, key=key) for value, key in records]
            await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def committed(group: str) -> int:
    """Offsets the consumer group has committed, summed over its partitions (= records it has handled)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="dailyfeed-bench")
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(max(meta.offset, 0) for meta in offsets.values())
    finally:
        await admin.close()


class OffsetWatcher:
    """Polls a consumer group's committed offsets from one admin client (cheap on the broker, no store load)."""

    def __init__(self, group: str):
        self.group = group
        self._admin = None

    async def __aenter__(self) -> "OffsetWatcher":
        from aiokafka.admin import AIOKafkaAdminClient

        self._admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="dailyfeed-bench-watch")
        await self._admin.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._admin.close()

    async def committed(self) -> int:
        offsets = await self._admin.list_consumer_group_offsets(self.group)
        return sum(max(meta.offset, 0) for meta in offsets.values())


async def wait_group_stable(group: str, members: int, timeout: float = 60.0) -> None:
    """Until the consumer group is Stable with `members` members (every listener has its partitions)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="dailyfeed-bench-watch")
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            for response in await admin.describe_consumer_groups([group]):
                for described in response.groups:  # (error, group, state, protocol type, protocol, members, …)
                    seen = (described[2], len(described[5]))
            if seen == ("Stable", members):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"group {group} not stable with {members} members within {timeout:.0f} s (last {seen})")
    finally:
        await admin.close()


def delete_topics(run: Run) -> list[str]:
    async def go() -> list[str]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="dailyfeed-bench")
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics() if t.startswith(f"bench-{run.id}-")]
            if mine:
                await admin.delete_topics(mine)
            return mine
        finally:
            await admin.close()

    return asyncio.run(go())


# --- the store ------------------------------------------------------------------------------------------------


def mongo() -> pymongo.MongoClient:
    return pymongo.MongoClient(MONGO_URI, serverSelectionTimeoutMS=5000, tz_aware=True)


def drop_databases(run: Run) -> list[str]:
    """Drop the run's databases by name. (Not by listing them: FerretDB's listDatabases can wait minutes behind
    another client's long writes.)"""
    client = mongo()
    try:
        for name in sorted(run.databases):
            client.drop_database(name)
        return sorted(run.databases)
    finally:
        client.close()


# --- processes ------------------------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB; empty when it is gone."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    found[name] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


def run_as_the_app_consumes(main) -> Any:
    """asyncio.run on the event loop the app's Kafka clients run on (`kafka.event-loop`, from the environment as
    the app reads it): the ceiling and the peer consume on the same loop as the listener they are compared with."""
    return run_loop(main, loop_factory(load_settings()["kafka.event-loop"]))


def bench_env(**settings: Any) -> dict[str, str]:
    """The environment for a dailyfeed subprocess: DAILYFEED_<SETTING> overrides on top of ours."""
    env = dict(os.environ)
    env.update(
        {"DAILYFEED_MONGO_URI": MONGO_URI, "DAILYFEED_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "PYTHONUNBUFFERED": "1"}
    )
    for key, value in settings.items():
        env["DAILYFEED_" + key.upper().replace(".", "_").replace("-", "_")] = str(value)
    return env


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process we started (and only it), then SIGKILL if it does not end."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def wait_for_line(path: Path, pattern: str, proc: subprocess.Popen, timeout: float = 60.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        match = re.search(pattern, text)
        if match:
            return match
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args[:3]} ended with {proc.returncode} before saying {pattern!r}; log {path}:\n{text[-3000:]}"
            )
        time.sleep(0.05)
    raise TimeoutError(f"no {pattern!r} in {path} within {timeout:.0f} s")


# --- statistics -----------------------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(round(q / 100 * len(ordered) + 0.5))))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def save_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
