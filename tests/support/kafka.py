"""Helpers for the Kafka tier: apps that publish by Kafka with a listener thread, raw records, committed offsets,
polling with deadlines, and a private broker that fault tests may kill (never the shared one)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from dailyfeed.extension import get_container
from dailyfeed.store import MEMBER_ACTIVITIES
from dailyfeed.tokens import issue_member_token
from dailyfeed.transport.loop import run_to_end
from dailyfeed.transport.topics import DateTopics, create_topics, delete_topics

from . import ROOT
from .apps import free_port

SERVICES = ROOT / "scripts" / "services.sh"


def wait_until(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what or check}")
        time.sleep(interval)


def run_async(coro_factory: Callable[[], Any], timeout: float = 30.0) -> Any:
    return run_to_end(coro_factory, timeout)


async def _admin(bootstrap: str, work: Callable[[Any], Any]) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        return await work(admin)
    finally:
        await admin.close()


def topic_names(bootstrap: str) -> list[str]:
    return run_async(lambda: _admin(bootstrap, lambda admin: admin.list_topics()))


def describe_topic(bootstrap: str, topic: str) -> dict[str, Any]:
    """{partitions, retention.ms} of a topic."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def work(admin):
        [meta] = await admin.describe_topics([topic])
        [configs] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        values = {entry[0]: entry[1] for entry in configs.resources[0][4]}
        return {"partitions": len(meta["partitions"]), "retention.ms": values.get("retention.ms")}

    return run_async(lambda: _admin(bootstrap, work))


def make_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    topics = DateTopics(prefix="", timezone="UTC", partitions=partitions)
    run_async(lambda: _admin(bootstrap, lambda admin: create_topics(admin, topics, list(names))))


def drop_topics(bootstrap: str, prefix: str) -> None:
    async def work(admin):
        await delete_topics(admin, [t for t in await admin.list_topics() if t.startswith(prefix)])

    try:
        run_async(lambda: _admin(bootstrap, work))
    except Exception:  # best effort clean-up: a broker killed by a fault test may be gone
        pass


def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    async def work(admin):
        offsets = await admin.list_consumer_group_offsets(group)
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    return run_async(lambda: _admin(bootstrap, work))


def produce(bootstrap: str, records: Iterable[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """Send raw records ({topic, value, key?, partition?, headers?, timestamp_ms?}); returns (topic, partition,
    offset) each."""
    from aiokafka import AIOKafkaProducer

    async def send():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            placed = []
            for r in records:
                value = r["value"]
                if not isinstance(value, (bytes, type(None))):
                    value = json.dumps(value).encode()
                key = r.get("key")
                meta = await producer.send_and_wait(
                    r["topic"],
                    value=value,
                    key=key.encode() if isinstance(key, str) else key,
                    partition=r.get("partition"),
                    headers=r.get("headers"),
                    timestamp_ms=r.get("timestamp_ms"),
                )
                placed.append((meta.topic, meta.partition, meta.offset))
            return placed
        finally:
            await producer.stop()

    return run_async(send)


class KafkaApps:
    """Builds apps that publish by Kafka on the real broker and store in FerretDB, each with its own topic prefix,
    consumer group and database, so tests never see each other's records; closes and cleans them up."""

    def __init__(self, make_app: Callable[..., Any], bootstrap: str, mongo_uri: str):
        self.make_app = make_app
        self.bootstrap = bootstrap
        self.mongo_uri = mongo_uri
        self.apps: list[Any] = []
        self.prefixes: set[str] = set()

    def settings_for(self, tag: str | None = None, **overrides: Any) -> dict[str, Any]:
        tag = tag or uuid.uuid4().hex[:8]
        config = {
            "mongo.uri": self.mongo_uri,
            "mongo.database": f"kafka_{tag}",
            "kafka.bootstrap-servers": self.bootstrap,
            "kafka.topic.prefix": f"t{tag}-member-activity-",
            "kafka.consumer.group-id": f"g{tag}",
            "publish-type.post-service": "kafka",
            "publish-type.comment-service": "kafka",
        }
        config.update(overrides)
        self.prefixes.add(config["kafka.topic.prefix"])
        return config

    def app(self, run_background: bool = True, **overrides: Any) -> Any:
        app = self.make_app(self.settings_for(**overrides), run_background=run_background)
        self.apps.append(app)
        return app

    def close(self) -> None:
        databases = set()
        for app in self.apps:
            dailyfeed = get_container(app)
            dailyfeed.close()
            databases.add((dailyfeed.db.client, dailyfeed.db.name))
        for client, name in databases:
            client.drop_database(name)
        for prefix in self.prefixes:
            drop_topics(self.bootstrap, prefix)


class Api:
    """Calls the app as a member: api.post(7, "/api/posts", json=...)."""

    def __init__(self, app: Any):
        self.client = app.test_client()
        self.secret = get_container(app).settings["auth.jwt-secret"]

    def __getattr__(self, method: str):
        def call(member_id: int, path: str, **kwargs):
            headers = {"Authorization": f"Bearer {issue_member_token(self.secret, member_id, 600)}"}
            return getattr(self.client, method)(path, headers=headers, **kwargs)

        return call


def activities(app: Any, **query: Any) -> list[dict[str, Any]]:
    return list(get_container(app).db[MEMBER_ACTIVITIES].find(query, {"_id": 0}))


class PrivateBroker:
    """A Kafka broker of the test's own, started by scripts/services.sh in a temporary state directory on free
    ports, reusing the jars already resolved for the shared broker. Killing it affects no one else."""

    def __init__(self):
        shared = Path(os.environ.get("DAILYFEED_SERVICES_DIR") or ROOT / ".services")
        self.libs = shared / "kafka" / "libs"
        self.dir = Path(tempfile.mkdtemp(prefix="dailyfeed-kafka-"))
        self.port = free_port()
        self.env = {
            **os.environ,
            "DAILYFEED_SERVICES_DIR": str(self.dir),
            "DAILYFEED_KAFKA_PORT": str(self.port),
            "DAILYFEED_KAFKA_CONTROLLER_PORT": str(free_port()),
            "DAILYFEED_KAFKA_HEAP_OPTS": "-Xmx384m -Xms128m",
        }
        self.bootstrap = f"127.0.0.1:{self.port}"

    @property
    def available(self) -> bool:
        return (self.libs / ".pom.sha256").is_file()

    def _services(self, *args: str, timeout: float = 150) -> None:
        result = subprocess.run(
            ["bash", str(SERVICES), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"services.sh {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )

    def start(self) -> None:
        kafka_dir = self.dir / "kafka"
        kafka_dir.mkdir(parents=True, exist_ok=True)
        if not (kafka_dir / "libs").exists():
            (kafka_dir / "libs").symlink_to(self.libs, target_is_directory=True)
        self._services("start", "kafka")

    def kill(self) -> None:
        self._services("kafka-kill", timeout=30)

    def freeze(self) -> None:
        """SIGSTOP the broker: its sockets stay open and nothing answers (a hung broker, a long GC pause)."""
        os.kill(self._pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self._pid(), signal.SIGCONT)

    def _pid(self) -> int:
        return int((self.dir / "kafka" / "kafka.pid").read_text().split()[0])

    def stop(self) -> None:
        try:
            self._services("stop", "kafka", timeout=60)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
